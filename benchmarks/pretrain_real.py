"""Real-data pretraining evidence: 8k BPE + gpt-tiny (causal) and 8k WordPiece + bert-tiny (masked) on ../shared/data/corpus.

Not a test and not library code: it runs the `taesan` CLI exactly as a user would (tokenizer train, pretrain with
both runs at once, score, generate), keeps every log under RUNS/logs, then prints a markdown report: held-out
perplexity beside the unigram baseline, masked-token accuracy, score of 난폭 운전 vs 무모 운전, completions.
Copies the loss-curve PNGs to benchmarks/figures/. `--report-only` rebuilds the report from an earlier run.

Usage: python benchmarks/pretrain_real.py --runs /work/runs [--minutes 15 --extra-minutes 12 --max-steps 800] [--report-only]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout: benchmarks.machine_info
from benchmarks.machine_info import machine  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FIGURES = ROOT / "benchmarks" / "figures"
CORPUS = sorted(str(p) for p in (DATA / "corpus").glob("*"))
SENTENCES = ["난폭 운전", "무모 운전", "운전 난폭", "티끌 모아 태산", "티끌 모아 산"]
PROMPTS = ["티끌 모아", "대한민국의 수도는", "이 영화 정말", "헌법 제1조"]
RUNS = {  # name -> (preset, objective, tokenizer kind)
    "gpt-tiny": ("gpt-tiny", "causal", "bpe"),
    "bert-tiny": ("bert-tiny", "masked", "wordpiece"),
}


def taesan(*args: str) -> list[str]:
    return [sys.executable, "-m", "taesan", *args]


def commands(runs: Path, minutes: float, max_steps: int, lr: float) -> tuple[list[list[str]], list[list[str]]]:
    """(tokenizer commands, pretrain commands): what a user types, one run per model."""
    tok, pre = [], []
    for name, (preset, objective, kind) in RUNS.items():
        tok_path = runs / "tok" / f"{'bpe' if kind == 'bpe' else 'wp'}8k.json"
        tok.append(taesan("tokenizer", "train", "--kind", kind, "--vocab-size", "8000", "--input", *CORPUS,
                          "--output", str(tok_path)))
        pre.append(taesan("pretrain", "--model", preset, "--objective", objective, "--corpus", *CORPUS,
                          "--tokenizer", str(tok_path), "--out", str(runs / name), "--max-steps", str(max_steps),
                          "--max-minutes", str(minutes), "--lr", str(lr), "--warmup", "50", "--threads", "1",
                          "--eval-every", "100", "--no-progress", "--cache-dir", str(runs / f"cache-{'bpe' if kind == 'bpe' else 'wp'}")))
    return tok, pre


def run_all(cmds: list[list[str]], logs: list[Path]) -> None:
    """Start every command at once (each --threads 1) and wait; stop on the first failure."""
    procs = []
    for cmd, log in zip(cmds, logs):
        log.parent.mkdir(parents=True, exist_ok=True)
        procs.append((subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT), log))
    for proc, log in procs:
        if proc.wait() != 0:
            sys.exit(f"failed: see {log}")


def shown(cmd: list[str]) -> str:
    """The command as a user types it (`taesan ...`, corpus glob instead of the expanded list)."""
    parts = ["taesan", *cmd[3:]]
    text = " ".join(parts)
    return text.replace(" ".join(CORPUS), "../shared/data/corpus/*")


def report(runs: Path, tok_cmds, pre_cmds, load: str = "", suffix: str = "") -> str:
    lines = [f"Machine: {machine()}; {load or 'load not recorded'}. One torch thread per run, both runs at once.", "",
             "```", *(shown(c) for c in tok_cmds + pre_cmds), "```", "",
             "| model | tokenizer | steps | token slots read (32 x 128 per step) | held-out loss | held-out perplexity | unigram perplexity (same tokens) | held-out token accuracy |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, (_, objective, kind) in RUNS.items():
        records = [json.loads(x) for x in (runs / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        train = [r for r in records if "loss" in r]
        final = [r for r in records if "eval_loss" in r][-1]
        log = (runs / "logs" / f"pretrain_{name.split('-')[0]}.log").read_text()
        base = re.search(r"unigram baseline perplexity on the same held-out tokens: ([\d.e+]+)", log)
        corpus = re.search(r"corpus: ([\d,]+) training tokens, ([\d,]+) held out", log)
        seconds = sum(a["elapsed_s"] for a, b in zip(train, train[1:] + [None]) if b is None or b["elapsed_s"] < a["elapsed_s"])
        lines.append(
            f"| {name} ({objective}) | {kind} 8k | {final['step']} ({seconds / 60:.1f} min wall) | "
            f"{final['step'] * 32 * 128:,} of {corpus.group(1) if corpus else '?'} | {final['eval_loss']:.3f} | "
            f"{final['eval_perplexity']:.1f} | {base.group(1) if base else 'n/a (masked LM)'} | "
            f"{100 * final['eval_accuracy']:.1f}%{' (masked tokens)' if objective == 'masked' else ' (next token)'} |"
        )
    lines += ["", "Held-out evaluation curves (every 100 steps):", "",
              "| step | " + " | ".join(f"{n} loss / ppl / acc" for n in RUNS) + " |", "|---:|" + "---|" * len(RUNS)]
    evals = {n: {r["step"]: r for r in map(json.loads, (runs / n / "metrics.jsonl").read_text().splitlines()) if "eval_loss" in r}
             for n in RUNS}
    for step in sorted(set().union(*evals.values())):
        cells = []
        for n in RUNS:
            r = evals[n].get(step)
            cells.append(f"{r['eval_loss']:.3f} / {r['eval_perplexity']:.0f} / {100 * r['eval_accuracy']:.1f}%" if r else "")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += [""]
    for name in RUNS:
        out = subprocess.run(taesan("score", "--model", str(runs / name), *SENTENCES), capture_output=True, text=True, cwd=ROOT)
        lines += [f"`taesan score --model {name} {' '.join(repr(s) for s in SENTENCES)}`:", "", "```", out.stdout.strip() or out.stderr.strip(), "```", ""]
    for prompt in PROMPTS:
        for extra in (["--no-repeat-ngram", "3"], ["--top-p", "0.9", "--temperature", "0.8", "--seed", "0"]):
            cmd = ["generate", "--model", str(runs / "gpt-tiny"), "--prompt", prompt, "--max-new-tokens", "30", *extra]
            out = subprocess.run(taesan(*cmd), capture_output=True, text=True, cwd=ROOT)
            text = " ".join(out.stdout.split()) or out.stderr.strip()
            lines.append(f"- `taesan {' '.join(cmd[:1] + ['--model', 'gpt-tiny'] + cmd[3:])}` → {text}")
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name in RUNS:
        shutil.copyfile(runs / name / "loss.png", FIGURES / f"pretrain_{name}_loss{suffix}.png")
    lines += ["", *(f"![{n} loss](figures/pretrain_{n}_loss{suffix}.png)" for n in RUNS)]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("/work/runs"), help="outputs (outside the repo)")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--max-steps", type=int, default=800, help="the cosine schedule's length (the clock may stop earlier)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--extra-minutes", type=float, default=12.0,
                   help="then --resume both runs for this long (0: no resume); the shared machine ran ~5x slower than idle")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from RUNS")
    p.add_argument("--figure-suffix", default="", help="appended to the loss-curve PNG names in benchmarks/figures")
    args = p.parse_args()
    start_load = os.getloadavg()[0]
    tok_cmds, pre_cmds = commands(args.runs, args.minutes, args.max_steps, args.lr)
    logs = [args.runs / "logs" / f"pretrain_{n.split('-')[0]}.log" for n in RUNS]
    resume_cmds = [[*c[: c.index("--max-minutes") + 1], str(args.extra_minutes), *c[c.index("--max-minutes") + 2:], "--resume"]
                   for c in pre_cmds] if args.extra_minutes else []
    if not args.report_only:
        run_all(tok_cmds, [args.runs / "logs" / f"tok_{k}.log" for k in ("bpe", "wp")])
        run_all(pre_cmds, logs)
        if resume_cmds:  # the same cosine schedule, continued exactly from the last checkpoint
            for log in logs:
                shutil.copyfile(log, log.with_name(log.stem + "_part1.log"))
            run_all(resume_cmds, logs)
    pre_cmds = pre_cmds + resume_cmds
    load = "" if args.report_only else f"load average {start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(report(args.runs, tok_cmds, pre_cmds, load, args.figure_suffix))


if __name__ == "__main__":
    main()
