"""WordPiece training: repeatedly merge the pair with the best likelihood score count(ab) / (count(a) * count(b)),
over distinct words with their frequencies, updating pair counts incrementally (no re-counting).

Not pre-tokenization or encoding (see wordpiece.py); this only turns {word: count} into a vocabulary.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Callable, Iterable


def learn(
    counts: dict[str, int],
    vocab_size: int,
    min_frequency: int = 2,
    special_tokens: Iterable[str] = (),
    limit_alphabet: int | None = None,
    max_input_chars_per_word: int = 100,
    on_merge: Callable[[int, tuple[str, str], str, float, int], None] | None = None,
    progress: bool = False,
    prefix: str = "##",
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """{word: count} -> (vocab, merges in order).

    Words start as [first char, ##char, ##char, ...]. Each step merges the pair (a, b) with the highest
    score = count(ab) / (count(a) * count(b)) among pairs seen at least `min_frequency` times; ties go to the
    more frequent pair, then to the earlier-created tokens. A pair of rare pieces that always occur together
    beats a frequent pair of common pieces: that is the likelihood criterion, and what makes it differ from BPE.

    The heap holds, for every live pair, at least one entry whose score is >= its true score: a popped entry
    whose score is stale is re-pushed with the true one, and after each merge every pair whose score may have
    risen (it contains a, b or the new token) is re-pushed when it rose above what the heap already holds.
    """
    vocab: dict[str, int] = {}
    for t in special_tokens:
        vocab.setdefault(t, len(vocab))
    words = [w for w, c in counts.items() if 0 < len(w) <= max_input_chars_per_word and c > 0]
    wcount = [counts[w] for w in words]

    # alphabet: first characters and ##continuations, most frequent first
    sym_freq: dict[str, int] = defaultdict(int)
    for w, c in zip(words, wcount):
        sym_freq[w[0]] += c
        for ch in w[1:]:
            sym_freq[prefix + ch] += c
    alphabet = sorted(sym_freq, key=lambda s: (-sym_freq[s], s))
    room = vocab_size - len(vocab)
    if limit_alphabet is not None:
        room = min(room, limit_alphabet)
    alphabet = alphabet[: max(room, 0)]
    for s in alphabet:
        vocab.setdefault(s, len(vocab))

    # symbols as ints; a word containing a dropped character cannot be built and is left out
    sid: dict[str, int] = {}
    names: list[str] = []

    def intern(s: str) -> int:
        i = sid.get(s)
        if i is None:
            i = sid[s] = len(names)
            names.append(s)
        return i

    for s in alphabet:
        intern(s)
    seqs: list[list[int]] = []
    freqs: list[int] = []
    first = {s: i for s, i in sid.items() if not s.startswith(prefix)}
    cont = {s[len(prefix):]: i for s, i in sid.items() if s.startswith(prefix)}
    for w, c in zip(words, wcount):
        try:
            seqs.append([first[w[0]]] + [cont[ch] for ch in w[1:]])
        except KeyError:
            continue
        freqs.append(c)

    tok_count: dict[int, int] = defaultdict(int)
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    pair_words: dict[tuple[int, int], list[int]] = defaultdict(list)
    by_token: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for wi, (seq, c) in enumerate(zip(seqs, freqs)):
        for s in seq:
            tok_count[s] += c
        for p in zip(seq, seq[1:]):
            if p not in pair_count:
                by_token[p[0]].add(p)
                by_token[p[1]].add(p)
            pair_count[p] += c
            pair_words[p].append(wi)

    def score(p: tuple[int, int], c: int) -> float:
        return c / (tok_count[p[0]] * tok_count[p[1]])

    heap: list[tuple[float, int, int, int]] = []
    pushed: dict[tuple[int, int], float] = {}
    for p, c in pair_count.items():
        if c >= min_frequency:
            s = score(p, c)
            heap.append((-s, -c, p[0], p[1]))
            pushed[p] = s
    heapq.heapify(heap)

    bar = None
    if progress and vocab_size > len(vocab):
        from tqdm import tqdm

        bar = tqdm(total=max(vocab_size - len(vocab), 0), desc="wordpiece merges", unit="merge")
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size and heap:
        neg_s, neg_c, a, b = heapq.heappop(heap)
        p = (a, b)
        c = pair_count.get(p, 0)
        if c < min_frequency:
            pushed.pop(p, None)
            continue
        s = score(p, c)
        if s != -neg_s or c != -neg_c:
            heapq.heappush(heap, (-s, -c, a, b))
            pushed[p] = s
            continue
        na, nb = names[a], names[b]
        new_name = na + (nb[len(prefix):] if nb.startswith(prefix) else nb)
        new = intern(new_name)
        changed: set[tuple[int, int]] = set()
        for wi in set(pair_words[p]):
            seq = seqs[wi]
            if len(seq) < 2:
                continue
            out, i, n, hit = [], 0, len(seq), False
            while i < n:
                if i + 1 < n and seq[i] == a and seq[i + 1] == b:
                    out.append(new)
                    i += 2
                    hit = True
                else:
                    out.append(seq[i])
                    i += 1
            if not hit:
                continue
            c_w = freqs[wi]
            for q in zip(seq, seq[1:]):
                pair_count[q] -= c_w
                changed.add(q)
            for t in seq:
                tok_count[t] -= c_w
            for t in out:
                tok_count[t] += c_w
            for q in zip(out, out[1:]):
                if q not in pair_count:
                    by_token[q[0]].add(q)
                    by_token[q[1]].add(q)
                pair_count[q] += c_w
                pair_words[q].append(wi)
                changed.add(q)
            seqs[wi] = out
        del pair_words[p]
        pair_count.pop(p, None)
        pushed.pop(p, None)
        by_token[a].discard(p)
        by_token[b].discard(p)
        changed.discard(p)
        for t in (a, b, new):
            changed |= by_token[t]
        for q in changed:
            cq = pair_count.get(q, 0)
            if cq <= 0:
                pair_count.pop(q, None)
                pushed.pop(q, None)
                by_token[q[0]].discard(q)
                by_token[q[1]].discard(q)
                continue
            if cq < min_frequency:
                continue
            sq = score(q, cq)
            if sq > pushed.get(q, -1.0):
                heapq.heappush(heap, (-sq, -cq, q[0], q[1]))
                pushed[q] = sq
        merges.append((na, nb))
        if new_name not in vocab:
            vocab[new_name] = len(vocab)
            if bar is not None:
                bar.update(1)
        if on_merge is not None:
            on_merge(len(merges), (na, nb), new_name, s, c)
    if bar is not None:
        bar.close()
    return vocab, merges
