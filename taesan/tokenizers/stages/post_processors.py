"""The post-processors of tokenizer.json: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel and
Sequence. They turn the tokens of one text (or a pair) into the Encoding a model reads: special tokens
around the texts, type ids, and (Roberta, ByteLevel with trim_offsets) offsets without their spaces.

Not truncation or padding (base.Tokenizer does those, counting `added_tokens(pair)`).
"""
from __future__ import annotations

from typing import Any

from taesan.errors import TaesanError
from taesan.tokenizers.base import Encoding, Piece
from taesan.tokenizers.stages.normalized import RUST_WS

_SPACES = "Ġ" + RUST_WS  # GPT-2's byte symbol for " ", and whitespace


def trim_offsets(pieces: list[Piece], add_prefix_space: bool) -> list[Piece]:
    """Offsets without the leading/trailing spaces the token's string shows ("Ġ" or whitespace); the first
    token keeps one leading space the pre-tokenizer added (add_prefix_space)."""
    out = []
    for k, p in enumerate(pieces):
        t = p.token
        lead = len(t) - len(t.lstrip(_SPACES))
        trail = len(t) - len(t.rstrip(_SPACES))
        s, e = p.start, p.end
        if lead or trail:
            if lead:
                if (k == 0 or s == 0) and add_prefix_space and lead == 1:
                    lead = 0
                s = min(s + lead, e)
            if trail and e >= trail:
                e = max(e - trail, s)
            p = Piece(p.token, p.id, s, e, p.word)
        out.append(p)
    return out


class PostProcessor:
    """Base: `trim(pieces)` adjusts offsets, `layout(pair)` is the template ((kind, value, type_id) items)."""

    def added_tokens(self, pair: bool) -> int:
        return sum(len(v[0]) for kind, v, _ in self.layout(pair) if kind == "special")

    def trim(self, pieces: list[Piece]) -> list[Piece]:
        return pieces

    def layout(self, pair: bool) -> list[tuple[str, Any, int]]:
        """[("seq", 0 or 1, type_id) | ("special", (ids, tokens), type_id)]; None type ids keep the encode's."""
        return [("seq", 0, None)] + ([("seq", 1, None)] if pair else [])

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def process(self, a: list[Piece], b: list[Piece] | None, add_special_tokens: bool) -> Encoding:
        a = self.trim(a)
        b = self.trim(b) if b is not None else None
        return assemble(self.layout(b is not None), a, b, add_special_tokens, self.all_type_ids_zero())

    def all_type_ids_zero(self) -> bool:
        return False


def assemble(layout: list[tuple[str, Any, int]], a: list[Piece], b: list[Piece] | None, add_special_tokens: bool,
             zero_types: bool = False) -> Encoding:
    """An Encoding from a template layout: texts and special tokens in order."""
    e = Encoding()
    for kind, value, type_id in layout:
        if kind == "seq":
            part = a if value == 0 else b
            if part is None:
                continue
            t = type_id if type_id is not None else (0 if zero_types else value)
            n = len(part)
            e.ids += [p.id for p in part]
            e.tokens += [p.token for p in part]
            e.offsets += [(p.start, p.end) for p in part]
            e.word_ids += [p.word for p in part]
            e.type_ids += [t] * n
            e.special_tokens_mask += [0] * n
            e.attention_mask += [1] * n
            e.sequence_ids += [value] * n
        elif add_special_tokens:
            ids, tokens = value
            n = len(ids)
            e.ids += ids
            e.tokens += tokens
            e.offsets += [(0, 0)] * n
            e.word_ids += [None] * n
            e.type_ids += [type_id] * n
            e.special_tokens_mask += [1] * n
            e.attention_mask += [1] * n
            e.sequence_ids += [None] * n
    return e


class TemplateProcessing(PostProcessor):
    """single/pair templates of $A/$B and special tokens (each special may stand for several ids)."""

    def __init__(self, single: list[dict], pair: list[dict], special_tokens: dict[str, dict]) -> None:
        self.single_json, self.pair_json, self.special_json = single, pair, special_tokens
        self.specials: dict[str, tuple[list[int], list[str]]] = {}
        for name, spec in special_tokens.items():
            ids, tokens = spec.get("ids"), spec.get("tokens")
            if not isinstance(ids, list) or not isinstance(tokens, list) or len(ids) != len(tokens):
                raise TaesanError(f"tokenizer.json: TemplateProcessing special token {name!r} needs ids and tokens of one length")
            self.specials[name] = ([int(i) for i in ids], [str(t) for t in tokens])
        self._single, self._pair = self._read(single, "single"), self._read(pair, "pair")

    def _read(self, items: list[dict], which: str) -> list[tuple[str, Any, int]]:
        out = []
        for it in items:
            if "Sequence" in it:
                seq = it["Sequence"]
                out.append(("seq", 0 if seq.get("id", "A") == "A" else 1, int(seq.get("type_id", 0))))
            elif "SpecialToken" in it:
                sp = it["SpecialToken"]
                if sp.get("id") not in self.specials:
                    raise TaesanError(f"tokenizer.json: TemplateProcessing {which} uses {sp.get('id')!r}, which is not in its special_tokens")
                out.append(("special", self.specials[sp["id"]], int(sp.get("type_id", 0))))
            else:
                raise TaesanError(f"tokenizer.json: TemplateProcessing {which} item {it!r:.60} is neither Sequence nor SpecialToken")
        return out

    def layout(self, pair: bool) -> list[tuple[str, Any, int]]:
        return self._pair if pair else self._single

    def to_json(self) -> dict[str, Any]:
        return {"type": "TemplateProcessing", "single": self.single_json, "pair": self.pair_json,
                "special_tokens": self.special_json}


