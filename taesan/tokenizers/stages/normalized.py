"""A normalized string that remembers where each of its characters came from, as the `tokenizers` library's
NormalizedString does: every normalizer and pre-tokenizer edits it through `transform`, so a token's offsets
can always be given in the ORIGINAL text.

Not a normalizer itself (normalizers.py) and not a splitter (pre_tokenizers.py use `split`).

Alignments are kept per character, in character offsets of the original text (the library keeps them per
byte, in bytes; every byte of a character shares one alignment, so the two agree). `align is None` means the
identity: character i came from original character shift + i, the common case that costs nothing.
"""
from __future__ import annotations

from typing import Iterable

# how the delimiters found by a pattern are kept (the library's SplitDelimiterBehavior)
BEHAVIOURS = ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous")


class NormalizedString:
    """`text` (normalized), `align[i]` = (start, end) in the original text of character i, `shift` = where
    this string's original part begins (an inserted character with nothing before it points there)."""

    __slots__ = ("text", "align", "shift")

    def __init__(self, text: str, align: list[tuple[int, int]] | None = None, shift: int = 0) -> None:
        self.text = text
        self.align = align
        self.shift = shift

    def __repr__(self) -> str:
        return f"NormalizedString({self.text!r}, shift={self.shift})"

    def __len__(self) -> int:
        return len(self.text)

    def alignments(self) -> list[tuple[int, int]]:
        """The alignment of every character (built for the identity case)."""
        if self.align is not None:
            return self.align
        s = self.shift
        return [(s + i, s + i + 1) for i in range(len(self.text))]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of normalized characters [start, end): the first one's start, the last one's end."""
        if self.align is None:
            return self.shift + start, self.shift + end
        if start >= end:  # the library hands an empty range back unconverted
            return self.shift + start, self.shift + end
        return self.align[start][0], self.align[end - 1][1]

    # ---- editing -----------------------------------------------------------------------------------
    def transform(self, pairs: Iterable[tuple[str, int]], initial_offset: int = 0, start: int = 0,
                  end: int | None = None) -> None:
        """Replace characters [start, end) by `pairs` of (character, change): change 0 replaces the next old
        character (and takes its alignment), 1 inserts a character (it takes the alignment of the character
        before it), -n replaces the next one and removes the n after it. `initial_offset` old characters are
        removed before the first pair.

        >>> s = NormalizedString("ab"); s.transform([("x", 0), ("y", 1), ("b", 0)]); s.text, s.align
        ('xyb', [(0, 1), (0, 1), (1, 2)])
        """
        text = self.text
        if end is None:
            end = len(text)
        pairs = list(pairs)
        if initial_offset == 0 and len(pairs) == end - start and all(c == 0 for _, c in pairs):
            self.text = text[:start] + "".join(c for c, _ in pairs) + text[end:]  # one for one: alignments stay
            return
        old = self.alignments()
        pos = start + initial_offset
        chars, align = [], []
        for c, change in pairs:
            if change > 0:
                a = old[pos - 1] if pos >= 1 else (self.shift, self.shift)
            else:
                a = old[pos]
                pos += 1 - change if change < 0 else 1
            chars.append(c)
            align.append(a)
        self.text = text[:start] + "".join(chars) + text[end:]
        self.align = old[:start] + align + old[end:]

    def replace_same_length(self, new_text: str) -> None:
        """A one-for-one character map (lowercasing ASCII, ' ' -> '▁'): the alignments do not change."""
        self.text = new_text

    def prepend(self, s: str) -> None:
        """Put `s` before the first character; `s` takes that character's alignment (nothing happens to an
        empty string, as in the library)."""
        if self.text and s:
            self.transform([(s[0], 0)] + [(c, 1) for c in s[1:]] + [(self.text[0], 1)], 0, 0, 1)

    def append(self, s: str) -> None:
        if self.text and s:
            n = len(self.text)
            self.transform([(self.text[-1], 0)] + [(c, 1) for c in s], 0, n - 1, n)

    def filter(self, keep) -> None:
        """Remove the characters for which keep(c) is false; a removed run is charged to the kept character
        before it (the library walks the string backwards)."""
        text = self.text
        flags = [bool(keep(c)) for c in text]
        if all(flags):
            return
        pairs: list[tuple[str, int]] = []
        removed = 0
        for c, k in zip(reversed(text), reversed(flags)):
            if k:
                pairs.append((c, -removed))
                removed = 0
            else:
                removed += 1
        pairs.reverse()
        self.transform(pairs, removed)

    def strip(self, left: bool, right: bool) -> None:
        """Remove leading and/or trailing whitespace (Rust's char::is_whitespace)."""
        text = self.text
        lead = len(text) - len(text.lstrip(RUST_WS)) if left else 0
        trail = len(text) - len(text.rstrip(RUST_WS)) if right else 0
        if lead >= len(text):
            lead, trail = len(text), 0
        if lead == 0 and trail == 0:
            return
        n = len(text)
        pairs = [(c, 0) for c in text[lead : n - trail]]
        if pairs and trail:
            pairs[-1] = (pairs[-1][0], -trail)
        self.transform(pairs, lead)

    def replace_matches(self, spans: list[tuple[int, int]], content: str) -> None:
        """Replace each (start, end) span (ascending, not overlapping) by `content`: every new character is an
        insertion after the removed ones, so it takes the alignment of the last removed character."""
        for s, e in reversed(spans):
            self.transform([(c, 1) for c in content], e - s, s, e)

    # ---- splitting ---------------------------------------------------------------------------------
    def slice(self, start: int, end: int) -> "NormalizedString":
        """Characters [start, end) as their own NormalizedString (offsets stay those of the original text)."""
        if self.align is None:
            return NormalizedString(self.text[start:end], None, self.shift + start)
        align = self.align[start:end]
        return NormalizedString(self.text[start:end], align, align[0][0] if align else self.shift + start)

    def split(self, matches: list[tuple[int, int, bool]], behaviour: str) -> list["NormalizedString"]:
        """Cut by `matches` ((start, end, is_delimiter) covering the text in order) keeping the delimiters as
        `behaviour` says. With "-" in "the-final--countdown":
        removed -> the final countdown; isolated -> the - final - - countdown;
        merged_with_previous -> the- final- - countdown; merged_with_next -> the -final - -countdown;
        contiguous -> the - final -- countdown. Empty pieces are dropped."""
        spans = split_spans(matches, behaviour)
        return [self.slice(s, e) for s, e in spans if e > s]


RUST_WS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
           "\u2028\u2029\u202f\u205f\u3000")  # Rust's char::is_whitespace (the White_Space property)


