"""nanoGPT's published CPU run reproduced with `taesan pretrain`: shakespeare-char (../shared/data/english/
tinyshakespeare.txt, the first 90% of its characters to train, the last 10% held out), 4 layers, 4 heads, width 128,
block 64, batch 12, 2000 iterations, lr 1e-3 with 100 warmup steps and a cosine to 1e-4, AdamW betas (0.9, 0.99),
weight decay 0.1, clip 1.0, dropout 0, no biases — nanoGPT's README: "val loss 1.88" with that command (1.8857 in
51.8 s measured by the developers with nanoGPT itself; nanoGPT cannot be installed here).

Beside it, in the same run, a same-config HuggingFace GPT-2 trained by nanoGPT's own loop (random windows,
the same schedule and optimizer; GPT-2 always has biases); both as processes, timed on the wall and in CPU
seconds, their held-out loss every 250 steps (20 batches, as nanoGPT's eval_iters=20) and at the end on the whole
held-out split. With --bf16, taesan's run again under `--precision bf16` (emulated where the CPU has no native bf16:
slower there, run for its loss). Usage: python benchmarks/nanogpt_shakespeare.py [--threads 1] [--repeats 1] [--bf16]
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout: benchmarks.machine_info

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine_info import cpu_kind, load  # noqa: E402

TEXT = ROOT.parent / "shared" / "data" / "english" / "tinyshakespeare.txt"
ITERS, BLOCK, BATCH, LR, MIN_LR, WARMUP, EVAL_EVERY, EVAL_ITERS = 2000, 64, 12, 1e-3, 1e-4, 100, 250, 20
SHAPE = dict(n_layers=4, n_heads=4, d_model=128, n_positions=BLOCK, dropout=0, attn_dropout=0, bias=False,
             activation="gelu")  # nanoGPT's GPT: exact GELU, bias=False in its shakespeare-char config


def taesan_command(work: Path, out: Path, threads: int, precision: str) -> list[str]:
    sets = [f"{k}={json.dumps(v)}" for k, v in SHAPE.items()]
    return [sys.executable, "-m", "taesan", "pretrain", "--model", "gpt-tiny", "--objective", "causal",
            "--corpus", str(work / "shakespeare.jsonl"), "--tokenizer", str(work / "char.json"), "--out", str(out),
            "--set", *sets, "--block-size", str(BLOCK), "--batch-size", str(BATCH), "--max-steps", str(ITERS),
            "--lr", str(LR), "--warmup", str(WARMUP), "--betas", "0.9,0.99", "--weight-decay", "0.1",
            "--grad-clip", "1.0", "--valid-fraction", "0.1", "--eval-every", str(EVAL_EVERY),
            "--eval-batches", str(EVAL_ITERS), "--save-every", str(ITERS), "--keep-last", "1",
            "--cache-dir", str(work / "cache"), "--threads", str(threads), "--precision", precision, "--no-progress"]


def prepare(work: Path) -> None:
    """The text as one JSONL document (its newlines are characters, as nanoGPT reads it) and a character tokenizer."""
    (work / "shakespeare.jsonl").write_text(json.dumps({"text": TEXT.read_text(encoding="utf-8")}) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "taesan", "tokenizer", "train", "--kind", "char", "--vocab-size", "100",
                    "--input", str(work / "shakespeare.jsonl"), "--output", str(work / "char.json"),
                    "--min-frequency", "1", "--special-tokens", "[UNK]", "<|endoftext|>"], check=True, env=_env(), capture_output=True)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def split(work: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(train ids, held-out ids, vocab size): the text's ids then the end-of-text, cut where --valid-fraction 0.1 cuts."""
    from taesan import tokenizers

    tok = tokenizers.load(work / "char.json")
    ids = np.array(tok.encode(TEXT.read_text(encoding="utf-8"), add_special_tokens=False).ids + [tok.eos_id], dtype=np.int64)
    cut = len(ids) - max(1, round(len(ids) * 0.1))
    return ids[:cut], ids[cut:], tok.vocab_size


def full_loss(model, valid: np.ndarray, logits_of) -> float:
    """Mean next-token loss over every non-overlapping window of the held-out split."""
    n = (len(valid) - 1) // BLOCK
    total, count = 0.0, 0
    with torch.inference_mode():
        for s in range(0, n, 64):
            rows = np.stack([valid[i * BLOCK: i * BLOCK + BLOCK + 1] for i in range(s, min(n, s + 64))])
            x = torch.from_numpy(rows)
            logits = logits_of(model, x[:, :-1])
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                             x[:, 1:].reshape(-1), reduction="sum"))
            count += x[:, 1:].numel()
    return total / count


