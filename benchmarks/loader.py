"""Does the real data loader ever starve the model? Trainer tokens/s with the memmap loader vs in-memory batches.

Not a test of the loader's correctness (tests/test_data.py): it trains the same model from the same initial
weights twice per round — once reading the token cache through CausalWindows / PackedDocuments, once cycling
batches drawn from that loader beforehand and held in memory (same shapes, same padding, so the same compute) —
alternating the order across rounds, and prints tokens/s (wall clock and CPU time), their ratio, the Trainer's
data_share (the fraction of step time spent waiting for a batch) and the loader's own speed with no model.

Usage (the cache is the one `taesan pretrain --cache-dir` wrote, or built here from --corpus):
  python benchmarks/loader.py --objective causal --tokenizer tok.json --corpus FILE... --cache-dir DIR [--model gpt-tiny]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # benchmarks/ off the path


class InMemory:
    """Batches drawn once from a real source, then cycled: the loader cost is gone, the work is identical."""

    def __init__(self, source, n: int) -> None:
        self.batches = [source.next_batch() for _ in range(n)]
        self._cycle = itertools.cycle(self.batches)

    def next_batch(self) -> dict[str, torch.Tensor]:
        return next(self._cycle)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def build_source(args, tokenizer, cache):
    from taesan.data import CausalWindows, PackedDocuments, sentence_end_ids

    if args.objective == "masked":
        return PackedDocuments(cache.train, args.block_size, args.batch_size, tokenizer.cls_id, tokenizer.sep_id,
                               tokenizer.pad_id, seed=0, sentence_ends=sentence_end_ids(tokenizer))
    return CausalWindows(cache.train, args.block_size, args.batch_size, seed=0)


def new_model(args, vocab_size: int):
    import taesan
    from taesan.models import presets

    model_type, fields = presets()[args.model]
    if args.objective == "masked" and model_type == "bert":
        model_type = "bert-mlm"
    torch.manual_seed(0)
    return taesan.create(model_type, **{**fields, "vocab_size": vocab_size})


def timed_run(args, tokenizer, source, out_dir: Path) -> dict[str, float]:
    """`args.steps` Trainer steps after `args.warmup_steps` untimed ones -> tokens/s (wall, CPU) and data_share."""
    from taesan.objectives import objective_for
    from taesan.train import TrainConfig, Trainer

    model = new_model(args, tokenizer.vocab_size)
    config = TrainConfig(max_steps=args.warmup_steps + args.steps, warmup=10, eval_every=0, save_every=0, progress=False)
    trainer = Trainer(model, objective_for(args.objective, tokenizer, tokenizer.vocab_size), source, config, out_dir,
                      device="cpu")
    for _ in range(args.warmup_steps):
        trainer.train_step()
    data0, wall0, cpu0, tokens = trainer.data_seconds, time.perf_counter(), time.process_time(), 0
    for _ in range(args.steps):
        tokens += trainer.train_step()[1]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall_tok_s": tokens / wall, "cpu_tok_s": tokens / cpu, "data_share": (trainer.data_seconds - data0) / wall}


def loader_speed(source, n: int = 200) -> float:
    """Tokens/s the loader alone delivers (no model): how far it is from being the bottleneck."""
    t0, tokens = time.perf_counter(), 0
    for _ in range(n):
        batch = source.next_batch()
        mask = batch.get("attention_mask")
        tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", choices=["causal", "masked"], default="causal")
    p.add_argument("--model", default=None, help="preset (default gpt-tiny for causal, bert-tiny for masked)")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--corpus", nargs="+", required=True)
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=40, help="timed steps per run")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="real/in-memory pairs, order alternating")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    args.model = args.model or ("bert-tiny" if args.objective == "masked" else "gpt-tiny")
    torch.set_num_threads(args.threads)

    from taesan.data import build_token_cache
    from taesan.tokenizers import load

    tokenizer = load(args.tokenizer)
    separator = tokenizer.sep_id if args.objective == "masked" else tokenizer.eos_id
    cache = build_token_cache(args.corpus, tokenizer, Path(args.cache_dir), separator, 50)
    print(f"{args.model} ({args.objective}), batch {args.batch_size} x {args.block_size}, {args.threads} thread(s), "
          f"{args.steps} timed steps per run, {args.rounds} rounds; cache {cache.manifest['tokens']['train']:,} tokens")
    results: dict[str, list[dict[str, float]]] = {"real": [], "memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["real", "memory"] if r % 2 == 0 else ["memory", "real"]
            for kind in order:
                real = build_source(args, tokenizer, cache)
                source = real if kind == "real" else InMemory(real, args.warmup_steps + args.steps)
                res = timed_run(args, tokenizer, source, Path(tmp) / f"{kind}{r}")
                results[kind].append(res)
                print(f"round {r + 1} {kind:<6}: {res['wall_tok_s']:8.0f} tok/s wall, {res['cpu_tok_s']:8.0f} tok/s CPU, "
                      f"data_share {100 * res['data_share']:.2f}%", flush=True)
    loader = loader_speed(build_source(args, tokenizer, cache))

    def med(kind: str, key: str) -> float:
        return statistics.median(x[key] for x in results[kind])

    print()
    print("| batches | tokens/s (wall, median) | tokens/s (CPU time, median) | data_share (median) |")
    print("|---|---:|---:|---:|")
    for kind, name in (("real", "real loader (memmap)"), ("memory", "in-memory batches")):
        print(f"| {name} | {med(kind, 'wall_tok_s'):,.0f} | {med(kind, 'cpu_tok_s'):,.0f} | {100 * med(kind, 'data_share'):.2f}% |")
    print(f"| **real / in-memory** | **{med('real', 'wall_tok_s') / med('memory', 'wall_tok_s'):.3f}** | "
          f"**{med('real', 'cpu_tok_s') / med('memory', 'cpu_tok_s'):.3f}** | |")
    print(f"\nthe loader alone (no model): {loader:,.0f} tokens/s")


if __name__ == "__main__":
    main()
