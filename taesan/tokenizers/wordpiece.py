"""WordPiece (BERT): BERT's basic tokenization (cleanup, CJK and punctuation splitting, optional lowercasing
and accent stripping) then greedy longest-match-first `##` pieces; training merges by likelihood score.

Not HF's WordPiece trainer: that one merges by frequency; this one merges the pair with the highest
count(ab) / (count(a) * count(b)), as the WordPiece paper does.
"""
from __future__ import annotations

from functools import partial
from itertools import accumulate, chain, cycle, repeat
from operator import add, floordiv
from typing import Any, Callable, Iterable

import regex

from taesan.errors import TaesanError
from taesan.tokenizers import parallel
from taesan.tokenizers.base import BERT_SPECIALS, Encoding, Piece, Tokenizer, as_ids, check_batch
from taesan.tokenizers.bert_normalizer import WS_ALL, WS_KEPT, BertNormalizer
from taesan.tokenizers.corpus import count_words
from taesan.tokenizers.stages.decoders import WordPiece as WordPieceDecoder
from taesan.tokenizers.hf_json import (
    hf_json,
    read_model,
    read_specials_and_template,
    read_vocab_txt,
)
from taesan.tokenizers.wordpiece_train import learn
from taesan.util import gc_paused

BERT_TEMPLATE = {"single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]}

_CHUNK_CLEAN = regex.compile(f"[^{WS_KEPT}]+")
# ASCII punctuation (incl. $+<=>^`|~, which Unicode calls symbols) or any Unicode P* category.
_PUNCT = r"!-/:-@\[-`{-~\p{P}"
_SPLIT = regex.compile(f"[{_PUNCT}]|[^{_PUNCT}{WS_ALL}]+")
_ONE_WORD = regex.compile(f"[^{_PUNCT}{WS_ALL}]+")  # a word without punctuation (fullmatch)
CACHE_LIMIT = 250_000  # tiles cached before the cache (and the word cache) is emptied: ~150 MB when full


def _lengths_by_first_char(pieces: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """{"ab", "a", "abc", "b"} -> {"a": (3, 2, 1), "b": (1,)}: the lengths worth trying at a character."""
    lengths: dict[str, set[int]] = {}
    for p in pieces:
        if p:
            lengths.setdefault(p[0], set()).add(len(p))
    return {c: tuple(sorted(ls, reverse=True)) for c, ls in lengths.items()}


class _ChunkWords:
    """Picklable pre-tokenizer for training: a whitespace chunk -> its normalized BERT words."""

    def __init__(self, normalizer: BertNormalizer) -> None:
        self.normalizer = normalizer

    def __call__(self, chunk: str) -> list[str]:
        return _SPLIT.findall(self.normalizer.normalize(chunk)[0])


def _chunks(chunk_re: regex.Pattern, text: str) -> list[str]:
    return chunk_re.findall(text)


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer. Ids and offsets equal HF's BertTokenizerFast for the same vocab.txt and casing.

    Offsets point into the original text; `text[start:end]`, normalized, contains the token (without `##`).
    When accent stripping decomposes a Hangul syllable into jamo, a token holding part of a syllable gets
    the whole syllable's span, as in HF.
    """

    kind = "wordpiece"

    def __init__(
        self,
        vocab: dict[str, int],
        special_tokens: Iterable[str] | None = None,
        unk_token: str = "[UNK]",
        continuing_subword_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        template: dict[str, list[str]] | None = None,
    ) -> None:
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIALS if t in vocab]
        if template is None and all(t in vocab for t in ("[CLS]", "[SEP]")):
            template = BERT_TEMPLATE
        super().__init__(vocab, special_tokens, template)
        if unk_token not in self.vocab:
            raise TaesanError(f"the unknown token {unk_token!r} is not in the WordPiece vocabulary")
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self.normalizer = BertNormalizer(lowercase, strip_accents, clean_text, handle_chinese_chars)
        self._unk_id = self.vocab[unk_token]
        # a word's first piece is looked up in the whole vocabulary, the next ones as prefix + piece (here
        # without the prefix, so no string is built); per first character, the piece lengths to try, longest first
        self._continuations = {t[len(self.prefix):]: i for t, i in self.vocab.items()
                               if t.startswith(self.prefix) and len(t) > len(self.prefix)}
        self._lengths_first = _lengths_by_first_char(self.vocab)
        self._lengths_cont = _lengths_by_first_char(self._continuations)
        # tiles cover the text: leading whitespace, then each whitespace-free chunk with the whitespace after it
        self._ws = WS_KEPT if clean_text else WS_ALL
        self._tile_re = regex.compile(f"[{self._ws}]+|[^{self._ws}]+[{self._ws}]*")
        self._tile_cache: dict[str, tuple[int, ...]] = {}
        self._word_cache: dict[str, tuple[int, ...]] = {}

    # ---- encoding ------------------------------------------------------------------------------
    def wordpiece(self, word: str) -> list[tuple[str, int, int]] | None:
        """Greedy longest-match-first: "unaffable" -> [("un",0,2), ("##aff",2,5), ("##able",5,9)]; None = [UNK]."""
        cut = self._greedy_pieces(word)
        return None if cut is None else [(self.inverse[cut[k]], cut[k + 1], cut[k + 2]) for k in range(0, len(cut), 4)]

    def _greedy_pieces(self, word: str) -> tuple[int, ...] | None:
        """`wordpiece` as a flat tuple, four numbers per piece: id, start, end, 1 for the first piece else 0.
        Only the lengths of vocabulary pieces that begin with the current character are tried, longest first."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return None
        out: list[int] = []
        table, lengths, s, first = self.vocab, self._lengths_first, 0, 1
        while s < n:
            for length in lengths.get(word[s], ()):
                e = s + length
                if e <= n:
                    i = table.get(word[s:e])
                    if i is not None:
                        break
            else:
                return None
            out += (i, s, e, first)
            table, lengths, s, first = self._continuations, self._lengths_cont, e, 0
        return tuple(out)

    def _word_pieces(self, word: str) -> tuple[int, ...]:
        """The cached `_greedy_pieces` of a normalized word, [UNK] over the whole word when it cannot be cut."""
        entry = self._word_cache.get(word)
        if entry is None:
            entry = self._word_cache[word] = self._greedy_pieces(word) or (self._unk_id, 0, len(word), 1)
        return entry

    def _tile_pieces(self, tile: str) -> tuple[int, ...]:
        """A tile (one whitespace-free chunk + the whitespace after it) -> a flat tuple, four numbers per token:
        id, start, end (in the tile), 1 if the token begins a word else 0.
        "un, " -> (id("un"), 0, 2, 1, id(","), 2, 3, 1). One object per tile keeps the cache compact, and a
        tile that is one word needing no offset mapping shares its word's entry."""
        norm, origin = self.normalizer.normalize(tile.rstrip(self._ws))
        if origin is None and _ONE_WORD.fullmatch(norm):
            entry = self._word_pieces(norm)
        else:
            out: list[int] = []
            for found in _SPLIT.finditer(norm):
                cut, at = self._word_pieces(found.group()), found.start()
                if origin is None:
                    out += map(add, cut, cycle((0, at, at, 0)))  # shift start and end by the word's position
                else:
                    for k in range(0, len(cut), 4):
                        out += (cut[k], origin[at + cut[k + 1]], origin[at + cut[k + 2] - 1] + 1, cut[k + 3])
            entry = tuple(out)
        if len(self._tile_cache) >= CACHE_LIMIT:
            self._tile_cache.clear()
            self._word_cache.clear()
        self._tile_cache[tile] = entry
        return entry

    def _tiles_and_pieces(self, text: str) -> tuple[list[str], list[tuple[int, ...]]]:
        """Plain text (no special tokens) -> its tiles (they cover it: a tile starts where the previous one
        ends) and their cached cuts."""
        tiles = self._tile_re.findall(text)
        entries = list(map(self._tile_cache.get, tiles))
        if None in entries:
            entries = [e if e is not None else self._tile_pieces(t) for t, e in zip(tiles, entries)]
        return tiles, entries

    @staticmethod
    def _spans(tiles: list[str], entries: list[tuple[int, ...]], flat: list[int]) -> tuple[list[int], list[int]]:
        """Start and end of every token (`flat`: the tiles' cuts chained), each per-token step in C: the
        tile's start is added to the offsets within the tile."""
        counts = map(floordiv, map(len, entries), repeat(4))
        shift = list(chain.from_iterable(map(repeat, accumulate(map(len, tiles), initial=0), counts)))
        return list(map(add, flat[1::4], shift)), list(map(add, flat[2::4], shift))

    @staticmethod
    def _word_ids(flat: list[int]) -> list[int]:
        word_ids = list(accumulate(flat[3::4], initial=-1))  # word index = words begun so far - 1
        del word_ids[0]
        return word_ids

    def _plain_columns(self, text: str) -> tuple[list[int], list[int], list[int], list[int]]:
        """Plain text (no special tokens) -> ids, starts, ends, word ids."""
        tiles, entries = self._tiles_and_pieces(text)
        flat = list(chain.from_iterable(entries))
        return (flat[0::4], *self._spans(tiles, entries, flat), self._word_ids(flat))

    def _worker_columns(self, text: str) -> tuple[list[int], list[int], list[int], list[int]] | None:
        """`_plain_columns` for a forked worker (tokenizers/parallel.py); None when special tokens are written in it."""
        if self._special_re is not None and self._special_re.search(text):
            return None
        return self._plain_columns(text)

    def tokenize(self, text: str) -> list[Piece]:
        ids, starts, ends, word_ids = self._plain_columns(text)
        return [Piece(self.inverse[i], i, s, e, w) for i, s, e, w in zip(ids, starts, ends, word_ids)]

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True, max_length: int | None = None,
               truncation: str | bool = False, padding: str | bool = False, padding_side: str = "right", **kwargs: Any) -> Encoding:
        """See Tokenizer.encode; one text with nothing to cut or pad and no special tokens written in it
        takes a fast path that builds ids now and the other columns when first read (same result)."""
        if (pair is not None or kwargs or truncation or padding == "max_length" or not isinstance(text, str)
                or (self._special_re is not None and self._special_re.search(text))):
            return super().encode(text, pair, add_special_tokens=add_special_tokens, max_length=max_length,
                                  truncation=truncation, padding=padding, padding_side=padding_side, **kwargs)
        tiles, entries = self._tiles_and_pieces(text)
        ids, a, b = self._with_template(list(chain.from_iterable(entries))[0::4], add_special_tokens)
        return Encoding.lazy(ids, WordPieceTokenizer._tile_column, self, ids, a, b, tiles, entries)

    def _encoding_from_numbers(self, text: str, ids: list[int], starts: list[int], ends: list[int], word_ids: list[int],
                      add_special_tokens: bool = True) -> Encoding:
        """A worker's numbers (tokenizers/parallel.py) -> the text's Encoding."""
        ids, a, b = self._with_template(ids, add_special_tokens)
        return Encoding.lazy(ids, WordPieceTokenizer._number_column, self, ids, a, b, starts, ends, word_ids)

    def _with_template(self, ids: list[int], add_special_tokens: bool) -> tuple[list[int], int, int]:
        """One text's ids -> (the ids with the template's special tokens around them, how many before, after)."""
        layout = self.template["single"] if add_special_tokens and self.template is not None else ("$A",)
        i = layout.index("$A")
        pre, post = [self.vocab[t] for t in layout[:i]], [self.vocab[t] for t in layout[i + 1 :]]
        if pre:
            ids[:0] = pre
        if post:
            ids += post
        return ids, len(pre), len(post)

    def _tile_column(self, ids: list[int], a: int, b: int, tiles: list[str], entries: list[tuple[int, ...]], name: str) -> list:
        """A lazy column of `encode`'s fast path, from the text's tiles and their cached cuts."""
        def text_part() -> list:
            flat = list(chain.from_iterable(entries))
            return self._word_ids(flat) if name == "word_ids" else list(zip(*self._spans(tiles, entries, flat)))
        return self._column(ids, a, b, name, text_part)

    def _number_column(self, ids: list[int], a: int, b: int, starts: list[int], ends: list[int], word_ids: list[int],
                       name: str) -> list:
        """A lazy column of an Encoding made from a worker's numbers."""
        return self._column(ids, a, b, name, lambda: word_ids if name == "word_ids" else list(zip(starts, ends)))

    def _column(self, ids: list[int], a: int, b: int, name: str, text_part: Callable[[], list]) -> list:
        """A column (other than ids) of an Encoding of a special tokens, the text's tokens, b special tokens;
        `text_part()` gives the text's own offsets or word_ids."""
        n = len(ids) - a - b
        if name == "tokens":
            return list(map(self.inverse.__getitem__, ids))
        if name in ("offsets", "word_ids"):
            part = text_part()
            if a or b:
                fill = (0, 0) if name == "offsets" else None
                part[:0] = [fill] * a
                part += [fill] * b
            return part
        if name == "special_tokens_mask":
            return [1] * a + [0] * n + [1] * b
        if name == "sequence_ids":
            return [None] * a + [0] * n + [None] * b
        return [1 if name == "attention_mask" else 0] * (a + n + b)

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None, padding: str | bool = "longest",
                     padding_side: str = "right", workers: int = 1, **kwargs: Any) -> list[Encoding]:
        """See Tokenizer.encode_batch; the cycle collector is paused meanwhile (millions of small lists).

        workers > 1 (for 200,000 characters or more of single texts) encodes slices of the batch in forked
        processes at the same time (tokenizers/parallel.py)."""
        check_batch(texts, pairs)
        if pairs is None and padding != "max_length" and set(kwargs) <= {"add_special_tokens"} \
                and parallel.worth_it(texts, workers):
            encs = parallel.encode(texts, workers, lambda part: [self.encode(t, **kwargs) for t in part],
                                   lambda part: [self._worker_columns(t) if isinstance(t, str) else None for t in part],
                                   partial(self._encoding_from_numbers, **kwargs))
            return self._pad_longest(encs, padding, padding_side)
        with gc_paused():
            return super().encode_batch(texts, pairs, padding=padding, padding_side=padding_side, **kwargs)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """As the library's WordPiece decoder: `##` pieces glued to the one before, the others after a space,
        then its cleanup of spaces before punctuation and English contractions, token by token. Lowercasing
        and accent stripping are not undone."""
        special = {self.vocab[t] for t in self.special_tokens}
        tokens: list[str] = []
        for i in as_ids(ids):
            tok = self.inverse.get(i)
            if tok is None:
                raise TaesanError(f"id {i} is not in the vocabulary (size {self.vocab_size})")
            if not (skip_special_tokens and i in special):
                tokens.append(tok)
        return WordPieceDecoder(self.prefix, cleanup=True).decode(tokens)

    # ---- training ------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        data: Any,
        vocab_size: int,
        min_frequency: int = 2,
        special_tokens: Iterable[str] | None = None,
        lowercase: bool = False,
        strip_accents: bool | None = None,
        limit_alphabet: int | None = None,
        on_merge: Callable[[int, tuple[str, str], str, float, int], None] | None = None,
        progress: bool = False,
        workers: int | None = None,
        merge_rule: str = "likelihood",
        morphemes: bool = False,
        **kwargs: Any,
    ) -> "WordPieceTokenizer":
        """Learn a WordPiece vocabulary; `.merges` of the result lists every merge in order.

        merge_rule "likelihood" (count(ab) / (count(a) count(b)), the WordPiece paper's) or "frequency" (count(ab),
        as HuggingFace's WordPieceTrainer; better for Korean, see wordpiece_train).

        morphemes: cut Korean words at kiwipiepy's morpheme units before learning, so no merge crosses one
        (이순신 ##은, 영화 ##를). Only training changes: the result is a plain WordPiece vocabulary, encoded
        greedily as any BERT tokenizer (HF's included) does.

        on_merge(step, (a, b), new_token, score, count) is called after each merge. lowercase defaults
        to False (a cased tokenizer; Korean keeps its syllables whole instead of jamo).
        """
        specials = list(BERT_SPECIALS if special_tokens is None else special_tokens)
        normalizer = BertNormalizer(lowercase, strip_accents)
        chunks = count_words(data, partial(_chunks, _CHUNK_CLEAN), workers=workers)
        to_words = _ChunkWords(normalizer)
        counts: dict[str, int] = {}
        for chunk, n in chunks.items():
            for w in to_words(chunk):
                counts[w] = counts.get(w, 0) + n
        if morphemes:
            from taesan.tokenizers.word import split_at_morphemes  # kiwipiepy, the optional extra `korean`

            counts = split_at_morphemes(counts, progress=progress)

        max_chars = kwargs.pop("max_input_chars_per_word", 100)
        vocab, merges = learn(counts, vocab_size, min_frequency, specials, limit_alphabet, max_chars, on_merge, progress,
                              merge_rule=merge_rule)
        tok = cls(vocab, [t for t in specials], lowercase=lowercase, strip_accents=strip_accents,
                  max_input_chars_per_word=max_chars,
                  template=BERT_TEMPLATE if {"[CLS]", "[SEP]"} <= set(specials) else None, **kwargs)
        tok.merges = merges
        return tok

    # ---- files ---------------------------------------------------------------------------------
    def to_hf_json(self) -> dict[str, Any]:
        n = self.normalizer
        return hf_json(
            self,
            normalizer={"type": "BertNormalizer", "clean_text": n.clean_text, "handle_chinese_chars": n.handle_chinese_chars,
                        "strip_accents": n.strip_accents, "lowercase": n.lowercase},
            pre_tokenizer={"type": "BertPreTokenizer"},
            model={"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                   "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": self.vocab},
            decoder={"type": "WordPiece", "prefix": self.prefix, "cleanup": True},
        )

    @classmethod
    def from_hf_json(cls, data: dict[str, Any]) -> "WordPieceTokenizer":
        model = read_model(data, "WordPiece")
        norm = data.get("normalizer") or {}
        if norm.get("type") not in (None, "BertNormalizer"):
            raise TaesanError(f"tokenizer.json: WordPiece with normalizer {norm.get('type')!r} is not supported (only BertNormalizer)")
        specials, template = read_specials_and_template(data)
        lowercase = bool(norm.get("lowercase", False))
        return cls(
            model["vocab"], specials, unk_token=model.get("unk_token", "[UNK]"),
            continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            lowercase=lowercase, strip_accents=norm.get("strip_accents"),
            clean_text=bool(norm.get("clean_text", True)), handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)),
            template=template,
        )

    @classmethod
    def from_vocab_txt(cls, path: Any, lowercase: bool = True, **kwargs: Any) -> "WordPieceTokenizer":
        """A BERT `vocab.txt` (one token per line, id = line number)."""
        return cls(read_vocab_txt(path), lowercase=lowercase, **kwargs)
