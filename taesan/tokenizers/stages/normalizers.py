"""The normalizers of tokenizer.json: BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents,
Replace, Prepend, Precompiled (SentencePiece's map), ByteLevel and Sequence. Each edits a NormalizedString in
place, keeping every character's alignment to the original text, as the `tokenizers` library does.

Not pre-tokenization (pre_tokenizers.py): a normalizer never splits.
"""
from __future__ import annotations

import base64
import binascii
import unicodedata
from typing import Any

import regex

from taesan.errors import TaesanError
from taesan.tokenizers.bpe import bytes_to_unicode
from taesan.tokenizers.stages.normalized import NormalizedString, regex_matches
from taesan.tokenizers.stages.precompiled import CharsMap
from taesan.tokenizers.stages.unicode_forms import is_normalized, normalize_pairs
from taesan.tokenizers.bert_normalizer import BertNormalizer as BertCharMap

_GRAPHEMES = regex.compile(r"\X")


class Normalizer:
    """Base: `normalize(s)` edits `s` in place; `to_json()` is the tokenizer.json object."""

    def normalize(self, s: NormalizedString) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def normalize_str(self, text: str) -> str:
        """Only the normalized text (encoding's fast path; the subclasses skip the alignments where they can)."""
        s = NormalizedString(text)
        self.normalize(s)
        return s.text


class BertNormalizer(Normalizer):
    """BERT's cleanup (drop controls, whitespace -> " "), spaces around CJK ideographs, accents stripped
    (by default when lowercasing), lowercase. Every output character comes from one input character."""

    def __init__(self, clean_text: bool = True, handle_chinese_chars: bool = True, strip_accents: bool | None = None,
                 lowercase: bool = True) -> None:
        self.clean_text, self.handle_chinese_chars = clean_text, handle_chinese_chars
        self.strip_accents, self.lowercase = strip_accents, lowercase
        self._chars = BertCharMap(lowercase, strip_accents, clean_text, handle_chinese_chars)

    def normalize(self, s: NormalizedString) -> None:
        norm, origin = self._chars.normalize(s.text)
        if origin is None:
            s.replace_same_length(norm)
            return
        old = s.alignments()
        s.text, s.align = norm, [old[o] for o in origin]

    def normalize_str(self, text: str) -> str:
        return self._chars.normalize(text)[0]

    def to_json(self) -> dict[str, Any]:
        return {"type": "BertNormalizer", "clean_text": self.clean_text, "handle_chinese_chars": self.handle_chinese_chars,
                "strip_accents": self.strip_accents, "lowercase": self.lowercase}


class UnicodeForm(Normalizer):
    """NFD, NFKD, NFC or NFKC (the subclass name is the form)."""

    def normalize(self, s: NormalizedString) -> None:
        form = type(self).__name__
        if not is_normalized(form, s.text):
            s.transform(normalize_pairs(form, s.text))

    def normalize_str(self, text: str) -> str:
        return unicodedata.normalize(type(self).__name__, text)


class NFD(UnicodeForm):
    pass


class NFKD(UnicodeForm):
    pass


class NFC(UnicodeForm):
    pass


class NFKC(UnicodeForm):
    pass


class Lowercase(Normalizer):
    """Each character to its lowercase (one character may become two: "İ" -> "i̇")."""

    def normalize(self, s: NormalizedString) -> None:
        text = s.text
        if text.isascii():
            s.replace_same_length(text.lower())
            return
        lows = [c.lower() for c in text]
        if all(len(x) == 1 for x in lows):
            s.replace_same_length("".join(lows))
            return
        s.transform([(x, 1 if k else 0) for low in lows for k, x in enumerate(low)])

    def normalize_str(self, text: str) -> str:
        return text.lower() if text.isascii() else "".join([c.lower() for c in text])


class Strip(Normalizer):
    def __init__(self, strip_left: bool = True, strip_right: bool = True) -> None:
        self.strip_left, self.strip_right = strip_left, strip_right

    def normalize(self, s: NormalizedString) -> None:
        s.strip(self.strip_left, self.strip_right)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Strip", "strip_left": self.strip_left, "strip_right": self.strip_right}


