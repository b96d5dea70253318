"""`taesan finetune`: a task + a pretrained checkpoint (or a fresh preset) + labelled files -> a fine-tuned checkpoint.

Only wiring: reading, heads, loss and metrics are the task's (taesan.tasks), training is taesan.tuning.finetune.
Works for every task in taesan.tasks.TASKS.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

import torch

import taesan
from taesan.config import config_from_dict, config_to_dict
from taesan.errors import TaesanError
from taesan.models.registry import create_for
from taesan.tasks import TASKS, task_class
from taesan.tokenizers import load
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune
from taesan.util import describe_precision, pick_device

HELP = "fine-tune a model on a downstream task (classification, NLI, NER, QA, generation, translation, images)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=list(TASKS))
    p.add_argument("--model", required=True, metavar="DIR|PRESET", help="a checkpoint directory (its tokenizer.json is used) or a preset (bert-tiny, gpt-tiny, vit-tiny, ...)")
    p.add_argument("--train", required=True, metavar="FILE", help="labelled training data (image-classification: also `digits`)")
    p.add_argument("--valid", default=None, metavar="FILE", help="held-out data (default: 10%% of --train, chosen by --seed)")
    p.add_argument("--out", required=True, metavar="DIR", help="the fine-tuned checkpoint, metrics.jsonl, loss.png, eval_results.json")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="required with a preset (not for images); default DIR/tokenizer.json")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=float, default=None, help="passes over the training examples (default 3)")
    steps.add_argument("--max-steps", type=int, default=None, help="optimizer steps instead of --epochs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-5 from a checkpoint, 1e-3 for a fresh preset)")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default 10%% of the steps)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=None, help="tokens per example, specials included (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast where the CPU multiplies it natively (AMX, AVX512-BF16) or on CUDA, else fp32")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: only at the end)")
    p.add_argument("--mode", choices=["full", "prompt"], default="full", help="full: train every weight; prompt: a soft prompt + the head")
    p.add_argument("--prompt-tokens", type=int, default=20, help="--mode prompt: virtual tokens")
    p.add_argument("--prompt-init", default=None, metavar="TEXT", help="--mode prompt: start from this text's embeddings (or vocab / random)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a task setting, e.g. source_column=1 (translation), num_beams=4; values are JSON or text; repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def task_settings(pairs: list[str]) -> dict[str, Any]:
    """["source_column=1", "labels=[\"neg\",\"pos\"]", "separator=|"] -> {field: value}; JSON where it parses, else text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field.strip():
            raise TaesanError(f"--set {pair!r}: expected FIELD=VALUE")
        try:
            out[field.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[field.strip()] = value
    return out


def _tokenizer(args: argparse.Namespace, needs: bool, is_dir: bool):
    if args.tokenizer is not None:
        if not Path(args.tokenizer).exists():
            raise TaesanError(f"{args.tokenizer}: tokenizer file not found")
        return load(args.tokenizer)
    if not needs:
        return None
    if not is_dir:
        raise TaesanError(f"--model {args.model} is a preset: pass --tokenizer FILE (the tokenizer the model will read)")
    return load(args.model)  # DIR/tokenizer.json (or vocab.txt)


def _model(name: str, tokenizer: Any):
    """A checkpoint directory, or a preset built with the tokenizer's vocabulary size and pad id."""
    if Path(name).is_dir():
        return taesan.load(name)
    if tokenizer is None:
        return taesan.create(name)  # an unknown name is a one-line error listing the presets
    return create_for(name, tokenizer.vocab_size, tokenizer.pad_id)


def split_off(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held out): a seeded random `fraction` of the examples held out (at least one when there are two)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(examples) * fraction)) if len(examples) >= 2 else 0
    held = set(order[:n])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def run(args: argparse.Namespace) -> int:
    for name in ("batch_size", "prompt_tokens"):
        if getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_steps is not None and args.max_steps < 1 or args.epochs is not None and args.epochs <= 0:
        raise TaesanError("--max-steps / --epochs must be positive")
    cls = task_class(args.task)
    is_dir = Path(args.model).is_dir()
    tokenizer = _tokenizer(args, getattr(cls, "needs_tokenizer", True), is_dir)

    settings = task_settings(args.set)
    if args.max_length is not None:
        if args.max_length < 2:
            raise TaesanError("--max-length must be >= 2")
        settings["max_length"] = args.max_length
    config = config_from_dict(cls.config_class, {**config_to_dict(cls.config_class()), **settings}, source="--set")
    task = cls(config, tokenizer)
    train = task.read(args.train)
    if args.valid is not None:
        valid = task.read(args.valid)
    else:
        train, valid = split_off(train, 0.1, args.seed)
    model = _model(args.model, tokenizer)

    steps = args.max_steps or max(1, math.ceil((args.epochs or 3.0) * len(train) / args.batch_size))
    lr = args.lr if args.lr is not None else (5e-5 if is_dir else 1e-3)
    warmup = args.warmup if args.warmup is not None else steps // 10
    train_config = TrainConfig(
        max_steps=steps, lr=lr, warmup=warmup, weight_decay=args.weight_decay, eval_every=args.eval_every,
        save_every=0, keep_last=1, seed=args.seed, progress=not args.no_progress, precision=args.precision,
    )
    torch.manual_seed(args.seed)  # the new head's initialisation
    result = finetune(
        task, model, train, valid, args.out, train_config, batch_size=args.batch_size, device=args.device,
        mode=args.mode, prompt_tokens=args.prompt_tokens, prompt_init=args.prompt_init,
    )
    print(describe_precision(args.precision, pick_device(args.device).type))
    for name, value in result.metrics.items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    print(f"{args.task}: {len(train)} training and {len(valid)} held-out examples, {result.steps} steps of {args.batch_size}; "
          f"trained {result.trainable_parameters:,} parameters in {result.seconds:.1f} s; saved to {args.out}")
    if result.interrupted:  # it said "{steps} steps" and exited 0 as if the run had finished
        print(f"interrupted at step {result.steps} of {steps}: the model of that step is saved and evaluated above")
        return 130
    return 0
