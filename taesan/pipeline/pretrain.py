"""The pretraining recipe, once: a model (a preset sized to the tokenizer, a checkpoint, or one in memory) and a
corpus -> a token cache on disk -> windows (causal, backward, denoising) or packed documents (masked) -> the one Trainer ->
a checkpoint directory carrying tokenizer.json and training.json, and the unigram baseline on the same held-out
tokens. Single process, or DDP/FSDP2 under torchrun (rank 0 tokenizes and writes).

Not a command line: `taesan pretrain` and the demo call `pretrain` with explicit arguments and print the result.
"""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from taesan.checkpoint import TRAINING_NAME, read_training
from taesan.config import write_json
from taesan.data import (
    CausalWindows,
    PackedDocuments,
    TokenSplit,
    build_token_cache,
    sentence_end_ids,
    unigram_perplexity,
)
from taesan.denoising import denoising_for, require_specials
from taesan.errors import TaesanError
from taesan.models import presets
from taesan.models.kinds import family_name, is_causal_lm, is_encoder_decoder, is_masked_lm, masked_lm_type
from taesan.models.registry import create_for
from taesan.models.word2vec import Word2Vec
from taesan.objectives import Objective, objective_for
from taesan.tasks.heads import decoder_start, with_lm_head
from taesan.tokenizers.corpus import describe
from taesan.train import TrainConfig, Trainer, distributed, latest_checkpoint, refuse_existing_run, resume_point
from taesan.tuning.embeddings import start_embeddings
from taesan.tuning.load import load
from taesan.util import pick_device

OBJECTIVES = ("causal", "backward", "masked", "denoising")
BLOCK_SIZE = 128  # tokens per row by default


