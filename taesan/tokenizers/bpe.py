"""Byte-level BPE (GPT-2 style): text -> UTF-8 bytes -> printable byte symbols -> merges by rank, so any
string round-trips exactly; reads and writes GPT-2's vocab.json + merges.txt and HF's tokenizer.json.

Not the merge-learning loop (bpe_train.py) and not a WordPiece/BERT tokenizer (wordpiece.py).
"""
from __future__ import annotations

import heapq
import json
from functools import lru_cache
from itertools import accumulate, chain, repeat
from operator import add, lshift, or_, sub
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import regex
from tqdm import tqdm

from taesan.atomic import atomic_write_text
from taesan.encoding import not_utf8
from taesan.errors import TaesanError
from taesan.tokenizers import parallel
from taesan.tokenizers.base import GPT_SPECIALS, Encoding, Piece, Tokenizer, as_ids, check_batch
from taesan.tokenizers.bpe_batch import MAX_BYTES, MergeTable, merge_words
from taesan.tokenizers.bpe_hf import build_hf_json, parse_hf_json
from taesan.tokenizers.bpe_train import learn_merges
from taesan.tokenizers.corpus import count_words
from taesan.util import gc_paused

# GPT-2's pre-tokenization: contractions, letters, digits, other symbols (each with one optional leading
# space), and whitespace runs that leave their last space to the next word. Every character is matched,
# so the pre-tokens tile the text.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRETOKENIZE = regex.compile(GPT2_PATTERN)
LONG_WORD = 200  # byte length above which a word is merged with a heap instead of repeated min()
CACHE_LIMIT = 250_000  # words kept in the encode cache before it is emptied
BATCH_TEXTS = 4096  # texts whose new words are cut together
BATCH_MIN_WORDS = 256  # fewer new words than this are cut one by one
_CHAR_STARTS = bytes(int(b & 0xC0 != 0x80) for b in range(256))  # 1 for a byte that starts a UTF-8 character


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map: printable Latin-1 bytes map to themselves, the other 68
    (controls, space, ...) to U+0100 onwards, so a token is a readable string without spaces.

    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")], bytes_to_unicode()[ord("\\n")]
    ('a', 'Ġ', 'Ċ')
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_TO_SYMBOLS = {b: c for b, c in bytes_to_unicode().items()}  # for str.translate over latin-1 decoded bytes
_FROM_SYMBOLS = {ord(c): b for b, c in bytes_to_unicode().items()}


def to_symbols(text: str) -> str:
    """Text -> its UTF-8 bytes written as byte symbols (lone surrogates pass through, so nothing fails).

    >>> to_symbols("어 a")
    'ìĸ´Ġa'
    """
    return text.encode("utf-8", "surrogatepass").decode("latin-1").translate(_TO_SYMBOLS)


def from_symbols(symbols: str) -> str:
    """Byte symbols -> text; bytes that are not valid UTF-8 become U+FFFD, as in HF's ByteLevel decoder: a cut-off
    character, and the encoding of a lone surrogate (ED B1 B0), which a model can write but no UTF-8 file or
    terminal can hold. So decoded text always prints, and decode(encode(x)) == x for any text a file can hold."""
    return symbols.translate(_FROM_SYMBOLS).encode("latin-1").decode("utf-8", "replace")


def gpt2_pretokenize(text: str) -> list[str]:
    """GPT-2's pre-tokens (module level, so count_words can send it to worker processes).

    >>> gpt2_pretokenize("I'm 어제  카페!!")
    ['I', "'m", ' 어제', ' ', ' 카페', '!!']
    """
    return _PRETOKENIZE.findall(text)


