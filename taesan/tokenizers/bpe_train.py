"""Learning BPE merges from word counts: the incremental pair-count algorithm (pair -> count, pair -> words,
a max-heap with lazy updates), so each merge only touches the words that contain the merged pair.

Not the tokenizer (bpe.py wraps this with bytes, vocabularies and files) and not a pre-tokenizer.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from itertools import repeat
from operator import add, lshift
from typing import Callable

SHIFT = 32  # a pair (a, b) of symbol ids is kept as one int a << SHIFT | b: cheaper to hash than a tuple
LOW = (1 << SHIFT) - 1


def learn_merges(
    words: list[list[int]],
    counts: list[int],
    next_id: int,
    num_merges: int,
    min_frequency: int = 2,
    on_merge: Callable[[int, int, int, int], None] | None = None,
) -> list[tuple[int, int]]:
    """Learn up to `num_merges` merges over distinct `words` (symbol-id lists, changed in place) seen `counts` times.

    Each step merges the most frequent adjacent pair (occurrences counted with the word frequencies);
    ties go to the pair of older symbols, i.e. the smallest (left id, right id). The new symbol gets
    `next_id`, then `next_id + 1`, ... Stops early when no pair is seen `min_frequency` times.
    `on_merge(left, right, new, count)` is called after each merge, in order.

    >>> words = [[0, 0, 0, 1, 3, 0, 0, 0, 1, 0, 2]]            # a a a b d a a a b a c
    >>> learn_merges(words, [1], next_id=4, num_merges=3, min_frequency=1)
    [(0, 0), (0, 1), (4, 5)]
    >>> words[0]                                               # X d X a c
    [6, 3, 6, 0, 2]
    """
    stats: dict[int, int] = defaultdict(int)
    where: dict[int, list[int]] = defaultdict(list)  # may list a word twice or after the pair left it: harmless
    for wi, w in enumerate(words):
        c = counts[wi]
        for k in map(add, map(lshift, w, repeat(SHIFT)), w[1:]):
            stats[k] += c
            where[k].append(wi)
    heap = [(-c, k) for k, c in stats.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges and heap:
        neg, k = heapq.heappop(heap)
        c = stats.get(k, 0)
        if c != -neg:  # stale entry: counts only ever fall for old pairs, so re-queue with the true count
            if c > 0:
                heapq.heappush(heap, (-c, k))
            continue
        if c < min_frequency:
            break
        a, b, new = k >> SHIFT, k & LOW, next_id
        next_id += 1
        merges.append((a, b))
        touched = _apply_merge(words, counts, stats, where, a, b, new, where.pop(k, ()))
        stats.pop(k, None)
        for t in touched:
            tc = stats[t]
            if tc > 0:
                heapq.heappush(heap, (-tc, t))
        if on_merge is not None:
            on_merge(a, b, new, c)
    return merges


def _apply_merge(words, counts, stats, where, a: int, b: int, new: int, word_ids) -> set[int]:
    """Merge (a, b) -> new inside the listed words (in place), updating only the pair counts around each
    merge site: (left, a) and (b, right) give way to (left, new) and (new, right). Returns the pairs that grew.

    Scanning left to right, `left` is already the merged symbol when two sites touch ("a b a b"), so the
    counts always describe the partly merged word.
    """
    touched: set[int] = set()
    new_hi = new << SHIFT
    for wi in word_ids:
        w = words[wi]
        found = w.count(a)
        if not found:
            continue  # stale index entry: the pair left this word in an earlier merge
        c = counts[wi]
        i = 0
        for _ in range(found):
            try:
                i = w.index(a, i)
            except ValueError:  # a == b: each merge used up two of the counted a's
                break
            if i + 1 < len(w) and w[i + 1] == b:
                if i:
                    left = w[i - 1]
                    stats[left << SHIFT | a] -= c
                    k = left << SHIFT | new
                    stats[k] += c
                    where[k].append(wi)
                    touched.add(k)
                if i + 2 < len(w):
                    right = w[i + 2]
                    stats[b << SHIFT | right] -= c
                    k = new_hi | right
                    stats[k] += c
                    where[k].append(wi)
                    touched.add(k)
                w[i] = new
                del w[i + 1]
            i += 1
            if i >= len(w):
                break
    return touched
