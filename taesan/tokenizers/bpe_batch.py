"""Byte-level BPE merges for many words at once, with numpy: each round, every word that can still merge
applies its leftmost lowest-ranked merge, which is exactly the order BPETokenizer.bpe follows for one word,
so the results are the same; a word leaves the rounds as soon as it cannot merge any more.

Not the single-word path (BPETokenizer.bpe), which long words and a few new words take: here the cost per
round is a handful of array passes, whatever the number of words, instead of a Python loop per merge.
"""
from __future__ import annotations

import numpy as np

MAX_BYTES = 64  # longer words go one by one (a round merges one pair per word: rounds <= the longest word)


class MergeTable:
    """The merges as sorted int64 pair keys (left id << 32 | right id) -> rank, and rank -> merged id."""

    def __init__(self, pair_rank: dict[int, int], merge_new: list[int]) -> None:
        keys = np.fromiter(pair_rank.keys(), dtype=np.int64, count=len(pair_rank))
        ranks = np.fromiter(pair_rank.values(), dtype=np.int64, count=len(pair_rank))
        order = np.argsort(keys)
        self.keys, self.ranks = keys[order], ranks[order]
        self.new = np.asarray(merge_new, dtype=np.int64)
        self.never = len(merge_new)  # the rank of a pair that is not a merge

    def rank(self, pairs: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.full(len(pairs), self.never, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, pairs), len(self.keys) - 1)
        return np.where(self.keys[at] == pairs, self.ranks[at], self.never)


def merge_words(table: MergeTable, byte_ids: np.ndarray, words: list[bytes]) -> dict[int, list[int]]:
    """Each word's bytes (non-empty, at most MAX_BYTES) -> {index in `words`: its ids after every merge}.
    byte_ids: (256,) the id of each byte (negative for a byte the vocabulary lacks: it never merges).

    `ranks[j]` is the rank of the pair at positions (j, j + 1) of the concatenated words (never at a word's
    last position); after each round only the two pairs around every merged token are looked up again."""
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    tok = byte_ids[np.frombuffer(b"".join(words), dtype=np.uint8)].astype(np.int64)
    never = table.never
    ranks = np.full(len(tok), never, dtype=np.int64)
    if len(tok) > 1:
        ranks[:-1] = table.rank((tok[:-1] << 32) | tok[1:])  # a negative id makes a key no merge has
    ranks[np.cumsum(lengths) - 1] = never  # no pair across the end of a word
    which = np.arange(len(words))  # the word each live length belongs to
    out: dict[int, list[int]] = {}
    while len(which):
        best = np.minimum.reduceat(ranks, np.cumsum(lengths) - lengths)  # per word
        done = best == never
        if done.any():
            _collect(out, tok, lengths, which, done)
            live = np.repeat(~done, lengths)
            tok, ranks = tok[live], ranks[live]
            lengths, best, which = lengths[~done], best[~done], which[~done]
            if not len(which):
                break
        owner = np.repeat(np.arange(len(which)), lengths)
        hits = np.flatnonzero(ranks == best[owner])
        first = hits[np.concatenate(([True], owner[hits[1:]] != owner[hits[:-1]]))]  # leftmost per word
        tok[first] = table.new[ranks[first]]
        keep = np.ones(len(tok), dtype=bool)
        keep[first + 1] = False
        tok, ranks = tok[keep], ranks[keep]
        lengths = lengths - 1
        merged = first - np.arange(len(first))  # one position removed per earlier word
        ends = np.cumsum(lengths)
        inside = merged < ends - 1  # the merged token has a right neighbour in its word
        right = merged[inside]
        ranks[merged[~inside]] = never
        ranks[right] = table.rank((tok[right] << 32) | tok[right + 1])
        left = merged[merged > ends - lengths] - 1  # and a left one
        ranks[left] = table.rank((tok[left] << 32) | tok[left + 1])
    return out


def _collect(out: dict, tok: np.ndarray, lengths: np.ndarray, which: np.ndarray, done: np.ndarray) -> None:
    """Store the finished words' ids (as Python lists) in `out`, every step in C."""
    flat = tok[np.repeat(done, lengths)].tolist()
    ends = np.cumsum(lengths[done])
    out.update(zip(which[done].tolist(), map(flat.__getitem__, map(slice, (ends - lengths[done]).tolist(), ends.tolist()))))
