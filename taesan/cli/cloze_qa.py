"""`taesan cloze-qa`: raw Korean text -> cloze questions in SQuAD JSON, to pretrain a QA model on before its
labelled questions (`taesan finetune --task qa --train cloze.json`, then again on KorQuAD from that checkpoint).

The questions are made by taesan.tasks.cloze_qa; this module reads the flags and prints one line.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from taesan.tasks.cloze_qa import ClozeConfig, write_cloze

HELP = "make cloze questions (a noun phrase cut out of a sentence) from Korean text, as SQuAD JSON for QA pretraining"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, nargs="+", metavar="FILE",
                   help="text (a paragraph per line) or JSONL with 'text' (paragraphs split at line breaks)")
    p.add_argument("--out", required=True, metavar="FILE", help="the SQuAD-format JSON to write")
    p.add_argument("--max-questions", type=int, default=20000, help="stop after this many questions (20000)")
    p.add_argument("--min-chars", type=int, default=ClozeConfig.min_chars, help="shortest paragraph used (characters)")
    p.add_argument("--max-chars", type=int, default=ClozeConfig.max_chars, help="longest paragraph used (characters)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = ClozeConfig(min_chars=args.min_chars, max_chars=args.max_chars)
    examples = write_cloze([Path(f) for f in args.corpus], args.out, args.max_questions, args.seed, config,
                           progress=not args.no_progress)
    contexts = len({ex.context for ex in examples})
    print(f"cloze-qa: {len(examples):,} questions on {contexts:,} paragraphs; saved to {args.out}")
    return 0
