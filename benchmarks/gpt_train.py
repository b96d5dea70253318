"""Training speed of what `taesan pretrain` runs (its Trainer, the causal objective with the fused LM loss, the
token-window loader) against a plain HuggingFace GPT2LMHeadModel loop (sdpa, fused AdamW, clip 1.0): same config,
weights and data, in one run, fp32 and (with --precisions) bf16 autocast on both sides.

Not a correctness test (tests/test_objectives.py holds the losses equal): it prints tokens/s and the taesan/HF
ratio. Usage: python benchmarks/gpt_train.py [--threads 1 --clock cpu] [--precisions fp32 bf16] [--rounds 6]
--clock cpu counts this process' CPU seconds (fair on a shared machine with --threads 1).
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# keep benchmarks/ off the path, so a script name never shadows a package transformers imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.machine_info

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine_info import cpu_kind, load  # noqa: E402

CONFIGS = {  # name -> (layers, heads, width, vocab)
    "4x256": (4, 4, 256, 8192),
    "6x384": (6, 6, 384, 16384),
}


def build(layers: int, heads: int, width: int, vocab: int, block: int, seed: int):
    """A taesan GPT and a HF GPT2LMHeadModel (sdpa) holding exactly the same weights, dropout 0."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from taesan.models.gpt import GPT, GPTConfig
    from taesan.models.gpt_hf import to_hf

    torch.manual_seed(seed)
    ours = GPT(GPTConfig(vocab_size=vocab, n_positions=block, d_model=width, n_layers=layers, n_heads=heads,
                         dropout=0.0, attn_dropout=0.0))
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=block, n_embd=width, n_layer=layers, n_head=heads,
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="sdpa"))
    _, state = to_hf(ours)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"weight transfer failed: missing {missing}, unexpected {unexpected}")
    return ours.train(), hf.train()


def sides(name: str, args, precision: str, out_dir: str):
    """-> {"HF": step(), "taesan": step()}, each one optimizer step on the next batch of its own loader, and the
    loss both compute on one batch (fp32: equal)."""
    from taesan.data import CausalWindows, TokenSplit
    from taesan.objectives import CausalLM
    from taesan.train import TrainConfig, Trainer

    layers, heads, width, vocab = CONFIGS[name]
    B, T = args.batch, args.block
    ours, hf = build(layers, heads, width, vocab, T, args.seed)
    n = B * (T + 1) * 64
    split = TokenSplit(np.random.default_rng(args.seed).integers(0, vocab, size=n).astype(np.uint16), np.array([0, n]))
    config = TrainConfig(max_steps=10**6, lr=3e-4, warmup=0, weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0,
                         eval_every=0, save_every=0, precision=precision, progress=False)
    trainer = Trainer(ours, CausalLM(), CausalWindows(split, T, B, seed=args.seed), config, out_dir, device="cpu")
    hf_data = CausalWindows(split, T, B, seed=args.seed)
    optimizer = torch.optim.AdamW(hf.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None

    def hf_step() -> None:
        ids = hf_data.next_batch()["input_ids"]  # (B, T + 1)
        x, y = ids[:, :-1], ids[:, 1:]
        with amp if amp is not None else torch.enable_grad():
            logits = hf(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    probe = hf_data.eval_batches(1, B).__next__()["input_ids"]
    inputs, labels = trainer.objective.prepare({"input_ids": probe})
    ours_loss = float(trainer.objective.loss(trainer.objective.run_model(ours, inputs, labels), labels).detach())
    with torch.no_grad():
        hf_loss = float(torch.nn.functional.cross_entropy(hf(input_ids=probe[:, :-1]).logits.reshape(-1, vocab),
                                                          probe[:, 1:].reshape(-1)))
    return {"HF GPT2LMHeadModel loop": hf_step, "taesan Trainer (pretrain's path)": trainer.train_step}, (ours_loss, hf_loss)


def run(name: str, precision: str, args) -> list[str]:
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as out_dir:
        steps, (ours_loss, hf_loss) = sides(name, args, precision, out_dir)
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        names = list(steps)
        times: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.rounds):
            for k in (names if r % 2 == 0 else names[::-1]):  # alternate who goes first
                t0 = clock()
                for _ in range(args.steps):
                    steps[k]()
                times[k].append((clock() - t0) / args.steps)
    tokens = args.batch * args.block
    hf_name, ours_name = names
    ratios = [h / o for h, o in zip(times[hf_name], times[ours_name])]
    lines = [f"{name} {precision}: initial loss taesan {ours_loss:.5f}, HF {hf_loss:.5f}"]
    for k in names:
        rates = sorted(tokens / t for t in times[k])
        lines.append(f"  {k:34s} tokens/s median {statistics.median(rates):7.0f}  range {rates[0]:.0f}-{rates[-1]:.0f}")
    lines.append(f"  taesan / HF: median {statistics.median(ratios):.2f}x, per round {min(ratios):.2f}-{max(ratios):.2f}x "
                 f"({args.rounds} rounds of {args.steps} steps, {args.clock} clock)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--rounds", type=int, default=6, help="timed rounds; each times both sides, the order alternating")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per side per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_kind()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, batch "
          f"{args.batch} x block {args.block}, AdamW (fused on both), clip 1.0, dropout 0")
    print(f"load average before: {load()}", flush=True)
    for name in args.configs:
        for precision in args.precisions:
            for line in run(name, precision, args):
                print(line, flush=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
