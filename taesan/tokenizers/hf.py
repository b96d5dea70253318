"""HuggingFace tokenizer files: write and read `tokenizer.json` (WordPiece, WordLevel; BPE is dispatched to
bpe.py), read a BERT `vocab.txt`, and `load(path)` that picks the right kind.

Not the cutting algorithms themselves: each kind builds its own normalizer/pre-tokenizer/model sections.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taesan.errors import TaesanError
from taesan.tokenizers.base import Tokenizer


def template_to_hf(template: dict[str, list[str]] | None, vocab: dict[str, int]) -> dict[str, Any] | None:
    """taesan's {"single": ["[CLS]", "$A", "[SEP]"], ...} -> a TemplateProcessing post-processor.

    Special tokens after $B get type id 1, as in taesan's Encoding and BERT."""
    if template is None:
        return None

    def items(layout: list[str]) -> list[dict[str, Any]]:
        out, type_id = [], 0
        for slot in layout:
            if slot in ("$A", "$B"):
                type_id = 0 if slot == "$A" else 1
                out.append({"Sequence": {"id": slot[1], "type_id": type_id}})
            else:
                out.append({"SpecialToken": {"id": slot, "type_id": type_id}})
        return out

    specials = sorted({s for layout in template.values() for s in layout if s not in ("$A", "$B")})
    return {
        "type": "TemplateProcessing",
        "single": items(template["single"]),
        "pair": items(template["pair"]),
        "special_tokens": {s: {"id": s, "ids": [vocab[s]], "tokens": [s]} for s in specials},
    }


def hf_json(tok: Tokenizer, normalizer: Any, pre_tokenizer: Any, model: dict[str, Any], decoder: Any) -> dict[str, Any]:
    """The common `tokenizer.json` skeleton around a kind's own sections."""
    added = [
        {"id": tok.vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t in tok.special_tokens
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": sorted(added, key=lambda a: a["id"]),
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": template_to_hf(tok.template, tok.vocab),
        "decoder": decoder,
        "model": model,
    }


def read_model(data: dict[str, Any], kind: str) -> dict[str, Any]:
    """The "model" section, checked; its vocab gains the added tokens that are missing from it."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != kind:
        raise TaesanError(f"tokenizer.json: expected a {kind} model, got {model.get('type') if isinstance(model, dict) else model!r}")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise TaesanError("tokenizer.json: model.vocab must map tokens to integer ids")
    vocab = dict(vocab)
    for a in data.get("added_tokens") or []:
        vocab.setdefault(a["content"], int(a["id"]))
    return {**model, "vocab": vocab}


def read_specials_and_template(data: dict[str, Any]) -> tuple[list[str], dict[str, list[str]] | None]:
    """Special tokens (added tokens marked special) and the single/pair template of the post-processor."""
    specials = [a["content"] for a in data.get("added_tokens") or [] if a.get("special")]
    post = data.get("post_processor")
    if post is not None and post.get("type") == "Sequence":
        post = next((p for p in post.get("processors", []) if p.get("type") in ("TemplateProcessing", "BertProcessing")), None)
    if post is None or post.get("type") in ("ByteLevel",):
        return specials, None
    if post["type"] == "BertProcessing":
        cls, sep = post["cls"][0], post["sep"][0]
        return specials, {"single": [cls, "$A", sep], "pair": [cls, "$A", sep, "$B", sep]}
    if post["type"] == "TemplateProcessing":
        def layout(items: list[dict[str, Any]]) -> list[str]:
            return [f"${it['Sequence']['id']}" if "Sequence" in it else it["SpecialToken"]["id"] for it in items]

        return specials, {"single": layout(post["single"]), "pair": layout(post["pair"])}
    raise TaesanError(f"tokenizer.json: post_processor {post['type']!r} is not supported")


def read_vocab_txt(path: str | Path) -> dict[str, int]:
    """A BERT vocab.txt: one token per line, the id is the line number."""
    path = Path(path)
    if not path.is_file():
        raise TaesanError(f"{path}: file not found")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise TaesanError(f"{path}: not a UTF-8 vocab.txt ({e.reason})") from None
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        vocab.setdefault(line.rstrip("\r"), i)
    if not vocab:
        raise TaesanError(f"{path}: empty vocab.txt")
    return vocab


def from_hf_json(data: Any, source: str = "tokenizer.json") -> Tokenizer:
    """Dispatch a parsed tokenizer.json on model.type (BPE, WordPiece, WordLevel -> word/char/morpheme)."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TaesanError(f"{source}: not a tokenizer.json (no 'model' object)")
    kind = data["model"].get("type")
    if kind == "BPE":
        from taesan.tokenizers.bpe import BPETokenizer

        return BPETokenizer.from_hf_json(data)
    if kind == "WordPiece":
        from taesan.tokenizers.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer.from_hf_json(data)
    if kind == "WordLevel":
        from taesan.tokenizers.char import CharTokenizer
        from taesan.tokenizers.word import MorphemeTokenizer, WordTokenizer

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
            from taesan.tokenizers.bpe import BPETokenizer

            return _guard(path, lambda: BPETokenizer.from_files(path / "vocab.json", path / "merges.txt"))
        if (path / "vocab.txt").is_file():
            return load(path / "vocab.txt")
        raise TaesanError(f"{path}: no tokenizer.json, vocab.txt or vocab.json + merges.txt in this directory")
    if not path.is_file():
        raise TaesanError(f"{path}: tokenizer file not found")
    if path.suffix == ".txt":
        from taesan.tokenizers.wordpiece import WordPieceTokenizer

        return _guard(path, lambda: WordPieceTokenizer.from_vocab_txt(path, lowercase=_lowercase_hint(path.parent)))
    data = _read_json(path)
    if isinstance(data, dict) and not isinstance(data.get("model"), dict) and (path.parent / "merges.txt").is_file():
        from taesan.tokenizers.bpe import BPETokenizer

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
