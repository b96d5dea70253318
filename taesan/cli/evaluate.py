"""`taesan evaluate`: a fine-tuned checkpoint + a labelled file in its task's format -> the task's metrics as JSON.

Only wiring: the task (from the checkpoint's task.json) reads the file, decodes and scores.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taesan.cli import add_threads
from taesan.cli.finetune import apply_settings, task_settings
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.tasks import TASK_FILE
from taesan.tuning.checks import column_warnings, evaluation_warnings
from taesan.util import pick_device

HELP = "score a fine-tuned model on a labelled file (metrics as JSON)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a directory written by taesan finetune (with task.json)")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled data in the task's format")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    add_threads(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--confusion", default=None, metavar="PNG", help="classifiers: also write the confusion matrix as a PNG")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="how to read and decode the file, as finetune's --set (source_column=1, num_beams=4); repeatable")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise TaesanError("--batch-size must be >= 1")
    bundle = Bundle.load(args.model, device=str(pick_device(args.device)))
    model, task = bundle.model, bundle.need_task()
    task.progress = not args.no_progress
    if args.confusion is not None and not hasattr(task, "save_confusion"):
        raise TaesanError(f"--confusion: the {task.name} task has no confusion matrix (classifiers only)")
    if args.confusion is not None and Path(args.confusion).is_dir():
        raise TaesanError(f"--confusion {args.confusion}: is a directory; name the PNG file to write")
    apply_settings(task, model, task_settings(args.set), f"{args.model}/{TASK_FILE}")
    examples = task.read(args.data)
    for line in column_warnings(task, examples, args.data):
        print(line, file=sys.stderr)
    metrics = task.evaluate(model, examples, args.batch_size)
    print(json.dumps(metrics, indent=1, ensure_ascii=False))
    for line in evaluation_warnings(task, metrics):
        print(line, file=sys.stderr)
    if args.confusion is not None:
        task.save_confusion(model, examples, args.confusion, args.batch_size)
        print(f"confusion matrix: {args.confusion}", file=sys.stderr)
    return 0
