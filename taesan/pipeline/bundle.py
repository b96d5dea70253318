"""A checkpoint with everything beside it: the model (eval mode), its tokenizer (what taesan.tokenizers.load finds),
what it was trained for (a pretraining objective from training.json, a fine-tuned task from task.json, or a HF head
model's task from its config.json: taesan.tasks.from_config), where its documents begin and its text ends, and what
it can do. Read from a taesan or a HuggingFace checkpoint directory.

Not inference: text.py writes text, lm.py scores and fills blanks, tasks.py is the callable Python API.
"""
from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taesan.checkpoint import CONFIG_NAME, STOP_TOKENS, checkpoint_path, read_config, read_training
from taesan.decoding import is_encoder_decoder
from taesan.atomic import atomic_path
from taesan.errors import TaesanError
from taesan.models.kinds import family_name, is_causal_lm, is_image_model, is_masked_lm, lm_objective
from taesan.tasks import TASK_FILE
from taesan.tasks.fits import check_tokenizer
from taesan.tasks.from_config import task_from_config
from taesan.tokenizers import BPETokenizer
from taesan.tokenizers import load as load_tokenizer
from taesan.tokenizers.bpe import bytes_to_unicode
from taesan.tuning.finetune import load_finetuned
from taesan.tuning.load import load
from taesan.util import pick_device

# HF's tokenizer files by name (which of them make a tokenizer is taesan.tokenizers.load's to say), and the files
# beside them that name and add special tokens: what `taesan convert --from-hf` copies along
TOKENIZER_FILES = ("tokenizer.json", "vocab.*", "merges.txt", "*.model", "*.spm")
SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
TASK_ACTIONS = {"classification": "classify", "pair-classification": "classify", "ner": "ner", "qa": "qa",
                "image-classification": "image"}
WRITING_TASKS = ("generation", "translation")  # fine-tuned for text out


class WrongTask(TaesanError):
    """A checkpoint asked for something it was not built for (the server answers HTTP 400)."""


@dataclass
class Bundle:
    """One checkpoint, ready to use. `actions` lists what it can do, in the order the playground shows them:
    classify / ner / qa / image (a fine-tuned task), tokenize, generate, fill-mask, score, attention."""

    name: str
    directory: Path | None
    model: Any
    tokenizer: Any
    task: Any = None  # a fine-tuned checkpoint's taesan.tasks Task, its tokenizer attached
    actions: list[str] = field(default_factory=list)
    objective: str | None = None  # a pretrained language model's: causal / backward / masked
    separator_id: int | None = None  # a decoder-only LM's document separator: prompts start after it, text ends at it
    notes: list[str] = field(default_factory=list)  # lines for the CLI to show: where a task without task.json came from
    no_task: str = ""  # why a HF head model has no task: its config.json's head is one taesan does not run as HF does
    no_tokenizer: str = ""  # why there is no tokenizer: what taesan.tokenizers.load said of the directory

    @classmethod
    def load(cls, directory: str | Path, name: str | None = None, tokenizer: str | Path | None = None,
             device: str = "cpu") -> "Bundle":
        """A checkpoint directory -> its Bundle. `tokenizer` overrides the tokenizer files beside the weights."""
        directory = checkpoint_path(directory)
        if not directory.is_dir():
            raise TaesanError(f"{directory}: no such checkpoint directory")
        device = str(pick_device(device))  # "auto" as the commands take it; a device this machine lacks, one line
        if (directory / CONFIG_NAME).is_file() and read_config(directory).get("model_type") == "word2vec":
            raise TaesanError(f"{directory}: word vectors (taesan word2vec train), not a model to run: ask them with "
                              f"`taesan word2vec similar --model {directory} WORD`, or start a model's token embeddings "
                              f"from them with --embeddings {directory}")  # its vocab.txt read as WordPiece's misled
        tok_path = Path(tokenizer) if tokenizer is not None else directory
        tok, no_tokenizer = read_tokenizer(directory) if tokenizer is None else (load_tokenizer(tok_path), "")
        notes, no_task = [], ""
        if (directory / TASK_FILE).is_file():
            model, task = load_finetuned(directory, device, tok)
        else:  # a HF head model's task, from its config.json
            model = load(directory, map_location=device).eval()
            task, said = task_from_config(directory, read_config(directory), model, tok)
            notes, no_task = ([said], "") if task is not None else ([], said)
        if tok is not None:
            check_vocabulary(model, tok, tokenizer_file(tok_path))
        bundle = cls(name or directory.resolve().name, directory, model, tok, task, notes=notes, no_task=no_task,
                     no_tokenizer=no_tokenizer)
        if task is None:
            bundle.objective = read_training(directory).get("objective") or lm_objective(model)  # none recorded
            if not bundle.seq2seq and tok is not None:
                bundle.separator_id = _separator(directory, model, tok)
        bundle.actions = _actions(bundle)
        return bundle

    # ---- what it is ----------------------------------------------------------------------------------------
    @property
    def model_type(self) -> str:
        return getattr(self.model, "model_type", type(self.model).__name__)

    @property
    def seq2seq(self) -> bool:
        return is_encoder_decoder(self.model)

    @property
    def stop_ids(self) -> list[int]:
        """Where its text ends: a writing task's end-of-text, an encoder-decoder's configured end, a language
        model's document separator ([] when it names none)."""
        if self.task is not None and self.task.name in WRITING_TASKS:
            return [self.task.eos_id]
        if self.seq2seq:
            eos = getattr(self.model.config, "eos_token_id", None)
            return [] if eos is None else [eos]
        return [] if self.separator_id is None else [self.separator_id]

    @functools.cached_property
    def token_bytes(self) -> tuple[bytes | None, ...] | None:
        """Each id's bytes for a byte-level tokenizer (sampling keeps characters whole with it), else None."""
        return byte_table(self.tokenizer)

    # ---- what it can do --------------------------------------------------------------------------------------
    def need(self, action: str) -> None:
        if action not in self.actions:
            can = ", ".join(self.actions) or "nothing here"
            raise WrongTask(f"model {self.name!r} ({self.model_type}) cannot {action} (it can: {can})")

    def need_tokenizer(self) -> Any:
        if self.tokenizer is None:
            why = self.no_tokenizer or f"{self.directory}: the checkpoint has no tokenizer"
            raise TaesanError(f"{why}; pass --tokenizer FILE")
        return self.tokenizer

    def need_task(self) -> Any:
        if self.task is None:
            also = f"; {self.no_task}" if self.no_task else ""
            raise TaesanError(f"{self.directory}: no {TASK_FILE}: this checkpoint was not fine-tuned for a task{also} "
                              f"(try taesan generate / score)")
        return self.task


