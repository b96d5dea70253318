"""Which tokenizer.json files a fast kind reproduces exactly: GPT-2's byte-level BPE (BPETokenizer), BERT's
WordPiece (WordPieceTokenizer), and the word/char/morpheme files taesan writes. Every other file goes to
PipelineTokenizer, which runs any pipeline stage by stage.

Not the kinds themselves and not the file reading (loader.py); each test names what would change the
encoding or decoding if a fast kind ignored it.
"""
from __future__ import annotations

from typing import Any

_HF_FLAGS = ("single_word", "lstrip", "rstrip")


def _plain_specials(data: dict[str, Any], normalizer_free: bool) -> bool:
    """Every added token is special, matched in the raw text, and without strip or single-word rules (what
    the fast kinds' special-token split does)."""
    for t in data.get("added_tokens") or []:
        if not isinstance(t, dict) or not t.get("special") or any(t.get(f) for f in _HF_FLAGS):
            return False
        if t.get("normalized") and not normalizer_free:
            return False
    return True


def _template_layouts(post: Any) -> tuple[list[dict], list[dict]] | None:
    """(single, pair) items of a post-processor the base template reproduces, else None."""
    if post is None:
        return [], []
    kind = post.get("type")
    if kind == "Sequence":
        parts = [p for p in post.get("processors") or [] if not (p.get("type") == "ByteLevel" and not p.get("trim_offsets"))]
        return _template_layouts(parts[0]) if len(parts) == 1 else ([], []) if not parts else None
    if kind == "ByteLevel":
        return None if post.get("trim_offsets") else ([], [])
    if kind == "BertProcessing":
        cls, sep = post["cls"][0], post["sep"][0]
        single = [_sp(cls, 0), _seq("A", 0), _sp(sep, 0)]
        return single, single + [_seq("B", 1), _sp(sep, 1)]
    if kind == "TemplateProcessing":
        specials = post.get("special_tokens") or {}
        if any(len(v.get("ids") or []) != 1 or v.get("tokens") != [k] for k, v in specials.items()):
            return None
        return post.get("single") or [], post.get("pair") or []
    return None


def _sp(token: str, type_id: int) -> dict:
    return {"SpecialToken": {"id": token, "type_id": type_id}}


def _seq(which: str, type_id: int) -> dict:
    return {"Sequence": {"id": which, "type_id": type_id}}


def template_is_taesans(post: Any) -> bool:
    """The post-processor places special tokens as taesan's template does: type id 0 up to $B, 1 from $B on."""
    layouts = _template_layouts(post)
    if layouts is None:
        return False
    for items in layouts:
        type_id = 0
        for it in items:
            if "Sequence" in it:
                type_id = 0 if it["Sequence"].get("id", "A") == "A" else 1
                if it["Sequence"].get("type_id", 0) != type_id:
                    return False
            elif "SpecialToken" in it:
                if it["SpecialToken"].get("type_id", 0) != type_id:
                    return False
            else:
                return False
    single, pair = layouts
    seqs = [it["Sequence"]["id"] for it in single if "Sequence" in it]
    pair_seqs = [it["Sequence"]["id"] for it in pair if "Sequence" in it]
    return seqs in ([], ["A"]) and pair_seqs in ([], ["A", "B"])


def is_gpt2_bpe(data: dict[str, Any]) -> bool:
    """GPT-2's byte-level BPE: no normalizer, ByteLevel pre-tokenizer without a prefix space, plain merges."""
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    return (model.get("type", "BPE") == "BPE" and "merges" in model and data.get("normalizer") is None
            and pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space") and pre.get("use_regex", True)
            and not model.get("continuing_subword_prefix") and not model.get("end_of_word_suffix")
            and not model.get("byte_fallback") and not model.get("fuse_unk") and not model.get("ignore_merges")
            and model.get("dropout") in (None, 0, 0.0)
            and (data.get("decoder") or {}).get("type") == "ByteLevel"
            and _plain_specials(data, True) and template_is_taesans(data.get("post_processor")))


def is_bert_wordpiece(data: dict[str, Any]) -> bool:
    """BERT: BertNormalizer, BertPreTokenizer, WordPiece with its decoder (cleanup on)."""
    model, dec = data.get("model") or {}, data.get("decoder") or {}
    return (model.get("type") == "WordPiece" and (data.get("normalizer") or {}).get("type") == "BertNormalizer"
            and (data.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and dec.get("type") == "WordPiece" and dec.get("cleanup", True)
            and dec.get("prefix", "##") == model.get("continuing_subword_prefix", "##")
            and _plain_specials(data, False) and template_is_taesans(data.get("post_processor")))


def taesan_word_kind(data: dict[str, Any]) -> str | None:
    """"char", "morpheme" or "word" for the WordLevel files taesan writes, None for any other."""
    model, pre, dec = data.get("model") or {}, data.get("pre_tokenizer") or {}, data.get("decoder")
    if model.get("type") != "WordLevel" or data.get("normalizer") is not None or not _plain_specials(data, True) \
            or not template_is_taesans(data.get("post_processor")):
        return None
    if pre == {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False} \
            and dec == {"type": "Fuse"}:
        return "char"
    if pre.get("type") == "Whitespace":
        if dec == {"type": "WordPiece", "prefix": "##", "cleanup": False}:
            return "morpheme"
        if dec is None:
            return "word"
    return None
