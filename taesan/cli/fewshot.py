"""`taesan fewshot`: zero-, one- or few-shot classification by a frozen GPT reading labelled demonstrations,
repeated over seeds (different demonstrations each), reporting the mean and spread.

Not the method (taesan.tuning.in_context builds the prompts and scores the label words); this module reads
the files, prints the summary and writes the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys

from taesan.atomic import atomic_write_text
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.tasks import task_class
from taesan.tasks.classification import order_labels
from taesan.tuning.in_context import (
    PromptFormat,
    check_causal_lm,
    fewshot,
    numbered_labels_note,
    parse_verbalizer,
)

HELP = "in-context learning: classify with k labelled examples in the prompt, nothing trained (mean ± spread over seeds)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a GPT checkpoint directory with tokenizer.json")
    p.add_argument("--task", default="classification", choices=["classification"], help="the task (single-text classification)")
    p.add_argument("--shots", type=int, default=4, metavar="K", help="demonstrations per prompt: 0, 1 or a few (default 4)")
    p.add_argument("--seeds", type=int, default=5, metavar="N", help="repeat with N demonstration draws (seeds 0..N-1)")
    p.add_argument("--train", required=True, metavar="FILE", help="where demonstrations come from (NSMC-style TSV)")
    p.add_argument("--eval", required=True, metavar="FILE", help="the labelled examples to classify")
    p.add_argument("--verbalizer", default=None, metavar="SPEC", help="label words, e.g. 0=부정,1=긍정 (default: the label names)")
    p.add_argument("--instruction", default="", metavar="TEXT", help='first line of every prompt, e.g. "영화 리뷰의 감정을 분류하세요."')
    p.add_argument("--input-prefix", default="문장: ", metavar="TEXT", help="written before each text (default '문장: ')")
    p.add_argument("--output-prefix", default="\n정답:", metavar="TEXT", help="written before each answer (default '\\n정답:')")
    p.add_argument("--balanced", action="store_true", help="draw demonstrations evenly across labels")
    p.add_argument("--calibrate", action="store_true", help='also report accuracy calibrated against the content-free input "N/A"')
    p.add_argument("--max-eval", type=int, default=None, metavar="N", help="classify only the first N examples of --eval")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=None, metavar="FILE", help="write the full results (per seed) as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine)")


def summary_line(result: dict) -> str:
    """"4-shot, 5 seeds, 200 examples: accuracy 0.615 ± 0.031 (0.580–0.650; guessing at the same label rates 0.500),
    length-normalised ...": each accuracy beside what answering without reading the text at its label rates scores."""
    parts = []
    for name, shown, floor in (("accuracy", "accuracy", "guessing"), ("accuracy_norm", "length-normalised", None),
                               ("accuracy_calibrated", "calibrated", "guessing_calibrated")):
        if name in result:
            r = result[name]
            guess = f"; guessing at the same label rates {result[floor]['mean']:.3f}" if floor in result else ""
            parts.append(f"{shown} {r['mean']:.3f} ± {r['std']:.3f} ({r['min']:.3f}–{r['max']:.3f}{guess})")
    head = f"{result['shots']}-shot, {len(result['seeds'])} seed(s), {result['examples']} examples"
    return f"{head}: " + ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise TaesanError(f"--seeds must be >= 1, got {args.seeds}")
    if args.max_eval is not None and args.max_eval < 1:
        raise TaesanError(f"--max-eval must be >= 1, got {args.max_eval}")
    bundle = Bundle.load(args.model)
    model = bundle.model
    check_causal_lm(model, args.model)
    tokenizer = bundle.need_tokenizer()
    task = task_class(args.task)()
    pool, queries = task.read(args.train), task.read(args.eval)
    if args.max_eval is not None:
        queries = queries[: args.max_eval]
    labels = order_labels({ex.label for ex in pool})
    words = parse_verbalizer(args.verbalizer, labels)
    fmt = PromptFormat(args.instruction, args.input_prefix, args.output_prefix)
    result = fewshot(model, tokenizer, queries, pool, words, args.shots, list(range(args.seeds)), fmt=fmt,
                     balanced=args.balanced, calibrate=args.calibrate, start_id=bundle.separator_id,
                     batch_size=args.batch_size, progress=not args.no_progress)
    print(summary_line(result))
    for line in task.read_notes():  # rows left out (empty texts), counted
        print(line, file=sys.stderr)
    note = numbered_labels_note(args.verbalizer, labels)
    if note:  # after the work: an error stays one line
        print(note, file=sys.stderr)
    if result["demonstrations"] < args.shots:
        print(f"note: only {result['demonstrations']:.1f} demonstrations per prompt fit in the model's window on average")
    if args.out:
        atomic_write_text(args.out, json.dumps({"verbalizer": words, **result}, ensure_ascii=False, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