class BertProcessing(PostProcessor):
    """[CLS] A [SEP] (B [SEP]); B's tokens and its [SEP] have type id 1."""

    def __init__(self, sep: tuple[str, int], cls: tuple[str, int]) -> None:
        self.sep, self.cls = (str(sep[0]), int(sep[1])), (str(cls[0]), int(cls[1]))

    def layout(self, pair: bool) -> list[tuple[str, Any, int]]:
        cls, sep = ([self.cls[1]], [self.cls[0]]), ([self.sep[1]], [self.sep[0]])
        out = [("special", cls, 0), ("seq", 0, 0), ("special", sep, 0)]
        return out + ([("seq", 1, 1), ("special", sep, 1)] if pair else [])

    def to_json(self) -> dict[str, Any]:
        return {"type": "BertProcessing", "sep": list(self.sep), "cls": list(self.cls)}


class RobertaProcessing(PostProcessor):
    """<s> A </s> (</s> B </s>), every type id 0; trim_offsets drops spaces from the offsets."""

    def __init__(self, sep: tuple[str, int], cls: tuple[str, int], trim_offsets: bool = True, add_prefix_space: bool = True) -> None:
        self.sep, self.cls = (str(sep[0]), int(sep[1])), (str(cls[0]), int(cls[1]))
        self.trim_offsets, self.add_prefix_space = trim_offsets, add_prefix_space

    def trim(self, pieces: list[Piece]) -> list[Piece]:
        return trim_offsets(pieces, self.add_prefix_space) if self.trim_offsets else pieces

    def layout(self, pair: bool) -> list[tuple[str, Any, int]]:
        cls, sep = ([self.cls[1]], [self.cls[0]]), ([self.sep[1]], [self.sep[0]])
        out = [("special", cls, 0), ("seq", 0, 0), ("special", sep, 0)]
        return out + ([("special", sep, 0), ("seq", 1, 0), ("special", sep, 0)] if pair else [])

    def all_type_ids_zero(self) -> bool:
        return True

    def to_json(self) -> dict[str, Any]:
        return {"type": "RobertaProcessing", "sep": list(self.sep), "cls": list(self.cls),
                "trim_offsets": self.trim_offsets, "add_prefix_space": self.add_prefix_space}


class ByteLevel(PostProcessor):
    """Adds nothing; with trim_offsets, offsets lose the spaces their tokens carry."""

    def __init__(self, add_prefix_space: bool = True, trim_offsets: bool = True, use_regex: bool = True) -> None:
        self.add_prefix_space, self.trim_offsets, self.use_regex = add_prefix_space, trim_offsets, use_regex

    def trim(self, pieces: list[Piece]) -> list[Piece]:
        return trim_offsets(pieces, self.add_prefix_space) if self.trim_offsets else pieces

    def to_json(self) -> dict[str, Any]:
        return {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space, "trim_offsets": self.trim_offsets,
                "use_regex": self.use_regex}


class Sequence(PostProcessor):
    """Processors in turn: every offset trim, then the (last) one that places special tokens."""

    def __init__(self, processors: list[PostProcessor]) -> None:
        self.processors = processors
        placing = [p for p in processors if not isinstance(p, ByteLevel)]
        self.placer = placing[-1] if placing else None

    def trim(self, pieces: list[Piece]) -> list[Piece]:
        for p in self.processors:
            pieces = p.trim(pieces)
        return pieces

    def layout(self, pair: bool) -> list[tuple[str, Any, int]]:
        return self.placer.layout(pair) if self.placer is not None else super().layout(pair)

    def all_type_ids_zero(self) -> bool:
        return self.placer is not None and self.placer.all_type_ids_zero()

    def to_json(self) -> dict[str, Any]:
        return {"type": "Sequence", "processors": [p.to_json() for p in self.processors]}


def _token_and_id(value: Any, where: str) -> tuple[str, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return value[0], value[1]
    raise TaesanError(f"tokenizer.json: {where} must be [token, id], got {value!r:.60}")


def from_json(obj: Any) -> PostProcessor | None:
    """A tokenizer.json "post_processor" object -> a PostProcessor (None stays None)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TaesanError(f"tokenizer.json: a post_processor must be an object with a 'type', got {obj!r:.80}")
    kind = obj["type"]
    if kind == "TemplateProcessing":
        return TemplateProcessing(obj.get("single") or [], obj.get("pair") or [], obj.get("special_tokens") or {})
    if kind == "BertProcessing":
        return BertProcessing(_token_and_id(obj.get("sep"), "BertProcessing.sep"), _token_and_id(obj.get("cls"), "BertProcessing.cls"))
    if kind == "RobertaProcessing":
        return RobertaProcessing(_token_and_id(obj.get("sep"), "RobertaProcessing.sep"),
                                 _token_and_id(obj.get("cls"), "RobertaProcessing.cls"),
                                 bool(obj.get("trim_offsets", True)), bool(obj.get("add_prefix_space", True)))
    if kind == "ByteLevel":
        return ByteLevel(bool(obj.get("add_prefix_space", True)), bool(obj.get("trim_offsets", True)),
                         bool(obj.get("use_regex", True)))
    if kind == "Sequence":
        return Sequence([p for p in map(from_json, obj.get("processors") or []) if p is not None])
    raise TaesanError(f"tokenizer.json: post_processor type {kind!r} is not supported")
