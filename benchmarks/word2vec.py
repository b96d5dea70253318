"""Benchmark: taesan Word2Vec vs gensim on the same corpus and settings, in one run.

Prints training time of each (vocabulary + training, tokenisation excluded for both), their ratio, and
the overlap of top-10 neighbours of frequent words (gensim vs taesan, and gensim vs gensim with another
seed as the ceiling). Not a test: numbers depend on the machine and on who else is using it.

    python benchmarks/word2vec.py [--corpus FILE...] [--epochs 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import datetime
import glob
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.machine_info import machine  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"


def machine_and_load() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return f"{machine()}, load average {', '.join(f'{x:.2f}' for x in load)}"


def overlap(a, b, words: list[str], topn: int = 10) -> float:
    """Mean fraction of shared words among the top-n neighbours of each query word."""
    shared = 0
    for w in words:
        na = {x for x, _ in a(w, topn)}
        nb = {x for x, _ in b(w, topn)}
        shared += len(na & nb)
    return shared / (topn * len(words))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", nargs="+", default=None, help="files (default: ../shared/data/corpus kowiki JSONL + nsmc reviews)")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="taesan centre words per step (default: the config's)")
    p.add_argument("--skip-top", type=int, default=20, help="most frequent words left out of the neighbour queries")
    p.add_argument("--queries", type=int, default=100, help="how many frequent words to compare neighbours of")
    args = p.parse_args()

    import torch
    from gensim.models import Word2Vec as GensimWord2Vec

    from taesan.models.word2vec import Word2VecConfig
    from taesan.models.word2vec_train import train_word2vec
    from taesan.tokenizers.corpus import iter_texts

    files = args.corpus or sorted(glob.glob(str(DEFAULT_CORPUS / "kowiki_*.jsonl"))) + [str(DEFAULT_CORPUS / "nsmc_raw_reviews.txt")]
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine_and_load())
    print("date:", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print("corpus:", ", ".join(Path(f).name for f in files))
    sentences = [s for s in (t.split() for t in iter_texts(files)) if s]
    print(f"texts: {len(sentences)}, tokens: {sum(map(len, sentences))} (whitespace words; tokenisation not timed)")
    print(f"settings: skip-gram, dim {args.dim}, window {args.window}, negative {args.negative}, min_count {args.min_count}, "
          f"sample 1e-3, epochs {args.epochs}, lr 0.025 -> 0.0001, {args.threads} threads/workers")

    torch.set_num_threads(args.threads)

    def run_gensim(seed: int):
        t, cpu = time.perf_counter(), time.process_time()
        m = GensimWord2Vec(sentences, sg=1, vector_size=args.dim, window=args.window, negative=args.negative,
                           min_count=args.min_count, sample=1e-3, epochs=args.epochs, alpha=0.025, min_alpha=0.0001,
                           workers=args.threads, seed=seed)
        return m, time.perf_counter() - t, time.process_time() - cpu

    g1, t_g1, c_g1 = run_gensim(1)
    print(f"gensim  seed 1: {t_g1:.2f} s ({c_g1:.2f} CPU s)")
    config = Word2VecConfig(dim=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
                            epochs=args.epochs, seed=1, **({"batch_size": args.batch_size} if args.batch_size else {}))
    t, cpu = time.perf_counter(), time.process_time()
    ours, history = train_word2vec(sentences, config, workers=args.threads)
    t_ours, c_ours = time.perf_counter() - t, time.process_time() - cpu
    print(f"taesan  seed 1: {t_ours:.2f} s ({c_ours:.2f} CPU s, {args.threads} workers, batch_size {config.batch_size}); loss per epoch: "
          + ", ".join(f"{x:.4f}" for x in history.epoch_loss))
    t, cpu = time.perf_counter(), time.process_time()
    _, history1 = train_word2vec(sentences, config, workers=1)
    t_ours1, c_ours1 = time.perf_counter() - t, time.process_time() - cpu
    print(f"taesan  seed 1: {t_ours1:.2f} s ({c_ours1:.2f} CPU s, 1 worker: bit-reproducible); loss per epoch: "
          + ", ".join(f"{x:.4f}" for x in history1.epoch_loss))
    g2, t_g2, c_g2 = run_gensim(2)
    print(f"gensim  seed 2: {t_g2:.2f} s ({c_g2:.2f} CPU s)")

    if set(g1.wv.index_to_key) != set(ours.words):
        print("note: the vocabularies differ", file=sys.stderr)
    skipped = ours.words[:args.skip_top]
    queries = ours.words[args.skip_top:args.skip_top + args.queries]
    gensim_a = lambda w, n: g1.wv.most_similar(w, topn=n)  # noqa: E731
    gensim_b = lambda w, n: g2.wv.most_similar(w, topn=n)  # noqa: E731
    taesan_a = lambda w, n: ours.most_similar(w, topn=n)  # noqa: E731
    ov_gt = overlap(gensim_a, taesan_a, queries)
    ov_gg = overlap(gensim_a, gensim_b, queries)
    ov_tg2 = overlap(gensim_b, taesan_a, queries)
    t_gensim, c_gensim = (t_g1 + t_g2) / 2, (c_g1 + c_g2) / 2
    print(f"skipped (stop-like) top {args.skip_top}: {' '.join(skipped)}")
    print(f"queries: the next {len(queries)} most frequent words ({queries[0]} ... {queries[-1]})")
    print()
    print("| | wall time (s) | vs gensim | CPU time (s) | vs gensim | top-10 overlap with gensim seed 1 |")
    print("|---|---|---|---|---|---|")
    print(f"| gensim, {args.threads} workers (mean of seeds 1, 2) | {t_gensim:.2f} | 1.00x | {c_gensim:.2f} | 1.00x | {ov_gg:.1%} (gensim seed 2: the ceiling) |")
    print(f"| taesan, {args.threads} workers | {t_ours:.2f} | {t_ours / t_gensim:.2f}x | {c_ours:.2f} | {c_ours / c_gensim:.2f}x | {ov_gt:.1%} (vs gensim seed 2: {ov_tg2:.1%}) |")
    print(f"| taesan, 1 worker (bit-reproducible) | {t_ours1:.2f} | {t_ours1 / t_gensim:.2f}x | {c_ours1:.2f} | {c_ours1 / c_gensim:.2f}x | |")
    print()
    ok_time, ok_overlap = t_ours <= 2 * t_gensim, ov_gt >= 0.5
    print(f"target <= 2x gensim time: {'met' if ok_time else 'MISSED'}; target overlap >= 50%: {'met' if ok_overlap else 'MISSED'}")
    w = queries[0]
    print(f"example, neighbours of {w}: gensim {[x for x, _ in g1.wv.most_similar(w, topn=5)]}, taesan {[x for x, _ in ours.most_similar(w, topn=5)]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
