"""Byte-level BPE <-> HuggingFace `tokenizer.json`: the BPE model, ByteLevel pre-tokenizer and decoder,
special tokens and the post-processor template.

Not a general tokenizer.json reader for other models (WordPiece, word level live with their tokenizers).
"""
from __future__ import annotations

from typing import Any

from taesan.errors import TaesanError


def parse_hf_json(data: dict[str, Any], source: str = "tokenizer.json"):
    """-> (vocab, merges, special_tokens, template) from a tokenizer.json object; one clear error otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TaesanError(f"{source}: not a tokenizer.json object (no 'model')")
    model = data["model"]
    if model.get("type", "BPE") != "BPE" or "merges" not in model:
        raise TaesanError(f"{source}: model.type is {model.get('type')!r}, expected 'BPE'")
    if not _has_byte_level(data.get("pre_tokenizer")):
        raise TaesanError(f"{source}: only byte-level BPE is supported (pre_tokenizer must be ByteLevel)")
    for pt in _flatten(data.get("pre_tokenizer")):
        if pt.get("type") == "ByteLevel" and pt.get("add_prefix_space"):
            raise TaesanError(f"{source}: pre_tokenizer ByteLevel add_prefix_space=true is not supported")
    if data.get("normalizer") not in (None, {}):
        raise TaesanError(f"{source}: a normalizer ({data['normalizer'].get('type')}) is not supported for byte-level BPE")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise TaesanError(f"{source}: model.vocab must map tokens to integer ids")
    vocab = dict(vocab)
    merges = []
    for i, m in enumerate(model["merges"]):
        pair = m.split(" ") if isinstance(m, str) else m
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise TaesanError(f"{source}: model.merges[{i}] must be 'a b' or ['a', 'b'], got {m!r}")
        if pair[0] not in vocab or pair[1] not in vocab:
            raise TaesanError(f"{source}: model.merges[{i}] {pair!r} uses a token missing from the vocabulary")
        merges.append((pair[0], pair[1]))
    specials = []
    for t in data.get("added_tokens") or []:
        content, idx = t.get("content"), t.get("id")
        if not isinstance(content, str) or not isinstance(idx, int):
            raise TaesanError(f"{source}: added_tokens entries need 'content' and 'id'")
        if vocab.setdefault(content, idx) != idx:
            raise TaesanError(f"{source}: added token {content!r} has id {idx} but the vocabulary says {vocab[content]}")
        specials.append(content)
    return vocab, merges, specials, _parse_template(data.get("post_processor"), source)


def build_hf_json(vocab: dict[str, int], merges: list[tuple[str, str]], specials: list[str], template,
                  unk_token: str | None = None) -> dict[str, Any]:
    """A tokenizer.json object that the `tokenizers` library loads and that encodes like taesan."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in specials
        ],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": _template_json(template, vocab) if template else dict(byte_level),
        "decoder": dict(byte_level),
        "model": {
            "type": "BPE", "dropout": None, "unk_token": unk_token, "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
            "merges": [[a, b] for a, b in merges],
        },
    }


def _flatten(node: Any) -> list[dict]:
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        return [p for sub in node.get("pretokenizers", []) for p in _flatten(sub)]
    return [node]


def _has_byte_level(node: Any) -> bool:
    parts = _flatten(node)
    return any(p.get("type") == "ByteLevel" for p in parts)


def _template_json(template: dict[str, list[str]], vocab: dict[str, int]) -> dict[str, Any]:
    def items(layout: list[str]) -> list[dict]:
        out, type_id = [], 0
        for slot in layout:
            if slot in ("$A", "$B"):
                type_id = 0 if slot == "$A" else 1
                out.append({"Sequence": {"id": slot[1], "type_id": type_id}})
            else:
                out.append({"SpecialToken": {"id": slot, "type_id": type_id}})
        return out

    used = {s for layout in template.values() for s in layout if s not in ("$A", "$B")}
    return {
        "type": "TemplateProcessing",
        "single": items(template["single"]),
        "pair": items(template.get("pair", template["single"] + ["$B"])),
        "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in sorted(used)},
    }


def _parse_template(node: Any, source: str) -> dict[str, list[str]] | None:
    """TemplateProcessing / BertProcessing / RobertaProcessing -> taesan's template; None when it adds nothing."""
    if not isinstance(node, dict):
        return None
    kind = node.get("type")
    if kind == "Sequence":
        found = [t for t in (_parse_template(p, source) for p in node.get("processors", [])) if t]
        return found[0] if found else None
    if kind == "BertProcessing":
        cls, sep = node["cls"][0], node["sep"][0]
        return {"single": [cls, "$A", sep], "pair": [cls, "$A", sep, "$B", sep]}
    if kind == "RobertaProcessing":
        cls, sep = node["cls"][0], node["sep"][0]
        return {"single": [cls, "$A", sep], "pair": [cls, "$A", sep, sep, "$B", sep]}
    if kind != "TemplateProcessing":
        return None

    def layout(items: list[dict]) -> list[str]:
        out = []
        for it in items:
            if "Sequence" in it:
                out.append("$" + it["Sequence"]["id"])
            elif "SpecialToken" in it:
                out.append(it["SpecialToken"]["id"])
            else:
                raise TaesanError(f"{source}: unknown post_processor template item {it!r}")
        return out

    single, pair = layout(node.get("single", [])), layout(node.get("pair", []))
    if single == ["$A"] and pair in ([], ["$A", "$B"]):
        return None
    return {"single": single, "pair": pair or single + ["$B"]}
