"""BERT's normalization character by character (cleanup of controls and whitespace, spaces around CJK
ideographs, accents stripped, lowercase), cached per character, with each output character's source.

Not the pre-tokenization or the WordPiece cut (wordpiece.py); the tokenizer.json BertNormalizer stage
(stages/normalizers.py) wraps this.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Callable

import regex

# Rust's char::is_whitespace (the White_Space property) minus the ones that are control characters,
# which BERT's cleanup deletes before it looks for whitespace.
# Spelled out (no ranges): they serve both as regex classes and as str.rstrip's character sets.
WS_KEPT = "\t\n\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
WS_ALL = WS_KEPT + "\x0b\x0c\x85"
_IS_WS = regex.compile(f"[{WS_ALL}]")
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_OTHER = {"Cc", "Cf", "Cs", "Co"}


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK)


class _CharCache(dict):
    """{char: normalized}; a miss computes and stores, so lookups stay in C (`map(cache.__getitem__, text)`)."""

    def __init__(self, compute: Callable[[str], str]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, c: str) -> str:
        out = self[c] = self.compute(c)
        return out


class BertNormalizer:
    """Character-wise BERT normalization: every output character comes from exactly one input character,
    which is what makes offsets into the original text exact.

    normalize_char("É") -> "e" (lowercase, accents stripped); "\\x00" -> "" (cleaned); "中" -> " 中 ".
    Canonical reordering of combining marks across characters is not applied (they are stripped anyway
    when accents are; otherwise NFD is not used at all, as in BERT). Categories come from Python's
    unicodedata; HF's Rust tables are of another Unicode version and disagree on a few hundred rare code
    points (marks, punctuation and case pairs of recently encoded scripts), where results may differ.
    """

    def __init__(self, lowercase: bool = True, strip_accents: bool | None = None, clean_text: bool = True, handle_chinese_chars: bool = True) -> None:
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.clean_text = clean_text
        self.handle_chinese_chars = handle_chinese_chars
        self._cache = _CharCache(self._compute)

    def normalize_char(self, c: str) -> str:
        return self._cache[c]

    def _compute(self, c: str) -> str:
        s = c
        if self.clean_text:
            if c in "\x00\ufffd" or (c not in "\t\n\r" and unicodedata.category(c) in _OTHER):
                s = ""
            elif _IS_WS.match(c):
                s = " "
        if s and self.handle_chinese_chars and _is_cjk(ord(s)):
            s = f" {s} "
        if s and self.strip_accents:
            s = "".join(x for x in unicodedata.normalize("NFD", s) if unicodedata.category(x) != "Mn")
        if s and self.lowercase:
            s = "".join(x.lower() for x in s)  # per character: no final-sigma context, like Rust
        return s

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        """Text -> (normalized text, index in `text` of the character each normalized character came from;
        None when every character maps to exactly one, the common case)."""
        parts = list(map(self._cache.__getitem__, text))
        norm = "".join(parts)
        if len(norm) == len(text) and "" not in parts:
            return norm, None
        return norm, [i for i, p in enumerate(parts) for _ in range(len(p))]

    def state(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase, "strip_accents": self.strip_accents, "clean_text": self.clean_text, "handle_chinese_chars": self.handle_chinese_chars}