class StripAccents(Normalizer):
    """Remove non-spacing marks (category Mn); meant after NFD."""

    def normalize(self, s: NormalizedString) -> None:
        s.filter(lambda c: unicodedata.category(c) != "Mn")


class Nmt(Normalizer):
    """SentencePiece's NMT cleanup, as the library's `Nmt`: control characters dropped, the other "spaces" (tab,
    newline, zero-width, line/paragraph separators, "▁", BOM, U+FFFD) become " ". Every kept character maps to one."""

    DROPPED = frozenset([*map(chr, range(0x01, 0x09)), "\x0b", *map(chr, range(0x0E, 0x20)), "\x7f", "\x8f", "\x9f"])
    SPACES = frozenset(["\t", "\n", "\x0c", "\r", "\u1680", *map(chr, range(0x200B, 0x2010)), "\u2028", "\u2029",
                        "\u2581", "\ufeff", "\ufffd"])

    def normalize(self, s: NormalizedString) -> None:
        s.filter(lambda c: c not in self.DROPPED)
        s.replace_same_length(self.normalize_str(s.text))

    def normalize_str(self, text: str) -> str:
        return "".join(" " if c in self.SPACES else c for c in text if c not in self.DROPPED)


def compile_pattern(pattern: Any, where: str) -> tuple[regex.Pattern | None, dict[str, str]]:
    """tokenizer.json's {"String": s} (a literal) or {"Regex": r} -> (compiled regex or None for an empty
    literal, the JSON object to write back)."""
    if isinstance(pattern, str):
        pattern = {"String": pattern}
    if not isinstance(pattern, dict) or len(pattern) != 1 or next(iter(pattern)) not in ("String", "Regex"):
        raise TaesanError(f"tokenizer.json: {where}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {pattern!r}")
    kind, value = next(iter(pattern.items()))
    if not isinstance(value, str):
        raise TaesanError(f"tokenizer.json: {where}.pattern.{kind} must be a string")
    if kind == "String":
        return (regex.compile(regex.escape(value)) if value else None), {"String": value}
    try:
        return regex.compile(value), {"Regex": value}
    except regex.error as e:
        raise TaesanError(f"tokenizer.json: {where}.pattern regex {value!r} does not compile ({e})") from None


class Replace(Normalizer):
    """Every match of a literal or a regex replaced by `content`."""

    def __init__(self, pattern: Any, content: str) -> None:
        self.regex, self.pattern = compile_pattern(pattern, "Replace")
        self.content = content

    def normalize(self, s: NormalizedString) -> None:
        if self.regex is None or not s.text:
            return
        spans = [(a, b) for a, b, m in regex_matches(self.regex, s.text) if m]
        if spans:
            s.replace_matches(spans, self.content)

    def normalize_str(self, text: str) -> str:
        if self.regex is None or self.regex.search(text) is None:
            return text
        return super().normalize_str(text)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Replace", "pattern": self.pattern, "content": self.content}


class Prepend(Normalizer):
    def __init__(self, prepend: str) -> None:
        self.prepend = prepend

    def normalize(self, s: NormalizedString) -> None:
        s.prepend(self.prepend)

    def to_json(self) -> dict[str, Any]:
        return {"type": "Prepend", "prepend": self.prepend}


