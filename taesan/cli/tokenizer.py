"""`taesan tokenizer`: train a tokenizer on files, encode a sentence with one, or compare the kinds on a corpus
(table + PNG chart).

Not the algorithms: those are in taesan.tokenizers; this module parses arguments, prints and plots.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from taesan.config import write_json
from taesan.errors import TaesanError
from taesan.tokenizers import KINDS, load
from taesan.tokenizers.base import BERT_SPECIALS
from taesan.tokenizers.compare import DEFAULT_KINDS, DEFAULT_VARIANTS, available_kinds, byte_split_note, compare, plot
from taesan.tokenizers.corpus import describe, iter_texts
from taesan.tokenizers.wordpiece import BertNormalizer

HELP = "train, use and compare tokenizers (word, morpheme, char, bpe, wordpiece)"
KIND_CHOICES = ["word", "morpheme", "char", "bpe", "wordpiece"]
CORPUS_HELP = ("text (one text per line), JSONL or a JSON list with 'text', or a table (.tsv, .csv, or a .txt with a "
              "tab-separated header such as NSMC's) read for its document, text or sentence column")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="learn a vocabulary from text, JSONL or table files and write tokenizer.json")
    t.add_argument("--kind", required=True, choices=KIND_CHOICES)
    t.add_argument("--vocab-size", type=int, required=True, metavar="N")
    t.add_argument("--min-frequency", type=int, default=2, metavar="N")
    t.add_argument("--special-tokens", nargs="*", default=None, metavar="TOK",
                   help="default: [PAD] [UNK] [CLS] [SEP] [MASK] (bpe: <|endoftext|>)")
    t.add_argument("--lowercase", action="store_true", help="wordpiece: lowercase (and strip accents) like uncased BERT")
    t.add_argument("--merge-rule", choices=["likelihood", "frequency"], default=None,
                   help="wordpiece: merge the pair with the best count(ab)/(count(a)count(b)) (default, the WordPiece "
                        "paper's) or the most frequent pair (HuggingFace's trainer; merges common Korean syllable pairs)")
    t.add_argument("--morphemes", action="store_true",
                   help="wordpiece: cut Korean words at kiwipiepy morphemes before learning, so no merge crosses one "
                        "(이순신 ##은); the result is a plain WordPiece any BERT tokenizer reads")
    t.add_argument("--input", nargs="+", required=True, metavar="FILE", help=CORPUS_HELP)
    t.add_argument("--no-progress", action="store_true", help="no progress bars (wordpiece shows its merges)")
    t.add_argument("--output", required=True, metavar="PATH",
                   help="tokenizer.json to write (a directory gets tokenizer.json); missing directories are created")

    e = sub.add_parser("encode", help="show the tokens, ids and offsets of a text")
    e.add_argument("--tokenizer", required=True, metavar="PATH", help="tokenizer.json, vocab.txt, or a directory")
    e.add_argument("text")
    e.add_argument("--pair", default=None, help="a second text ([CLS] a [SEP] b [SEP])")

    c = sub.add_parser("compare", help="train every kind and compare them on held-out lines")
    c.add_argument("--input", nargs="+", required=True, metavar="FILE", help=CORPUS_HELP)
    c.add_argument("--vocab-size", type=int, default=8000, metavar="N")
    c.add_argument("--min-frequency", type=int, default=2, metavar="N")
    c.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS), choices=list(DEFAULT_KINDS),
                   help="wordpiece-morphemes: WordPiece with --merge-rule frequency --morphemes")
    c.add_argument("--max-lines", type=int, default=20000, metavar="N", help="use the first N non-empty lines (0: all)")
    c.add_argument("--variants", nargs="+", default=None, metavar="WORD", help="words whose splits to show")
    c.add_argument("--out", default="tokenizer_compare", metavar="DIR", help="where compare.png and compare.json go")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "encode": _encode, "compare": _compare}[args.action](args)


def _files(names: list[str], args: argparse.Namespace, say=print) -> list[Path]:
    """Paths, so a missing file is an error rather than being read as a line of text; a directory, an empty file
    or a vocabulary size below 1 is an error too (training on them wrote a tokenizer of special tokens only).
    `say` hears which column of a table (or JSON list) is read."""
    for name in ("vocab_size", "min_frequency"):
        if getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    paths = [Path(n) for n in names]
    for path in paths:
        if path.is_dir():
            raise TaesanError(f"{path}: is a directory; pass the text files in it")
        if path.is_file() and path.stat().st_size == 0:
            raise TaesanError(f"{path}: the file is empty")
    for path in paths:
        if path.is_file() and (line := describe(path)):
            say(line)
    return paths


def _train(args: argparse.Namespace) -> int:
    paths = _files(args.input, args)
    target, created = _output(Path(args.output))
    options = {}
    if args.kind == "wordpiece":
        _check_wordpiece_room(paths, args)
        options = {"lowercase": args.lowercase, "progress": not args.no_progress, "merge_rule": args.merge_rule or "likelihood",
                   "morphemes": args.morphemes}
    else:
        for flag, given in (("--merge-rule", args.merge_rule is not None), ("--morphemes", args.morphemes)):
            if given:
                raise TaesanError(f"{flag} is a wordpiece option, not for --kind {args.kind}")
    tok = KINDS[args.kind].train(paths, vocab_size=args.vocab_size, min_frequency=args.min_frequency,
                                 special_tokens=args.special_tokens, **options)
    path = tok.save(target)
    note = f" (created the directory {created})" if created is not None else ""
    print(f"trained {args.kind} tokenizer: {tok.vocab_size} tokens -> {path}{note}")
    if tok.vocab_size < args.vocab_size:
        print(_short_vocabulary_line(args.kind, tok.vocab_size, args.vocab_size, args.min_frequency))
    return 0


def _short_vocabulary_line(kind: str, got: int, asked: int, min_frequency: int) -> str:
    """Why a vocabulary came out smaller than --vocab-size: it is a ceiling, and the corpus ran out first
    (a 30k-review corpus with morpheme-bound merges stops near 20k of 32k asked)."""
    units = {"word": "distinct words", "morpheme": "distinct morphemes", "char": "distinct characters"}.get(kind)
    ran_out = (f"the corpus has no more {units} seen at least {min_frequency} times" if units is not None
               else f"no pair of pieces left to merge is seen at least {min_frequency} times")
    return f"note: {got:,} tokens of the {asked:,} asked: {ran_out}; a larger corpus or a lower --min-frequency gives more"


def _output(path: Path) -> tuple[Path, Path | None]:
    """--output -> (the file to write, the outermost directory that will be created, or None), checked before
    training: a file standing where a directory must go is an error now, not after the work."""
    target = path / "tokenizer.json" if path.is_dir() or path.suffix == "" else path  # as Tokenizer.save decides
    missing = None
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TaesanError(f"--output {path}: {parent} is a file, not a directory")
            break
        missing = parent
    return target, missing


def _check_wordpiece_room(paths: list[Path], args: argparse.Namespace) -> None:
    """WordPiece's vocabulary starts with every character of the corpus (first and ##continuation forms) after the
    special tokens: a --vocab-size below that wrote a vocabulary of special tokens and no word. Each distinct
    character (normalized as training will) is at least one symbol, so fewer slots than that is refused."""
    given = getattr(args, "special_tokens", None)  # compare has no --special-tokens / --lowercase: BERT's, cased
    specials = BERT_SPECIALS if given is None else given
    seen: set[str] = set()
    for text in iter_texts(paths):
        seen.update(text)
    normalizer = BertNormalizer(getattr(args, "lowercase", False))
    alphabet = {x for c in seen for x in normalizer.normalize_char(c) if not x.isspace()}
    need = len(set(specials)) + len(alphabet)
    if args.vocab_size < need:
        raise TaesanError(f"--vocab-size {args.vocab_size} is below the alphabet plus the special tokens: the corpus has "
                          f"{len(alphabet)} distinct characters and there are {len(set(specials))} special tokens; "
                          f"use at least {need} (more, to learn any word pieces)")


def _encode(args: argparse.Namespace) -> int:
    tok = load(args.tokenizer)
    enc = tok.encode(args.text, args.pair)
    print(f"{type(tok).__name__} ({tok.vocab_size} tokens): {len(enc)} tokens")
    print(f"{'#':>3}  {'id':>6}  {'offsets':<10}  {'word':>4}  text  (token)")
    sequences = enc.sequence_ids or [0] * len(enc.ids)
    for n, (tid, token, (s, e), w, q) in enumerate(zip(enc.ids, enc.tokens, enc.offsets, enc.word_ids, sequences)):
        text = (args.pair if q == 1 else args.text)[s:e]  # the covered text: byte-level tokens read "Ġì¹´íİĺ"
        shown = f"{text!r}  ({token})" if text != token else repr(text)
        print(f"{n:>3}  {tid:>6}  {f'({s}, {e})':<10}  {'-' if w is None else w:>4}  {shown}")
    print("ids:", " ".join(map(str, enc.ids)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    kinds = tuple(args.kinds)
    skipped = sorted(set(kinds) - set(available_kinds(kinds)))
    if skipped:
        print(f"skipping {', '.join(skipped)}: kiwipiepy is not installed (pip install \"taesan[korean]\")", file=sys.stderr)
    variants = tuple(args.variants) if args.variants else DEFAULT_VARIANTS
    paths = _files(args.input, args, say=lambda line: print(line, file=sys.stderr))
    if any(k.startswith("wordpiece") for k in kinds):  # as train refuses it: a vocabulary of specials and no word
        _check_wordpiece_room(paths, args)
    reports = compare(paths, vocab_size=args.vocab_size, kinds=kinds, min_frequency=args.min_frequency,
                      variants=variants, max_lines=args.max_lines or None,
                      on_kind=lambda k: print(f"training {k} ...", file=sys.stderr, flush=True))
    k = max([4, *(len(r.kind) for r in reports)])
    print(f"{'kind':<{k}} {'vocab':>7} {'[UNK] %':>8} {'tok/sent':>9} {'char/tok':>9} {'train s':>8}")
    for r in reports:
        print(f"{r.kind:<{k}} {r.vocab_size:>7} {100 * r.unk_rate:>8.2f} {r.tokens_per_sentence:>9.1f} "
              f"{r.chars_per_token:>9.2f} {r.train_seconds:>8.1f}")
    print()
    width = max(len(v) for v in variants) + 2
    for v in variants:
        print(f"{v:<{width}}" + "   ".join(f"{r.kind}: {' + '.join(r.variants[v])}" for r in reports))
    for r in reports:  # a size other than asked is said, as train says it (BPE cannot go below its 256 bytes)
        if r.vocab_size < args.vocab_size:
            print(f"{r.kind}: " + _short_vocabulary_line(r.kind, r.vocab_size, args.vocab_size, args.min_frequency))
        elif r.vocab_size > args.vocab_size:
            print(f"{r.kind}: note: {r.vocab_size:,} tokens, more than the {args.vocab_size:,} asked: its base alphabet "
                  f"({'256 bytes' if r.kind == 'bpe' else 'every character'}) and special tokens come first")
    note = next((n for r in reports for v in variants if (n := byte_split_note(r.variants[v], " + "))), "")
    if note:
        print(f"\n{note}")
    out = Path(args.out)
    write_json(out / "compare.json", [asdict(r) for r in reports])
    png = plot(reports, out / "compare.png")
    print(f"\nwrote {out / 'compare.json'} and {png}")
    return 0