class BPETokenizer(Tokenizer):
    """Byte-level BPE. `vocab` maps byte-symbol tokens (and special tokens) to ids; `merges` are pairs of
    tokens in priority order (rank 0 merges first).

    Offsets are character offsets into the original text. A token that covers only part of a multi-byte
    character (a Korean syllable is 3 bytes) gets the span of every character it touches, so two
    neighbouring tokens may share a character: for "갔" cut into two byte tokens both offsets are (0, 1).
    word_ids count GPT-2 pre-tokens ("어제", " 카페", "!!").
    """

    kind = "bpe"

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Iterable[tuple[str, str]],
        special_tokens: Iterable[str] | None = None,
        template: dict[str, list[str]] | None = None,
    ) -> None:
        if special_tokens is None:
            special_tokens = [t for t in GPT_SPECIALS if t in vocab]
        super().__init__(vocab, special_tokens, template)
        self.merges = [tuple(m) for m in merges]
        self.ranks: dict[tuple[str, str], int] = {}
        for r, m in enumerate(self.merges):
            self.ranks.setdefault(m, r)
        self._cache: dict[str, list[int]] = {}  # pre-token -> its ids

        # the same merges over integer ids, which hash faster than pairs of strings
        byte_map = bytes_to_unicode()
        self._byte_ids = [vocab.get(byte_map[b], -1 - b) for b in range(256)]  # missing byte -> negative marker
        self._pair_rank: dict[int, int] = {}
        self._merge_new: list[int] = []
        for r, (a, b) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab or a + b not in self.vocab:
                raise TaesanError(f"merge {r} ({a!r} {b!r}) uses or makes a token missing from the vocabulary")
            self._pair_rank.setdefault(self.vocab[a] << 32 | self.vocab[b], r)
            self._merge_new.append(self.vocab[a + b])
        # bytes each token covers (one symbol per byte); [UNK] stands for one byte the vocabulary lacks
        self._nbytes = {i: len(t) for t, i in self.vocab.items()}
        self._byte_array = np.asarray(self._byte_ids, dtype=np.int64)
        self._merge_table: MergeTable | None = None  # built at the first batch of new words
        if self.unk_id is not None:
            self._nbytes[self.unk_id] = 1

    # ---- cutting -----------------------------------------------------------------------------------
    def bpe(self, ids: list[int]) -> list[int]:
        """Apply the merges to one word's byte ids: repeatedly merge the leftmost lowest-ranked adjacent
        pair (HF's order; the same result as GPT-2's merge-all-occurrences loop). The pair ranks are kept
        in step with the ids, so each merge costs a C-level min() and two dictionary lookups.

        >>> tok = BPETokenizer({"a": 0, "b": 1, "c": 2, "d": 3, "aa": 4, "ab": 5, "aaab": 6},
        ...                    [("a", "a"), ("a", "b"), ("aa", "ab")], special_tokens=[])
        >>> tok.bpe([0, 0, 0, 1, 3])                                  # a a a b d -> aaab d
        [6, 3]
        """
        ids = list(ids)
        if len(ids) < 2:
            return ids
        if len(ids) > LONG_WORD:
            return self._bpe_long(ids)
        get, new_of = self._pair_rank.get, self._merge_new
        never = len(new_of)
        pair_ranks = list(map(get, map(or_, map(lshift, ids, repeat(32)), ids[1:]), repeat(never)))
        while pair_ranks:
            r = min(pair_ranks)
            if r == never:
                break
            i = pair_ranks.index(r)
            new = ids[i] = new_of[r]
            del ids[i + 1]
            del pair_ranks[i]
            if i < len(pair_ranks):
                pair_ranks[i] = get(new << 32 | ids[i + 1], never)
            if i > 0:
                pair_ranks[i - 1] = get(ids[i - 1] << 32 | new, never)
        return ids

    def _bpe_long(self, ids: list[int]) -> list[int]:
        """`bpe` for very long words (a line of 100,000 "=" is one pre-token): a heap of (rank, position)
        over a linked list of symbols, O(n log n) instead of O(n^2); same leftmost-lowest-rank order."""
        get, new_of = self._pair_rank.get, self._merge_new
        n = len(ids)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        heap = [(r, i) for i in range(n - 1) if (r := get(ids[i] << 32 | ids[i + 1])) is not None]
        heapq.heapify(heap)
        while heap:
            r, i = heapq.heappop(heap)
            j = nxt[i]
            if ids[i] is None or j >= n or get(ids[i] << 32 | ids[j]) != r:
                continue  # stale: a neighbour was merged since this entry was pushed
            ids[i] = new_of[r]
            ids[j] = None
            nxt[i] = nxt[j]
            if nxt[i] < n:
                prv[nxt[i]] = i
                if (rr := get(ids[i] << 32 | ids[nxt[i]])) is not None:
                    heapq.heappush(heap, (rr, i))
            if prv[i] >= 0 and (rr := get(ids[prv[i]] << 32 | ids[i])) is not None:
                heapq.heappush(heap, (rr, prv[i]))
        return [t for t in ids if t is not None]

    def _merge_word(self, word: str) -> list[int]:
        """One pre-token -> its ids, cached. A byte the vocabulary lacks (trained with full_alphabet=False)
        becomes [UNK]."""
        ids = self.bpe(list(map(self._byte_ids.__getitem__, word.encode("utf-8", "surrogatepass"))))
        if min(ids, default=0) < 0:
            if self.unk_id is None:
                raise TaesanError(f"{word!r} has a byte that is not in the vocabulary and there is no unknown token")
            ids = [self.unk_id if i < 0 else i for i in ids]
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def _ids_of_words(self, words: list[str]) -> list[list[int]]:
        """Pre-tokens -> their cached ids (cutting the ones not seen yet)."""
        entries = list(map(self._cache.get, words))
        if None in entries:
            entries = [e if e is not None else self._merge_word(w) for w, e in zip(words, entries)]
        return entries

    def _pretokens_and_ids(self, text: str, start: int, end: int) -> tuple[list[str], list[list[int]]]:
        """text[start:end] -> its pre-tokens and their cached ids."""
        words = _PRETOKENIZE.findall(text, start, end)
        return words, self._ids_of_words(words)

    def _cache_new_words(self, words: Iterable[str]) -> None:
        """Put the ids of the words the cache lacks into it, many words at once (bpe_batch.py) when there
        are BATCH_MIN_WORDS or more and the vocabulary has every byte; otherwise `_ids_of_words` merges them
        one by one."""
        cache = self._cache
        new = [w for w in dict.fromkeys(words) if w not in cache]
        if len(new) < BATCH_MIN_WORDS or min(self._byte_ids) < 0:
            return
        if len(cache) + len(new) > CACHE_LIMIT:
            cache.clear()
            new = new[:CACHE_LIMIT]
        if self._merge_table is None:
            self._merge_table = MergeTable(self._pair_rank, self._merge_new)
        raws = [w.encode("utf-8", "surrogatepass") for w in new]
        short = [w for w, r in zip(new, raws) if len(r) <= MAX_BYTES]
        cuts = merge_words(self._merge_table, self._byte_array, [r for r in raws if len(r) <= MAX_BYTES])
        cache.update(zip(map(short.__getitem__, cuts), cuts.values()))  # longer words: one by one in _ids_of_words

    def _pretokens_if_plain(self, text: Any) -> list[str] | None:
        """A text's pre-tokens, or None when it has special tokens written in it (or is not text)."""
        if not isinstance(text, str) or (self._special_re is not None and self._special_re.search(text)):
            return None
        return _PRETOKENIZE.findall(text)

    def _texts_with_pretokens(self, texts: list) -> Iterator[tuple[Any, list[str] | None]]:
        """(text, its pre-tokens or None as in `_pretokens_if_plain`) for each text, after the new words of
        each block of BATCH_TEXTS texts are merged together."""
        for lo in range(0, len(texts), BATCH_TEXTS):
            block = texts[lo : lo + BATCH_TEXTS]
            words = list(map(self._pretokens_if_plain, block))
            self._cache_new_words(chain.from_iterable(w for w in words if w))
            yield from zip(block, words)

    def _encode_many(self, texts: list) -> list[Encoding]:
        """`_encode_one` of many texts; the new words of each block of texts are merged together first."""
        return [self._encode_one(t) if w is None else self._encoding_of_words(t, self._ids_of_words(w))
                for t, w in self._texts_with_pretokens(texts)]

    def _ids_and_counts_many(self, texts: list) -> list[tuple[list[int], list[int]] | None]:
        """For a forked worker (tokenizers/parallel.py): each plain text's ids and its number of tokens per
        pre-token; None for a text with special tokens written in it."""
        out: list[tuple[list[int], list[int]] | None] = []
        for _, w in self._texts_with_pretokens(texts):
            entries = None if w is None else self._ids_of_words(w)
            out.append(None if entries is None else (list(chain.from_iterable(entries)), list(map(len, entries))))
        return out

    def _offsets(self, text: str, start: int, end: int, ids: list[int]) -> list[tuple[int, int]]:
        """Character offsets of the ids cut from text[start:end].

        The tokens tile the text's UTF-8 bytes, so every offset follows from the tokens' byte widths and one
        byte -> character map of the text; each step runs in C (map, accumulate, zip)."""
        if not ids:
            return []
        ends = list(accumulate(map(self._nbytes.__getitem__, ids)))
        starts = [0] + ends[:-1]
        piece = text[start:end]
        raw = piece.encode("utf-8", "surrogatepass")
        if len(raw) == len(piece):  # one byte per character
            return list(zip(map(add, starts, repeat(start)), map(add, ends, repeat(start))))
        # a token covering part of a character gets that whole character: its start is the character holding
        # its first byte, its end the one after the character holding its last byte
        ends_at = list(accumulate(raw.translate(_CHAR_STARTS), initial=start))  # [b]: end of the character of byte b - 1
        return list(zip(map(sub, map(ends_at.__getitem__, map(add, starts, repeat(1))), repeat(1)),
                        map(ends_at.__getitem__, ends)))

    @staticmethod
    def _word_ids(counts: list[int], first_word: int) -> list[int]:
        """Each token's pre-token index (counting from `first_word`), from the tokens per pre-token."""
        return list(chain.from_iterable(map(repeat, range(first_word, first_word + len(counts)), counts)))

    def _encode_span(self, text: str, start: int, end: int, first_word: int):
        """text[start:end] (no special tokens) -> (ids, tokens, offsets, word_ids, number of words)."""
        words, entries = self._pretokens_and_ids(text, start, end)
        ids = list(chain.from_iterable(entries))
        return (ids, list(map(self.inverse.__getitem__, ids)), self._offsets(text, start, end, ids),
                self._word_ids(list(map(len, entries)), first_word), len(words))

    def tokenize(self, text: str) -> list[Piece]:
        ids, tokens, offsets, word_ids, _ = self._encode_span(text, 0, len(text), 0)
        return [Piece(t, i, s, e, w) for t, i, (s, e), w in zip(tokens, ids, offsets, word_ids)]

    def _encode_one(self, text: str) -> Encoding:
        """Fast path of `encode` for one text without template, truncation or padding (special tokens
        written in the text stay whole, as in Tokenizer.pieces). Only ids are built now; the other
        columns when first read (Encoding.lazy)."""
        if not isinstance(text, str):
            raise TaesanError(f"expected text (str), got {type(text).__name__}")
        words = self._pretokens_if_plain(text)
        if words is not None:
            return self._encoding_of_words(text, self._ids_of_words(words))
        ids, tokens, offsets, word_ids = [], [], [], []
        pos, wi = 0, 0
        for m in list(self._special_re.finditer(text)) + [None]:
            end = m.start() if m is not None else len(text)
            i, t, o, w, nw = self._encode_span(text, pos, end, wi)
            ids += i; tokens += t; offsets += o; word_ids += w
            wi += nw
            if m is not None:
                ids.append(self.vocab[m.group()]); tokens.append(m.group()); offsets.append(m.span()); word_ids.append(wi)
                wi += 1
                pos = m.end()
        n = len(ids)
        return Encoding(ids=ids, tokens=tokens, offsets=offsets, word_ids=word_ids, type_ids=[0] * n,
                        special_tokens_mask=[0] * n, attention_mask=[1] * n, sequence_ids=[0] * n)

    def _lazy_column(self, text: str, ids: list[int], counts: list[int], name: str) -> list:
        """A column (other than ids) of `_encode_one`'s Encoding, built when first read."""
        if name == "tokens":
            return list(map(self.inverse.__getitem__, ids))
        if name == "offsets":
            return self._offsets(text, 0, len(text), ids)
        if name == "word_ids":
            return self._word_ids(counts, 0)
        return [1 if name == "attention_mask" else 0] * len(ids)

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True, max_length: int | None = None,
               truncation: str | bool = False, stride: int = 0, return_overflowing: bool = False,
               padding: str | bool = False, padding_side: str = "right") -> Encoding:
        """See Tokenizer.encode; a single text with nothing to add, cut or pad takes the fast path."""
        if pair is None and not truncation and padding != "max_length" and (self.template is None or not add_special_tokens):
            return self._encode_one(text)
        return super().encode(text, pair, add_special_tokens=add_special_tokens, max_length=max_length, truncation=truncation,
                              stride=stride, return_overflowing=return_overflowing, padding=padding, padding_side=padding_side)

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None, padding: str | bool = "longest",
                     padding_side: str = "right", workers: int = 1, **kwargs: Any) -> list[Encoding]:
        """Encode many texts. Single texts with nothing to add, cut or pad take the fast path, where the new
        words of a few thousand texts are cut together (bpe_batch.py); workers > 1 (for 200,000 characters
        or more) encodes slices of the batch in forked processes at the same time (tokenizers/parallel.py)."""
        check_batch(texts, pairs)
        add = kwargs.get("add_special_tokens", True)
        if pairs is None and padding != "max_length" and set(kwargs) <= {"add_special_tokens"} and (self.template is None or not add):
            with gc_paused():
                if parallel.worth_it(texts, workers):
                    encs = parallel.encode(texts, workers, self._encode_many, self._ids_and_counts_many, self._encoding_from_numbers)
                else:
                    encs = self._encode_many(texts)
            return self._pad_longest(encs, padding, padding_side)
        with gc_paused():
            return super().encode_batch(texts, pairs, padding=padding, padding_side=padding_side, **kwargs)

    def _encoding_of_words(self, text: str, entries: list[list[int]]) -> Encoding:
        """A plain text's Encoding from its pre-tokens' ids: ids now, the other columns when read."""
        return self._encoding_from_numbers(text, list(chain.from_iterable(entries)), list(map(len, entries)))

    def _encoding_from_numbers(self, text: str, ids: list[int], counts: list[int]) -> Encoding:
        """The same from a worker's numbers: the ids and the number of tokens per pre-token."""
        return Encoding.lazy(ids, BPETokenizer._lazy_column, self, text, ids, counts)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        special = set(self.special_tokens)
        parts: list[str] = []
        run: list[str] = []
        for i in as_ids(ids):
            tok = self.inverse.get(i)
            if tok is None:
                raise TaesanError(f"token id {i} is not in the vocabulary (size {self.vocab_size})")
            if tok in special:
                if run:
                    parts.append(from_symbols("".join(run)))
                    run = []
                if not skip_special_tokens:
                    parts.append(tok)
            else:
                run.append(tok)
        if run:
            parts.append(from_symbols("".join(run)))
        return "".join(parts)

    # ---- training ----------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        data: Any,
        vocab_size: int,
        min_frequency: int = 2,
        special_tokens: Iterable[str] | None = None,
        full_alphabet: bool = True,
        template: dict[str, list[str]] | None = None,
        on_merge: Callable[[int, str, str, int], None] | None = None,
        workers: int | None = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> "BPETokenizer":
        """Learn merges from files (text or JSONL) or an iterator of texts until the vocabulary (special
        tokens + byte alphabet + merges) has `vocab_size` entries, or no pair is seen `min_frequency` times.

        Ids: special tokens first, then the byte alphabet (all 256 bytes, or with full_alphabet=False only
        those in the corpus), then one id per merge. Ties in frequency go to the pair of older symbols
        (smallest left id, then smallest right id). on_merge(rank, left, right, count) reports each merge;
        progress=True shows a tqdm bar over the merges.
        """
        if kwargs:
            raise TaesanError(f"unknown BPE training option(s): {', '.join(sorted(kwargs))}")
        with gc_paused():
            return cls._train(data, vocab_size, min_frequency, special_tokens, full_alphabet, template, on_merge, workers, progress)

    @classmethod
    def _train(cls, data, vocab_size, min_frequency, special_tokens, full_alphabet, template, on_merge, workers, progress):
        specials = list(GPT_SPECIALS if special_tokens is None else special_tokens)
        counts = count_words(data, gpt2_pretokenize, workers)
        byte_map = bytes_to_unicode()
        if full_alphabet:
            alphabet = list(range(256))
        else:
            seen = set()
            for w in counts:
                seen.update(w.encode("utf-8", "surrogatepass"))
            alphabet = sorted(seen)
        alphabet.sort(key=lambda b: byte_map[b])  # HF's order: by symbol
        symbols = [byte_map[b] for b in alphabet]  # internal id i <-> symbols[i]
        internal = [0] * 256
        for i, b in enumerate(alphabet):
            internal[b] = i
        words = [[internal[x] for x in w.encode("utf-8", "surrogatepass")] for w in counts]
        freqs = list(counts.values())
        num_merges = max(0, vocab_size - len(specials) - len(symbols))

        bar = tqdm(total=num_merges, desc="BPE merges", unit="merge", disable=not progress)

        def report(a: int, b: int, new: int, count: int) -> None:
            symbols.append(symbols[a] + symbols[b])
            bar.update()
            if on_merge is not None:
                on_merge(new - len(alphabet), symbols[a], symbols[b], count)

        with bar:
            merged = learn_merges(words, freqs, len(symbols), num_merges, min_frequency, report)
        vocab: dict[str, int] = {}
        for t in specials + symbols:
            vocab.setdefault(t, len(vocab))  # rare: (ab)(c) and (a)(bc) make one string; it keeps its first id
        merges = [(symbols[a], symbols[b]) for a, b in merged]
        return cls(vocab, merges, specials, template)

    # ---- files -------------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, vocab_json: str | Path, merges_txt: str | Path) -> "BPETokenizer":
        """GPT-2's encoder.json / vocab.json (token -> id) and vocab.bpe / merges.txt ("a b" per line)."""
        vocab = _read_vocab_json(Path(vocab_json))
        merges = _read_merges_txt(Path(merges_txt), vocab)
        return cls(vocab, merges)

    def save_vocab_merges(self, directory: str | Path) -> tuple[Path, Path]:
        """Write vocab.json and merges.txt (the human-readable view: one merge per line, in rank order)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ordered = dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))
        atomic_write_text(directory / "vocab.json", json.dumps(ordered, ensure_ascii=False) + "\n")
        atomic_write_text(directory / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        return directory / "vocab.json", directory / "merges.txt"

    @classmethod
    def from_hf_json(cls, data: dict[str, Any], source: str = "tokenizer.json") -> "BPETokenizer":
        """A HF tokenizer.json object with a BPE model and a ByteLevel pre-tokenizer (GPT-2, RoBERTa style)."""
        vocab, merges, specials, template = parse_hf_json(data, source)
        return cls(vocab, merges, specials, template)

    def to_hf_json(self) -> dict[str, Any]:
        unk = self.inverse[self.unk_id] if self.unk_id is not None else None
        return build_hf_json(self.vocab, self.merges, self.special_tokens, self.template, unk)


def _read_vocab_json(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise TaesanError(f"{path}: vocabulary file not found")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TaesanError(f"{path}: not a JSON vocabulary ({e})") from None
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise TaesanError(f"{path}: a vocabulary must be a JSON object of token -> integer id")
    if len(set(vocab.values())) != len(vocab):
        raise TaesanError(f"{path}: two tokens share one id")
    return vocab


def _read_merges_txt(path: Path, vocab: dict[str, int]) -> list[tuple[str, str]]:
    if not path.is_file():
        raise TaesanError(f"{path}: merges file not found")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise not_utf8(path, e.reason) from None
    merges = []
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TaesanError(f"{path}:{lineno}: a merge line must be two tokens separated by one space, got {line[:40]!r}")
        a, b = parts
        if a not in vocab or b not in vocab or a + b not in vocab:
            raise TaesanError(f"{path}:{lineno}: merge {a!r} {b!r} uses or makes a token missing from the vocabulary")
        merges.append((a, b))
    return merges
