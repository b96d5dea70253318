"""`taesan.tokenizers.load(path)`: a tokenizer.json, a BERT vocab.txt, GPT-2's vocab.json + merges.txt, or a
directory holding one of them -> the tokenizer of the right kind.

Not the file formats themselves (hf_json.py and each kind's from_hf_json).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taesan.errors import TaesanError
from taesan.tokenizers.base import Tokenizer
from taesan.tokenizers.bpe import BPETokenizer
from taesan.tokenizers.char import CharTokenizer
from taesan.tokenizers.word import MorphemeTokenizer, WordTokenizer
from taesan.tokenizers.wordpiece import WordPieceTokenizer


def from_hf_json(data: Any, source: str = "tokenizer.json") -> Tokenizer:
    """Dispatch a parsed tokenizer.json on model.type (BPE, WordPiece, WordLevel -> word/char/morpheme)."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TaesanError(f"{source}: not a tokenizer.json (no 'model' object)")
    kind = data["model"].get("type")
    if kind == "BPE":
        return BPETokenizer.from_hf_json(data)
    if kind == "WordPiece":
        return WordPieceTokenizer.from_hf_json(data)
    if kind == "WordLevel":
        pre = data.get("pre_tokenizer") or {}
        if pre.get("type") == "Split":
            return CharTokenizer.from_hf_json(data)
        if (data.get("decoder") or {}).get("type") == "WordPiece":
            return MorphemeTokenizer.from_hf_json(data)
        return WordTokenizer.from_hf_json(data)
    raise TaesanError(f"{source}: model type {kind!r} is not supported (BPE, WordPiece, WordLevel)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise TaesanError(f"{path}: not UTF-8 ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise TaesanError(f"{path}: corrupted JSON at line {e.lineno} column {e.colno} ({e.msg})") from None


def _lowercase_hint(directory: Path) -> bool:
    """do_lower_case from a tokenizer_config.json beside a vocab.txt (BERT's default, True, otherwise)."""
    cfg = directory / "tokenizer_config.json"
    if cfg.is_file():
        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("do_lower_case", True))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return True
    return True


def load(path: str | Path) -> Tokenizer:
    """A tokenizer.json, a BERT vocab.txt, a directory holding tokenizer.json (or vocab.txt), or a directory
    with GPT-2's vocab.json + merges.txt. Anything missing or corrupted raises one TaesanError."""
    path = Path(path)
    if path.is_dir():
        for name in ("tokenizer.json",):
            if (path / name).is_file():
                return load(path / name)
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                return _guard(path, lambda: BPETokenizer.from_files(path / "vocab.json", path / "merges.txt"))
        if (path / "vocab.txt").is_file():
            return load(path / "vocab.txt")
        raise TaesanError(f"{path}: no tokenizer.json, vocab.txt or vocab.json + merges.txt in this directory")
    if not path.is_file():
        raise TaesanError(f"{path}: tokenizer file not found")
    if path.suffix == ".txt":
        return _guard(path, lambda: WordPieceTokenizer.from_vocab_txt(path, lowercase=_lowercase_hint(path.parent)))
    data = _read_json(path)
    if isinstance(data, dict) and not isinstance(data.get("model"), dict) and (path.parent / "merges.txt").is_file():
        return _guard(path, lambda: BPETokenizer.from_files(path, path.parent / "merges.txt"))
    return _guard(path, lambda: from_hf_json(data, str(path)))


def _guard(path: Path, build: Any) -> Tokenizer:
    """Turn a malformed-structure crash while building into one clear line naming the file."""
    try:
        return build()
    except TaesanError as e:
        msg = str(e)
        raise TaesanError(msg if str(path) in msg else f"{path}: {msg}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TaesanError(f"{path}: not a valid tokenizer file ({type(e).__name__}: {e})") from None
