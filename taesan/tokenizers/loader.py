"""`taesan.tokenizers.load(path)`: a tokenizer.json, a BERT vocab.txt, GPT-2's vocab.json + merges.txt, a
SentencePiece .model, KoBERT's .model + vocab.txt, Marian's source.spm + vocab.json, or a directory holding one
of them (with HuggingFace's tokenizer_config.json / special_tokens_map.json / added_tokens.json beside it) -> the
tokenizer of the right kind.

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
from taesan.tokenizers.added_files import added_tokens, t5_sentinels
from taesan.tokenizers.hf_json import read_vocab_txt
from taesan.tokenizers.sentencepiece import NORMAL, SPACE, SentencePieceTokenizer, read_proto
from taesan.tokenizers.sentencepiece_vocab import kobert, marian
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer
from taesan.tokenizers.word import MorphemeTokenizer, WordTokenizer
from taesan.tokenizers.wordpiece import WordPieceTokenizer

SENTENCEPIECE_NAMES = ("spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "sentencepiece.model")
SENTENCEPIECE_SUFFIXES = (".model", ".spm")  # Marian names its models source.spm / target.spm
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
    except RecursionError:  # lists nested thousands deep: no tokenizer file is (json's own limit, not a traceback)
        raise TaesanError(f"{path}: corrupted JSON (nested too deeply to be a tokenizer file)") from None


def load(path: str | Path) -> Tokenizer:
    """A tokenizer.json, a BERT vocab.txt, a SentencePiece .model / .spm, or a directory holding one of them (or
    GPT-2's vocab.json + merges.txt, Marian's source.spm + vocab.json, KoBERT's .model + vocab.txt). The role names
    and model_max_length of a tokenizer_config.json / special_tokens_map.json beside the file are applied, and
    the tokens HF adds from them (added_tokens.json, additional_special_tokens, T5's sentinels). Anything
    missing or corrupted raises one TaesanError."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path)
    if not path.is_file():
        raise TaesanError(f"{path}: tokenizer file not found")
    config = tokenizer_config.read(path.parent)
    if path.suffix == ".txt":
        tok = _guard(path, lambda: _vocab_txt(path, config))
    elif path.suffix in SENTENCEPIECE_SUFFIXES:
        tok = _guard(path, lambda: SentencePieceTokenizer.from_file(path))
        sentinels = t5_sentinels(path.parent, config, len(tok.proto["pieces"]))
        if sentinels:
            tok.add_tokens(sentinels)
    else:
        data = _read_json(path)
        if isinstance(data, dict) and not isinstance(data.get("model"), dict) and (path.parent / "merges.txt").is_file():
            tok = _guard(path, lambda: BPETokenizer.from_files(path, path.parent / "merges.txt"))
        else:
            return tokenizer_config.apply(_guard(path, lambda: from_hf_json(data, str(path))), config)
    return tokenizer_config.apply(_guard(path, lambda: _with_added(tok, path.parent, config)), config)


def _load_directory(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").is_file():
        return load(path / "tokenizer.json")
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return load(path / "vocab.json")
    if (path / "source.spm").is_file():
        return _marian(path)
    for name in SENTENCEPIECE_NAMES:
        if (path / name).is_file():
            return load(path / name)
    if (path / "vocab.txt").is_file():
        return load(path / "vocab.txt")
    models = sorted(path.glob("*.model"))
    if len(models) == 1:
        return load(models[0])
    raise TaesanError(f"{path}: no tokenizer.json, vocab.txt, SentencePiece .model, vocab.json + merges.txt or "
                      f"source.spm + vocab.json in this directory")


def _vocab_txt(path: Path, config: dict[str, Any]) -> Tokenizer:
    """A BERT vocab.txt, or KoBERT's: a vocab.txt of SentencePiece pieces ("▁" in front) beside the .model that
    cuts them (tokenizer_78b3253a26.model), whose ids are the lines of vocab.txt."""
    vocab = read_vocab_txt(path)
    if any(t.startswith(SPACE) for t in vocab):
        models = sorted(path.parent.glob("*.model"))
        for model in models:
            proto = read_proto(model)
            normal = {p for p, _, kind in proto["pieces"] if kind == NORMAL}
            if normal and 2 * len(normal & vocab.keys()) >= len(normal):
                return kobert(proto, vocab, config)
        if models:
            names = ", ".join(m.name for m in models)
            raise TaesanError(f"{path}: its entries are SentencePiece pieces, but not those of {names}")
    return WordPieceTokenizer(vocab, lowercase=tokenizer_config.lowercase_hint(config))


def _marian(path: Path) -> Tokenizer:
    """Helsinki-NLP/opus-mt-*: source.spm cuts, vocab.json numbers, target.spm decodes."""
    if not (path / "vocab.json").is_file():
        raise TaesanError(f"{path}: source.spm needs the vocab.json beside it (MarianTokenizer's piece -> id)")
    config = tokenizer_config.read(path)
    if (path / "target_vocab.json").is_file() or config.get("separate_vocabs"):
        raise TaesanError(f"{path}: separate source and target vocabularies (target_vocab.json) are not supported")
    vocab = _read_json(path / "vocab.json")
    if not isinstance(vocab, dict) or not all(type(i) is int and i >= 0 for i in vocab.values()):
        raise TaesanError(f"{path / 'vocab.json'}: must map each piece to a whole-number id")
    target = read_proto(path / "target.spm") if (path / "target.spm").is_file() else None
    tok = _guard(path, lambda: marian(read_proto(path / "source.spm"), target, vocab, config))
    return tokenizer_config.apply(_guard(path, lambda: _with_added(tok, path, config)), config)


def _with_added(tok: Tokenizer, directory: Path, config: dict[str, Any]) -> Tokenizer:
    """`tok` with the tokens HF adds from the files beside it (added_files.py); a fast kind is rebuilt from its
    tokenizer.json with them (staying fast when they are plain special tokens)."""
    tokens = [t for t in added_tokens(directory, config, tok.vocab)
              if not (tok.vocab.get(t.content) == t.id and t.content in tok.special_tokens and t.special
                      and not (t.normalized or t.lstrip or t.rstrip or t.single_word))]
    if not tokens:
        return tok
    if isinstance(tok, PipelineTokenizer):
        tok.add_tokens(tokens)
        return tok
    data = tok.to_hf_json()
    contents = {t.content for t in tokens}
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] not in contents] + [t.to_json() for t in tokens]
    return from_hf_json(data, str(directory))


def _guard(path: Path, build: Any) -> Tokenizer:
    """Turn a malformed-structure crash while building into one clear line naming the file."""
    try:
        return build()
    except TaesanError as e:
        msg = str(e)
        raise TaesanError(msg if str(path) in msg else f"{path}: {msg}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TaesanError(f"{path}: not a valid tokenizer file ({type(e).__name__}: {e})") from None
