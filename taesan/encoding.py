"""The one-line error for a text file that is not UTF-8, with what it looks like instead and how to convert it.

Why: taesan reads UTF-8 only (a BOM is dropped), but Korean text saved by Windows tools (Excel, 메모장 before
2019) is often CP949 / EUC-KR, and "not UTF-8" alone leaves the user guessing. The guess reads at most the first
64 KB of the file again, only once the UTF-8 decode has already failed. Not a decoder: nothing is read in another
encoding, the user converts the file.
"""
from __future__ import annotations

from pathlib import Path

from taesan.errors import TaesanError

SAMPLE_BYTES = 64 * 1024


def looks_like(path: str | Path) -> str | None:
    """"UTF-16" (a UTF-16 byte-order mark), "CP949" (Korean in CP949 / EUC-KR: it decodes as such and holds Hangul
    syllables) or None (unknown) for a file that is not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read(SAMPLE_BYTES)
    except OSError:
        return None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    if len(raw) == SAMPLE_BYTES:
        raw = raw[: raw.rfind(b"\n") + 1] or raw  # whole lines only: the sample may end inside a character
    try:
        text = raw.decode("cp949")
    except UnicodeDecodeError:
        return None
    return "CP949" if any("\uac00" <= ch <= "\ud7a3" for ch in text) else None


def not_utf8(path: str | Path, detail: str = "", where: str | None = None) -> TaesanError:
    """"FILE[, line N]: not UTF-8 text (detail); <the guess and how to convert>". `where` replaces FILE (e.g.
    "FILE, line 3"); `detail` says where the decode failed."""
    guess = looks_like(path)
    if guess == "CP949":
        hint = (f"it reads as CP949 (EUC-KR), as Korean text saved on Windows often is: convert it, e.g. "
                f"iconv -f cp949 -t utf-8 {path} > {Path(path).with_name(Path(path).stem + '.utf8' + Path(path).suffix)}")
    elif guess == "UTF-16":
        hint = "it is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8"
    else:
        hint = "convert the file to UTF-8"
    shown = f" ({detail})" if detail else ""
    return TaesanError(f"{where or path}: not UTF-8 text{shown}; {hint}")
