"""WordPiece training: repeatedly merge the pair with the best likelihood score count(ab) / (count(a) * count(b)),
or (merge rule "frequency") the most frequent pair, as HuggingFace's WordPieceTrainer does (BPE merges with ##
continuations), over distinct words with their frequencies, updating pair counts incrementally (no re-counting).

Why two rules: the likelihood score favours rare pieces that always occur together, so on Korean text common
syllable pairs (영+##화, 감+##독) never merge and an 8k vocabulary stays nearly one syllable per token; the frequency
rule merges them first (issue 17: NSMC reviews 30.3 tokens each with the likelihood rule at 8k).

Not pre-tokenization or encoding (see wordpiece.py); this only turns {word: count} into a vocabulary. A "word"
that starts with the prefix (##는데요) is a unit that continues a word: every character of it starts as a
##continuation. Korean morpheme-aware training (`split_at_morphemes` in word.py) cuts each word into such units, so
no merge crosses a morpheme boundary, while the result stays a plain WordPiece vocabulary any BERT tokenizer reads.

The steps, in `learn`: the alphabet (first characters and ##continuations, most frequent first), the words
as symbol ids, the pair counts with an index of which words hold each pair, then the merge loop: pop the best
pair from a heap, merge it in every word that holds it (`merge_in_words`), and re-score the pairs whose score
may have risen (`rescore`).
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from taesan.errors import TaesanError

Pair = tuple[int, int]


def initial_symbols(word: str, prefix: str) -> list[str]:
    """[first char, ##char, ...]; a continuation unit (##는데요) is ##continuation characters only."""
    if word.startswith(prefix) and len(word) > len(prefix):
        return [prefix + ch for ch in word[len(prefix):]]
    return [word[0]] + [prefix + ch for ch in word[1:]]


def alphabet_by_frequency(words: list[str], counts: list[int], prefix: str) -> list[str]:
    """First characters and ##continuation characters, most frequent first (ties alphabetical)."""
    freq: dict[str, int] = defaultdict(int)
    for w, c in zip(words, counts):
        for s in initial_symbols(w, prefix):
            freq[s] += c
    return sorted(freq, key=lambda s: (-freq[s], s))


@dataclass
class Symbols:
    """Symbol strings <-> ids (the alphabet first, merged symbols after)."""

    names: list[str] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def intern(self, s: str) -> int:
        i = self.ids.get(s)
        if i is None:
            i = self.ids[s] = len(self.names)
            self.names.append(s)
        return i


def words_as_symbols(words: list[str], counts: list[int], symbols: Symbols, prefix: str) -> tuple[list[list[int]], list[int]]:
    """Each word as [first char, ##char, ...] ids with its count; a word with a character outside the
    alphabet cannot be built and is left out."""
    seqs, freqs = [], []
    for w, c in zip(words, counts):
        try:
            seqs.append([symbols.ids[s] for s in initial_symbols(w, prefix)])
        except KeyError:
            continue
        freqs.append(c)
    return seqs, freqs


@dataclass
class PairCounts:
    """How often each symbol and each adjacent pair occurs (weighted by word counts), which words hold each
    pair (may list a word twice or after the pair left it: harmless), and each symbol's pairs."""

    token: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    pair: dict[Pair, int] = field(default_factory=lambda: defaultdict(int))
    words_with: dict[Pair, list[int]] = field(default_factory=lambda: defaultdict(list))
    pairs_of: dict[int, set[Pair]] = field(default_factory=lambda: defaultdict(set))
    rule: str = "likelihood"  # or "frequency": see the module docstring

    def add_pair(self, p: Pair, count: int, word: int) -> None:
        if p not in self.pair:
            self.pairs_of[p[0]].add(p)
            self.pairs_of[p[1]].add(p)
        self.pair[p] += count
        self.words_with[p].append(word)

    def forget(self, p: Pair) -> None:
        self.pair.pop(p, None)
        self.pairs_of[p[0]].discard(p)
        self.pairs_of[p[1]].discard(p)

    def score(self, p: Pair, count: int) -> float:
        if self.rule == "frequency":
            return float(count)
        return count / (self.token[p[0]] * self.token[p[1]])


MERGE_RULES = ("likelihood", "frequency")


def count_pairs(seqs: list[list[int]], freqs: list[int], rule: str = "likelihood") -> PairCounts:
    counts = PairCounts(rule=rule)
    for wi, (seq, c) in enumerate(zip(seqs, freqs)):
        for s in seq:
            counts.token[s] += c
        for p in zip(seq, seq[1:]):
            counts.add_pair(p, c, wi)
    return counts


def merge_in_words(seqs: list[list[int]], freqs: list[int], counts: PairCounts, a: int, b: int, new: int) -> set[Pair]:
    """Replace every (a, b) by `new` in the words that hold it, moving their counts; -> the pairs touched."""
    changed: set[Pair] = set()
    for wi in set(counts.words_with[(a, b)]):
        seq = seqs[wi]
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
        c = freqs[wi]
        for q in zip(seq, seq[1:]):
            counts.pair[q] -= c
            changed.add(q)
        for t in seq:
            counts.token[t] -= c
        for t in out:
            counts.token[t] += c
        for q in zip(out, out[1:]):
            counts.add_pair(q, c, wi)
            changed.add(q)
        seqs[wi] = out
    return changed


def rescore(counts: PairCounts, heap: list, pushed: dict[Pair, float], pairs: set[Pair], min_frequency: int) -> None:
    """Push each pair whose score rose above what the heap already holds; forget the ones that vanished."""
    for q in pairs:
        cq = counts.pair.get(q, 0)
        if cq <= 0:
            counts.forget(q)
            pushed.pop(q, None)
            continue
        if cq < min_frequency:
            continue
        sq = counts.score(q, cq)
        if sq > pushed.get(q, -1.0):
            heapq.heappush(heap, (-sq, -cq, q[0], q[1]))
            pushed[q] = sq


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
    merge_rule: str = "likelihood",
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """{word: count} -> (vocab, merges in order).

    Words start as [first char, ##char, ##char, ...]. Each step merges the pair (a, b) with the highest
    score = count(ab) / (count(a) * count(b)) among pairs seen at least `min_frequency` times; ties go to the
    more frequent pair, then to the earlier-created tokens. A pair of rare pieces that always occur together
    beats a frequent pair of common pieces: that is the likelihood criterion, and what makes it differ from BPE.
    merge_rule "frequency": score = count(ab), BPE's criterion (HuggingFace's WordPieceTrainer).

    The heap holds, for every live pair, at least one entry whose score is >= its true score: a popped entry
    whose score is stale is re-pushed with the true one, and after each merge every pair whose score may have
    risen (it contains a, b or the new token) is re-pushed when it rose above what the heap already holds.
    """
    vocab: dict[str, int] = {}
    for t in special_tokens:
        vocab.setdefault(t, len(vocab))
    words = [w for w, c in counts.items() if 0 < len(w) <= max_input_chars_per_word and c > 0]
    wcount = [counts[w] for w in words]

    room = vocab_size - len(vocab)
    if limit_alphabet is not None:
        room = min(room, limit_alphabet)
    alphabet = alphabet_by_frequency(words, wcount, prefix)[: max(room, 0)]
    symbols = Symbols()
    for s in alphabet:
        vocab.setdefault(s, len(vocab))
        symbols.intern(s)
    seqs, freqs = words_as_symbols(words, wcount, symbols, prefix)
    if merge_rule not in MERGE_RULES:
        raise TaesanError(f"WordPiece merge rule {merge_rule!r}: choose {' or '.join(MERGE_RULES)}")
    pairs = count_pairs(seqs, freqs, merge_rule)

    heap: list[tuple[float, int, int, int]] = []
    pushed: dict[Pair, float] = {}
    for p, c in pairs.pair.items():
        if c >= min_frequency:
            heap.append((-pairs.score(p, c), -c, p[0], p[1]))
            pushed[p] = pairs.score(p, c)
    heapq.heapify(heap)

    bar = None
    if progress and vocab_size > len(vocab):
        from tqdm import tqdm  # only for the progress bar

        bar = tqdm(total=max(vocab_size - len(vocab), 0), desc="wordpiece merges", unit="merge")
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size and heap:
        neg_s, neg_c, a, b = heapq.heappop(heap)
        p = (a, b)
        c = pairs.pair.get(p, 0)
        if c < min_frequency:
            pushed.pop(p, None)
            continue
        s = pairs.score(p, c)
        if s != -neg_s or c != -neg_c:  # stale: re-queue with the true score
            heapq.heappush(heap, (-s, -c, a, b))
            pushed[p] = s
            continue
        na, nb = symbols.names[a], symbols.names[b]
        new_name = na + (nb[len(prefix):] if nb.startswith(prefix) else nb)
        new = symbols.intern(new_name)
        changed = merge_in_words(seqs, freqs, pairs, a, b, new)
        del pairs.words_with[p]
        pairs.forget(p)
        pushed.pop(p, None)
        changed.discard(p)
        for t in (a, b, new):
            changed |= pairs.pairs_of[t]
        rescore(pairs, heap, pushed, changed, min_frequency)
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
