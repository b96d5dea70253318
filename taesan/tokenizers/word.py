"""Word-level tokenizers: WordTokenizer (runs of letters/digits, and runs of other symbols, as in HF's
`Whitespace` pre-tokenizer) and MorphemeTokenizer (Korean morphemes via kiwipiepy: 갔었는데요 -> 갔었 + ##는데요).

Not subword models: a word (or morpheme unit) outside the vocabulary is [UNK] as a whole.

What decode promises: WordTokenizer gives the tokens joined by single spaces, so decode(encode(x)) equals x
with its words separated by one space ("안녕, 세계!" -> "안녕 , 세계 !"). MorphemeTokenizer glues `##` units to
the previous one, so it gives back the words of x separated by single spaces. [UNK] stays visible.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterable

import regex

from taesan.errors import TaesanError
from taesan.tokenizers.base import BERT_SPECIALS, Piece, Tokenizer, as_ids
from taesan.tokenizers.corpus import count_words, iter_texts
from taesan.tokenizers.hf_json import hf_json, read_model, read_specials_and_template

WORD_RE = regex.compile(r"\w+|[^\w\s]+")


def default_template(specials: list[str]) -> dict[str, list[str]] | None:
    """BERT's [CLS] a [SEP] b [SEP] when both tokens are among the specials, else no template."""
    if "[CLS]" in specials and "[SEP]" in specials:
        return {"single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]}
    return None


def keep_unk_decode(tok: Tokenizer, ids: Iterable[int], skip_special_tokens: bool) -> list[str]:
    """Ids -> tokens, dropping special tokens when asked except the unknown token."""
    skip = {tok.vocab[t] for t in tok.special_tokens if t != getattr(tok, "unk_token", None)} if skip_special_tokens else set()
    out = []
    for i in as_ids(ids):
        t = tok.inverse.get(i)
        if t is None:
            raise TaesanError(f"id {i} is not in the vocabulary (size {tok.vocab_size})")
        if i not in skip:
            out.append(t)
    return out


def _findall(pattern: regex.Pattern, text: str) -> list[str]:
    return pattern.findall(text)


def vocab_by_frequency(counts: dict[str, int], vocab_size: int, min_frequency: int, specials: list[str]) -> dict[str, int]:
    """Specials first, then the most frequent entries (ties alphabetical) seen at least min_frequency times."""
    vocab: dict[str, int] = {}
    for t in specials:
        vocab.setdefault(t, len(vocab))
    for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size or n < min_frequency:
            break
        vocab.setdefault(w, len(vocab))
    return vocab


class WordTokenizer(Tokenizer):
    """Split into runs of word characters and runs of other non-space characters ("갔었어?!" -> 갔었어, ?!)."""

    kind = "word"

    def __init__(self, vocab: dict[str, int], special_tokens: Iterable[str] | None = None, unk_token: str = "[UNK]",
                 template: dict[str, list[str]] | None = None) -> None:
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIALS if t in vocab]
        super().__init__(vocab, special_tokens, template)
        if unk_token not in self.vocab:
            raise TaesanError(f"the unknown token {unk_token!r} is not in the {self.kind} vocabulary")
        self.unk_token = unk_token

    def units(self, text: str) -> list[tuple[str, int, int]]:
        """(surface, start, end) of each word in `text`."""
        return [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(text)]

    def tokenize(self, text: str) -> list[Piece]:
        unk = self.vocab[self.unk_token]
        out = []
        for w, (u, s, e) in enumerate(self.units(text)):
            idx = self.vocab.get(u)
            out.append(Piece(u if idx is not None else self.unk_token, unk if idx is None else idx, s, e, w))
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return " ".join(keep_unk_decode(self, ids, skip_special_tokens))

    @classmethod
    def count(cls, data: Any, workers: int | None = None) -> dict[str, int]:
        return count_words(data, partial(_findall, WORD_RE), workers=workers)

    @classmethod
    def train(cls, data: Any, vocab_size: int, min_frequency: int = 2, special_tokens: Iterable[str] | None = None,
              workers: int | None = None, **kwargs: Any) -> "WordTokenizer":
        """Keep the `vocab_size` most frequent words (after the special tokens)."""
        specials = list(BERT_SPECIALS if special_tokens is None else special_tokens)
        if "[UNK]" not in specials:
            specials.append("[UNK]")
        vocab = vocab_by_frequency(cls.count(data, workers), vocab_size, min_frequency, specials)
        return cls(vocab, specials, template=default_template(specials))

    def to_hf_json(self) -> dict[str, Any]:
        return hf_json(self, normalizer=None, pre_tokenizer={"type": "Whitespace"},
                       model={"type": "WordLevel", "vocab": self.vocab, "unk_token": self.unk_token}, decoder=None)

    @classmethod
    def from_hf_json(cls, data: dict[str, Any]) -> "WordTokenizer":
        model = read_model(data, "WordLevel")
        specials, template = read_specials_and_template(data)
        return cls(model["vocab"], specials, unk_token=model.get("unk_token", "[UNK]"), template=template)


