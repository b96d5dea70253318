"""What every tokenizer.json model shares (a vocabulary, `tokenize(word)` -> tokens with character offsets
in the word), and the two models that look words up whole or greedily: WordLevel and WordPiece.

Not BPE (models_bpe.py) or Unigram (models_unigram.py), and not BERT's fast path (wordpiece.py).
"""
from __future__ import annotations

from typing import Any

from taesan.errors import TaesanError

Token = tuple  # (id, token string, start, end): offsets are characters of the word

CACHE_LIMIT = 250_000


def byte_tokens(text: str, vocab: dict[str, int], start: int, end: int) -> list[Token] | None:
    """Byte fallback: one <0xNN> token per UTF-8 byte of `text`, each spanning start..end; None when the
    vocabulary lacks one of them (the caller falls back to its unknown token).

    byte_tokens("가", vocab, 0, 1) -> [(id, "<0xEA>", 0, 1), (id, "<0xB0>", 0, 1), (id, "<0x80>", 0, 1)]
    """
    codes = [f"<0x{b:02X}>" for b in text.encode("utf-8", "surrogatepass")]
    ids = [vocab.get(c) for c in codes]
    return None if None in ids else [(i, c, start, end) for i, c in zip(ids, codes)]


def read_vocab(vocab: Any, kind: str) -> dict[str, int]:
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise TaesanError(f"tokenizer.json: the {kind} model's vocab must map tokens to integer ids")
    return dict(vocab)


class Model:
    """Base: a vocabulary (token -> id) and its inverse; `tokenize(word)` -> [(id, token, start, end)]."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self.inverse = {i: t for t, i in vocab.items()}

    def tokenize(self, word: str) -> list[Token]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def ordered_vocab(self) -> dict[str, int]:
        return dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))


class WordLevel(Model):
    """A word is one token, or the unknown token."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]") -> None:
        super().__init__(vocab)
        self.unk_token = unk_token

    def tokenize(self, word: str) -> list[Token]:
        idx = self.vocab.get(word)
        if idx is not None:
            return [(idx, word, 0, len(word))]
        unk = self.vocab.get(self.unk_token)
        if unk is None:
            raise TaesanError(f"{word!r} is not in the WordLevel vocabulary and its unk_token {self.unk_token!r} is not either")
        return [(unk, self.unk_token, 0, len(word))]

    def to_json(self) -> dict[str, Any]:
        return {"type": "WordLevel", "vocab": self.ordered_vocab(), "unk_token": self.unk_token}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "WordLevel":
        return cls(read_vocab(obj.get("vocab"), "WordLevel"), str(obj.get("unk_token", "[UNK]")))


class WordPiece(Model):
    """Greedy longest-match-first: the longest vocabulary piece at the start, then the longest `##` piece at
    each next position; a word with a position nothing matches (or longer than max_input_chars_per_word)
    becomes one unknown token.

    >>> WordPiece({"un": 0, "##aff": 1, "##able": 2, "[UNK]": 3}).tokenize("unaffable")
    [(0, 'un', 0, 2), (1, '##aff', 2, 5), (2, '##able', 5, 9)]
    """

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100) -> None:
        super().__init__(vocab)
        if unk_token not in vocab:
            raise TaesanError(f"tokenizer.json: the WordPiece unk_token {unk_token!r} is not in the vocabulary")
        self.unk_token, self.prefix, self.max_input_chars_per_word = unk_token, continuing_subword_prefix, max_input_chars_per_word
        self._lengths: dict[str, tuple[int, ...]] = {}  # first character -> piece lengths to try, longest first
        lengths: dict[str, set[int]] = {}
        for t in vocab:
            if t:
                lengths.setdefault(t[0], set()).add(len(t))
        self._lengths = {c: tuple(sorted(v, reverse=True)) for c, v in lengths.items()}
        self._cache: dict[str, list[Token]] = {}

    def _unk(self, word: str) -> list[Token]:
        return [(self.vocab[self.unk_token], self.unk_token, 0, len(word))]

    def tokenize(self, word: str) -> list[Token]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        out = self._greedy(word)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = out
        return out

    def _greedy(self, word: str) -> list[Token]:
        n = len(word)
        if n > self.max_input_chars_per_word:
            return self._unk(word)
        vocab, prefix, out, s = self.vocab, self.prefix, [], 0
        while s < n:
            head = word[s] if s == 0 else prefix + word[s]
            found = None
            for length in self._lengths.get(head[0], ()):
                piece_len = length if s == 0 else length - len(prefix)
                if piece_len < 1 or s + piece_len > n:
                    continue
                piece = word[s : s + piece_len] if s == 0 else prefix + word[s : s + piece_len]
                idx = vocab.get(piece)
                if idx is not None:
                    found = (idx, piece, s, s + piece_len)
                    break
            if found is None:
                return self._unk(word)
            out.append(found)
            s = found[3]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": self.ordered_vocab()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "WordPiece":
        return cls(read_vocab(obj.get("vocab"), "WordPiece"), str(obj.get("unk_token", "[UNK]")),
                   str(obj.get("continuing_subword_prefix", "##")), int(obj.get("max_input_chars_per_word", 100)))
