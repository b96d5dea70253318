"""`taesan pretrain`: a preset (or checkpoint) + a corpus + a tokenizer -> a pretrained checkpoint directory.

Runs single-process as is, or under `torchrun --nproc_per_node=N -m taesan pretrain ...` with DDP
(FSDP2 with --fsdp). Only arguments and printing: the recipe is taesan.pipeline.pretrain.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from taesan.cli.finetune import task_settings
from taesan.cli.tokenizer import CORPUS_HELP
from taesan.config import read_json
from taesan.errors import TaesanError
from taesan.pipeline.pretrain import Recipe, pretrain
from taesan.tokenizers import load
from taesan.train import TrainConfig

HELP = "pretrain a language model (causal, backward, masked) or an encoder-decoder (denoising) on a text corpus"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a preset (gpt-tiny, bert-tiny, ...) or a checkpoint directory")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="model config fields over the preset, e.g. --set n_layers=4 d_model=128 n_heads=4 dropout=0 "
                   "(values are JSON or text; repeatable)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a JSON file of model config fields over the preset (--set wins over it)")
    p.add_argument("--objective", required=True, choices=["causal", "backward", "masked", "denoising"],
                   help="causal/backward: a GPT; masked: a BERT; denoising: an encoder-decoder (transformer-tiny), BART's "
                   "text infilling")
    p.add_argument("--corpus", required=True, nargs="+", metavar="FILE", help=f"one document per text: {CORPUS_HELP}")
    p.add_argument("--tokenizer", default=None, metavar="FILE",
                   help="tokenizer.json (or vocab.txt / a tokenizer dir); default: the --model checkpoint's own")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoints, metrics.jsonl, loss.png and the final model")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps; the cosine schedule spans them (default 1000)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop on the clock; alone, lr stays near its peak after warmup (add --max-steps for a full cosine)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the newest checkpoint in --out")
    p.add_argument("--mask-prob", type=float, default=0.15,
                   help="masked: share of tokens to predict (default 0.15, BERT's; ~0.3-0.4 learns faster on a small budget)")
    p.add_argument("--noise-density", type=float, default=0.3,
                   help="denoising: share of tokens hidden in spans of mean length 3, one <mask> per span (BART's 0.3)")
    p.add_argument("--whole-word", action="store_true", help="masked: mask a word's pieces together (whole-word masking)")
    p.add_argument("--embeddings", default=None, metavar="DIR",
                   help="start a preset's token embeddings from word vectors trained on the tokenizer's pieces "
                        "(taesan word2vec train --tokenizer FILE --dim D_MODEL); the layers start at random init")
    p.add_argument("--batch-size", type=int, default=32, help="rows per micro-batch per process")
    p.add_argument("--block-size", type=int, default=None,
                   help="tokens per row (default 128, or the model's positions where they are fewer)")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--betas", default="0.9,0.98", metavar="B1,B2", help="AdamW's betas (default 0.9,0.98)")
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
    held = p.add_mutually_exclusive_group()
    held.add_argument("--valid-every", type=int, default=50, help="every N-th document is held out for evaluation (0: none)")
    held.add_argument("--valid-fraction", type=float, default=None, metavar="F",
                      help="hold out the corpus' last fraction F of tokens instead (e.g. 0.1: a 90/10 split, as nanoGPT)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="the tokenized corpus cache (default OUT/data)")
    p.add_argument("--workers", type=int, default=None, help="tokenizer processes (default: by corpus size)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process (fewer on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _tokenizer_path(args: argparse.Namespace) -> str:
    """--tokenizer, else the --model checkpoint directory (its tokenizer, as finetune reads it); a preset has none."""
    if args.tokenizer is not None:
        return args.tokenizer
    if Path(args.model).is_dir():
        return args.model
    raise TaesanError(f"--tokenizer is needed: {args.model} is a preset, with no tokenizer of its own")


def _tokenizer(path: str):
    if not Path(path).exists():
        raise TaesanError(f"{path}: tokenizer file not found")
    try:
        return load(path)
    except TaesanError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise TaesanError(f"{path}: not a readable tokenizer ({e})") from None


def _betas(text: str) -> tuple[float, float]:
    """"0.9,0.99" -> (0.9, 0.99); each in [0, 1)."""
    try:
        betas = tuple(float(x) for x in text.split(","))
    except ValueError:
        betas = ()
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise TaesanError(f"--betas {text!r}: expected two numbers in [0, 1) separated by a comma, e.g. 0.9,0.99")
    return betas


def model_overrides(config_file: str | None, pairs: list[str]) -> dict[str, Any]:
    """--config FILE (a JSON object of config fields), then --set FIELD=VALUE pairs over it."""
    out: dict[str, Any] = {}
    if config_file is not None:
        if not Path(config_file).is_file():
            raise TaesanError(f"--config {config_file}: file not found")
        data = read_json(config_file)
        if not isinstance(data, dict):
            raise TaesanError(f"--config {config_file}: expected a JSON object of config fields")
        out.update({k: v for k, v in data.items() if k not in ("model_type", "taesan_version")})
    out.update(task_settings(pairs))
    return out


def run(args: argparse.Namespace) -> int:
    if args.max_steps is not None:
        max_steps = args.max_steps
    else:
        max_steps = 10**6 if args.max_minutes else 1000
    if args.warmup is not None:
        warmup = args.warmup
    else:  # a clock-only budget has no step count to take 5% of
        warmup = 100 if args.max_steps is None and args.max_minutes else min(1000, max(1, max_steps // 20))
    recipe = Recipe(  # checked before anything is written
        objective=args.objective, corpus=args.corpus, out=Path(args.out), block_size=args.block_size,
        batch_size=args.batch_size, seed=args.seed, valid_every=args.valid_every, valid_fraction=args.valid_fraction,
        cache_dir=args.cache_dir, workers=args.workers, device=args.device, fsdp=args.fsdp, resume=args.resume,
        model_name=args.model, model_overrides=model_overrides(args.config, args.set), whole_word=args.whole_word,
        mask_prob=args.mask_prob, noise_density=args.noise_density, embeddings=args.embeddings,
    )
    config = TrainConfig(
        max_steps=max_steps, max_minutes=args.max_minutes, lr=args.lr, warmup=warmup, weight_decay=args.weight_decay,
        betas=_betas(args.betas),
        grad_clip=args.grad_clip, accumulation=args.accumulation, eval_every=args.eval_every, eval_batches=args.eval_batches,
        save_every=args.save_every, keep_last=args.keep_last, seed=args.seed, precision=args.precision,
        progress=not args.no_progress,
    )
    done = pretrain(args.model, _tokenizer(_tokenizer_path(args)), recipe, config, say=print)
    if not done.is_main:
        return 0
    trainer = done.trainer
    if done.interrupted:
        print(f"interrupted: checkpoint of step {trainer.step} saved in {args.out}; continue with the same command and --resume")
        return 130
    shown = ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in trainer.last_eval.items())
    print(f"step {trainer.step}: {shown or 'nothing held out to score (too few held-out tokens were masked or read)'}")
    if done.baseline_perplexity is not None:
        print(f"unigram baseline perplexity on the same held-out tokens: {done.baseline_perplexity:.4g}")
    print(f"wrote {args.out} (model, tokenizer, metrics.jsonl, loss.png)")
    return 0
