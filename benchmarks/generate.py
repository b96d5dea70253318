"""Benchmark: taesan.generate vs HuggingFace `generate` (KV cache on both), greedy, same random weights.

Not a test of correctness (tests/test_generate.py proves the same tokens); this only times them.
Run: python benchmarks/generate.py [--threads 2] [--new-tokens 200] [--repeats 3] [--clock wall|cpu] [--precisions fp32 bf16]
A bf16 row casts the HF model to bf16 and sets taesan's decode precision to bf16 (`model.set_decode_precision`);
its last column is the share of new tokens both pick alike (the two round differently, so greedy paths may part).
--clock cpu counts this process' CPU seconds instead of wall time: on a machine shared with other jobs it
ignores the time spent waiting for a core (use it with --threads 1; with more threads idle spinning counts).
The "floor" column is the bare matrix products of one step (every layer's four, then the LM head) with the
kernel and weight layout taesan decodes with, repeated as often as decoding repeats them: the part of a step
that is arithmetic and memory traffic, not overhead.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

# keep benchmarks/ off the path, so a script name never shadows a package transformers imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.machine_info

import torch  # noqa: E402

from benchmarks.machine_info import machine  # noqa: E402

CONFIGS = {  # name -> (layers, d_model, heads, vocab)
    "4x256": (4, 256, 4, 8192),
    "6x384": (6, 384, 6, 16384),
}


def build(layers: int, d: int, heads: int, vocab: int, prompt: int, new: int):
    """A random HF GPT-2 and the same weights as a taesan GPT (through save_pretrained + taesan.load)."""
    import transformers

    import taesan

    config = transformers.GPT2Config(vocab_size=vocab, n_positions=prompt + new + 8, n_embd=d, n_layer=layers, n_head=heads,
                                     bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = taesan.load(tmp).eval()
    return hf, ours


def timed(fn, clock=time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def floor(model, batch: int, steps: int):
    """The matrix products one decoding step cannot avoid, `steps` times, with the kernel, layout and precision
    taesan decodes with (model.decode_weights()): -> a function to time."""
    from taesan.models.gpt_step import linear

    w = model.decode_weights()
    onednn = w.kernel == "onednn"
    x = torch.randn(batch, model.config.d_model, dtype=w.dtype)  # (B, C)
    wide = torch.randn(batch, model.config.d_ff, dtype=w.dtype)  # (B, d_ff)

    def run():
        with torch.inference_mode():
            for _ in range(steps):
                for layer in w.layers:
                    for p, rows in ((layer.qkv, x), (layer.out, x), (layer.up, x), (layer.down, wide)):
                        linear(rows, p.weight, p.bias, onednn)
                linear(x, w.head.weight, None, onednn)
    return run


def load() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3]) + f" on {torch.get_num_threads()}/{len(os.sched_getaffinity(0))} threads/cores"
    except (OSError, AttributeError):
        return "load unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="the best of this many runs is reported (HF and taesan alternate)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall time, or this process' CPU time (on a busy machine)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    import taesan
    from taesan.util import native_bf16, resolve_precision

    print(f"# taesan.generate vs HF generate, greedy, KV cache on, {args.threads} threads, prompt {args.prompt}, {args.new_tokens} new tokens")
    print(f"# command: python {' '.join(sys.argv)}")
    print(f"# machine: {machine()}; torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"# date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; best of {args.repeats} runs (the machine is shared)")
    print(f"# clock: {'CPU seconds of this process' if args.clock == 'cpu' else 'wall time'}; at start: {load()}")
    print(f"# native bf16 (AMX or AVX512-BF16): {'yes' if native_bf16() else 'no'}, so precision auto picks {resolve_precision('auto')} here")
    print(f"{'config':8} {'prec':4} {'batch':>5} {'HF tok/s':>10} {'taesan tok/s':>13} {'ratio':>6}  {'ms/step HF':>10} {'taesan':>7} {'floor':>6}  same ids")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for name, precision in ((n, pr) for n in args.configs for pr in args.precisions):
        hf, ours = build(*CONFIGS[name], args.prompt, args.new_tokens)
        vocab = CONFIGS[name][3]
        if precision == "bf16":
            hf = hf.to(torch.bfloat16)
        ours.set_decode_precision(precision)
        for batch in args.batches:
            ids = torch.randint(0, vocab, (batch, args.prompt), generator=torch.Generator().manual_seed(batch))
            mask = torch.ones_like(ids)
            n = args.new_tokens

            def run_hf():
                with torch.inference_mode():
                    out = hf.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, num_beams=1, use_cache=True,
                                      pad_token_id=0)
                assert out.shape[1] == args.prompt + n
                return out

            def run_ours():
                out = taesan.generate(ours, ids, max_new_tokens=n, eos_token_id=None)
                assert out.shape[1] == args.prompt + n
                return out

            a, b = run_hf(), run_ours()  # warm-up, and the two decode the same tokens
            agree = (a[:, args.prompt:] == b[:, args.prompt:]).float().mean().item()
            same = "yes" if torch.equal(a, b) else f"NO ({agree:.0%} alike)"
            run_floor = floor(ours, batch, n)
            runs = [(timed(run_hf, clock), timed(run_ours, clock), timed(run_floor, clock)) for _ in range(args.repeats)]  # alternating: all see the same load
            t_hf, t_ours, t_floor = (min(r[i] for r in runs) for i in range(3))
            tps_hf, tps_ours = batch * n / t_hf, batch * n / t_ours
            ms = [1e3 * t / n for t in (t_hf, t_ours, t_floor)]
            print(f"{name:8} {precision:4} {batch:5d} {tps_hf:10.0f} {tps_ours:13.0f} {tps_ours / tps_hf:5.2f}x  {ms[0]:10.2f} {ms[1]:7.2f} {ms[2]:6.2f}  {same}", flush=True)
    print(f"# at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
