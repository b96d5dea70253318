"""`taesan.tokenizers.load(path)`: a tokenizer.json, a BERT vocab.txt, GPT-2's vocab.json + merges.txt, a
SentencePiece .model, or a directory holding one of them (with HuggingFace's tokenizer_config.json /
special_tokens_map.json beside it) -> the tokenizer of the right kind.

Not the file formats themselves (hf_json.py, sentencepiece.py, each kind's from_hf_json) and not the
choice between a fast kind and the general pipeline (fast_kinds.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taesan.encoding import not_utf8
from taesan.errors import TaesanError
from taesan.tokenizers import tokenizer_config
from taesan.tokenizers.base import Tokenizer
from taesan.tokenizers.bpe import BPETokenizer
from taesan.tokenizers.char import CharTokenizer
from taesan.tokenizers.fast_kinds import is_bert_wordpiece, is_gpt2_bpe, taesan_word_kind
from taesan.tokenizers.sentencepiece import SentencePieceTokenizer
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer
from taesan.tokenizers.word import MorphemeTokenizer, WordTokenizer
from taesan.tokenizers.wordpiece import WordPieceTokenizer

SENTENCEPIECE_NAMES = ("spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "sentencepiece.model")
_WORD_KINDS = {"char": CharTokenizer, "morpheme": MorphemeTokenizer, "word": WordTokenizer}


def from_hf_json(data: Any, source: str = "tokenizer.json") -> Tokenizer:
    """A parsed tokenizer.json -> the fast kind that encodes it exactly (GPT-2 BPE, BERT WordPiece, taesan's
    word/char/morpheme files), else a PipelineTokenizer that runs its stages."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TaesanError(f"{source}: not a tokenizer.json (no 'model' object)")
    if is_gpt2_bpe(data):
        return BPETokenizer.from_hf_json(data, source)
    if is_bert_wordpiece(data):
        return WordPieceTokenizer.from_hf_json(data)
    kind = taesan_word_kind(data)
    if kind is not None:
        return _WORD_KINDS[kind].from_hf_json(data)
    return PipelineTokenizer.from_hf_json(data)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise not_utf8(path, e.reason) from None
    except json.JSONDecodeError as e:
        raise TaesanError(f"{path}: corrupted JSON at line {e.lineno} column {e.colno} ({e.msg})") from None


def load(path: str | Path) -> Tokenizer:
    """A tokenizer.json, a BERT vocab.txt, a SentencePiece .model, or a directory holding one of them (or
    GPT-2's vocab.json + merges.txt). The role names and model_max_length of a tokenizer_config.json /
    special_tokens_map.json beside the file are applied. Anything missing or corrupted raises one TaesanError."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path)
    if not path.is_file():
        raise TaesanError(f"{path}: tokenizer file not found")
    config = tokenizer_config.read(path.parent)
    if path.suffix == ".txt":
        tok = _guard(path, lambda: WordPieceTokenizer.from_vocab_txt(path, lowercase=tokenizer_config.lowercase_hint(config)))
    elif path.suffix == ".model":
        tok = _guard(path, lambda: SentencePieceTokenizer.from_file(path))
    else:
        data = _read_json(path)
        if isinstance(data, dict) and not isinstance(data.get("model"), dict) and (path.parent / "merges.txt").is_file():
            tok = _guard(path, lambda: BPETokenizer.from_files(path, path.parent / "merges.txt"))
        else:
            tok = _guard(path, lambda: from_hf_json(data, str(path)))
    return tokenizer_config.apply(tok, config)


def _load_directory(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").is_file():
        return load(path / "tokenizer.json")
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        tok = _guard(path, lambda: BPETokenizer.from_files(path / "vocab.json", path / "merges.txt"))
        return tokenizer_config.apply(tok, tokenizer_config.read(path))
    for name in SENTENCEPIECE_NAMES:
        if (path / name).is_file():
            return load(path / name)
    if (path / "vocab.txt").is_file():
        return load(path / "vocab.txt")
    raise TaesanError(f"{path}: no tokenizer.json, vocab.txt, SentencePiece .model or vocab.json + merges.txt in this directory")


def _guard(path: Path, build: Any) -> Tokenizer:
    """Turn a malformed-structure crash while building into one clear line naming the file."""
    try:
        return build()
    except TaesanError as e:
        msg = str(e)
        raise TaesanError(msg if str(path) in msg else f"{path}: {msg}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TaesanError(f"{path}: not a valid tokenizer file ({type(e).__name__}: {e})") from None
