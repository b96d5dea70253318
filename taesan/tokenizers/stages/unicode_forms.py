"""Unicode normalization forms (NFD, NFKD, NFC, NFKC) as (character, change) edits for
NormalizedString.transform, so every output character keeps an alignment to the input, exactly as the
`tokenizers` library's alignment-tracking normalization does.

Not a general Unicode library: the tables are Python's unicodedata; a character's decomposition is its own
NFD/NFKD, composition pairs are checked against unicodedata.decomposition.

How the edits are counted: each input character's decomposition gives its first character change 0 and the
rest 1 (inserted); canonical reordering moves the changes with their characters; composing a mark into its
starter adds their changes and takes one (the mark is removed). Positions, not characters, carry the
alignments: `transform` hands them out in order.
"""
from __future__ import annotations

import unicodedata

_S_BASE, _L_BASE, _V_BASE, _T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
_L_COUNT, _V_COUNT, _T_COUNT = 19, 21, 28
_N_COUNT = _V_COUNT * _T_COUNT
_COMPOSE: dict[tuple[str, str], str | None] = {}


def is_normalized(form: str, text: str) -> bool:
    return unicodedata.is_normalized(form, text)


def decompose(text: str, compat: bool) -> list[tuple[str, int]]:
    """NFD (NFKD with compat) as edits, canonical reordering included."""
    form = "NFKD" if compat else "NFD"
    pairs: list[tuple[str, int]] = []
    for c in text:
        d = unicodedata.normalize(form, c) if not c.isascii() else c
        pairs.append((d[0], 0))
        for x in d[1:]:
            pairs.append((x, 1))
    _reorder(pairs)
    return pairs


def _reorder(pairs: list[tuple[str, int]]) -> None:
    """Sort every run of non-starters by combining class, keeping equal classes in order (in place)."""
    ccc = unicodedata.combining
    n, i = len(pairs), 0
    while i < n:
        if ccc(pairs[i][0]) == 0:
            i += 1
            continue
        j = i
        while j < n and ccc(pairs[j][0]) != 0:
            j += 1
        if j - i > 1:
            pairs[i:j] = sorted(pairs[i:j], key=lambda p: ccc(p[0]))
        i = j


def _primary_composite(a: str, b: str) -> str | None:
    """The character that canonically composes from a + b, if any (Hangul by arithmetic)."""
    key = (a, b)
    if key in _COMPOSE:
        return _COMPOSE[key]
    out = None
    ca, cb = ord(a), ord(b)
    if _L_BASE <= ca < _L_BASE + _L_COUNT and _V_BASE <= cb < _V_BASE + _V_COUNT:
        out = chr(_S_BASE + ((ca - _L_BASE) * _V_COUNT + (cb - _V_BASE)) * _T_COUNT)
    elif (_S_BASE <= ca < _S_BASE + _L_COUNT * _N_COUNT and (ca - _S_BASE) % _T_COUNT == 0
          and _T_BASE < cb < _T_BASE + _T_COUNT):
        out = chr(ca + cb - _T_BASE)
    else:
        r = unicodedata.normalize("NFC", a + b)
        if len(r) == 1:
            parts = unicodedata.decomposition(r).split()
            if parts and not parts[0].startswith("<") and [chr(int(p, 16)) for p in parts] == [a, b]:
                out = r
    _COMPOSE[key] = out
    return out


def compose(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Canonical composition of decomposed edits: a character that is not blocked from the last starter and
    composes with it is folded into it."""
    ccc = unicodedata.combining
    out: list[list] = []
    starter = -1  # index in `out` of the character others may compose into
    last = None  # combining class of the last character kept after the starter (None: adjacent)
    for c, change in pairs:
        k = ccc(c)
        if starter >= 0 and (last is None or last < k):
            r = _primary_composite(out[starter][0], c)
            if r is not None:
                out[starter][0] = r
                out[starter][1] += change - 1
                continue
        if k == 0:
            starter, last = len(out), None
        elif starter >= 0:
            last = k
        out.append([c, change])
    return [(c, ch) for c, ch in out]


def normalize_pairs(form: str, text: str) -> list[tuple[str, int]]:
    """`text` in `form` ("NFD", "NFKD", "NFC", "NFKC") as (character, change) edits."""
    pairs = decompose(text, compat=form in ("NFKD", "NFKC"))
    return compose(pairs) if form in ("NFC", "NFKC") else pairs