def split_spans(matches: list[tuple[int, int, bool]], behaviour: str) -> list[tuple[int, int]]:
    """The pieces (start, end) that `NormalizedString.split` keeps."""
    if behaviour == "isolated":
        return [(s, e) for s, e, _ in matches]
    if behaviour == "removed":
        return [(s, e) for s, e, m in matches if not m]
    out: list[list[int]] = []
    previous = False
    if behaviour == "contiguous":
        for s, e, m in matches:
            if m == previous and out:
                out[-1][1] = e
            else:
                out.append([s, e])
            previous = m
    elif behaviour == "merged_with_previous":
        for s, e, m in matches:
            if m and not previous and out:
                out[-1][1] = e
            else:
                out.append([s, e])
            previous = m
    elif behaviour == "merged_with_next":
        for s, e, m in reversed(matches):
            if m and not previous and out:
                out[-1][0] = s
            else:
                out.append([s, e])
            previous = m
        out.reverse()
    else:
        raise ValueError(f"unknown split behaviour {behaviour!r}")
    return [(s, e) for s, e in out]


def regex_matches(pattern, text: str) -> list[tuple[int, int, bool]]:
    """Every match of a compiled regex in `text` and the gaps between them, in order: (start, end, is_match).
    An empty text gives one empty gap; an empty match right where the previous match ended is not one (as in
    Oniguruma, where Python's regex would report it)."""
    if not text:
        return [(0, 0, False)]
    out: list[tuple[int, int, bool]] = []
    prev, matched = 0, False
    for m in pattern.finditer(text):
        s, e = m.span()
        if s == e and matched and s == prev:
            continue
        matched = True
        if prev != s:
            out.append((prev, s, False))
        out.append((s, e, True))
        prev = e
    if prev != len(text):
        out.append((prev, len(text), False))
    return out


def char_matches(is_delimiter, text: str) -> list[tuple[int, int, bool]]:
    """Like `regex_matches` for a character predicate: each delimiter character is a match of its own."""
    if not text:
        return [(0, 0, False)]
    out: list[tuple[int, int, bool]] = []
    last = 0
    for i, c in enumerate(text):
        if is_delimiter(c):
            if last < i:
                out.append((last, i, False))
            out.append((i, i + 1, True))
            last = i + 1
    if last < len(text):
        out.append((last, len(text), False))
    return out
