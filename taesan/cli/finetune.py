"""`taesan finetune`: a task + a pretrained checkpoint (or a fresh preset) + labelled files -> a fine-tuned checkpoint.

Only wiring: reading, heads, loss and metrics are the task's (taesan.tasks), training is taesan.tuning.finetune.
Works for every task in taesan.tasks.TASKS.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

import taesan
from taesan.config import config_from_dict, config_to_dict
from taesan.errors import TaesanError
from taesan.models.kinds import family_name, is_text_model, masked_lm_type
from taesan.models.registry import PRESETS, create_for
from taesan.models.word2vec import Word2Vec
from taesan.tasks import TASKS, task_class
from taesan.tasks.base import replace_config
from taesan.tasks.fits import LENGTH_FIELDS, check_length, tokenizer_rows
from taesan.tasks.split import split_off
from taesan.tokenizers import load
from taesan.train import TrainConfig, refuse_existing_run
from taesan.tuning.checks import evaluation_warnings
from taesan.tuning.defaults import EPOCHS, Defaults, finetune_defaults
from taesan.tuning.embeddings import start_embeddings
from taesan.tuning.finetune import MODES, finetune
from taesan.tuning.in_context import parse_verbalizer
from taesan.tuning.task_defaults import apply_task_defaults

from taesan.util import describe_precision, pick_device

# fixed by what the model was trained on: evaluate / predict may not --set them (an NER model's unit, char or word,
# is its tags' unit: read in the other one, a file scored f1 0 with no word)
TRAINED_FIELDS = ("labels", "type_ids", "pooling", "seq2seq", "decoder_start_id", "source_script", "target_script", "unit")
HELP = "fine-tune a model on a downstream task (classification, NLI, NER, QA, generation, translation, images)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=list(TASKS))
    p.add_argument("--model", required=True, metavar="DIR|PRESET", help="a checkpoint directory (its tokenizer.json is used) or a preset (bert-tiny, gpt-tiny, vit-tiny, ...)")
    p.add_argument("--train", required=True, metavar="FILE", help="labelled training data (image-classification: also `digits`)")
    p.add_argument("--valid", default=None, metavar="FILE", help="held-out data (default: 10%% of --train, chosen by --seed)")
    p.add_argument("--out", required=True, metavar="DIR", help="the fine-tuned checkpoint, metrics.jsonl, loss.png, eval_results.json")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="required with a preset (not for images); default DIR/tokenizer.json")
    p.add_argument("--embeddings", default=None, metavar="DIR",
                   help="with a preset: start its token embeddings from word vectors trained on the tokenizer's pieces "
                        "(taesan word2vec train --tokenizer FILE --dim D_MODEL); every other weight at random init")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=float, default=None, help="passes over the training examples (default 3)")
    steps.add_argument("--max-steps", type=int, default=None, help="optimizer steps instead of --epochs")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop on the clock, save and evaluate (the schedule still spans --max-steps / --epochs)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step (default: by the model's size, see --lr)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default by the model's size: 1e-3 under 20M parameters, 3e-5 above; "
                        "3e-3 for --mode prompt, 3e-2 for prompt-lm; printed before training)")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (default 6%% of the steps)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=None, help="tokens per example, specials included (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast where the CPU multiplies it natively (AMX, AVX512-BF16) or on CUDA, else fp32")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: only at the end)")
    p.add_argument("--mode", choices=list(MODES), default="full",
                   help="full: train every weight; prompt: a soft prompt + a new task head; prompt-lm (classifiers, on a GPT "
                        "or a masked LM): only a soft prompt, the label read as its --verbalizer word's score from the "
                        "frozen LM head after --pattern")
    p.add_argument("--prompt-tokens", type=int, default=20, help="prompt modes: virtual tokens")
    p.add_argument("--prompt-init", default=None, metavar="TEXT", help="prompt modes: start from this text's embeddings (or vocab / random)")
    p.add_argument("--verbalizer", default=None, metavar="SPEC", help="prompt-lm: label words, e.g. 0=부정,1=긍정 (default: the label names)")
    p.add_argument("--pattern", default=None, metavar="TEXT",
                   help="prompt-lm: text after the input; a GPT reads the word next (default '\\n정답:'), a masked LM at "
                        "{mask} (default '정답: {mask}')")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="a task setting, e.g. source_column=1 (translation), num_beams=4, pooling=cls|mean (BERT-shaped "
                        "classifiers; default by the model, printed); values are JSON or text; several at once or repeated")
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


def apply_settings(task, model, settings: dict, task_file: str) -> None:
    """--set over the checkpoint's task.json: how files are read (columns) and outputs decoded (beams, lengths);
    never what the model was trained to be (its labels, its decoder's start), which is a one-line error."""
    if not settings:
        return
    fixed = [f for f in settings if f in TRAINED_FIELDS]
    if fixed:
        raise TaesanError(f"--set {fixed[0]}: fixed by what the model was trained on ({task_file}); evaluate can change "
                          f"how the file is read and decoded, not that")
    task.config = config_from_dict(type(task.config), {**config_to_dict(task.config), **settings}, source="--set")
    asked = [f for f in LENGTH_FIELDS if f in settings]
    if asked:
        check_length(task, model, "--set", 0, asked)


def _tokenizer(args: argparse.Namespace, needs: bool, is_dir: bool):
    if args.tokenizer is not None:
        return load(args.tokenizer)  # a missing file is load's one-line error
    if not needs:
        return None
    if not is_dir:
        raise TaesanError(f"--model {args.model} is a preset: pass --tokenizer FILE (the tokenizer the model will read)")
    return load(args.model)  # DIR/tokenizer.json (or vocab.txt)


def _model(name: str, tokenizer: Any, lm: bool = False):
    """A checkpoint directory, or a preset built with the tokenizer's vocabulary (its largest id + 1) and pad id;
    `lm`: a BERT-shaped preset as its family's masked LM (prompt-lm reads the LM head)."""
    if Path(name).is_dir():
        return taesan.load(name)
    if tokenizer is None:
        return taesan.create(name)  # an unknown name is a one-line error listing the presets
    kind = PRESETS[name][0] if name in PRESETS else name
    return create_for(name, tokenizer_rows(tokenizer), tokenizer.pad_id, masked_lm_type(kind) if lm else None)


def _vectors(args: argparse.Namespace, is_dir: bool, needs_tokenizer: bool) -> Word2Vec | None:
    """--embeddings' word vectors, checked before any data is read: they start a fresh preset's token rows."""
    if args.embeddings is None:
        return None
    if is_dir:
        raise TaesanError(f"--embeddings starts a fresh preset's token embeddings; {args.model} is a checkpoint, whose "
                          f"layers were trained with its own (give a preset such as bert-tiny)")
    if not needs_tokenizer:
        raise TaesanError(f"--embeddings: the {args.task} task reads no tokens")
    return Word2Vec.load(args.embeddings)


def _text_model(task: str, model: Any, directory: str) -> None:
    """A text task on an image checkpoint is named as such (before the missing tokenizer files are)."""
    if not is_text_model(model):
        raise TaesanError(f"the {task} task needs a text model (BERT, RoBERTa, ELECTRA, GPT, T5, ...); {directory} is a "
                          f"{family_name(model)!r} checkpoint")


def run(args: argparse.Namespace) -> int:
    for name in ("batch_size", "prompt_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_steps is not None and args.max_steps < 1 or args.epochs is not None and args.epochs <= 0:
        raise TaesanError("--max-steps / --epochs must be positive")
    if (args.verbalizer is not None or args.pattern is not None) and args.mode != "prompt-lm":
        raise TaesanError("--verbalizer and --pattern belong to --mode prompt-lm")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise TaesanError(f"--max-minutes must be > 0, got {args.max_minutes}")
    refuse_existing_run(args.out)  # another run's checkpoints and task.json would mix with this one's (no --resume here)
    cls = task_class(args.task)
    is_dir = Path(args.model).is_dir()
    needs_tokenizer = getattr(cls, "needs_tokenizer", True)
    model = taesan.load(args.model) if is_dir else None  # a checkpoint first: what it is decides what it needs
    if model is not None and needs_tokenizer:
        _text_model(args.task, model, args.model)
    tokenizer = _tokenizer(args, needs_tokenizer, is_dir)
    vectors = _vectors(args, is_dir, needs_tokenizer)

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
    torch.manual_seed(args.seed)  # a fresh preset's weights and the new head's: the same --seed, the same run
    model = model if model is not None else _model(args.model, tokenizer, lm=args.mode == "prompt-lm")
    notes = [] if vectors is None else [start_embeddings(model, tokenizer, vectors).line(args.embeddings)]
    notes += task.read_notes()  # rows the reader left out (empty texts, unanswerable questions), counted
    asked = [f for f in LENGTH_FIELDS if f in settings]
    if asked:  # asked for: too long is an error, not a silent cut
        reserved = args.prompt_tokens if args.mode != "full" else 0
        check_length(task, model, "--max-length" if args.max_length is not None else "--set", reserved, asked)

    notes += apply_task_defaults(task, model, args.task, args.model if is_dir else None, args.mode, settings)
    parameters = sum(p.numel() for p in model.parameters())

    words = None
    if args.verbalizer is not None:
        task.fit_labels(train)
        words = parse_verbalizer(args.verbalizer, task.labels)
    defaults = finetune_defaults(parameters, args.mode, args.task)
    batch_size = args.batch_size if args.batch_size is not None else defaults.batch_size
    epochs = args.epochs if args.epochs is not None else defaults.epochs(len(train))
    steps = args.max_steps or max(1, math.ceil(epochs * len(train) / batch_size))
    lr = args.lr if args.lr is not None else defaults.lr
    warmup = args.warmup if args.warmup is not None else defaults.warmup(steps)
    by_default = args.epochs is None and args.max_steps is None
    capped = by_default and epochs < defaults.base_epochs  # a large file: fewer passes
    paced = by_default and not capped and defaults.epochs_why != ""  # a small model's task: its own epochs
    chosen = args.lr is None or args.warmup is None or args.batch_size is None or capped or paced
    train_config = TrainConfig(
        max_steps=steps, max_minutes=args.max_minutes, lr=lr, warmup=warmup, weight_decay=args.weight_decay,
        eval_every=args.eval_every, save_every=0, keep_last=1, seed=args.seed, progress=not args.no_progress,
        precision=args.precision,
    )
    torch.manual_seed(args.seed)  # the new head's initialisation and dropout, whatever building the model drew
    result = finetune(
        task, model, train, valid, args.out, train_config, batch_size=batch_size, device=args.device,
        mode=args.mode, prompt_tokens=args.prompt_tokens, prompt_init=args.prompt_init, pattern=args.pattern,
        verbalizer=words,
        on_start=(lambda: print("\n".join(([defaults_line(defaults, lr, warmup, batch_size, steps, args, epochs if capped else None, len(train), paced)] if chosen else [])
                                          + notes))) if chosen or notes else None,
    )
    print(describe_precision(args.precision, pick_device(args.device).type))
    for name, value in result.metrics.items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    for line in evaluation_warnings(task, result.metrics):
        print(line, file=sys.stderr)
    print(f"{args.task}: {len(train)} training and {len(valid)} held-out examples, {result.steps} steps of {batch_size}; "
          f"trained {result.trainable_parameters:,} parameters in {result.seconds:.1f} s; saved to {args.out}")
    if result.interrupted:  # it said "{steps} steps" and exited 0 as if the run had finished
        print(f"interrupted at step {result.steps} of {steps}: the model of that step is saved and evaluated above")
        return 130
    if result.steps < steps:  # the loop ends early only on Ctrl-C or the clock
        print(f"time limit: --max-minutes {args.max_minutes:g} ended the run at step {result.steps} of {steps}; "
              f"the model of that step is saved and evaluated above")
    return 0


def defaults_line(defaults: Defaults, lr: float, warmup: int, batch_size: int, steps: int,
                  args: argparse.Namespace, capped_epochs: float | None = None, n_train: int = 0,
                  paced: bool = False) -> str:
    """"defaults: lr 0.001, warmup 36 of 600 steps (6%), batch 16 -- a 1.0M-parameter model (< 20M): ...";
    a value given on the command line is marked as such; `capped_epochs`: the passes over `n_train` examples the
    default cap left, when below the task's epochs; `paced`: the task's own epochs (a small model's NER, QA), and why."""
    def shown(value: str, given: Any) -> str:
        return f"{value} (given)" if given is not None else value

    parts = [shown(f"lr {lr:g}", args.lr),
             shown(f"warmup {warmup} of {steps} steps" + ("" if args.warmup is not None else
                                                         f" ({defaults.warmup_fraction:.0%})"), args.warmup),
             shown(f"batch {batch_size}", args.batch_size)]
    if capped_epochs is not None:
        parts.append(f"{capped_epochs:.2f} epochs (at most {defaults.max_examples:,} examples seen, not "
                     f"{defaults.base_epochs:g} x {n_train:,})")
    elif paced:
        parts.append(f"{defaults.base_epochs:g} epochs of {args.task}, not {EPOCHS:g} ({defaults.epochs_why})")
    return (f"defaults: {', '.join(parts)} -- {defaults.reason}; --lr / --warmup / --batch-size"
            f"{' / --epochs' if capped_epochs is not None or paced else ''} override")
