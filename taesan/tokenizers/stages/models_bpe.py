"""The BPE model of tokenizer.json on any pre-tokenizer: characters (with continuing_subword_prefix on all but
the first and end_of_word_suffix on the last), unknown ones as <0xNN> byte tokens (byte_fallback) or the
unknown token (fused into one with fuse_unk), then merges by rank, leftmost first.

Not GPT-2's byte-level fast path (bpe.py), which load() keeps for the files it exactly matches.
"""
from __future__ import annotations

import heapq
from typing import Any, Iterable

from taesan.errors import TaesanError
from taesan.tokenizers.stages.models_words import Model, Token, byte_tokens, read_vocab

CACHE_LIMIT = 250_000


class BPE(Model):
    """vocab: token -> id; merges: pairs in priority order. A pair listed twice keeps its last rank, as the
    library's merge map does."""

    def __init__(self, vocab: dict[str, int], merges: Iterable[tuple[str, str]], unk_token: str | None = None,
                 continuing_subword_prefix: str | None = None, end_of_word_suffix: str | None = None,
                 fuse_unk: bool = False, byte_fallback: bool = False, ignore_merges: bool = False,
                 dropout: float | None = None) -> None:
        super().__init__(vocab)
        if dropout not in (None, 0, 0.0):
            raise TaesanError(f"tokenizer.json: BPE dropout={dropout} is random at encode time; taesan encodes "
                              f"deterministically (set it to null)")
        self.merges = [tuple(m) for m in merges]
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix or None
        self.suffix = end_of_word_suffix or None
        self.fuse_unk, self.byte_fallback, self.ignore_merges = fuse_unk, byte_fallback, ignore_merges
        cut = len(self.prefix) if self.prefix else 0
        self.pair_rank: dict[tuple[int, int], tuple[int, int]] = {}
        for r, (a, b) in enumerate(self.merges):
            new = a + b[cut:]
            for t in (a, b, new):
                if t not in self.vocab:
                    raise TaesanError(f"tokenizer.json: BPE merge {r} ({a!r} {b!r}) uses or makes {t!r}, "
                                      f"which is not in the vocabulary")
            self.pair_rank[self.vocab[a], self.vocab[b]] = (r, self.vocab[new])
        self._cache: dict[str, list[Token]] = {}

    def tokenize(self, word: str) -> list[Token]:
        if not word:
            return []
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        if self.ignore_merges and word in self.vocab:
            out = [(self.vocab[word], word, 0, len(word))]
        else:
            out = [(i, self.inverse[i], s, e) for i, s, e in self.merge(self.symbols(word))]
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = out
        return out

    def symbols(self, word: str) -> list[list[int]]:
        """The word's starting symbols [id, start, end] (character offsets), before any merge."""
        vocab, out = self.vocab, []
        unk: list[int] | None = None
        last = len(word) - 1
        for i, c in enumerate(word):
            s = c
            if self.prefix and i > 0:
                s = self.prefix + s
            if self.suffix and i == last:
                s = s + self.suffix
            idx = vocab.get(s)
            if idx is not None:
                if unk is not None:
                    out.append(unk)
                    unk = None
                out.append([idx, i, i + 1])
                continue
            fallback = byte_tokens(s, vocab, i, i + 1) if self.byte_fallback else None
            if fallback is not None:  # (a pending unknown waits for the next known symbol, as in the library)
                out.extend([b, i, i + 1] for b, _, _, _ in fallback)
                continue
            if self.unk_token is not None:
                if self.unk_token not in vocab:
                    raise TaesanError(f"tokenizer.json: BPE unk_token {self.unk_token!r} is not in the vocabulary")
                if unk is not None and self.fuse_unk:
                    unk[2] = i + 1
                else:
                    if unk is not None:
                        out.append(unk)
                    unk = [vocab[self.unk_token], i, i + 1]
        if unk is not None:
            out.append(unk)
        return out

    def merge(self, symbols: list[list[int]]) -> list[list[int]]:
        """Apply the merges: repeatedly the lowest-ranked adjacent pair, the leftmost on a tie."""
        n = len(symbols)
        if n < 2:
            return symbols
        get = self.pair_rank.get
        ids = [s[0] for s in symbols]
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []
        for i in range(n - 1):
            m = get((ids[i], ids[i + 1]))
            if m is not None:
                heap.append((m[0], i, m[1]))
        heapq.heapify(heap)
        while heap:
            rank, i, new = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j >= n:
                continue
            m = get((ids[i], ids[j]))
            if m is None or m[1] != new:
                continue  # stale: a neighbour changed since this entry was pushed
            ids[i] = new
            symbols[i][0] = new
            symbols[i][2] = symbols[j][2]
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[i] < n:
                prv[nxt[i]] = i
                m = get((new, ids[nxt[i]]))
                if m is not None:
                    heapq.heappush(heap, (m[0], i, m[1]))
            if prv[i] >= 0:
                m = get((ids[prv[i]], new))
                if m is not None:
                    heapq.heappush(heap, (m[0], prv[i], m[1]))
        return [s for s, a in zip(symbols, alive) if a]

    def to_json(self) -> dict[str, Any]:
        return {"type": "BPE", "dropout": None, "unk_token": self.unk_token,
                "continuing_subword_prefix": self.prefix, "end_of_word_suffix": self.suffix,
                "fuse_unk": self.fuse_unk, "byte_fallback": self.byte_fallback, "ignore_merges": self.ignore_merges,
                "vocab": self.ordered_vocab(), "merges": [[a, b] for a, b in self.merges]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "BPE":
        vocab = read_vocab(obj.get("vocab"), "BPE")
        merges = []
        for i, m in enumerate(obj.get("merges") or []):
            pair = m.split(" ") if isinstance(m, str) else m
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
                raise TaesanError(f"tokenizer.json: model.merges[{i}] must be 'a b' or ['a', 'b'], got {m!r:.60}")
            merges.append((pair[0], pair[1]))
        return cls(vocab, merges, obj.get("unk_token"), obj.get("continuing_subword_prefix"),
                   obj.get("end_of_word_suffix"), bool(obj.get("fuse_unk", False)), bool(obj.get("byte_fallback", False)),
                   bool(obj.get("ignore_merges", False)), obj.get("dropout"))
