"""`taesan pretrain`: a preset (or checkpoint) + a corpus + a tokenizer -> a pretrained checkpoint directory.

Runs single-process as is, or under `torchrun --nproc_per_node=N -m taesan pretrain ...` with DDP
(FSDP2 with --fsdp). Only wiring: the work is in taesan.data, taesan.objectives and taesan.train.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import taesan
from taesan.checkpoint import TRAINING_NAME, read_training
from taesan.config import write_json
from taesan.data import (
    CausalWindows,
    PackedDocuments,
    build_token_cache,
    sentence_end_ids,
    unigram_perplexity,
)
from taesan.errors import TaesanError
from taesan.models import presets
from taesan.objectives import objective_for
from taesan.tokenizers import load
from taesan.train import TrainConfig, Trainer, distributed, latest_checkpoint
from taesan.util import pick_device

HELP = "pretrain a language model (causal, backward or masked) on a text corpus"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a preset (gpt-tiny, bert-tiny, ...) or a checkpoint directory")
    p.add_argument("--objective", required=True, choices=["causal", "backward", "masked"])
    p.add_argument("--corpus", required=True, nargs="+", metavar="FILE", help="text (one document per line) or JSONL with 'text'")
    p.add_argument("--tokenizer", required=True, metavar="FILE", help="tokenizer.json (or vocab.txt / a tokenizer dir)")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoints, metrics.jsonl, loss.png and the final model")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps; the cosine schedule spans them (default 1000)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop on the clock; alone, lr stays near its peak after warmup (add --max-steps for a full cosine)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the newest checkpoint in --out")
    p.add_argument("--batch-size", type=int, default=32, help="rows per micro-batch per process")
    p.add_argument("--block-size", type=int, default=128, help="tokens per row")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=None,
                   help="warmup steps (default: 5%% of --max-steps, at most 1000; 100 with --max-minutes alone)")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--keep-last", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--fsdp", action="store_true", help="shard parameters and optimizer state over ranks (FSDP2)")
    p.add_argument("--valid-every", type=int, default=50, help="every N-th document is held out for evaluation (0: none)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="the tokenized corpus cache (default OUT/data)")
    p.add_argument("--workers", type=int, default=None, help="tokenizer processes (default: by corpus size)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process (fewer on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _tokenizer(path: str):
    if not Path(path).exists():
        raise TaesanError(f"{path}: tokenizer file not found")
    try:
        return load(path)
    except TaesanError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise TaesanError(f"{path}: not a readable tokenizer ({e})") from None


def _separator(tokenizer, objective: str) -> int:
    if objective == "masked":
        needed = {"[CLS]": tokenizer.cls_id, "[SEP]": tokenizer.sep_id, "[MASK]": tokenizer.mask_id, "[PAD]": tokenizer.pad_id}
        missing = [name for name, i in needed.items() if i is None]
        if missing:
            raise TaesanError(f"the masked objective needs the tokenizer's special tokens {', '.join(missing)}")
        return tokenizer.sep_id
    if tokenizer.eos_id is None:
        raise TaesanError("a causal/backward LM needs a document separator: train the tokenizer with <|endoftext|> (or [SEP])")
    return tokenizer.eos_id


def _new_model(name: str, objective: str, vocab_size: int):
    """A preset or a checkpoint directory, with the tokenizer's vocab size; BERT presets get the MLM head."""
    if Path(name).is_dir():
        model = taesan.load(name)
        if not hasattr(model.config, "vocab_size"):  # a ViT or an encoder-decoder: was an AttributeError traceback
            raise TaesanError(f"{name}: a {model.model_type} checkpoint is not a language model to pretrain "
                              f"(a GPT for causal/backward, a BERT for masked)")
        if model.config.vocab_size != vocab_size:
            raise TaesanError(
                f"{name}: the model's vocab_size is {model.config.vocab_size}, the tokenizer has {vocab_size} tokens"
            )
        return model
    table = presets()
    if name not in table:
        return taesan.create(name, vocab_size=vocab_size)  # a model_type, or a one-line unknown-preset error
    model_type, fields = table[name]
    if model_type not in ("gpt", "bert"):
        raise TaesanError(f"preset {name!r} is not a language model to pretrain (gpt-tiny, bert-tiny, ...)")
    if objective == "masked" and model_type == "bert":
        model_type = "bert-mlm"
    return taesan.create(model_type, **{**fields, "vocab_size": vocab_size})


def _check_fits(model, objective: str, block_size: int) -> None:
    kind = getattr(model, "model_type", "")
    if objective == "masked" and not kind.endswith("mlm"):
        raise TaesanError(f"the masked objective needs a masked-LM model (bert-tiny, ...), got {kind!r}")
    if objective != "masked" and kind.startswith("bert"):
        raise TaesanError(f"{kind!r} is an encoder; the {objective} objective needs a decoder (gpt-tiny, ...)")
    limit = getattr(model.config, "n_positions", None)
    if limit is not None and block_size > limit:
        raise TaesanError(f"--block-size {block_size} is longer than the model's {limit} positions")