def hf_loop(work: Path, out: Path, threads: int) -> None:
    """nanoGPT's train.py loop on a same-config HF GPT2LMHeadModel (run in its own process by --hf-loop)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(threads)
    start = time.perf_counter()
    train, valid, vocab = split(work)
    torch.manual_seed(1337)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=BLOCK, n_embd=128, n_layer=4, n_head=4,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu",
                                       attn_implementation="sdpa"))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}],
                                  lr=LR, betas=(0.9, 0.99), fused=True)
    data = {"train": torch.from_numpy(train), "val": torch.from_numpy(valid)}

    def batch(name):
        d = data[name]
        i = torch.randint(len(d) - BLOCK, (BATCH,))
        return torch.stack([d[j:j + BLOCK] for j in i]), torch.stack([d[j + 1:j + 1 + BLOCK] for j in i])

    def lr_at(it):
        if it < WARMUP:
            return LR * (it + 1) / (WARMUP + 1)
        ratio = (it - WARMUP) / (ITERS - WARMUP)
        return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)

    curve = []
    for it in range(ITERS + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it)
        if it % EVAL_EVERY == 0 and it > 0 or it == ITERS:
            model.eval()
            with torch.inference_mode():
                losses = [float(model(input_ids=x, labels=x).loss) for x, _ in (batch("val") for _ in range(EVAL_ITERS))]
            model.train()
            curve.append((it, sum(losses) / len(losses)))
        if it == ITERS:
            break
        x, y = batch("train")
        logits = model(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    model.eval()
    final = full_loss(model, valid, lambda m, x: m(input_ids=x).logits)
    (out / "hf.json").write_text(json.dumps({"curve": curve, "full_valid_loss": final, "train_seconds": seconds}))


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:5])} ... failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def taesan_result(out: Path, valid: np.ndarray) -> dict:
    import taesan

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    model = taesan.load(out).eval()
    return {"curve": curve, "full_valid_loss": full_loss(model, valid, lambda m, x: m(x))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1, help="alternating taesan / HF pairs")
    p.add_argument("--bf16", action="store_true", help="also taesan under --precision bf16 (its loss against fp32's)")
    p.add_argument("--work", default=None, help="keep the runs here (default: a temporary directory)")
    p.add_argument("--hf-loop", default=None, help=argparse.SUPPRESS)  # internal: run the HF loop into this dir
    args = p.parse_args()
    if args.hf_loop is not None:
        hf_loop(Path(args.work), Path(args.hf_loop), args.threads)
        return
    if not TEXT.is_file():
        sys.exit(f"{TEXT}: not found (../shared/data beside the checkout)")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_kind()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"load average before: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepare(work)
        _, valid, vocab = split(work)
        print(f"{len(valid):,} held-out tokens, vocabulary {vocab} (the text's characters, [UNK], <|endoftext|>)")
        print("taesan: " + " ".join(taesan_command(work, work / "taesan-fp32", args.threads, "fp32")[1:]))
        runs = []
        for r in range(args.repeats):
            order = ("taesan", "hf") if r % 2 == 0 else ("hf", "taesan")
            for side in order:
                out = work / f"{side}-{r}"
                if side == "taesan":
                    wall, cpu, _ = timed(taesan_command(work, out, args.threads, "fp32"))
                    result = taesan_result(out, valid)
                else:
                    out.mkdir(parents=True, exist_ok=True)
                    wall, cpu, _ = timed([sys.executable, str(Path(__file__).resolve()), "--work", str(work), "--hf-loop",
                                          str(out), "--threads", str(args.threads)])
                    result = json.loads((out / "hf.json").read_text())
                runs.append((side, wall, cpu, result))
                print(f"{side:6s} run {r}: {wall:6.1f} s wall, {cpu:6.1f} s CPU (the whole process); held-out loss "
                      f"every {EVAL_EVERY} steps: {' '.join(f'{l:.4f}' for _, l in result['curve'])}; final on the whole "
                      f"held-out split: {result['full_valid_loss']:.4f}; load {load()}", flush=True)
        if args.bf16:
            out = work / "taesan-bf16"
            wall, cpu, _ = timed(taesan_command(work, out, args.threads, "bf16"))
            result = taesan_result(out, valid)
            print(f"taesan --precision bf16: {wall:6.1f} s wall, {cpu:6.1f} s CPU; held-out loss: "
                  f"{' '.join(f'{l:.4f}' for _, l in result['curve'])}; final on the whole held-out split: "
                  f"{result['full_valid_loss']:.4f}", flush=True)
        for metric, i in (("wall", 1), ("CPU", 2)):
            ours = [run[i] for run in runs if run[0] == "taesan"]
            theirs = [run[i] for run in runs if run[0] == "hf"]
            print(f"{metric} seconds: taesan {' '.join(f'{x:.1f}' for x in ours)}, HF loop {' '.join(f'{x:.1f}' for x in theirs)}"
                  f" -> taesan is {min(theirs) / min(ours):.2f}x (best against best); nanoGPT's 51.8 s on the developers' machine")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
