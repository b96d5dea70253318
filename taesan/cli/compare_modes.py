"""`taesan compare-modes`: full fine-tuning, prompt tuning (a soft prompt + a new head, and a soft prompt alone read
through the LM head) and 0/1/few-shot in-context learning of one pretrained GPT (and optionally a BERT for the
training modes) on one classification dataset.

Not the runs themselves (taesan.tuning.compare): this module reads the files, prints the table and says
where the markdown, JSON and chart went.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taesan.errors import TaesanError
from taesan.tasks.classification import SequenceClassification, order_labels
from taesan.tuning.compare import (
    CHART,
    TABLE_JSON,
    TABLE_MD,
    CompareConfig,
    compare_modes,
    in_context_verdict,
    majority_accuracy,
    markdown_table,
)
from taesan.tuning.in_context import PromptFormat, numbered_labels_note, parse_verbalizer

HELP = "fine-tuning vs prompt tuning vs 0/1/few-shot in-context learning on one task: a table and a chart"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a pretrained GPT checkpoint directory with tokenizer.json")
    p.add_argument("--bert", default=None, metavar="DIR",
                   help="also fine-tune and prompt-tune this BERT checkpoint (a masked LM for the LM-head row)")
    p.add_argument("--train", required=True, metavar="FILE", help="labelled training data (NSMC-style TSV)")
    p.add_argument("--eval", required=True, metavar="FILE", help="labelled evaluation data")
    p.add_argument("--out", required=True, metavar="DIR", help="comparison.md, comparison.json, comparison.png and the trained models")
    p.add_argument("--shots", default="0,1,4", metavar="K,K,...", help="in-context demonstrations to try (default 0,1,4)")
    p.add_argument("--seeds", type=int, default=3, help="in-context: demonstration draws per k (default 3)")
    p.add_argument("--prompt-tokens", type=int, default=20, help="prompt tuning: virtual tokens (default 20)")
    p.add_argument("--max-steps", type=int, default=200, help="optimizer steps of each training mode (default 200)")
    p.add_argument("--max-train", type=int, default=None, metavar="N", help="use the first N training examples")
    p.add_argument("--max-eval", type=int, default=None, metavar="N", help="evaluate on the first N examples")
    p.add_argument("--batch-size", type=int, default=None,
                   help="training modes: examples per step (default by the model's size, as taesan finetune's)")
    p.add_argument("--lr-full", type=float, default=None,
                   help="full fine-tuning peak learning rate (default as taesan finetune's: 1e-3 under 20M parameters, 3e-5 above)")
    p.add_argument("--lr-prompt", type=float, default=None, help="prompt tuning peak learning rate (default 3e-3)")
    p.add_argument("--lr-prompt-lm", type=float, default=None,
                   help="prompt tuning via the LM head: peak learning rate (default 3e-2)")
    p.add_argument("--verbalizer", default=None, metavar="SPEC",
                   help="label words for in-context learning and the LM-head prompt tuning, e.g. 0=부정,1=긍정")
    p.add_argument("--pattern", default=None, metavar="TEXT",
                   help="LM-head prompt tuning: text after the input (see taesan finetune --pattern)")
    p.add_argument("--instruction", default="", metavar="TEXT", help="in-context: the first line of every prompt")
    p.add_argument("--calibrate", action="store_true", help='in-context: also compute accuracy calibrated on "N/A"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_shots(spec: str) -> list[int]:
    try:
        shots = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise TaesanError(f"--shots {spec!r}: write numbers separated by commas, e.g. 0,1,4") from None
    if not shots or min(shots) < 0:
        raise TaesanError(f"--shots {spec!r}: give one or more numbers >= 0")
    return shots


def run(args: argparse.Namespace) -> int:
    for name in ("seeds", "prompt_tokens", "max_steps"):
        if getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("max_train", "max_eval", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for d in (args.model, args.bert):
        if d is not None and not Path(d).is_dir():
            raise TaesanError(f"{d}: no such checkpoint directory")
    task = SequenceClassification()
    train, eval_examples = task.read(args.train)[: args.max_train], task.read(args.eval)[: args.max_eval]
    labels = order_labels({ex.label for ex in train})
    words = parse_verbalizer(args.verbalizer, labels) if args.verbalizer else None
    config = CompareConfig(
        shots=parse_shots(args.shots), seeds=args.seeds, prompt_tokens=args.prompt_tokens, max_steps=args.max_steps,
        batch_size=args.batch_size, lr_full=args.lr_full, lr_prompt=args.lr_prompt, lr_prompt_lm=args.lr_prompt_lm,
        verbalizer=words, pattern=args.pattern,
        fmt=PromptFormat(instruction=args.instruction), calibrate=args.calibrate, device=args.device, seed=args.seed,
        progress=not args.no_progress,
    )
    rows = compare_modes(args.model, train, eval_examples, args.out, config, bert_dir=args.bert)
    print(f"{len(train)} training / {len(eval_examples)} evaluation examples")
    baseline = majority_accuracy(train, eval_examples)
    print(markdown_table(rows, baseline), end="")
    for line in task.read_notes():  # rows left out (empty texts), counted
        print(line, file=sys.stderr)
    note = numbered_labels_note(args.verbalizer, labels)
    if note:  # after the work: an error stays one line
        print(note, file=sys.stderr)
    verdict = in_context_verdict(rows, baseline, len(eval_examples))
    if verdict:
        print(verdict)
    out = Path(args.out)
    print(f"wrote {out / TABLE_MD}, {out / TABLE_JSON}, {out / CHART}")
    return 0