# ---- morphemes --------------------------------------------------------------------------------------
_KIWI = None
_FINAL = ("EF", "EC", "ETN", "ETM")  # endings that close a stem; pre-final EP stays with its stem
_HANGUL = regex.compile(r"\p{Hangul}")


def kiwi():
    """The shared kiwipiepy analyser (loaded once; it ships its own model)."""
    global _KIWI
    if _KIWI is None:
        try:
            from kiwipiepy import Kiwi
        except ImportError:
            raise TaesanError('the morpheme tokenizer needs kiwipiepy: pip install "taesan[korean]"') from None
        _KIWI = Kiwi()
    return _KIWI


def morpheme_units(text: str, tokens: list[Any]) -> list[tuple[str, int, int]]:
    """Kiwi morphemes -> surface units that slice `text`, never crossing whitespace.

    Morphemes whose spans overlap are one unit (가+었었 over "갔었" -> 갔었); a pre-final ending (EP) joins
    its stem; a final ending (EF/EC/ETN/ETM) starts a unit that following particles and endings join
    (는데 + 요 -> 는데요). Characters kiwi skipped become units of their own.
    """
    units: list[list[Any]] = []  # [start, end, tag_of_unit_head, last_tag]
    for t in tokens:
        s, e, tag = t.start, t.start + t.len, t.tag.split("-")[0]
        if units:
            u = units[-1]
            joins = s < u[1] or (s == u[1] and not text[s - 1 : s].isspace() and (
                tag == "EP" or (u[2] in _FINAL or u[2].startswith("J")) and (tag.startswith("E") or tag.startswith("J"))))
            if joins:
                u[1], u[3] = max(u[1], e), tag
                continue
        units.append([s, e, tag, tag])
    out, pos = [], 0
    for s, e, _, _ in units + [[len(text), len(text), "", ""]]:
        for m in regex.finditer(r"\S+", text[pos:s]):  # text kiwi did not cover
            out.append((m.group(), pos + m.start(), pos + m.end()))
        if e > s:
            out.append((text[s:e], s, e))
        pos = max(pos, e)
    return out


def split_at_morphemes(counts: dict[str, int], prefix: str = "##", progress: bool = False) -> dict[str, int]:
    """{word: count} -> {unit: count}, each word cut into its morpheme units (`morpheme_units`), the units after the
    first written prefix + unit (이순신은 -> 이순신, ##은). WordPiece training on these never merges across a
    morpheme boundary, so particles and endings stay pieces of their own (##은, ##는데요) and a name keeps its edge.

    Words are analysed out of context, once per distinct word; words without Hangul are kept whole.
    """
    words, out = [], {}
    for w, c in counts.items():
        if len(w) > 1 and _HANGUL.search(w):
            words.append(w)
        else:
            out[w] = c
    analysed = kiwi().tokenize(words)
    if progress:
        from tqdm import tqdm  # only for the progress bar

        analysed = tqdm(analysed, total=len(words), desc="morphemes", unit="word")
    for w, tokens in zip(words, analysed):
        for i, (u, _, _) in enumerate(morpheme_units(w, tokens)):
            key = u if i == 0 else prefix + u
            out[key] = out.get(key, 0) + counts[w]
    return out


def _continues(text: str, start: int) -> bool:
    return start > 0 and not text[start - 1].isspace()


class MorphemeTokenizer(WordTokenizer):
    """Korean morpheme units (kiwipiepy); a unit that continues a word is written `##unit`, as in WordPiece,
    so decode restores the words. Offsets slice the original text to the unit's surface form."""

    kind = "morpheme"

    def units(self, text: str) -> list[tuple[str, int, int]]:
        if not text.strip():
            return []
        units = morpheme_units(text, kiwi().tokenize(text))
        return [("##" + u if _continues(text, s) else u, s, e) for u, s, e in units]

    def tokenize(self, text: str) -> list[Piece]:
        unk = self.vocab[self.unk_token]
        out, word = [], -1
        for u, s, e in self.units(text):
            if not u.startswith("##"):
                word += 1
            idx = self.vocab.get(u)
            out.append(Piece(u if idx is not None else self.unk_token, unk if idx is None else idx, s, e, max(word, 0)))
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        words: list[str] = []
        for t in keep_unk_decode(self, ids, skip_special_tokens):
            if t.startswith("##") and words:
                words[-1] += t[2:]
            else:
                words.append(t)
        return " ".join(words)

    @classmethod
    def count(cls, data: Any, workers: int | None = None) -> dict[str, int]:
        """Kiwi runs its own threads over the texts, so no worker processes here."""
        from collections import Counter


        texts = [t for t in iter_texts(data) if t.strip()]
        counts: Counter = Counter()
        for text, tokens in zip(texts, kiwi().tokenize(texts)):
            counts.update("##" + u if _continues(text, s) else u for u, s, _ in morpheme_units(text, tokens))
        return counts

    def to_hf_json(self) -> dict[str, Any]:
        """WordLevel with a WordPiece decoder (that marks the morpheme kind); HF cannot run kiwi, so the file
        stores the vocabulary faithfully but HF's own split of it is by whitespace, not morphemes."""
        data = super().to_hf_json()
        data["decoder"] = {"type": "WordPiece", "prefix": "##", "cleanup": False}
        return data
