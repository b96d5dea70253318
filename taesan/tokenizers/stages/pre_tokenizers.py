"""The pre-tokenizers of tokenizer.json: ByteLevel, Whitespace, WhitespaceSplit, BertPreTokenizer, Metaspace,
Punctuation, Digits, Split, CharDelimiterSplit and Sequence. Each cuts one NormalizedString into the pieces
the model tokenizes (its "words"); offsets stay those of the original text.

Not the model (models_*.py) and not the added-token split that runs before (added_tokens.py).
"""
from __future__ import annotations

import unicodedata
from typing import Any

import regex

from taesan.errors import TaesanError
from taesan.tokenizers.bpe import GPT2_PATTERN, bytes_to_unicode
from taesan.tokenizers.stages.normalized import (
    BEHAVIOURS,
    RUST_WS,
    NormalizedString,
    char_matches,
    regex_matches,
)
from taesan.tokenizers.stages.normalizers import compile_pattern

_BYTE_LEVEL = regex.compile(GPT2_PATTERN)
_BYTE_TABLE = {b: c for b, c in bytes_to_unicode().items()}  # str.translate over latin-1 decoded bytes
# Oniguruma's Unicode \w (letters, marks, decimal digits, connector punctuation) and \s, spelled out so that
# Python's regex module means the same
_W = r"\p{L}\p{M}\p{Nd}\p{Pc}"
_WHITESPACE = regex.compile(rf"[{_W}]+|[^{_W}\s]+")
_NON_WS = regex.compile(f"[^{regex.escape(RUST_WS)}]+")
# BERT: each punctuation character (ASCII punctuation incl. $+<=>^`|~, or Unicode P*) alone, other non-space runs
_PUNCT = r"!-/:-@\[-`{-~\p{P}"
_BERT_WORDS = regex.compile(f"[{_PUNCT}]|[^{_PUNCT}{regex.escape(RUST_WS)}]+")
_BEHAVIOUR_JSON = {"removed": "Removed", "isolated": "Isolated", "merged_with_previous": "MergedWithPrevious",
                   "merged_with_next": "MergedWithNext", "contiguous": "Contiguous"}
_BEHAVIOUR_OF = {v: k for k, v in _BEHAVIOUR_JSON.items()}


def is_punctuation(c: str) -> bool:
    """ASCII punctuation (incl. $+<=>^`|~) or any Unicode P* category, as BERT splits on."""
    return (c.isascii() and not c.isalnum() and 33 <= ord(c) <= 126) or unicodedata.category(c).startswith("P")


def is_numeric(c: str) -> bool:
    """Rust's char::is_numeric: categories Nd, Nl, No."""
    return unicodedata.category(c) in ("Nd", "Nl", "No")


def _behaviour(value: Any, where: str) -> str:
    if isinstance(value, str):
        b = _BEHAVIOUR_OF.get(value, value.lower() if value.lower() in BEHAVIOURS else None)
        if b is not None:
            return b
    raise TaesanError(f"tokenizer.json: {where}.behavior {value!r} is not one of {', '.join(_BEHAVIOUR_JSON.values())}")


