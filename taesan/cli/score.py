"""`taesan score`: each sentence's log-probability under a trained language model, highest first.

The objective recorded at pretraining (training.json) decides how: forward/backward chain rule or
masked pseudo-log-likelihood. The computation is taesan.pipeline.lm (over taesan.scoring); this module prints.
"""
from __future__ import annotations

import argparse

from taesan.cli import add_threads
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.lm import score

HELP = "rank sentences by their log-probability under a language model (P(난폭 운전) vs P(무모 운전))"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint directory with tokenizer.json")
    p.add_argument("sentences", nargs="+", help="sentences to score")
    p.add_argument("--objective", choices=["causal", "backward", "masked"], default=None,
                   help="override the objective recorded in training.json")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="default: DIR/tokenizer.json")
    p.add_argument("--batch-size", type=int, default=32)
    add_threads(p)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise TaesanError("--batch-size must be >= 1")
    bundle = Bundle.load(args.model, tokenizer=args.tokenizer)
    result = score(bundle, args.sentences, args.objective, args.batch_size)
    ranked = result["scores"]
    width = max(len(f"{r['log_prob']:.3f}") for r in ranked)
    objective = result["objective"]
    how = "pseudo-log-likelihood" if objective == "masked" else f"{objective} LM log-probability"
    print(f"# {how} (natural log), highest first")
    for r in ranked:
        print(f"{r['log_prob']:{width}.3f}  {r['text']}")
    return 0