@dataclass
class Recipe:
    """Everything about a pretraining run except the optimizer's schedule (TrainConfig) and the model."""

    objective: str  # causal, backward, masked (a BERT) or denoising (an encoder-decoder)
    corpus: Sequence[str | Path]  # text (one document per line), JSONL/JSON with "text", or a table's text column
    out: Path  # checkpoints, metrics.jsonl, loss.png and the final model
    block_size: int | None = None  # tokens per row; None: BLOCK_SIZE, or fewer where the model has fewer positions
    batch_size: int = 32  # rows per micro-batch per process
    seed: int = 0
    valid_every: int = 50  # every N-th document is held out for evaluation (0: none)
    valid_fraction: float | None = None  # instead: the corpus' last fraction of tokens is held out (nanoGPT's split)
    cache_dir: Path | None = None  # the tokenized corpus (default OUT/data)
    workers: int | None = None  # tokenizer processes (default: by corpus size)
    device: str = "auto"
    fsdp: bool = False
    resume: bool = False  # continue exactly from the newest checkpoint in `out`
    model_name: str = ""  # what training.json records as the starting model
    model_overrides: dict[str, Any] = field(default_factory=dict)  # config fields over a preset (--set, --config)
    whole_word: bool = False  # masked: a word's pieces are masked together (objectives.MaskedLM)
    mask_prob: float = 0.15  # masked: the share of tokens chosen to predict (BERT's 15%)
    noise_density: float = 0.3  # denoising: the share of tokens hidden in spans (BART's 30%)
    embeddings: str | Path | None = None  # word vectors (`taesan word2vec train --tokenizer`) for a preset's token rows

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise TaesanError(f"unknown objective {self.objective!r}; choose {', '.join(OBJECTIVES)}")
        for name in ("batch_size", "block_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise TaesanError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.valid_every < 0:
            raise TaesanError(f"--valid-every must be >= 0 (0: no held-out split), got {self.valid_every}")
        if self.valid_fraction is not None and not 0.0 < self.valid_fraction < 1.0:
            raise TaesanError(f"--valid-fraction must be in (0, 1), got {self.valid_fraction}")
        if not 0.0 < self.mask_prob <= 1.0:
            raise TaesanError(f"--mask-prob must be in (0, 1], got {self.mask_prob}")
        if not 0.0 < self.noise_density < 1.0:
            raise TaesanError(f"--noise-density must be in (0, 1), got {self.noise_density}")
        self.out = Path(self.out)


@dataclass
class Pretrained:
    """What a run leaves: the trainer (step, last_eval, interrupted), the model, and on rank 0 the notes a
    caller may print."""

    trainer: Trainer
    model: nn.Module  # the trained model, unwrapped, eval mode
    is_main: bool
    notes: list[str] = field(default_factory=list)  # the corpus size, the held-out fallback
    baseline_perplexity: float | None = None  # causal/backward: frequencies alone on the same held-out targets

    @property
    def interrupted(self) -> bool:
        return self.trainer.interrupted


def separator_for(tokenizer, objective: str) -> int:
    """The id between documents: [SEP] for a masked LM (which also needs [CLS], [MASK], [PAD]), end-of-text otherwise."""
    if objective == "masked":
        needed = {"[CLS]": tokenizer.cls_id, "[SEP]": tokenizer.sep_id, "[MASK]": tokenizer.mask_id, "[PAD]": tokenizer.pad_id}
        missing = [name for name, i in needed.items() if i is None]
        if missing:
            raise TaesanError(f"the masked objective needs the tokenizer's special tokens {', '.join(missing)}")
        return tokenizer.sep_id
    if objective == "denoising":
        require_specials(tokenizer)
    if tokenizer.eos_id is None:
        raise TaesanError(f"the {objective} objective needs a document separator: train the tokenizer with <|endoftext|> "
                          f"(or [SEP], </s>)")
    return tokenizer.eos_id


def new_model(name: str, objective: str, tokenizer, **overrides: Any) -> nn.Module:
    """A preset (or model_type) sized to the tokenizer, or a checkpoint directory; a BERT preset gets the masked-LM
    head for the masked objective. `overrides` change the preset's config fields (the demo's tiny sizes)."""
    if Path(name).is_dir():
        model = load(name)
        seq2seq = objective == "denoising" and is_encoder_decoder(model)
        if not seq2seq and not hasattr(model.config, "vocab_size"):  # a ViT or an encoder-decoder: was an AttributeError traceback
            raise TaesanError(f"{name}: a {model.model_type} checkpoint is not a language model to pretrain "
                              f"(a GPT for causal/backward, a BERT for masked)")
        check_vocab(name, model.config, tokenizer)
        return model
    table = presets()
    if name in table:
        model_type = table[name][0]
        masked = masked_lm_type(model_type)  # a BERT-shaped backbone preset -> its family's masked LM
        if objective == "denoising" and model_type == "transformer":
            return create_for(name, tokenizer.vocab_size, tokenizer.pad_id, **overrides)
        if model_type != "gpt" and masked is None:
            raise TaesanError(f"preset {name!r} is not a language model to pretrain (gpt-tiny, bert-tiny, roberta-tiny, ...)")
        if objective == "masked" and masked is not None:
            return create_for(name, tokenizer.vocab_size, tokenizer.pad_id, masked, **overrides)
    return create_for(name, tokenizer.vocab_size, tokenizer.pad_id, **overrides)  # a model_type, or a one-line error


def check_vocab(where: Any, config: Any, tokenizer: Any) -> None:
    """A checkpoint to start from or resume must size its vocabulary as the tokenizer does: vocab_size (GPT, BERT),
    src_vocab_size (an encoder-decoder)."""
    field_name = "vocab_size" if hasattr(config, "vocab_size") else "src_vocab_size"
    size = getattr(config, field_name)
    if size != tokenizer.vocab_size:
        raise TaesanError(f"{where}: the model's {field_name} is {size}, which does not match the tokenizer's "
                          f"{tokenizer.vocab_size} tokens")


def default_block(model: nn.Module, objective: str) -> int:
    """BLOCK_SIZE tokens per row, or as many as the model's positions hold (a denoising row's decoder adds its start).

    default_block(gpt with n_positions 1024, "causal") -> 128;  with n_positions 64 -> 64;  denoising at 64 -> 63
    """
    limit = getattr(model.config, "n_positions", None)
    if not isinstance(limit, int):
        return BLOCK_SIZE
    return max(1, min(BLOCK_SIZE, limit - 1 if objective == "denoising" else limit))


def check_fits(model: nn.Module, objective: str, block_size: int) -> None:
    kind = family_name(model)
    if objective == "denoising":
        if not is_encoder_decoder(model):
            raise TaesanError(f"the denoising objective needs an encoder-decoder (transformer-tiny, ...), got {kind!r}")
        if block_size + 1 > model.config.n_positions:
            raise TaesanError(f"--block-size {block_size} + 1 is longer than the model's {model.config.n_positions} positions")
        return
    if objective == "masked" and not is_masked_lm(model):
        raise TaesanError(f"the masked objective needs a masked-LM model (bert-tiny, roberta-tiny, ...), got {kind!r}")
    if objective != "masked" and not is_causal_lm(model):
        raise TaesanError(f"{kind!r} is not a decoder-only LM; the {objective} objective needs a decoder (a GPT: gpt-tiny, ...)")
    limit = getattr(model.config, "n_positions", None)
    if limit is not None and block_size > limit:
        raise TaesanError(f"--block-size {block_size} is longer than the model's {limit} positions")


def pretrain(model: nn.Module | str, tokenizer, recipe: Recipe, config: TrainConfig,
             say: Callable[[str], None] = lambda line: None) -> Pretrained:
    """Run the recipe. `model`: a preset or model_type name (built sized to the tokenizer, seeded with recipe.seed),
    a checkpoint directory, or a model in memory; with recipe.resume the newest checkpoint in `out` instead.
    `say` hears progress notes before training starts (rank 0 only)."""
    for f in recipe.corpus:
        if not Path(f).is_file():
            raise TaesanError(f"{f}: {'a directory, not a corpus file' if Path(f).is_dir() else 'corpus file not found'}")
    device = pick_device(recipe.device)
    info = distributed.init(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    separator = separator_for(tokenizer, recipe.objective)
    model, resume_from, started = _starting_model(model, tokenizer, recipe, config)
    model = with_lm_head(model)  # a bare encoder-decoder in memory learns through the vocabulary, not its features
    if recipe.block_size is None:  # the default row cut to the model (`--set n_positions=64` needs no --block-size)
        recipe = dataclasses.replace(recipe, block_size=default_block(model, recipe.objective))
    check_fits(model, recipe.objective, recipe.block_size)
    if recipe.objective != "masked" and hasattr(model.config, "eos_token_id"):
        model.config.eos_token_id = separator  # so taesan.generate stops where documents end
    objective = _objective(model, tokenizer, recipe)

    cache, notes = _token_cache(tokenizer, recipe, separator, info)
    notes = started + notes
    data = _batches(cache.train, tokenizer, recipe, info.rank, info.world_size)
    # a corpus too small to hold out a block: evaluate on training data, and say so (a masked LM's held-out row of
    # 3 tokens masks none, and its evaluation scored nothing)
    short = cache.valid is not None and cache.valid.n_tokens < recipe.block_size
    try:
        held_out = _batches(cache.valid if cache.valid is not None and not short else cache.train, tokenizer, recipe)
    except TaesanError:
        short, held_out = True, _batches(cache.train, tokenizer, recipe)
    if short:
        notes.append("note: the held-out split is shorter than one block; evaluating on training data")
    training = {"objective": recipe.objective, "separator_id": separator, "block_size": recipe.block_size,
                "corpus": [str(Path(f).resolve()) for f in recipe.corpus], "model": recipe.model_name}
    if recipe.model_overrides:
        training["model_overrides"] = recipe.model_overrides
    if recipe.embeddings is not None:  # the same command with --resume: still where the rows started
        training["embeddings"] = str(Path(recipe.embeddings).resolve())
    if recipe.objective == "masked":
        training.update(whole_word=recipe.whole_word, mask_prob=recipe.mask_prob)
    if recipe.objective == "denoising":
        training.update(noise_density=recipe.noise_density, decoder_start_id=objective.teacher.decoder_start_id)

    def save_extra(directory: Path) -> None:
        tokenizer.save(directory / "tokenizer.json")
        write_json(directory / TRAINING_NAME, training)

    torch.manual_seed(recipe.seed + info.rank)  # dropout: the same run every time, different across ranks
    trainer = Trainer(
        model, objective, data, config, recipe.out,
        eval_data=lambda: held_out.eval_batches(config.eval_batches, recipe.batch_size), device=device, dist=info,
        fsdp=recipe.fsdp, save_extra=save_extra, resume_from=resume_from,
    )
    if info.is_main:
        for line in [*notes, trainer.precision_note]:
            say(line)
    try:
        trainer.fit()
    finally:
        distributed.shutdown()
    result = Pretrained(trainer, trainer.raw_model.eval(), info.is_main, notes)
    if info.is_main and not trainer.interrupted and recipe.objective in ("causal", "backward"):
        result.baseline_perplexity = _unigram_baseline(cache, held_out, tokenizer, recipe, config.eval_batches)
    return result


def _objective(model: nn.Module, tokenizer, recipe: Recipe) -> Objective:
    """The recipe's objective; an encoder-decoder's gets the decoder start and special ids translation fine-tuning
    will use (tasks.heads.decoder_start), set in its config too, so the pretrained decoder starts as it will later."""
    if recipe.objective != "denoising":
        return objective_for(recipe.objective, tokenizer, model.config.vocab_size, recipe.whole_word, recipe.mask_prob)
    start = decoder_start(model, tokenizer, tokenizer.pad_id, tokenizer.eos_id)
    c = model.config
    c.pad_token_id, c.eos_token_id, c.decoder_start_token_id = tokenizer.pad_id, tokenizer.eos_id, start
    if hasattr(c, "bos_token_id"):
        c.bos_token_id = tokenizer.bos_id
    return denoising_for(tokenizer, start, recipe.noise_density)


def _starting_model(model: nn.Module | str, tokenizer, recipe: Recipe,
                    config: TrainConfig) -> tuple[nn.Module, Path | None, list[str]]:
    """-> (the model to train, the checkpoint it resumes from or None, the lines it has to say: where a resume starts,
    and whether its schedule is re-fitted). Nothing is written before these checks."""
    out = recipe.out
    if recipe.resume:
        resume_from = latest_checkpoint(out)
        if resume_from is None:
            raise TaesanError(f"{out}: no checkpoint to resume from (run without --resume first)")
        point = resume_point(resume_from, config)  # --max-steps at or below its step: an error, not an empty run
        trained = read_training(resume_from)
        if trained.get("objective", recipe.objective) != recipe.objective:
            raise TaesanError(f"{resume_from}: was trained with --objective {trained['objective']}, not {recipe.objective}")
        resumed = load(resume_from)
        check_vocab(resume_from, resumed.config, tokenizer)
        return resumed, resume_from, point.notes()
    refuse_existing_run(out, resumable=True)
    fresh = isinstance(model, str) and not Path(model).is_dir()
    if recipe.model_overrides and not fresh:
        raise TaesanError("--set / --config change a preset's config; a checkpoint or a model in memory keeps its own")
    if recipe.embeddings is not None and not fresh:
        raise TaesanError("--embeddings starts a fresh preset's token embeddings; a checkpoint or a model in memory "
                          "keeps its own")
    vectors = Word2Vec.load(recipe.embeddings) if recipe.embeddings is not None else None  # before any weight is made
    if isinstance(model, str):
        torch.manual_seed(recipe.seed)  # the same initial weights on every rank
        model = new_model(model, recipe.objective, tokenizer, **recipe.model_overrides)
    notes = [] if vectors is None else [start_embeddings(model, tokenizer, vectors).line(str(recipe.embeddings))]
    return model, None, notes


def _token_cache(tokenizer, recipe: Recipe, separator: int, info) -> tuple[Any, list[str]]:
    """Rank 0 tokenizes (or reuses the cache); the others wait, then open the same cache. -> (cache, notes: how a
    table or JSON file is read, the corpus size)."""
    cache_dir = Path(recipe.cache_dir) if recipe.cache_dir else recipe.out / "data"
    fresh_out = not recipe.out.exists()
    problem, notes, cache = None, [], None
    valid_every = 0 if recipe.valid_fraction is not None else recipe.valid_every
    if info.is_main:
        try:
            notes = [line for f in recipe.corpus if (line := describe(f))]  # a table: which column is read
            cache = build_token_cache(recipe.corpus, tokenizer, cache_dir, separator, valid_every, workers=recipe.workers)
            cache = _held_out_tail(cache, recipe.valid_fraction)
            held = cache.valid.n_tokens if cache.valid is not None else 0
            how = f" (the last {recipe.valid_fraction:g} of the tokens)" if recipe.valid_fraction else ""
            notes.append(f"corpus: {cache.train.n_tokens:,} training tokens, {held:,} held out{how}"
                         f" ({'reused the cache' if cache.reused else 'tokenized'} in {cache_dir})")
        except TaesanError as e:
            problem = str(e)
            if fresh_out:  # an unreadable corpus leaves no empty run directory behind
                shutil.rmtree(recipe.out, ignore_errors=True)
    problem = distributed.broadcast_object(problem)  # every rank stops on rank 0's error instead of waiting forever
    if problem is not None:
        raise TaesanError(problem)
    if not info.is_main:
        cache = build_token_cache(recipe.corpus, tokenizer, cache_dir, separator, valid_every, workers=1)
        cache = _held_out_tail(cache, recipe.valid_fraction)
    return cache, notes


def _held_out_tail(cache, fraction: float | None):
    """The cache with its last `fraction` of tokens as the held-out split (a document may be cut there), as
    nanoGPT splits a text 90/10; unchanged when fraction is None. The cache on disk is not touched."""
    if fraction is None:
        return cache
    tokens, offsets = cache.train.tokens, cache.train.offsets
    cut = cache.train.n_tokens - max(1, round(cache.train.n_tokens * fraction))
    if cut < 1:
        raise TaesanError(f"--valid-fraction {fraction}: the corpus has only {cache.train.n_tokens} tokens")
    before, after = offsets[offsets < cut], offsets[offsets > cut]
    train = TokenSplit(tokens[:cut], np.concatenate([before, [cut]]).astype(np.int64))
    valid = TokenSplit(tokens[cut:], np.concatenate([[0], after - cut]).astype(np.int64))
    return dataclasses.replace(cache, train=train, valid=valid)


def _batches(split, tokenizer, recipe: Recipe, rank: int = 0, world: int = 1):
    """Rows of one split: packed documents between [CLS] ... [SEP] for a masked LM, plain windows otherwise."""
    if recipe.objective == "masked":
        return PackedDocuments(split, recipe.block_size, recipe.batch_size, tokenizer.cls_id, tokenizer.sep_id,
                               tokenizer.pad_id, recipe.seed, rank, world, sentence_ends=sentence_end_ids(tokenizer))
    return CausalWindows(split, recipe.block_size, recipe.batch_size, recipe.seed, rank, world)


def _unigram_baseline(cache, held_out, tokenizer, recipe: Recipe, n_batches: int) -> float:
    """Perplexity of the held-out targets the model was evaluated on, predicted from token frequencies alone."""
    batches = held_out.eval_batches(n_batches, recipe.batch_size)
    cut = slice(1, None) if recipe.objective == "causal" else slice(None, -1)  # backward predicts the earlier token
    targets = [b["input_ids"][:, cut].numpy() for b in batches]
    return unigram_perplexity(cache.train, np.concatenate(targets), tokenizer.vocab_size)