class PreTokenizer:
    """Base: `pre_tokenize(s)` -> the pieces of s (empty ones are dropped by the caller)."""

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def pre_tokenize_str(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """Pieces of a plain text with their offsets (for tests and the CLI)."""
        return [(p.text, p.span(0, len(p))) for p in self.pre_tokenize(NormalizedString(text)) if p.text]

    def words(self, text: str, first: bool = True) -> list[str]:
        """Only the pieces' strings (encoding's fast path, no offsets); `first`: the text starts the input."""
        return [p.text for p in self.pre_tokenize(NormalizedString(text, None, 0 if first else 1)) if p.text]


class ByteLevel(PreTokenizer):
    """GPT-2: an optional space before the text, its regex, then every UTF-8 byte as a printable symbol."""

    def __init__(self, add_prefix_space: bool = True, trim_offsets: bool = True, use_regex: bool = True) -> None:
        self.add_prefix_space, self.trim_offsets, self.use_regex = add_prefix_space, trim_offsets, use_regex

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        if self.add_prefix_space and not s.text.startswith(" "):
            s.prepend(" ")
        pieces = s.split(regex_matches(_BYTE_LEVEL, s.text), "isolated") if self.use_regex else [s]
        table = bytes_to_unicode()
        for p in pieces:
            text = p.text
            if text.isascii():
                p.replace_same_length("".join(map(table.__getitem__, text.encode())))
                continue
            pairs = []
            for c in text:
                for k, b in enumerate(c.encode("utf-8", "surrogatepass")):
                    pairs.append((table[b], 1 if k else 0))
            p.transform(pairs)
        return pieces

    def words(self, text: str, first: bool = True) -> list[str]:
        if self.add_prefix_space and text and not text.startswith(" "):
            text = " " + text
        table = _BYTE_TABLE
        return [w.encode("utf-8", "surrogatepass").decode("latin-1").translate(table)
                for w in (_BYTE_LEVEL.findall(text) if self.use_regex else [text]) if w]

    def to_json(self) -> dict[str, Any]:
        return {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space, "trim_offsets": self.trim_offsets,
                "use_regex": self.use_regex}


class Whitespace(PreTokenizer):
    r"""Runs of word characters and runs of other non-space characters (\w+|[^\w\s]+)."""

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return [s.slice(m.start(), m.end()) for m in _WHITESPACE.finditer(s.text)]

    def words(self, text: str, first: bool = True) -> list[str]:
        return _WHITESPACE.findall(text)


class WhitespaceSplit(PreTokenizer):
    """Split on whitespace, which is dropped."""

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return [s.slice(*m.span()) for m in _NON_WS.finditer(s.text)]  # = split on whitespace, removed

    def words(self, text: str, first: bool = True) -> list[str]:
        return _NON_WS.findall(text)


class BertPreTokenizer(PreTokenizer):
    """Split on whitespace (dropped), then every punctuation character on its own."""

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return [s.slice(*m.span()) for m in _BERT_WORDS.finditer(s.text)]

    def words(self, text: str, first: bool = True) -> list[str]:
        return _BERT_WORDS.findall(text)


class Punctuation(PreTokenizer):
    def __init__(self, behavior: str = "isolated") -> None:
        self.behavior = behavior

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return s.split(char_matches(is_punctuation, s.text), self.behavior)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Punctuation", "behavior": _BEHAVIOUR_JSON[self.behavior]}


class Digits(PreTokenizer):
    """Digits apart from the rest: each on its own (individual_digits) or as runs."""

    def __init__(self, individual_digits: bool = False) -> None:
        self.individual_digits = individual_digits

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return s.split(char_matches(is_numeric, s.text), "isolated" if self.individual_digits else "contiguous")

    def to_json(self) -> dict[str, Any]:
        return {"type": "Digits", "individual_digits": self.individual_digits}


class CharDelimiterSplit(PreTokenizer):
    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        return s.split(char_matches(self.delimiter.__eq__, s.text), "removed")

    def to_json(self) -> dict[str, Any]:
        return {"type": "CharDelimiterSplit", "delimiter": self.delimiter}


class Metaspace(PreTokenizer):
    """SentencePiece's view of spaces: every " " becomes `replacement` ("▁"), one is put before the text
    (prepend_scheme "always"; "first": only before the start of the whole text; "never"), and with `split`
    the text is cut before every replacement character."""

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True) -> None:
        if len(replacement) != 1:
            raise TaesanError(f"tokenizer.json: Metaspace.replacement must be one character, got {replacement!r}")
        if prepend_scheme not in ("always", "first", "never"):
            raise TaesanError(f"tokenizer.json: Metaspace.prepend_scheme {prepend_scheme!r} is not always, first or never")
        self.replacement, self.prepend_scheme, self.split = replacement, prepend_scheme, split
        r = regex.escape(replacement)
        self._pieces = regex.compile(f"{r}[^{r}]*|[^{r}]+")  # each piece begins at a replacement character

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        r = self.replacement
        if " " in s.text:
            s.replace_same_length(s.text.replace(" ", r))  # one for one: each r keeps its space's alignment
        if self.prepend_scheme == "always" or (self.prepend_scheme == "first" and s.shift == 0):
            if not s.text.startswith(r):
                s.prepend(r)
        if not self.split:
            return [s]
        return [s.slice(*m.span()) for m in self._pieces.finditer(s.text)]  # = split before every r

    def words(self, text: str, first: bool = True) -> list[str]:
        r = self.replacement
        text = text.replace(" ", r)
        if text and (self.prepend_scheme == "always" or (self.prepend_scheme == "first" and first)) \
                and not text.startswith(r):
            text = r + text
        if not self.split:
            return [text] if text else []
        return self._pieces.findall(text)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Metaspace", "replacement": self.replacement, "prepend_scheme": self.prepend_scheme,
                "split": self.split}


