"""The Unigram model of tokenizer.json (SentencePiece's unigram LM, XLM-R, T5, ALBERT): every piece has a
log-probability; a word is cut into the pieces whose scores sum highest (Viterbi over the lattice of all
vocabulary pieces that occur in it).

Not training (the vocabulary comes from a file) and not SentencePiece's normalization (normalizers.py,
sentencepiece_model.py).

The search follows the library exactly: positions left to right, at each the pieces starting there from
shortest to longest, a candidate replaces a node's best only when strictly better (so ties keep the first).
A character no one-character piece covers is an unknown step scored min_score - 10; consecutive unknown
steps are fused into one unknown token whose string is the text itself, and with byte_fallback it becomes
<0xNN> tokens when they all exist.
"""
from __future__ import annotations

from array import array

from typing import Any

from taesan.errors import TaesanError
from taesan.tokenizers.stages.models_words import Model, Token, byte_tokens

UNK_PENALTY = 10.0
CACHE_LIMIT = 250_000


class Unigram(Model):
    """vocab: [(piece, score)] in id order; unk_id: the unknown piece's id (None: unknown text is an error)."""

    float32_scores = False  # SentencePiece's own search keeps sums in float32 (SentencePieceUnigram)

    def __init__(self, vocab: list[tuple[str, float]], unk_id: int | None = None, byte_fallback: bool = False) -> None:
        super().__init__({})
        self.pieces = [(str(p), float(s)) for p, s in vocab]
        if not self.pieces:
            raise TaesanError("tokenizer.json: the Unigram model's vocab is empty")
        ids: dict[str, int] = {}
        for i, (p, _) in enumerate(self.pieces):
            ids[p] = i  # a piece listed twice maps to its last id, as in the library
        self.vocab = ids
        self.inverse = {i: p for i, (p, _) in enumerate(self.pieces)}
        if unk_id is not None and not 0 <= unk_id < len(self.pieces):
            raise TaesanError(f"tokenizer.json: Unigram unk_id {unk_id} is outside the vocabulary (size {len(self.pieces)})")
        self.unk_id, self.byte_fallback = unk_id, byte_fallback
        self.min_score = min((s for _, s in self.pieces), default=0.0)
        self.unk_score = self.min_score - UNK_PENALTY
        # per first character: the lengths of the pieces starting with it, shortest first
        lengths: dict[str, set[int]] = {}
        for p in ids:
            if p:
                lengths.setdefault(p[0], set()).add(len(p))
        self._lengths = {c: sorted(v) for c, v in lengths.items()}
        self._scored = {p: (i, self.pieces[i][1]) for p, i in ids.items()}  # piece -> (id, score)
        self._cache: dict[str, list[Token]] = {}

    def tokenize(self, word: str) -> list[Token]:
        if not word:
            return []
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        out = self._tokens(word, self.viterbi(word))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = out
        return out

    def viterbi(self, word: str) -> list[tuple[int, int, bool]]:
        """The best path as (start, end, is_unknown) character spans, consecutive unknowns fused."""
        n = len(word)
        if self.float32_scores:  # array("f") rounds every stored sum to float32 before it is compared
            score, cand = array("f", bytes(4 * (n + 1))), array("f", bytes(4))
        else:
            score, cand = [0.0] * (n + 1), [0.0]
        back = [-1] * (n + 1)  # start of the best piece ending here (-1: none yet)
        piece = [0] * (n + 1)  # its id (-1: unknown)
        lengths, scored, unk_score = self._lengths, self._scored.get, self.unk_score
        for i in range(n):
            base = score[i]
            single = False
            for length in lengths.get(word[i], ()):
                j = i + length
                if j > n:
                    break
                hit = scored(word[i:j])
                if hit is None:
                    continue
                idx, s = hit
                if length == 1:
                    single = True
                cand[0] = base + s
                if back[j] < 0 or cand[0] > score[j]:
                    score[j], back[j], piece[j] = cand[0], i, idx
            if not single:
                cand[0] = base + unk_score
                if back[i + 1] < 0 or cand[0] > score[i + 1]:
                    score[i + 1], back[i + 1], piece[i + 1] = cand[0], i, -1
        path: list[tuple[int, int, bool]] = []
        end = n
        while end > 0:
            start = back[end]
            unknown = piece[end] == -1 or (self.unk_id is not None and piece[end] == self.unk_id)
            if unknown and path and path[-1][2]:
                path[-1] = (start, path[-1][1], True)
            else:
                path.append((start, end, unknown))
            end = start
        path.reverse()
        return path

    def _tokens(self, word: str, path: list[tuple[int, int, bool]]) -> list[Token]:
        out: list[Token] = []
        for s, e, _ in path:
            text = word[s:e]
            idx = self.vocab.get(text)
            if idx is None:
                fallback = byte_tokens(text, self.vocab, s, e) if self.byte_fallback else None
                if fallback is not None:
                    out.extend(fallback)
                    continue
                if self.unk_id is None:
                    raise TaesanError(f"{text!r} is not in the Unigram vocabulary and it has no unk_id")
                idx = self.unk_id
            out.append((idx, text, s, e))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"type": "Unigram", "unk_id": self.unk_id, "vocab": [[p, s] for p, s in self.pieces],
                "byte_fallback": self.byte_fallback}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Unigram":
        vocab = obj.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], str)
                                                  and isinstance(v[1], (int, float)) for v in vocab):
            raise TaesanError("tokenizer.json: the Unigram model's vocab must be a list of [piece, score]")
        unk = obj.get("unk_id")
        return cls([(p, s) for p, s in vocab], None if unk is None else int(unk), bool(obj.get("byte_fallback", False)))
