"""Character tokenizer: one token per character (Korean syllables, letters, digits, symbols, and the space
and newline themselves), so decode(encode(x)) == x whenever every character of x is in the vocabulary.

Not a subword model: a character outside the vocabulary becomes [UNK], nothing is merged.
"""
from __future__ import annotations

from typing import Any, Iterable

from taesan.errors import TaesanError
from taesan.tokenizers.base import BERT_SPECIALS, Piece, Tokenizer
from taesan.tokenizers.corpus import count_words
from taesan.tokenizers.hf_json import hf_json, read_model, read_specials_and_template
from taesan.tokenizers.word import default_template, keep_unk_decode

# HF's equivalent pre-tokenizer: isolate every character (Oniguruma has no (?s) flag, so [\s\S]).
_HF_SPLIT = {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False}


class CharTokenizer(Tokenizer):
    """Every character is a token; word_ids count whitespace-separated words, whitespace itself gets None."""

    kind = "char"

    def __init__(self, vocab: dict[str, int], special_tokens: Iterable[str] | None = None, unk_token: str = "[UNK]",
                 template: dict[str, list[str]] | None = None) -> None:
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIALS if t in vocab]
        super().__init__(vocab, special_tokens, template)
        if unk_token not in self.vocab:
            raise TaesanError(f"the unknown token {unk_token!r} is not in the character vocabulary")
        self.unk_token = unk_token

    def tokenize(self, text: str) -> list[Piece]:
        unk, vocab = self.vocab[self.unk_token], self.vocab
        new = tuple.__new__
        out: list[Piece] = []
        word, in_word = -1, False
        for i, c in enumerate(text):
            if c.isspace():
                in_word = False
                idx = vocab.get(c)  # a tab or newline the corpus never held is [UNK], its token too (as HF names it)
                out.append(new(Piece, (c if idx is not None else self.unk_token, unk if idx is None else idx, i, i + 1, None)))
                continue
            if not in_word:
                word, in_word = word + 1, True
            idx = vocab.get(c)
            out.append(new(Piece, (c if idx is not None else self.unk_token, unk if idx is None else idx, i, i + 1, word)))
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Characters concatenated; special tokens dropped when asked, but [UNK] is kept so loss is visible."""
        return "".join(keep_unk_decode(self, ids, skip_special_tokens))

    @classmethod
    def train(cls, data: Any, vocab_size: int, min_frequency: int = 1, special_tokens: Iterable[str] | None = None,
              workers: int | None = None, **kwargs: Any) -> "CharTokenizer":
        """Keep the `vocab_size` most frequent characters seen at least `min_frequency` times; the space and
        newline are always kept so that text round-trips."""
        specials = list(BERT_SPECIALS if special_tokens is None else special_tokens)
        if "[UNK]" not in specials:
            specials.append("[UNK]")
        counts = count_words(data, list, workers=workers)
        vocab: dict[str, int] = {}
        for t in specials + [" ", "\n"]:
            vocab.setdefault(t, len(vocab))
        for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if len(vocab) >= vocab_size or n < min_frequency:
                break
            vocab.setdefault(c, len(vocab))
        return cls(vocab, specials, template=default_template(specials))

    def to_hf_json(self) -> dict[str, Any]:
        return hf_json(self, normalizer=None, pre_tokenizer=_HF_SPLIT,
                       model={"type": "WordLevel", "vocab": self.vocab, "unk_token": self.unk_token}, decoder={"type": "Fuse"})

    @classmethod
    def from_hf_json(cls, data: dict[str, Any]) -> "CharTokenizer":
        model = read_model(data, "WordLevel")
        specials, template = read_specials_and_template(data)
        return cls(model["vocab"], specials, unk_token=model.get("unk_token", "[UNK]"), template=template)
