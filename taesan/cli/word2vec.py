"""`taesan word2vec`: train skip-gram word vectors on text files, ask for neighbours, evaluate.

Not the training code (taesan.models.word2vec_train) or the queries (taesan.models.word2vec).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tqdm.auto import tqdm

from taesan.atomic import atomic_write_text
from taesan.cli import add_threads
from taesan.cli.tokenizer import CORPUS_HELP
from taesan.errors import TaesanError
from taesan.figures import save_png
from taesan.models.word2vec import Word2Vec, Word2VecConfig
from taesan.models.word2vec_train import train_word2vec
from taesan.tokenizers import load
from taesan.tokenizers.corpus import describe, iter_texts
from taesan.tuning.embeddings import piece_words

HELP = "Word2Vec skip-gram word vectors: train, similar, evaluate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train vectors on text files (one text per line, JSONL with a 'text' field, or "
                                     "a table's text column)")
    t.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help=CORPUS_HELP)
    t.add_argument("--out", required=True, metavar="DIR", help="where to write config.json, model.safetensors, vocab.txt, loss.png")
    t.add_argument("--dim", type=int, default=100, help="vector size (100)")
    t.add_argument("--window", type=int, default=5, help="largest context distance; each centre draws 1..window (5)")
    t.add_argument("--negative", type=int, default=5, help="noise words per centre word (5)")
    t.add_argument("--min-count", type=int, default=5, help="drop words seen fewer times (5)")
    t.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold of frequent words, 0 = off (1e-3)")
    t.add_argument("--epochs", type=int, default=5, help="passes over the corpus (5)")
    t.add_argument("--lr", type=float, default=0.025, help="starting learning rate, falling linearly to 0.0001 (0.025)")
    t.add_argument("--batch-size", type=int, default=1024, help="centre words per update step (1024)")
    t.add_argument("--seed", type=int, default=1, help="random seed; with --workers 1 the result is bit-reproducible (1)")
    t.add_argument("--workers", type=int, default=None,
                   help="parallel SGD workers, like gensim's threads; >1 is faster but not bit-reproducible (default: --threads, else 1)")
    split = t.add_mutually_exclusive_group()
    split.add_argument("--morphemes", action="store_true", help="split Korean text into morphemes with kiwipiepy instead of whitespace words")
    split.add_argument("--tokenizer", metavar="FILE",
                       help="the pieces of this tokenizer (WordPiece, BPE, ...) as the words: vectors a transformer of "
                            "that tokenizer can start its token embeddings from (taesan finetune --embeddings)")
    t.add_argument("--export", metavar="FILE", help="also write the word2vec format gensim loads (binary if FILE ends in .bin)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads(t)
    s = sub.add_parser("similar", help="nearest words by cosine similarity")
    s.add_argument("--model", required=True, metavar="DIR")
    s.add_argument("words", nargs="+", help="query words")
    s.add_argument("--topn", type=int, default=10)
    e = sub.add_parser("evaluate", help="analogy accuracy (questions-words format) and/or similarity Spearman (w1<TAB>w2<TAB>score)")
    e.add_argument("--model", required=True, metavar="DIR")
    e.add_argument("--analogies", metavar="FILE")
    e.add_argument("--similarity", metavar="FILE")
    add_threads(e)


def morpheme_tokenizer():
    """Kiwi morphemes (surface forms) as tokens; kiwipiepy is the optional extra `korean`."""
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise TaesanError("--morphemes needs kiwipiepy: pip install 'taesan[korean]'") from None
    kiwi = Kiwi()

    def tokenize(text: str) -> list[str]:
        return ["_".join(tok.form.split()) for tok in kiwi.tokenize(text) if tok.form.strip()]

    return tokenize


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "similar": _similar, "evaluate": _evaluate}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    config = Word2VecConfig(dim=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
                            sample=args.sample, epochs=args.epochs, lr_start=args.lr, lr_end=min(0.0001, args.lr),
                            batch_size=args.batch_size, seed=args.seed)
    tokenize = morpheme_tokenizer() if args.morphemes else piece_words(load(args.tokenizer)) if args.tokenizer else None
    out = Path(args.out)

    def on_epoch(epoch: int, loss: float, history) -> None:
        tqdm.write(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f} per pair "
                   f"({history.epoch_pairs[-1]} pairs, {history.epoch_seconds[-1]:.1f} s)")

    files = [Path(f) for f in args.corpus]  # Paths: a missing file is an error, never text
    for f in files:
        if line := describe(f):  # a table: which column is read
            print(line)
    workers = args.workers if args.workers is not None else args.threads or 1
    model, history = train_word2vec(iter_texts(files), config, tokenize=tokenize, workers=workers,
                                    progress=not args.no_progress, on_epoch=on_epoch)
    model.save(out)
    atomic_write_text(out / "history.json", json.dumps({"epoch_loss": history.epoch_loss, "epoch_pairs": history.epoch_pairs,
                                                         "epoch_seconds": history.epoch_seconds, "curve": history.curve}, indent=1) + "\n")
    _plot_loss(history, out / "loss.png")
    if args.export:
        model.save_word2vec_format(args.export, binary=args.export.endswith(".bin"))
    print(f"{len(model)} words, {sum(history.epoch_seconds):.1f} s; wrote {out} (loss curve: {out / 'loss.png'})")
    return 0


def _plot_loss(history, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 3.5))
    if history.curve:
        xs, ys = zip(*history.curve)
        ax.plot(xs, ys, lw=1, label="mean loss per pair, per stretch of an epoch")
    ax.plot(range(1, len(history.epoch_loss) + 1), history.epoch_loss, "o", label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative-sampling loss")
    ax.set_title("word2vec skip-gram training loss")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def _similar(args: argparse.Namespace) -> int:
    model = Word2Vec.load(args.model)
    neighbours = [model.most_similar(word, topn=args.topn) for word in args.words]  # an unknown word prints nothing
    for word, found in zip(args.words, neighbours):
        print(word)
        for rank, (other, score) in enumerate(found, 1):
            print(f"  {rank:2d}. {other}\t{score:.4f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if not args.analogies and not args.similarity:
        raise TaesanError("give --analogies FILE and/or --similarity FILE")
    model = Word2Vec.load(args.model)
    result = {}
    if args.analogies:
        result["analogies"] = model.evaluate_analogies(args.analogies)
    if args.similarity:
        result["similarity"] = model.evaluate_similarity(args.similarity)
    warnings = []
    for name, key, path in (("analogies", "accuracy", args.analogies), ("similarity", "spearman", args.similarity)):
        if name in result and math.isnan(result[name][key]):  # NaN is not JSON: null, and said why
            result[name][key] = None
            counted = result[name].get("total", result[name].get("pairs", 0))
            why = (f"nothing scored ({result[name]['skipped_oov']} skipped for words the vectors do not know)"
                   if not counted else f"{counted} scored, too few or all alike")
            warnings.append(f"warning: {path}: {key} is undefined: {why}; written as null")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    for line in warnings:
        print(line, file=sys.stderr)
    return 0
