"""Training speed of taesan's GPT against HuggingFace's GPT2LMHeadModel: same config, weights, data, loss and optimizer, one run.

Not a correctness test (tests/test_gpt.py): it prints tokens/s, the taesan/HF ratio, and model-FLOPs utilisation
against the fp32 matmul rate measured here and now. Usage: python benchmarks/gpt_train.py [--rounds 8]
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: benchmarks.machine_info
from benchmarks.machine_info import machine  # noqa: E402

CONFIGS = {  # name -> (layers, heads, width, vocab)
    "4x256": (4, 4, 256, 8192),
    "6x384": (6, 6, 384, 16384),
}


def matmul_rate(clock, n: int = 2048, repeats: int = 5) -> float:
    """The fp32 matmul rate (FLOP/s) of this machine with the current thread count: best of `repeats` n×n×n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
    return 2 * n**3 / best


def build(layers: int, heads: int, width: int, vocab: int, block: int, seed: int):
    """The taesan GPT and a HF GPT2LMHeadModel holding exactly the same weights (dropout 0)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from taesan.models.gpt import GPT, GPTConfig, to_hf

    torch.manual_seed(seed)
    ours = GPT(GPTConfig(vocab_size=vocab, n_positions=block, d_model=width, n_layers=layers, n_heads=heads, dropout=0.0, attn_dropout=0.0))
    hf_config = GPT2Config(
        vocab_size=vocab, n_positions=block, n_embd=width, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
    )
    hf = GPT2LMHeadModel(hf_config)
    _, state = to_hf(ours)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"weight transfer failed: missing {missing}, unexpected {unexpected}")
    return ours.train(), hf.train()


def make_steps(ours, hf, vocab: int, chunk: int, with_hf_fused: bool):
    """name -> (model, loss(model, inputs, targets)). The loss is mean next-token cross-entropy in every case."""
    from taesan.modules.lm_loss import linear_cross_entropy

    def logits_loss_hf(m, x, y):
        return F.cross_entropy(m(input_ids=x, use_cache=False).logits.reshape(-1, vocab), y.reshape(-1))

    def logits_loss_taesan(m, x, y):
        return F.cross_entropy(m(x).reshape(-1, vocab), y.reshape(-1))

    def fused_loss_taesan(m, x, y):
        hidden, _ = m.forward_features(x)
        return linear_cross_entropy(hidden, m.lm_head.weight, y, chunk=chunk)

    def fused_loss_hf(m, x, y):
        hidden = m.transformer(input_ids=x, use_cache=False).last_hidden_state
        return linear_cross_entropy(hidden, m.lm_head.weight, y, chunk=chunk)

    variants = {
        "HF GPT2LMHeadModel": (hf, logits_loss_hf),
        "taesan GPT (logits + F.cross_entropy)": (copy.deepcopy(ours), logits_loss_taesan),
        "taesan GPT (fused lm_loss)": (ours, fused_loss_taesan),
    }
    if with_hf_fused:  # how much of the gain is the loss, how much the model
        variants["HF GPT2LMHeadModel + taesan lm_loss"] = (copy.deepcopy(hf), fused_loss_hf)
    return variants


def run_config(name: str, args) -> list[str]:
    layers, heads, width, vocab = CONFIGS[name]
    B, T = args.batch, args.block
    ours, hf = build(layers, heads, width, vocab, T, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    data = [torch.randint(0, vocab, (B, T + 1), generator=g) for _ in range(4)]
    variants = make_steps(ours, hf, vocab, args.chunk, not args.no_hf_fused)

    x, y = data[0][:, :-1], data[0][:, 1:]
    with torch.no_grad():
        first = {v: float(loss(m, x, y)) for v, (m, loss) in variants.items()}
    if max(first.values()) - min(first.values()) > 1e-4:
        raise RuntimeError(f"the variants do not compute the same loss: {first}")

    optimizers = {v: torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True) for v, (m, _) in variants.items()}
    counter = [0]

    def step(v: str) -> None:
        m, loss = variants[v]
        batch = data[counter[0] % len(data)]
        counter[0] += 1
        loss(m, batch[:, :-1], batch[:, 1:]).backward()
        optimizers[v].step()
        optimizers[v].zero_grad(set_to_none=True)

    for v in variants:
        for _ in range(args.warmup):
            step(v)
    times: dict[str, list[float]] = {v: [] for v in variants}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    peak = matmul_rate(clock)
    names = list(variants)
    for r in range(args.rounds):
        for v in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order: contention hits all alike
            t0 = clock()
            for _ in range(args.steps):
                step(v)
            times[v].append((clock() - t0) / args.steps)
        peak = max(peak, matmul_rate(clock))

    n_params = sum(p.numel() for p in ours.parameters()) - ours.pos_emb.weight.numel()  # the tied head counted once
    flops_per_token = 6 * n_params + 12 * layers * T * width  # PaLM / nanoGPT estimate
    hf_name = names[0]
    hf_med, hf_best = statistics.median(times[hf_name]), min(times[hf_name])
    lines = [
        f"config {name}: {layers} layers, {heads} heads, width {width}, block {T}, vocab {vocab}, batch {B}, "
        f"{n_params / 1e6:.2f}M params (no position table), {flops_per_token / 1e6:.1f} MFLOP/token, "
        f"initial loss {first[hf_name]:.4f} (all variants equal)",
        f"  fp32 matmul rate measured: {peak / 1e9:.0f} GFLOP/s (2048³, best of the run; {args.clock} clock)",
        f"  {'variant':40s} {'tok/s median':>12s} {'tok/s best':>11s} {'× HF med':>9s} {'× HF best':>10s} {'MFU med':>8s} {'MFU best':>9s}",
    ]
    for v in names:
        med, best = statistics.median(times[v]), min(times[v])
        tps_med, tps_best = B * T / med, B * T / best
        lines.append(
            f"  {v:40s} {tps_med:12.0f} {tps_best:11.0f} {hf_med / med:9.2f} {hf_best / best:10.2f} "
            f"{tps_med * flops_per_token / peak:8.1%} {tps_best * flops_per_token / peak:9.1%}"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--rounds", type=int, default=8, help="timed rounds; each times every variant, order rotated")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per variant per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--chunk", type=int, default=256, help="rows per chunk of the fused LM loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall: elapsed time (the real measure); cpu: process CPU time, with --threads 1 a measure that "
        "time-sharing with other processes hardly disturbs (tokens per CPU-second)",
    )
    p.add_argument("--no-hf-fused", action="store_true", help="skip the HF model trained with taesan's fused loss")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, fp32, AdamW (fused kernel, the same for all variants), dropout 0")
    if args.clock == "cpu":
        print("clock: process CPU time (tokens per CPU-second); rates and MFU are per CPU-second")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared)")
    for name in args.configs:
        for line in run_config(name, args):
            print(line, flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    # the repository root instead of benchmarks/, so a script name never shadows a package
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    main()
