"""What every tokenizer shares: the Encoding, special tokens, the [CLS] a [SEP] b [SEP] template,
truncation (with overflowing windows and a stride, for QA), padding and batching.

Not a cutting algorithm: each kind (word, char, BPE, WordPiece) implements `tokenize` and `decode`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, NamedTuple

import regex

from taesan.config import write_json
from taesan.errors import TaesanError

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT_SPECIALS = ["<|endoftext|>"]


class Piece(NamedTuple):
    """One token cut from a text: its string, id, character span [start, end) and word index."""

    token: str
    id: int
    start: int
    end: int
    word: int | None


COLUMNS = ("ids", "tokens", "offsets", "word_ids", "type_ids", "special_tokens_mask", "attention_mask", "sequence_ids")
LAZY_COLUMNS = COLUMNS[1:]  # every column but ids may be built on first use


class Encoding:
    """A tokenized text (or pair). Offsets are character offsets into the original string(s);
    special and pad tokens get (0, 0) and word_id None. sequence_ids: 0 = first text, 1 = pair, None = special.

    `ids` is always built; a tokenizer's fast path may leave the other columns to a column function that
    builds each on first access (as the Rust library converts a column when Python reads it), so a
    batch that only needs ids does not pay for millions of offset tuples and mask lists it never reads.
    """

    __slots__ = COLUMNS + ("overflowing", "_rest")

    def __init__(self, ids: list[int] | None = None, tokens: list[str] | None = None,
                 offsets: list[tuple[int, int]] | None = None, word_ids: list[int | None] | None = None,
                 type_ids: list[int] | None = None, special_tokens_mask: list[int] | None = None,
                 attention_mask: list[int] | None = None, sequence_ids: list[int | None] | None = None,
                 overflowing: list["Encoding"] | None = None) -> None:
        self.ids = [] if ids is None else ids
        self.tokens = [] if tokens is None else tokens
        self.offsets = [] if offsets is None else offsets
        self.word_ids = [] if word_ids is None else word_ids
        self.type_ids = [] if type_ids is None else type_ids
        self.special_tokens_mask = [] if special_tokens_mask is None else special_tokens_mask
        self.attention_mask = [] if attention_mask is None else attention_mask
        self.sequence_ids = [] if sequence_ids is None else sequence_ids
        self.overflowing = [] if overflowing is None else overflowing
        self._rest = None

    @classmethod
    def lazy(cls, ids: list[int], column: Callable[..., list], *args: Any) -> "Encoding":
        """An Encoding whose other columns (LAZY_COLUMNS) are `column(*args, name)`, each built when first read.
        (A plain function and its arguments rather than a closure: one small tuple per Encoding, which
        matters to the cycle collector when a batch makes a hundred thousand of them.)"""
        e = cls.__new__(cls)
        e.ids, e.overflowing, e._rest = ids, [], (column, *args)
        return e

    def __getattr__(self, name: str) -> Any:
        # only reached for a slot not yet set: a lazy column
        rest = self._rest
        if rest is None or name not in LAZY_COLUMNS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = rest[0](*rest[1:], name)
        setattr(self, name, value)
        return value

    def _state(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS) + (self.overflowing,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoding) and self._state() == other._state()

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return "Encoding(" + ", ".join(f"{c}={v!r}" for c, v in zip(COLUMNS + ("overflowing",), self._state())) + ")"

    def __getstate__(self) -> tuple:
        return self._state()  # builds every lazy column: the column function holds the tokenizer

    def __setstate__(self, state: tuple) -> None:
        for column, value in zip(COLUMNS + ("overflowing",), state):
            setattr(self, column, value)
        self._rest = None

    def __len__(self) -> int:
        return len(self.ids)

    def pad(self, length: int, pad_id: int, pad_token: str, side: str = "right") -> "Encoding":
        """Pad in place to `length` with attention_mask 0 (no-op when already as long)."""
        n = length - len(self.ids)
        if n <= 0:
            return self
        fills = {
            "ids": pad_id, "tokens": pad_token, "offsets": (0, 0), "word_ids": None, "type_ids": 0,
            "special_tokens_mask": 1, "attention_mask": 0, "sequence_ids": None,
        }
        for name, value in fills.items():
            cur = getattr(self, name)
            setattr(self, name, cur + [value] * n if side == "right" else [value] * n + cur)
        return self


def longest_first(na: int, nb: int, budget: int) -> tuple[int, int]:
    """How many tokens of a text and its pair to keep within `budget`, as HF's longest_first: the shorter
    one whole if the longer can take the rest, else half each (the extra one to the longer).

    >>> longest_first(6, 15, 9), longest_first(3, 20, 9), longest_first(4, 4, 20)
    ((4, 5), (3, 6), (4, 4))
    """
    n1, n2 = min(na, nb), max(na, nb)
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1, n2 = budget // 2, budget // 2 + budget % 2
    keep_a, keep_b = (n2, n1) if na > nb else (n1, n2)
    return min(na, keep_a), min(nb, keep_b)


def check_batch(texts: Any, pairs: Any = None) -> None:
    """encode_batch takes lists: one string would be encoded as a batch of its characters, without a word."""
    for name, value in (("texts", texts), ("pairs", pairs)):
        if isinstance(value, str):
            raise TaesanError(f"encode_batch takes a list of {name}, got one string {value[:20]!r}: use encode(text) "
                              f"or encode_batch([text])")


def as_ids(ids: Any) -> list[int]:
    """What decode takes, as HF's does: one id, or a sequence of them (a list, a 1-D tensor or numpy array). A
    string, a float that is not whole, or a batch (rows of ids) is refused in one line, not deep in a loop."""
    if type(ids) is list and all(type(i) is int for i in ids):
        return ids
    if hasattr(ids, "tolist"):  # a tensor or numpy array (a 0-d one is one id)
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)):
        raise TaesanError(f"decode takes token ids, got text {ids[:20]!r}: encode(text).ids gives them")
    if isinstance(ids, int) or not hasattr(ids, "__iter__"):
        ids = [ids]
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, float)) or (isinstance(i, float) and not i.is_integer()):
            what = "a row of ids (decode one sequence at a time)" if isinstance(i, (list, tuple)) else repr(i)[:20]
            raise TaesanError(f"decode takes whole-number token ids, got {what}")
        out.append(int(i))
    return out


class Tokenizer(ABC):
    """Base class. `vocab` maps token -> id; `special_tokens` are never split and are matched in raw text.

    template: {"single": [...], "pair": [...]} with "$A"/"$B" for the texts and special tokens
    around them, e.g. BERT's {"single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]};
    None adds nothing (GPT-2).
    """

    kind: ClassVar[str]

    def __init__(self, vocab: dict[str, int], special_tokens: Iterable[str] = (), template: dict[str, list[str]] | None = None) -> None:
        self.vocab = dict(vocab)
        self.inverse = {i: t for t, i in self.vocab.items()}
        self.special_tokens = [t for t in special_tokens]
        for t in self.special_tokens:
            if t not in self.vocab:
                raise TaesanError(f"special token {t!r} is not in the vocabulary")
        self.template = template
        self.special_names: dict[str, str] = {}  # role (bos, eos, unk, pad, mask, cls, sep) -> token, from tokenizer_config.json
        self.model_max_length: int | None = None  # from tokenizer_config.json; encode does not apply it on its own
        self._special_re = (
            regex.compile("|".join(regex.escape(t) for t in sorted(self.special_tokens, key=len, reverse=True)))
            if self.special_tokens
            else None
        )

    # ---- what each kind implements -------------------------------------------------------------
    @abstractmethod
    def tokenize(self, text: str) -> list[Piece]:
        """Cut plain text (no special tokens in it) into pieces with offsets into `text`."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids back to text."""

    @classmethod
    @abstractmethod
    def train(cls, data: Any, vocab_size: int, min_frequency: int = 2, special_tokens: Iterable[str] | None = None, **kwargs: Any) -> "Tokenizer":
        """Learn a vocabulary from files or an iterator of texts."""

    @abstractmethod
    def to_hf_json(self) -> dict[str, Any]:
        """This tokenizer as a HuggingFace `tokenizer.json` object."""

    # ---- vocabulary ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, idx: int) -> str | None:
        return self.inverse.get(idx)

    def _special_id(self, role: str, *candidates: str) -> int | None:
        """The id of the token a tokenizer_config.json names for `role`, else of the first candidate that is
        one of the special tokens."""
        named = self.special_names.get(role)
        if named is not None and named in self.vocab:
            return self.vocab[named]
        for t in candidates:
            if t in self.special_tokens:
                return self.vocab[t]
        return None

    @property
    def pad_id(self) -> int | None:
        return self._special_id("pad", "[PAD]", "<pad>", "<|pad|>")

    @property
    def unk_id(self) -> int | None:
        return self._special_id("unk", "[UNK]", "<unk>")

    @property
    def mask_id(self) -> int | None:
        return self._special_id("mask", "[MASK]", "<mask>")

    @property
    def cls_id(self) -> int | None:
        return self._special_id("cls", "[CLS]", "<s>")

    @property
    def sep_id(self) -> int | None:
        return self._special_id("sep", "[SEP]", "</s>")

    @property
    def bos_id(self) -> int | None:
        return self._special_id("bos", "<s>", "[CLS]")

    @property
    def eos_id(self) -> int | None:
        return self._special_id("eos", "<|endoftext|>", "</s>", "[SEP]")

    # ---- encoding ------------------------------------------------------------------------------
    def pieces(self, text: str) -> list[Piece]:
        """`tokenize`, but special tokens written in the text ("티끌 [MASK] 태산") stay whole."""
        if not isinstance(text, str):
            raise TaesanError(f"expected text (str), got {type(text).__name__}")
        if self._special_re is None or self._special_re.search(text) is None:
            return self.tokenize(text)
        out: list[Piece] = []
        pos, word_base = 0, 0
        for m in list(self._special_re.finditer(text)) + [None]:
            end = m.start() if m is not None else len(text)
            if end > pos:
                part = self.tokenize(text[pos:end])
                for p in part:
                    out.append(Piece(p.token, p.id, p.start + pos, p.end + pos, None if p.word is None else p.word + word_base))
                words = [p.word for p in part if p.word is not None]
                word_base += (max(words) + 1) if words else 0
            if m is not None:
                out.append(Piece(m.group(), self.vocab[m.group()], m.start(), m.end(), word_base))
                word_base += 1
                pos = m.end()
        return out

    def encode(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: str | bool = False,
        stride: int = 0,
        return_overflowing: bool = False,
        padding: str | bool = False,
        padding_side: str = "right",
    ) -> Encoding:
        """Text (and optional pair) -> Encoding.

        truncation: False, True/"longest_first", "only_first" or "only_second" (needs max_length).
        return_overflowing: with truncation "only_first"/"only_second", the cut-off rest is returned in
        `.overflowing` as further windows that overlap by `stride` tokens (QA over long contexts).
        padding: False, or "max_length" to pad to max_length.
        """
        a = self.pieces(text)
        b = self.pieces(pair) if pair is not None else None
        budget = None
        if truncation and max_length is not None:
            budget = max_length - (self.num_special_tokens(pair is not None) if add_special_tokens else 0)
            if budget < 1:
                raise TaesanError(f"max_length={max_length} leaves no room for text after the special tokens")
        if budget is None:
            encodings = [self._assemble(a, b, add_special_tokens)]
        else:
            encodings = self._truncate(a, b, budget, truncation, stride, return_overflowing, add_special_tokens)
        for e in encodings:
            if padding == "max_length" and max_length is not None:
                e.pad(max_length, self._pad_or_fail(), self.inverse[self._pad_or_fail()], padding_side)
        first = encodings[0]
        first.overflowing = encodings[1:]
        return first

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None, padding: str | bool = "longest", padding_side: str = "right", **kwargs: Any) -> list[Encoding]:
        """Encode many texts; padding="longest" pads every row to the longest in the batch."""
        check_batch(texts, pairs)
        if pairs is not None and len(pairs) != len(texts):
            raise TaesanError(f"{len(texts)} texts but {len(pairs)} pairs")
        encs = [self.encode(t, pairs[i] if pairs else None, padding=padding if padding == "max_length" else False, padding_side=padding_side, **kwargs) for i, t in enumerate(texts)]
        return self._pad_longest(encs, padding, padding_side)

    def _pad_longest(self, encs: list[Encoding], padding: str | bool, padding_side: str) -> list[Encoding]:
        """With padding="longest", pad every Encoding to the longest (needs a pad token only if one is shorter)."""
        if padding == "longest" and encs:
            n = max(map(len, encs))
            if any(len(e) < n for e in encs):
                pad = self._pad_or_fail()
                for e in encs:
                    e.pad(n, pad, self.inverse[pad], padding_side)
        return encs

    def num_special_tokens(self, pair: bool) -> int:
        if self.template is None:
            return 0
        return sum(1 for t in self.template["pair" if pair else "single"] if t not in ("$A", "$B"))

    def _pad_or_fail(self) -> int:
        if self.pad_id is None:
            raise TaesanError("padding needs a pad token ([PAD]) in the tokenizer's special tokens")
        return self.pad_id

    def _assemble(self, a: list[Piece], b: list[Piece] | None, add_special_tokens: bool) -> Encoding:
        e = Encoding()
        if add_special_tokens and self.template is not None:
            layout = self.template["pair" if b is not None else "single"]
        else:
            layout = ["$A"] + (["$B"] if b is not None else [])
        type_id = 0
        for slot in layout:
            if slot in ("$A", "$B"):
                seq = 0 if slot == "$A" else 1
                type_id = seq
                part = a if slot == "$A" else b
                n = len(part)
                e.ids.extend([p.id for p in part]); e.tokens.extend([p.token for p in part])
                e.offsets.extend([(p.start, p.end) for p in part]); e.word_ids.extend([p.word for p in part])
                e.type_ids.extend([type_id] * n); e.special_tokens_mask.extend([0] * n)
                e.attention_mask.extend([1] * n); e.sequence_ids.extend([seq] * n)
            else:
                e.ids.append(self.vocab[slot]); e.tokens.append(slot); e.offsets.append((0, 0))
                e.word_ids.append(None); e.type_ids.append(type_id); e.special_tokens_mask.append(1)
                e.attention_mask.append(1); e.sequence_ids.append(None)
        return e

    def _truncate(self, a, b, budget, truncation, stride, overflow, add_special) -> list[Encoding]:
        if truncation in (True, "longest_first"):
            if b is None:
                return [self._assemble(a[:budget], None, add_special)]
            na, nb = longest_first(len(a), len(b), budget)
            return [self._assemble(a[:na], b[:nb], add_special)]
        if truncation not in ("only_first", "only_second"):
            raise TaesanError(f"unknown truncation {truncation!r}; use longest_first, only_first or only_second")
        if truncation == "only_second" and b is None:
            raise TaesanError("truncation='only_second' needs a pair")
        cut, keep = (b, a) if truncation == "only_second" else (a, b)
        room = budget - (len(keep) if keep is not None else 0)
        if room < 1:
            raise TaesanError(f"the fixed sequence ({len(keep)} tokens) leaves no room within max_length")
        if stride >= room:
            raise TaesanError(f"stride={stride} must be smaller than the {room} tokens left per window")
        windows, start = [], 0
        while True:
            windows.append(cut[start : start + room])
            if start + room >= len(cut) or not overflow:
                break
            start += room - stride
        if truncation == "only_second":
            return [self._assemble(a, w, add_special) for w in windows]
        return [self._assemble(w, b, add_special) for w in windows]

    # ---- decoding a continuation -------------------------------------------------------------------
    def decode_after(self, before: Iterable[int], ids: Iterable[int]) -> str:
        """The text `ids` add after `before` (a prompt's ids): decode(before + ids) past decode(before), as
        HuggingFace's text-generation pipeline cuts its completion. Decoded alone, a WordPiece continuation
        piece would show its marker and a word-initial piece (or a SentencePiece "▁") would lose its space:
            before = ids of "대한민국의";  ids = [id("##의")] -> "의";  ids = [id("역사")] -> " 역사"
        Byte-level BPE and characters give decode(ids) either way. Where decode(before) is not the start of the
        whole (a decoder rewriting text across the seam), the ids' own text."""
        before, ids = as_ids(before), as_ids(ids)
        head, whole = self.decode(before), self.decode(before + ids)
        return whole[len(head):] if whole.startswith(head) else self.decode(ids)

    # ---- files -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the HuggingFace `tokenizer.json` format (atomically)."""
        path = Path(path)
        if path.is_dir() or path.suffix == "":
            path = path / "tokenizer.json"
        write_json(path, self.to_hf_json())
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"
