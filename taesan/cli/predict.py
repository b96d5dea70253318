"""`taesan predict`: a fine-tuned checkpoint + inputs typed on the command line -> one readable line (or JSON) each.

Task-aware through the task itself: `parse_input` reads each string ("premise ||| hypothesis" for pairs,
an image path for images), `predict` returns one JSON-able dict per input; this module only prints.
"""
from __future__ import annotations

import argparse
import json
import sys

from taesan.cli import add_threads
from taesan.cli.finetune import apply_settings, task_settings
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.precision import use_precision
from taesan.tasks import TASK_FILE
from taesan.textfiles import lines
from taesan.util import pick_device

HELP = "apply a fine-tuned model to inputs (label + probability, entities, answer span, translation)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR",
                   help="a directory written by taesan finetune (with task.json), or a downloaded HF classifier, NER or "
                        "QA model (its task from config.json's architectures)")
    p.add_argument("inputs", nargs="*", help='texts ("어제 카페 갔었어"; pairs: "premise ||| hypothesis"; images: a file or digits:N)')
    p.add_argument("--file", default=None, metavar="FILE",
                   help="more inputs, one per line (a blank line keeps its place, not predicted); a task's data file gives "
                        "its inputs as evaluate reads them: a table's text column(s), a label column or not; NER sentences; "
                        "QA questions")
    p.add_argument("--json", action="store_true", help="one JSON object per input instead of a readable line")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per batch (default: as many as fit for classifiers, 32 for the other tasks)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the CPU multiplies it natively (AMX, AVX512-BF16) or on CUDA, else fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over long inputs")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="how to read --file and decode, as evaluate's --set (text_column=review, num_beams=4)")
    add_threads(p)


def _inputs(args: argparse.Namespace, task) -> tuple[list[str], set[int]]:
    """The arguments, then --file's inputs: a data file's text column(s) where the task reads it so, else its lines;
    and which of them are empty (a table's row or a blank line: kept in place, not predicted, so outputs line up
    with the file; an empty argument is an error, as before)."""
    texts, empty_rows = list(args.inputs), set()
    if args.file is not None:
        read = task.input_texts(args.file)
        read = read if read is not None else [line for _, line in lines(args.file)]  # plain text: one input a line
        empty_rows = {len(texts) + i for i, t in enumerate(read) if not t.strip()}
        texts += read
    if len(empty_rows) == len(texts):
        raise TaesanError(f"no input: {args.file} holds no text")
    return texts, empty_rows


EMPTY = "empty text, not predicted"


def run(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise TaesanError("--batch-size must be >= 1")
    if not args.inputs and args.file is None:
        raise TaesanError("no input: give texts as arguments or --file FILE")
    bundle = Bundle.load(args.model, device=str(pick_device(args.device)))
    task = bundle.need_task()
    for line in bundle.notes:  # a HF head model's task, from its config.json
        print(line, file=sys.stderr)
    task.progress = not args.no_progress
    apply_settings(task, bundle.model, task_settings(args.set), f"{args.model}/{TASK_FILE}")
    texts, empty_rows = _inputs(args, task)
    inputs = [task.parse_input(t) for i, t in enumerate(texts) if i not in empty_rows]
    precision = use_precision(bundle.model, args.precision)
    batch_size = args.batch_size if args.batch_size is not None else task.default_batch_size
    with precision.context():
        predictions = iter(task.predict(bundle.model, inputs, batch_size))
    print(precision.note, file=sys.stderr)  # after the work: an error stays one line
    for i, text in enumerate(texts):  # a table's row with an empty text keeps its place, so outputs line up with rows
        if i in empty_rows:
            prediction, shown = {"label": None, "note": EMPTY}, f"({EMPTY})"
        else:
            prediction = next(predictions)
            shown = task.describe(prediction)
        print(json.dumps({"input": text, **prediction}, ensure_ascii=False) if args.json else f"{shown}\t{text}")
    return 0
