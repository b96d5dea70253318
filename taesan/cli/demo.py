"""`taesan demo`: the whole tour on embedded data (no download): tokenizers compared, a tiny GPT and BERT
pretrained, a classifier adapted three ways, pretrained vs from scratch, the models exported to the HuggingFace
layout and read back, a ViT on digits, attention maps; one HTML report at the end.

Not the steps (taesan.demo) nor the page (taesan.report): this module prints each step's summary, the commands
to try on the saved checkpoints and the report's path, and with --serve starts the playground on them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from taesan.demo import DemoConfig, write_demo_report
from taesan.demo import run as run_demo
from taesan.errors import TaesanError
from taesan.serve import ServeConfig, create_app, require_web
from taesan.serve.run import bind, serve

HELP = ("the whole tour on embedded data, a few minutes on CPU: tokenizers, GPT, BERT, tuning, pretrained vs scratch, "
        "HF export, ViT, attention -> report.html")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="taesan-demo", metavar="DIR", help="checkpoints, figures and report.html (default ./taesan-demo)")
    p.add_argument("--quick", action="store_true", help="every step shrunk to seconds (tiny models, few steps): a smoke test")
    p.add_argument("--serve", action="store_true", help="afterwards, open the playground (taesan serve) on the demo's models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine; default: torch's)")
    p.add_argument("--port", type=int, default=8000, help="with --serve")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise TaesanError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "corpus.txt").is_file():
        raise TaesanError(f"--out {out}: a non-empty directory that is not a demo's; choose another")
    _warn_if_busy(args.threads)
    progress = not args.no_progress
    cfg = DemoConfig.quick(out, args.seed, progress) if args.quick else DemoConfig(out=out, seed=args.seed, progress=progress)
    for d in ("gpt", "bert", "vit", "sentiment", "transfer", "hf"):  # a previous run's checkpoints and metrics would mix with this one's
        _clear(out / d)

    began = time.perf_counter()
    results = []
    for n, result in enumerate(run_demo(cfg), 1):
        results.append(result)
        print(f"\n== {n}. {result.section.title} ({result.seconds:.0f} s)", flush=True)
        for line in result.summary:
            print(f"   {line}")
        sys.stdout.flush()
    seconds = time.perf_counter() - began
    report = write_demo_report(cfg, results, seconds)

    checkpoints = [(name, path) for r in results for name, path in r.checkpoints.items()]
    print("\n== try the checkpoints")
    for r in results:
        for command in r.section.commands:
            print(f"   {command}")
    print("   taesan serve " + " ".join(f"--model {name}={path}" for name, path in checkpoints))
    print(f"\ndemo finished in {seconds / 60:.1f} min")
    print(f"report: {report.resolve()}")
    if args.serve:
        _serve(checkpoints, args.port)
    return 0


def _warn_if_busy(threads: int | None) -> None:
    """On a shared machine more threads than idle cores run far slower (measured 5-10x with 2 threads at load 8 on
    2 cores): say so once, since the pretraining steps stop on the clock and would learn less."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return
    if threads is None and torch.get_num_threads() > 1 and load > cores:
        print(f"note: this machine is busy (load {load:.1f} on {cores} cores); --threads 1 may train faster", file=sys.stderr)


def _clear(directory: Path) -> None:
    if directory.is_dir():
        shutil.rmtree(directory)


def serving_app(checkpoints: list[tuple[str, Path]]):
    """The playground app (taesan.serve.create_app) on the demo's checkpoints, named as the demo names them."""
    require_web()
    return create_app({name: str(path) for name, path in checkpoints}, ServeConfig())


def _serve(checkpoints: list[tuple[str, Path]], port: int) -> None:
    """As `taesan serve` runs: the port bound first (one line if in use), a cap on connections, a bounded shutdown."""
    config = ServeConfig()
    sock = bind("127.0.0.1", port)
    try:
        app = serving_app(checkpoints)
    except BaseException:
        sock.close()
        raise
    print(f"taesan demo: serving {', '.join(name for name, _ in checkpoints)} at http://127.0.0.1:{port}/  (Ctrl-C stops)")
    serve(app, sock, config)
