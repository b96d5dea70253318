"""HuggingFace tokenizer file helpers: the `tokenizer.json` skeleton, its model / special-token / template
sections, and a BERT `vocab.txt`. What every kind uses to write and read its own file.

Not the dispatch on a file (loader.py) and not the cutting algorithms: each kind builds its own
normalizer / pre-tokenizer / model sections.
"""
from __future__ import annotations

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
