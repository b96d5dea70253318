"""Tokenizer speed of taesan against the `tokenizers` library (Rust) in one run: BPE and WordPiece training
time and encoding throughput on ~10 MB built from ../shared/data/corpus, vocab 8000, 2 cores for both; and
the encoding throughput of an XLM-R-shaped Unigram tokenizer.json (Precompiled + Metaspace + Unigram +
template, trained by the Rust library), which taesan runs with its general PipelineTokenizer.

Encoding is timed up to every row's ids read as Python lists (what feeding a model needs; the Rust library
converts its columns when Python reads them, taesan builds the columns beyond ids when first read), then
reading every row's offsets is timed on its own. Not a correctness test (tests/test_bpe.py and
tests/test_wordpiece*.py are), though each run checks that both give the same ids and offsets with the
same vocabulary. CPU seconds (all threads and processes) are printed too: other jobs on a shared machine
distort them far less than wall time.
Usage: python benchmarks/tokenizer_speed.py [--mb 10] [--vocab 8000] [--only bpe|wordpiece|unigram]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# keep this folder off the path so `import tokenizers` always finds the Rust library
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing; benchmarks.machine_info
from benchmarks.machine_info import machine  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "data" / "corpus"


def build_corpus(directory: Path, megabytes: float) -> Path:
    """Concatenate the corpus texts (JSONL "text" fields, plain files) and repeat them up to `megabytes`."""
    texts = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".jsonl":
            texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix == ".txt":
            texts.append(path.read_text(encoding="utf-8").replace("\r\n", "\n"))
    blob = ("\n".join(texts) + "\n").encode("utf-8")
    want = int(megabytes * 1_000_000)
    data = (blob * (want // len(blob) + 1))[:want]
    data = data[: data.rfind(b"\n") + 1]
    out = directory / "corpus.txt"
    out.write_bytes(data)
    return out


CPU_SECONDS: dict[str, float] = {}  # label -> CPU seconds (all threads and worker processes), steadier than wall time here


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, label: str = ""):
    t0, c0 = time.perf_counter(), cpu_now()
    result = fn()
    if label:
        CPU_SECONDS[label] = cpu_now() - c0
    return time.perf_counter() - t0, result


def read_ids(encodings: list) -> list:
    """What feeding a model needs: every row's ids as a Python list (the Rust library converts on access,
    taesan builds columns beyond ids when first read, so both are timed up to here)."""
    for e in encodings:
        e.ids
    return encodings


def bench_encode(kind: str, rust, fresh, lines: list[str], mb: float, workers: int) -> list[tuple[str, float, float]]:
    """Encode `lines` and read every row's ids, then read every row's offsets: the Rust library (`rust`,
    built with taesan's vocabulary so both do identical work) against a cold taesan tokenizer (`fresh()`),
    in one process (the default) and in `workers` processes, and with a warm cache."""
    rust_enc, r_out = timed(lambda: read_ids(rust.encode_batch(lines)), f"rust {kind} encode")
    rust_off, r_offsets = timed(lambda: [e.offsets for e in r_out])
    tok = fresh()
    ours_enc, o_out = timed(lambda: read_ids(tok.encode_batch(lines, padding=False)), f"taesan {kind} encode")
    ours_off, o_offsets = timed(lambda: [e.offsets for e in o_out])
    same = all(a.ids == b.ids for a, b in zip(r_out, o_out)) and r_offsets == o_offsets
    del o_out, o_offsets
    ours_warm, _ = timed(lambda: read_ids(tok.encode_batch(lines, padding=False)), f"taesan {kind} encode, warm cache")
    tok = fresh()
    ours_par, _ = timed(lambda: read_ids(tok.encode_batch(lines, padding=False, workers=workers)),
                        f"taesan {kind} encode, {workers} processes")
    name = {"bpe": "BPE", "wordpiece": "WordPiece", "unigram": "Unigram (XLM-R shape)"}[kind]
    print(f"  {name} encode + read ids ({len(lines)} lines): rust {mb / rust_enc:.2f} MB/s | taesan {mb / ours_enc:.2f} MB/s "
          f"(one process, the default), {mb / ours_par:.2f} MB/s with {workers} processes, {mb / ours_warm:.2f} MB/s warm "
          f"cache | throughput ratio {rust_enc / ours_enc:.2f} ({rust_enc / ours_par:.2f} with {workers} processes); "
          f"reading every offset after: rust {rust_off:.2f} s, taesan {ours_off:.2f} s | same ids and offsets: {same}")
    return [(f"{name} encode + read ids (MB/s)", mb / rust_enc, mb / ours_enc),
            (f"{name} encode + read ids, taesan {workers} processes (MB/s)", mb / rust_enc, mb / ours_par),
            (f"{name} encode + read ids, taesan warm cache (MB/s)", mb / rust_enc, mb / ours_warm),
            (f"{name} encode + read ids + read offsets (MB/s)", mb / (rust_enc + rust_off), mb / (ours_enc + ours_off))]


def bench_bpe(path: Path, lines: list[str], mb: float, vocab: int, workers: int) -> list[tuple[str, float, float]]:
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from taesan.tokenizers.bpe import BPETokenizer

    rust = tokenizers.Tokenizer(models.BPE())
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rust.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    rust_train, _ = timed(lambda: rust.train([str(path)], trainer), "rust bpe train")
    first_merge = []
    t0 = time.perf_counter()
    ours_train, ours = timed(lambda: BPETokenizer.train([path], vocab_size=vocab, workers=workers,
                                                        on_merge=lambda *a: first_merge or first_merge.append(time.perf_counter())),
                                  "taesan bpe train")
    counting = first_merge[0] - t0 if first_merge else float("nan")
    print(f"  BPE train: rust {rust_train:.2f} s | taesan {ours_train:.2f} s (word counting + setup {counting:.2f} s, "
          f"merges {ours_train - counting:.2f} s) | ratio {ours_train / rust_train:.2f}x")

    same = tokenizers.Tokenizer.from_str(json.dumps(ours.to_hf_json()))
    fresh = lambda: BPETokenizer(ours.vocab, ours.merges, ours.special_tokens)  # noqa: E731 - cold cache each time
    return [("BPE train (s)", rust_train, ours_train), *bench_encode("bpe", same, fresh, lines, mb, workers)]


def bench_wordpiece(path: Path, lines: list[str], mb: float, vocab: int, workers: int) -> list[tuple[str, float, float]]:
    try:
        from taesan.tokenizers.wordpiece import WordPieceTokenizer
    except ImportError as e:
        print(f"  WordPiece skipped: taesan.tokenizers.wordpiece is not importable ({e})")
        return []
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    rust = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    rust.normalizer = normalizers.BertNormalizer(lowercase=False)
    rust.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab, min_frequency=2, special_tokens=specials, show_progress=False)
    rust_train, _ = timed(lambda: rust.train([str(path)], trainer), "rust wordpiece train")
    ours_train, ours = timed(lambda: WordPieceTokenizer.train([path], vocab_size=vocab, workers=workers), "taesan wordpiece train")
    print(f"  WordPiece train: rust {rust_train:.2f} s | taesan {ours_train:.2f} s | ratio {ours_train / rust_train:.2f}x "
          "(taesan merges by likelihood score, Rust by frequency: different vocabularies)")
    same = tokenizers.Tokenizer.from_str(json.dumps(ours.to_hf_json()))
    fresh = lambda: WordPieceTokenizer.from_hf_json(ours.to_hf_json())  # noqa: E731 - cold cache each time
    return [("WordPiece train (s)", rust_train, ours_train), *bench_encode("wordpiece", same, fresh, lines, mb, workers)]


def xlmr_charsmap(directory: Path) -> bytes | None:
    """SentencePiece's nmt_nfkc precompiled map (what XLM-R's tokenizer.json carries), from a tiny model."""
    try:
        import sentencepiece as spm
    except ImportError:
        return None
    from taesan.tokenizers.sentencepiece_proto import read_model_proto

    (directory / "spm.txt").write_text("어제 카페 갔었어\n티끌 모아 태산\n" * 50, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(directory / "spm.txt"), model_prefix=str(directory / "spm"), vocab_size=30,
                                   minloglevel=2, hard_vocab_limit=False)
    return read_model_proto((directory / "spm.model").read_bytes())["normalizer"]["precompiled_charsmap"]


def bench_unigram(path: Path, lines: list[str], mb: float, vocab: int, workers: int) -> list[tuple[str, float, float]]:
    import tokenizers
    from tokenizers import Regex, models, normalizers, pre_tokenizers, processors, trainers

    from taesan.tokenizers import PipelineTokenizer, from_hf_json

    rust = tokenizers.Tokenizer(models.Unigram())
    charsmap = xlmr_charsmap(path.parent)
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    rust.normalizer = normalizers.Sequence(steps + [normalizers.Replace(Regex(" {2,}"), " ")])
    rust.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    rust_train, _ = timed(lambda: rust.train([str(path)], trainer), "rust unigram train")
    rust.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                        special_tokens=[("<s>", 0), ("</s>", 2)])
    print(f"  Unigram: trained by rust in {rust_train:.2f} s (taesan reads Unigram files, it does not train them); "
          f"precompiled map: {'yes' if charsmap else 'no (sentencepiece not installed)'}")
    data = json.loads(rust.to_str())
    fresh = lambda: from_hf_json(data)  # noqa: E731 - cold cache each time
    assert isinstance(fresh(), PipelineTokenizer)
    return bench_encode("unigram", rust, fresh, lines, mb, workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="corpus size in MB (default 10)")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="processes for taesan, threads for Rust (default 2)")
    parser.add_argument("--only", choices=["bpe", "wordpiece", "unigram"], help="run one tokenizer kind (default all)")
    parser.add_argument("--skip-wordpiece", action="store_true", help="leave WordPiece out")
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.workers)  # before the Rust library starts its pool
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found: {CORPUS}")

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"load average at start: {os.getloadavg()[0]:.1f} (shared machine: other jobs compete for the cores)")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_corpus(Path(tmp), args.mb)
        mb = path.stat().st_size / 1e6
        lines = path.read_text(encoding="utf-8").split("\n")
        print(f"corpus: {mb:.2f} MB from {CORPUS} (repeated), vocab {args.vocab}, {args.workers} cores each")
        rows = []
        if args.only in (None, "bpe"):
            rows += bench_bpe(path, lines, mb, args.vocab, args.workers)
        if args.only in (None, "wordpiece") and not args.skip_wordpiece:
            rows += bench_wordpiece(path, lines, mb, args.vocab, args.workers)
        if args.only in (None, "unigram"):
            rows += bench_unigram(path, lines, mb, args.vocab, args.workers)
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| measure | tokenizers (Rust) | taesan | taesan / Rust |")
    print("|---|---|---|---|")
    for name, rust, ours in rows:
        print(f"| {name} | {rust:.2f} | {ours:.2f} | {ours / rust:.2f} |")
    print("\nCPU seconds (user + system, all threads and worker processes):")
    for label, seconds in CPU_SECONDS.items():
        print(f"  {label}: {seconds:.1f}")
    print("\ntargets: training time within 3x of Rust (ratio <= 3), encoding throughput within 2x (ratio >= 0.5);"
          " Unigram encoding within 3x of Rust's time (throughput ratio >= 0.33)")


if __name__ == "__main__":
    main()