def _actions(b: Bundle) -> list[str]:
    actions = []
    task = b.task
    if task is not None and task.name in TASK_ACTIONS:
        actions.append(TASK_ACTIONS[task.name])
    if b.tokenizer is None or is_image_model(b.model):
        return actions
    actions.append("tokenize")
    if task is not None:
        if task.name in WRITING_TASKS:
            actions.append("generate")
    else:
        if is_causal_lm(b.model) or b.seq2seq:
            actions.append("generate")
        if is_masked_lm(b.model) and b.tokenizer.mask_id is not None:  # BERT's, RoBERTa's, ELECTRA's generator
            actions.append("fill-mask")
        if b.objective is not None:
            actions.append("score")
    if hasattr(b.model, "forward_features"):
        actions.append("attention")
    return actions


def model_kind(model) -> str:
    """The model_type of what the checkpoint computes with (a soft prompt wraps its model)."""
    return family_name(model)


def _separator(directory: Path, model, tokenizer) -> int | None:
    """training.json's separator, else the model config's end-of-text, else a well-known end token of the tokenizer."""
    recorded = read_training(directory).get("separator_id")
    if recorded is not None:
        return int(recorded)
    eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    if eos is not None:
        return eos
    return next((tokenizer.vocab[t] for t in STOP_TOKENS if t in tokenizer.vocab), None)


def read_tokenizer(directory: Path) -> tuple[Any, str]:
    """(the tokenizer taesan.tokenizers.load reads from `directory`, ""), or (None, what it said) when the directory
    holds no tokenizer file (a ViT has none). Tokenizer files it cannot read are its one-line error, raised."""
    try:
        return load_tokenizer(directory), ""
    except TaesanError as e:
        if tokenizer_files(directory, TOKENIZER_FILES):  # there, but not readable
            raise
        return None, str(e)


def tokenizer_file(path: Path) -> Path:
    """The file a tokenizer was read from, for messages: `path`, or the tokenizer.json / vocab.txt in that directory."""
    return next((path / n for n in ("tokenizer.json", "vocab.txt") if (path / n).is_file()), path) if path.is_dir() else path


def tokenizer_files(directory: Path, patterns: tuple[str, ...] = TOKENIZER_FILES + SIDE_FILES) -> list[Path]:
    """The files of `directory` named as HF names a tokenizer's (spiece.model, vocab.txt, tokenizer_config.json, ...)."""
    return sorted({p for pattern in patterns for p in directory.glob(pattern) if p.is_file()})


def copy_tokenizer_files(source: Path, out: Path) -> list[Path]:
    """Copy `source`'s tokenizer files (tokenizer_files) into `out` as they are, but a file `out` already has (the
    tokenizer.json taesan wrote); -> the copies."""
    copied = []
    for path in tokenizer_files(source):
        if not (out / path.name).exists():
            with atomic_path(out / path.name) as tmp:  # a disk that fills mid-copy leaves no half-written file
                shutil.copyfile(path, tmp)
            copied.append(out / path.name)
    return copied


def check_vocabulary(model, tokenizer, tokenizer_path: str | Path) -> None:
    """One error when the tokenizer has ids the model has no embedding for (the wrong tokenizer for this model), or
    ids two tokens share (taesan.tasks.fits.check_tokenizer). A tokenizer smaller than the model's (padded)
    vocabulary is allowed, as elsewhere."""
    check_tokenizer(model, tokenizer, tokenizer_path)


def byte_table(tokenizer) -> tuple[bytes | None, ...] | None:
    """A byte-level BPE's tokens as the bytes they stand for (None for special tokens); None for other kinds,
    whose tokens are whole characters. "ìĸ´" (the symbols of EC 96 B4) -> b"\\xec\\x96\\xb4" ("어").
    A BPE with a token outside GPT-2's byte alphabet ("▁카페" of a SentencePiece-style BPE such as KoGPT2's) is not
    byte-level: None, or every such token would count as special and sampling could never pick it."""
    if not isinstance(tokenizer, BPETokenizer):
        return None
    byte_of = {symbol: b for b, symbol in bytes_to_unicode().items()}
    special = set(tokenizer.special_tokens)
    table: list[bytes | None] = []
    for i in range(tokenizer.vocab_size):
        token = tokenizer.id_to_token(i)
        if token is None or token in special:
            table.append(None)
        elif any(c not in byte_of for c in token):
            return None
        else:
            table.append(bytes(byte_of[c] for c in token))
    return tuple(table)

