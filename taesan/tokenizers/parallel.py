"""Encoding a big batch on every core: forked processes each encode a contiguous slice of the texts while
this process encodes the first slice; the workers send back flat int32 columns (they pickle far faster than
Encodings) and this process wraps them in lazy Encodings (columns beyond ids are built when read).

Not a tokenizer. A tokenizer taking part gives `encode_many(texts)` -> Encodings, `numbers_many(texts)` ->
per text a tuple of int lists (None for a text this process must encode itself, e.g. one with special
tokens written in it) and `from_numbers(text, *numbers)` -> the text's Encoding. Forked workers inherit the
tokenizer, its warm cache and the texts: nothing is pickled on the way in.
"""
from __future__ import annotations

import multiprocessing as mp
from array import array
from itertools import chain
from typing import Any, Callable

from taesan.tokenizers.base import Encoding
from taesan.util import gc_paused

MIN_CHARS = 200_000  # text below which forking costs more than it saves
_STATE: tuple[Callable[[list], list], list] | None = None


def worth_it(texts: list, workers: int) -> bool:
    """Fork only for many texts, enough of them, and where fork exists (not on Windows)."""
    if workers <= 1 or len(texts) < 2 * workers or "fork" not in mp.get_all_start_methods():
        return False
    return sum(len(t) for t in texts if isinstance(t, str)) >= MIN_CHARS


def _slice_numbers(bounds: tuple[int, int]) -> list[bytes]:
    """In a worker: for each number column of texts[lo:hi], the int32 bytes of (length per text, values);
    a text the worker leaves to the parent has length -1 in the first column."""
    numbers_many, texts = _STATE
    with gc_paused():
        rows = numbers_many(texts[bounds[0] : bounds[1]])
    width = next((len(r) for r in rows if r is not None), 1)
    packed = []
    for c in range(width):
        packed.append(array("i", [len(r[c]) if r is not None else -1 for r in rows]).tobytes())
        packed.append(array("i", chain.from_iterable(r[c] for r in rows if r is not None)).tobytes())
    return packed


def _ints(raw: bytes) -> list[int]:
    a = array("i")
    a.frombytes(raw)
    return a.tolist()


def _unpack(texts: list, packed: list[bytes], encode_many: Callable[[list], list[Encoding]],
            from_numbers: Callable[..., Encoding]) -> list[Encoding]:
    columns = [(_ints(packed[k]), _ints(packed[k + 1])) for k in range(0, len(packed), 2)]
    at = [0] * len(columns)
    out = []
    for i, text in enumerate(texts):
        if columns[0][0][i] < 0:
            out += encode_many([text])
            continue
        numbers = []
        for c, (lengths, values) in enumerate(columns):
            q = at[c] + lengths[i]
            numbers.append(values[at[c] : q])
            at[c] = q
        out.append(from_numbers(text, *numbers))
    return out


def encode(texts: list, workers: int, encode_many: Callable[[list], list[Encoding]],
           numbers_many: Callable[[list], list[Any]], from_numbers: Callable[..., Encoding]) -> list[Encoding]:
    """Encodings of `texts`, equal to encode_many(texts), with `workers` processes in all (this one included)."""
    global _STATE
    step = -(-len(texts) // workers)
    bounds = [(i, min(i + step, len(texts))) for i in range(0, len(texts), step)]
    _STATE = (numbers_many, texts)
    try:
        with gc_paused(), mp.get_context("fork").Pool(len(bounds) - 1) as pool:
            pending = pool.map_async(_slice_numbers, bounds[1:])
            out = encode_many(texts[: bounds[0][1]])
            for (lo, hi), packed in zip(bounds[1:], pending.get()):
                out += _unpack(texts[lo:hi], packed, encode_many, from_numbers)
        return out
    finally:
        _STATE = None
