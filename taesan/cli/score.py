"""`taesan score`: each sentence's log-probability under a trained language model, highest first.

The objective recorded at pretraining (training.json) decides how: forward/backward chain rule or
masked pseudo-log-likelihood. The computation is taesan.scoring; this module only prints.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import taesan
from taesan.checkpoint import TRAINING_NAME, read_training
from taesan.errors import TaesanError
from taesan.scoring import score_texts
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.load import check_vocabulary

HELP = "rank sentences by their log-probability under a language model (P(난폭 운전) vs P(무모 운전))"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint directory with tokenizer.json")
    p.add_argument("sentences", nargs="+", help="sentences to score")
    p.add_argument("--objective", choices=["causal", "backward", "masked"], default=None,
                   help="override the objective recorded in training.json")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="default: DIR/tokenizer.json")
    p.add_argument("--batch-size", type=int, default=32)


def _objective(directory: Path, model, override: str | None) -> tuple[str, int | None]:
    trained = read_training(directory)
    objective = override or trained.get("objective")
    if objective is None:
        kind = getattr(model, "model_type", "")
        objective = "masked" if kind.endswith("mlm") else "causal" if kind == "gpt" else None
    if objective is None:
        raise TaesanError(f"{directory}: no {TRAINING_NAME} and model_type {model.model_type!r}; pass --objective")
    kind = getattr(model, "model_type", "")
    if not (kind.endswith("mlm") if objective == "masked" else kind == "gpt"):  # else a traceback or a meaningless number
        needs = "a BERT masked LM" if objective == "masked" else "a GPT"
        raise TaesanError(f"{directory}: the {objective} objective scores with {needs}; this model is {kind!r}")
    return objective, trained.get("separator_id")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise TaesanError("--batch-size must be >= 1")
    directory = Path(args.model)
    model = taesan.load(directory)
    tok_path = Path(args.tokenizer) if args.tokenizer else directory / "tokenizer.json"
    if not tok_path.exists():
        raise TaesanError(f"{tok_path}: no tokenizer (pass --tokenizer)")
    tokenizer = load_tokenizer(tok_path)
    check_vocabulary(model, tokenizer, tok_path)
    for n, text in enumerate(args.sentences, start=1):
        if not text.strip():
            raise TaesanError(f"sentence {n} is empty: there is nothing to score")
    objective, start = _objective(directory, model, args.objective)
    scores = score_texts(model, tokenizer, args.sentences, objective, start_id=start, batch_size=args.batch_size)
    width = max(len(f"{s:.3f}") for s in scores)
    how = "pseudo-log-likelihood" if objective == "masked" else f"{objective} LM log-probability"
    print(f"# {how} (natural log), highest first")
    for s, text in sorted(zip(scores, args.sentences), key=lambda x: -x[0]):
        print(f"{s:{width}.3f}  {text}")
    return 0
