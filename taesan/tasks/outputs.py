"""What a model's outputs look like, beside how well they score: the share of the most predicted label, the share
of empty texts, the writing system (script) of texts. `evaluate` reports these so a degenerate model (one label for
everything, no text at all, a translation in the source language) is seen in the numbers, not guessed.

Not a quality metric and not a language identifier: a text's script is the Unicode block most of its letters are
in (Hangul, Latin, ...), which is enough to tell Korean from English, not English from French.
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {  # name -> code point ranges (inclusive)
    "hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF)),
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)),
    "han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)),
    "kana": ((0x3040, 0x30FF), (0x31F0, 0x31FF)),
    "cyrillic": ((0x0400, 0x04FF),),
    "greek": ((0x0370, 0x03FF),),
    "arabic": ((0x0600, 0x06FF),),
}


def char_script(ch: str) -> str | None:
    """char_script("한") -> "hangul";  char_script("a") -> "latin";  char_script("3") -> None (not a letter we know)."""
    code = ord(ch)
    for name, ranges in SCRIPTS.items():
        if any(lo <= code <= hi for lo, hi in ranges):
            return name
    return None


def script_of(text: str) -> str | None:
    """The script most of the text's letters are in, or None for a text without letters.

    script_of("I went to a 카페") -> "latin" (7 Latin letters, 2 Hangul);  script_of("123 !") -> None
    """
    counts = Counter(s for s in map(char_script, text) if s is not None)
    return counts.most_common(1)[0][0] if counts else None


def dominant_script(texts: Sequence[str]) -> str | None:
    """The script most of the texts are written in (texts without letters do not vote), or None."""
    counts = Counter(s for s in map(script_of, texts) if s is not None)
    return counts.most_common(1)[0][0] if counts else None


def share_in_script(texts: Sequence[str], script: str) -> float:
    """The share of the texts with letters whose script is `script` (0.0 when none has letters)."""
    scripts = [s for s in map(script_of, texts) if s is not None]
    return sum(s == script for s in scripts) / len(scripts) if scripts else 0.0


def empty_share(texts: Sequence[str]) -> float:
    """The share of texts that are empty or only whitespace: empty_share(["a", " ", ""]) -> 0.667."""
    return sum(not t.strip() for t in texts) / len(texts) if texts else 0.0


def top_share(predicted: Sequence[Hashable]) -> float:
    """The share of the predictions that are the most frequent one: top_share([1, 1, 1, 0]) -> 0.75."""
    return Counter(predicted).most_common(1)[0][1] / len(predicted) if predicted else 0.0