def run(args: argparse.Namespace) -> int:
    import shutil

    import torch


    for name in ("batch_size", "block_size"):
        if getattr(args, name) < 1:
            raise TaesanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.valid_every < 0:
        raise TaesanError(f"--valid-every must be >= 0 (0: no held-out split), got {args.valid_every}")
    if args.max_steps is not None:
        max_steps = args.max_steps
    else:
        max_steps = 10**6 if args.max_minutes else 1000
    if args.warmup is not None:
        warmup = args.warmup
    else:  # a clock-only budget has no step count to take 5% of
        warmup = 100 if args.max_steps is None and args.max_minutes else min(1000, max(1, max_steps // 20))
    config = TrainConfig(  # checked before anything is written
        max_steps=max_steps, max_minutes=args.max_minutes, lr=args.lr, warmup=warmup, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip, accumulation=args.accumulation, eval_every=args.eval_every, eval_batches=args.eval_batches,
        save_every=args.save_every, keep_last=args.keep_last, seed=args.seed, precision=args.precision,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    device = pick_device(args.device)
    info = distributed.init(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    for f in args.corpus:
        if not Path(f).is_file():
            raise TaesanError(f"{f}: {'a directory, not a corpus file' if Path(f).is_dir() else 'corpus file not found'}")
    tokenizer = _tokenizer(args.tokenizer)
    separator = _separator(tokenizer, args.objective)

    resume_from = None
    if args.resume:
        resume_from = latest_checkpoint(out)
        if resume_from is None:
            raise TaesanError(f"{out}: no checkpoint to resume from (run without --resume first)")
        trained = read_training(resume_from)
        if trained.get("objective", args.objective) != args.objective:
            raise TaesanError(f"{resume_from}: was trained with --objective {trained['objective']}, not {args.objective}")
        model = taesan.load(resume_from)
        if model.config.vocab_size != tokenizer.vocab_size:
            raise TaesanError(
                f"{resume_from}: vocab_size {model.config.vocab_size} does not match "
                f"the tokenizer's {tokenizer.vocab_size} tokens"
            )
    else:
        if latest_checkpoint(out) is not None:
            raise TaesanError(f"{out}: already holds checkpoints; pass --resume to continue, or choose another --out")
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        model = _new_model(args.model, args.objective, tokenizer.vocab_size)
    _check_fits(model, args.objective, args.block_size)
    if info.enabled:
        torch.manual_seed(args.seed + info.rank)  # dropout differs across ranks

    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "data"
    fresh_out = not out.exists()
    problem = None
    if info.is_main:  # rank 0 tokenizes; the others wait, then open the same cache
        try:
            cache = build_token_cache(args.corpus, tokenizer, cache_dir, separator, args.valid_every, workers=args.workers)
            print(f"corpus: {cache.manifest['tokens']['train']:,} training tokens, {cache.manifest['tokens']['valid']:,} held out"
                  f" ({'reused the cache' if cache.reused else 'tokenized'} in {cache_dir})")
        except TaesanError as e:
            problem = str(e)
            if fresh_out:  # an unreadable corpus leaves no empty run directory behind
                shutil.rmtree(out, ignore_errors=True)
    problem = distributed.broadcast_object(problem)  # every rank stops on rank 0's error instead of waiting forever
    if problem is not None:
        raise TaesanError(problem)
    if not info.is_main:
        cache = build_token_cache(args.corpus, tokenizer, cache_dir, separator, args.valid_every, workers=1)
    valid = cache.valid if cache.valid is not None else cache.train

    ends = sentence_end_ids(tokenizer) if args.objective == "masked" else None

    def source(split, rank: int = 0, world: int = 1):
        if args.objective == "masked":
            return PackedDocuments(split, args.block_size, args.batch_size, tokenizer.cls_id, tokenizer.sep_id,
                                   tokenizer.pad_id, args.seed, rank, world, sentence_ends=ends)
        return CausalWindows(split, args.block_size, args.batch_size, args.seed, rank, world)

    data = source(cache.train, info.rank, info.world_size)
    try:
        held_out = source(valid)
    except TaesanError:  # a corpus too small to hold out a block: evaluate on training data, and say so
        held_out = source(cache.train)
        if info.is_main:
            print("note: the held-out split is shorter than one block; evaluating on training data")
    training: dict[str, Any] = {
        "objective": args.objective, "separator_id": separator, "block_size": args.block_size,
        "corpus": [str(Path(f).resolve()) for f in args.corpus], "model": args.model,
    }

    def save_extra(directory: Path) -> None:
        tokenizer.save(directory / "tokenizer.json")
        write_json(directory / TRAINING_NAME, training)

    trainer = Trainer(
        model, objective_for(args.objective, tokenizer, model.config.vocab_size), data, config, out,
        eval_data=lambda: held_out.eval_batches(args.eval_batches, args.batch_size), device=device, dist=info,
        fsdp=args.fsdp, save_extra=save_extra, resume_from=resume_from,
    )
    try:
        trainer.fit()
    finally:
        distributed.shutdown()
    if info.is_main and trainer.interrupted:
        print(f"interrupted: checkpoint of step {trainer.step} saved in {out}; continue with the same command and --resume")
        return 130
    if info.is_main:
        shown = ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in trainer.last_eval.items())
        print(f"step {trainer.step}: {shown}")
        if args.objective != "masked":  # the same held-out targets, predicted from frequencies alone
            import numpy as np

            batches = held_out.eval_batches(args.eval_batches, args.batch_size)
            cut = slice(1, None) if args.objective == "causal" else slice(None, -1)  # backward predicts the earlier token
            targets = [b["input_ids"][:, cut].numpy() for b in batches]
            baseline = unigram_perplexity(cache.train, np.concatenate(targets), tokenizer.vocab_size)
            print(f"unigram baseline perplexity on the same held-out tokens: {baseline:.4g}")
        print(f"wrote {out} (model, tokenizer, metrics.jsonl, loss.png)")
    return 0
