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
from taesan.pipeline.precision import use_precision
from taesan.util import pick_device

HELP = "score a fine-tuned model on a labelled file (metrics as JSON)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR",
                   help="a directory written by taesan finetune (with task.json), or a downloaded HF classifier, NER or "
                        "QA model (its task from config.json's architectures)")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled data in the task's format")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per batch (default: as many as fit for classifiers, 32 for the other tasks)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the CPU multiplies it natively (AMX, AVX512-BF16) or on CUDA, else fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    add_threads(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--confusion", default=None, metavar="PNG", help="classifiers: also write the confusion matrix as a PNG")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="how to read and decode the file, as finetune's --set (source_column=1, num_beams=4); several at once or repeated")


def run(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise TaesanError("--batch-size must be >= 1")
    bundle = Bundle.load(args.model, device=str(pick_device(args.device)))
    model, task = bundle.model, bundle.need_task()
    for line in bundle.notes:  # a HF head model's task, from its config.json
        print(line, file=sys.stderr)
    task.progress = not args.no_progress
    if args.confusion is not None and not hasattr(task, "save_confusion"):
        raise TaesanError(f"--confusion: the {task.name} task has no confusion matrix (classifiers only)")
    if args.confusion is not None and Path(args.confusion).is_dir():
        raise TaesanError(f"--confusion {args.confusion}: is a directory; name the PNG file to write")
    apply_settings(task, model, task_settings(args.set), f"{args.model}/{TASK_FILE}")
    examples = task.read(args.data)
    for line in task.read_notes():  # rows the reader left out (empty texts, unanswerable questions), counted
        print(line, file=sys.stderr)
    for line in column_warnings(task, examples, args.data):
        print(line, file=sys.stderr)
    precision = use_precision(model, args.precision)
    batch_size = args.batch_size if args.batch_size is not None else task.default_batch_size
    with precision.context():
        metrics = task.evaluate(model, examples, batch_size)
    print(json.dumps(metrics, indent=1, ensure_ascii=False))
    for line in evaluation_warnings(task, metrics):
        print(line, file=sys.stderr)
    decoding = getattr(task, "decoding_line", lambda: None)()  # a QA reader's lexical priors
    if decoding is not None:
        print(decoding, file=sys.stderr)
    if args.confusion is not None:
        with precision.context():
            task.save_confusion(model, examples, args.confusion, batch_size)
        print(f"confusion matrix: {args.confusion}", file=sys.stderr)
    print(precision.note, file=sys.stderr)  # after the work: an error stays one line
    return 0