class Precompiled(Normalizer):
    """SentencePiece's map, grapheme by grapheme as the library applies it: a grapheme shorter than 6 bytes
    that begins a key is replaced whole by the shortest such key's replacement; otherwise each character is
    looked up alone. A replacement's characters replace the old ones in order; when it is longer the extra
    ones are insertions, when shorter the last edit so far removes the rest (the character before, when the
    replacement is empty), which is how the library counts them."""

    def __init__(self, precompiled_charsmap: str | bytes | None) -> None:
        if precompiled_charsmap is None or precompiled_charsmap == "":
            self.map = None
            self.b64 = precompiled_charsmap
            return
        raw = precompiled_charsmap
        if isinstance(raw, str):
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise TaesanError("tokenizer.json: Precompiled.precompiled_charsmap is not base64") from None
        self.map = CharsMap(raw)
        self.b64 = base64.b64encode(self.map.blob).decode("ascii")

    def normalize_str(self, text: str) -> str:
        if self.map is None or not self.map.may_change(text):
            return text
        return "".join(c for c, _ in self._edits(text))

    def normalize(self, s: NormalizedString) -> None:
        if self.map is not None and self.map.may_change(s.text):
            s.transform(self._edits(s.text))

    def _edits(self, text: str) -> list[tuple[str, int]]:
        m = self.map
        pairs: list[tuple[str, int]] = []
        for g in _GRAPHEMES.findall(text):
            if not any(map(m.starts_a_key, g)):
                pairs.extend((c, 0) for c in g)
                continue
            if len(g.encode("utf-8", "surrogatepass")) < 6:
                r = m.shortest_prefix(g)
                if r is not None:
                    _extend(pairs, r, len(g))
                    continue
            for c in g:
                r = m.shortest_prefix(c)
                if r is None:
                    pairs.append((c, 0))
                else:
                    _extend(pairs, r, 1)
        return pairs

    def to_json(self) -> dict[str, Any]:
        return {"type": "Precompiled", "precompiled_charsmap": self.b64}


def _extend(pairs: list[tuple[str, int]], replacement: str, old: int) -> None:
    diff = len(replacement) - old
    pairs.extend((c, 0) for c in replacement)
    if diff > 0:
        for k in range(len(pairs) - diff, len(pairs)):
            pairs[k] = (pairs[k][0], 1)
    elif diff < 0 and pairs:
        pairs[-1] = (pairs[-1][0], pairs[-1][1] + diff)


class ByteLevel(Normalizer):
    """Every UTF-8 byte as GPT-2's printable byte symbol (the bytes of one character share its alignment)."""

    def normalize(self, s: NormalizedString) -> None:
        table = bytes_to_unicode()
        pairs = []
        for c in s.text:
            for k, b in enumerate(c.encode("utf-8", "surrogatepass")):
                pairs.append((table[b], 1 if k else 0))
        s.transform(pairs)


class Sequence(Normalizer):
    def __init__(self, normalizers: list[Normalizer]) -> None:
        self.normalizers = normalizers

    def normalize(self, s: NormalizedString) -> None:
        for n in self.normalizers:
            n.normalize(s)

    def normalize_str(self, text: str) -> str:
        for n in self.normalizers:
            text = n.normalize_str(text)
        return text

    def to_json(self) -> dict[str, Any]:
        return {"type": "Sequence", "normalizers": [n.to_json() for n in self.normalizers]}


_SIMPLE = {c.__name__: c for c in (NFD, NFKD, NFC, NFKC, Lowercase, StripAccents, Nmt, ByteLevel)}


def from_json(obj: Any) -> Normalizer | None:
    """A tokenizer.json "normalizer" object -> a Normalizer (None stays None)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TaesanError(f"tokenizer.json: a normalizer must be an object with a 'type', got {obj!r:.80}")
    kind = obj["type"]
    if kind in _SIMPLE:
        return _SIMPLE[kind]()
    if kind == "BertNormalizer":
        return BertNormalizer(bool(obj.get("clean_text", True)), bool(obj.get("handle_chinese_chars", True)),
                              obj.get("strip_accents"), bool(obj.get("lowercase", True)))
    if kind == "Strip":
        return Strip(bool(obj.get("strip_left", True)), bool(obj.get("strip_right", True)))
    if kind == "Replace":
        return Replace(obj.get("pattern"), str(obj.get("content", "")))
    if kind == "Prepend":
        return Prepend(str(obj.get("prepend", "")))
    if kind == "Precompiled":
        return Precompiled(obj.get("precompiled_charsmap"))
    if kind == "Sequence":
        return Sequence([n for n in map(from_json, obj.get("normalizers") or []) if n is not None])
    raise TaesanError(f"tokenizer.json: normalizer type {kind!r} is not supported")
