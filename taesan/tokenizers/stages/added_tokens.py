"""tokenizer.json's added_tokens: strings matched in the text before anything else, each one token.

First the tokens with normalized=false are found in the raw text; then each remaining piece is normalized and
the tokens with normalized=true are found in it (as they look after normalization). A match is the leftmost,
longest one; single_word drops a match that touches a word character outside it; lstrip/rstrip take the
whitespace before/after into the token (its string and offsets). Special tokens are the ones decode skips.

Not the template's special tokens (post_processors.py adds those).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import regex

from taesan.errors import TaesanError
from taesan.tokenizers.stages.normalized import NormalizedString
from taesan.tokenizers.stages.normalizers import Normalizer

_WORD = regex.compile(r"\w")  # used with match(text, pos): the character at pos is a word character
_SPACES_AT_END = regex.compile(r"\s*\Z")  # \Z, not $: $ also matches before a final newline
_SPACES_AT_START = regex.compile(r"\s*")  # used with match(text, pos)


@dataclass(frozen=True)
class AddedToken:
    content: str
    id: int
    special: bool = False
    normalized: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "content": self.content, "single_word": self.single_word, "lstrip": self.lstrip,
                "rstrip": self.rstrip, "normalized": self.normalized, "special": self.special}

    @classmethod
    def from_json(cls, obj: Any) -> "AddedToken":
        if not isinstance(obj, dict) or not isinstance(obj.get("content"), str) or not isinstance(obj.get("id"), int):
            raise TaesanError(f"tokenizer.json: added_tokens entries need a string 'content' and an integer 'id', got {obj!r:.80}")
        special = bool(obj.get("special", False))
        return cls(obj["content"], obj["id"], special, bool(obj.get("normalized", not special)), bool(obj.get("lstrip", False)),
                   bool(obj.get("rstrip", False)), bool(obj.get("single_word", False)))


def _alternation(contents: list[str]) -> regex.Pattern | None:
    contents = sorted({c for c in contents if c}, key=len, reverse=True)  # longest first: leftmost-longest
    return regex.compile("|".join(regex.escape(c) for c in contents)) if contents else None


class AddedVocabulary:
    """The added tokens, ready to split text on them."""

    def __init__(self, tokens: list[AddedToken], normalizer: Normalizer | None) -> None:
        self.tokens = sorted(tokens, key=lambda t: t.id)
        self.by_content: dict[str, AddedToken] = {}
        # specials first, then the others, in file order; a content listed twice keeps its first entry
        for t in [t for t in tokens if t.special] + [t for t in tokens if not t.special]:
            if t.content:
                self.by_content.setdefault(t.content, t)
        self.special_ids = {t.id for t in tokens if t.special}
        raw = [t for t in self.by_content.values() if not t.normalized]
        self.raw_pattern = _alternation([t.content for t in raw])
        self._normalized_of: dict[str, AddedToken] = {}
        for t in self.by_content.values():
            if t.normalized:
                self._normalized_of.setdefault(normalizer.normalize_str(t.content) if normalizer else t.content, t)
        self.normalized_pattern = _alternation(list(self._normalized_of))
        self._raw_of = {t.content: t for t in raw}
        self.normalizer = normalizer

    def split(self, text: str) -> list[tuple[NormalizedString, AddedToken | None]]:
        """The text cut into added tokens (with their token) and normalized pieces between them (None)."""
        first = self._find(NormalizedString(text), self.raw_pattern, self._raw_of)
        out: list[tuple[NormalizedString, AddedToken | None]] = []
        for piece, token in first:
            if token is not None:
                out.append((piece, token))
                continue
            if self.normalizer is not None:
                self.normalizer.normalize(piece)
            out += self._find(piece, self.normalized_pattern, self._normalized_of)
        return [(p, t) for p, t in out if p.text]

    def _find(self, s: NormalizedString, pattern: regex.Pattern | None,
              token_of: dict[str, AddedToken]) -> list[tuple[NormalizedString, AddedToken | None]]:
        text = s.text
        if pattern is None or not text or pattern.search(text) is None:
            return [(s, None)]
        out: list[tuple[NormalizedString, AddedToken | None]] = []
        done = 0
        for m in pattern.finditer(text):
            start, stop = m.span()
            token = token_of[m.group()]
            if token.single_word:
                left_ok = start == 0 or not _WORD.match(text, start - 1)
                right_ok = stop == len(text) or not _WORD.match(text, stop)
                if not (left_ok and right_ok):
                    continue
            if token.lstrip:
                start = max(_SPACES_AT_END.search(text, 0, start).start(), done)
            if token.rstrip:
                stop = _SPACES_AT_START.match(text, stop).end()
            if done < start:
                out.append((s.slice(done, start), None))
            out.append((s.slice(start, stop), token))
            done = stop
        if done < len(text):
            out.append((s.slice(done, len(text)), None))
        return out