class Split(PreTokenizer):
    """Cut on a literal or regex `pattern`, keeping matches as `behavior` says; `invert` swaps matches and gaps."""

    def __init__(self, pattern: Any, behavior: str = "isolated", invert: bool = False) -> None:
        self.regex, self.pattern = compile_pattern(pattern, "Split")
        self.behavior, self.invert = behavior, invert

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        if self.regex is None:
            matches = [(0, len(s.text), False)]
        else:
            matches = regex_matches(self.regex, s.text)
        if self.invert:
            matches = [(a, b, not m) for a, b, m in matches]
        return s.split(matches, self.behavior)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Split", "pattern": self.pattern, "behavior": _BEHAVIOUR_JSON[self.behavior], "invert": self.invert}


class Sequence(PreTokenizer):
    def __init__(self, pretokenizers: list[PreTokenizer]) -> None:
        self.pretokenizers = pretokenizers

    def pre_tokenize(self, s: NormalizedString) -> list[NormalizedString]:
        pieces = [s]
        for p in self.pretokenizers:
            pieces = [q for piece in pieces for q in p.pre_tokenize(piece) if q.text]
        return pieces

    def words(self, text: str, first: bool = True) -> list[str]:
        # a later "first"-only Metaspace needs the pieces' offsets: the general path knows them
        if any(isinstance(p, Metaspace) and p.prepend_scheme == "first" for p in self.pretokenizers[1:]):
            return super().words(text, first)
        pieces = [text]
        for p in self.pretokenizers:
            pieces = [w for j, piece in enumerate(pieces) for w in p.words(piece, first and j == 0) if w]
        return pieces

    def to_json(self) -> dict[str, Any]:
        return {"type": "Sequence", "pretokenizers": [p.to_json() for p in self.pretokenizers]}


def _prepend_scheme(obj: dict[str, Any]) -> str:
    if "prepend_scheme" in obj:
        return str(obj["prepend_scheme"]).lower()
    return "always" if obj.get("add_prefix_space", True) else "never"  # files written before prepend_scheme


def from_json(obj: Any) -> PreTokenizer | None:
    """A tokenizer.json "pre_tokenizer" object -> a PreTokenizer (None stays None)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TaesanError(f"tokenizer.json: a pre_tokenizer must be an object with a 'type', got {obj!r:.80}")
    kind = obj["type"]
    if kind == "ByteLevel":
        return ByteLevel(bool(obj.get("add_prefix_space", True)), bool(obj.get("trim_offsets", True)),
                         bool(obj.get("use_regex", True)))
    if kind in ("Whitespace", "WhitespaceSplit", "BertPreTokenizer"):
        return {"Whitespace": Whitespace, "WhitespaceSplit": WhitespaceSplit, "BertPreTokenizer": BertPreTokenizer}[kind]()
    if kind == "Metaspace":
        return Metaspace(str(obj.get("replacement", obj.get("str_rep", "▁"))), _prepend_scheme(obj), bool(obj.get("split", True)))
    if kind == "Punctuation":
        return Punctuation(_behaviour(obj.get("behavior", "Isolated"), "Punctuation"))
    if kind == "Digits":
        return Digits(bool(obj.get("individual_digits", False)))
    if kind == "Split":
        return Split(obj.get("pattern"), _behaviour(obj.get("behavior"), "Split"), bool(obj.get("invert", False)))
    if kind == "CharDelimiterSplit":
        return CharDelimiterSplit(str(obj.get("delimiter", " ")))
    if kind == "Sequence":
        return Sequence([p for p in map(from_json, obj.get("pretokenizers") or []) if p is not None])
    raise TaesanError(f"tokenizer.json: pre_tokenizer type {kind!r} is not supported")
