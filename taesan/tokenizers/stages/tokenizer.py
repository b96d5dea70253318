"""PipelineTokenizer: any tokenizer.json run stage by stage as the `tokenizers` library runs it — added tokens
split out, normalizer, pre-tokenizer, model, post-processor; decoder for the way back. Ids, offsets (into the
original text), word ids and decoded text equal the library's.

Not a trainer (train the fast kinds, or use a file), and not the fast kinds: load() keeps BPETokenizer,
WordPieceTokenizer, WordTokenizer and CharTokenizer for the files they exactly match.
"""
from __future__ import annotations

from functools import partial
from itertools import chain
from typing import Any, Iterable

from taesan.errors import TaesanError
from taesan.tokenizers import parallel
from taesan.tokenizers.base import Encoding, Piece, Tokenizer, as_ids, check_batch
from taesan.tokenizers.stages import decoders, normalizers, post_processors, pre_tokenizers
from taesan.tokenizers.stages.added_tokens import AddedToken, AddedVocabulary
from taesan.tokenizers.stages.models_bpe import BPE
from taesan.tokenizers.stages.models_unigram import Unigram
from taesan.tokenizers.stages.models_words import Model, WordLevel, WordPiece
from taesan.tokenizers.stages.post_processors import assemble
from taesan.util import gc_paused

CACHE_LIMIT = 250_000  # words whose ids are kept before the cache is emptied
MODELS = {"BPE": BPE, "WordPiece": WordPiece, "WordLevel": WordLevel, "Unigram": Unigram}


def model_from_json(obj: Any) -> Model:
    if not isinstance(obj, dict):
        raise TaesanError("tokenizer.json: not a tokenizer.json (no 'model' object)")
    kind = obj.get("type")
    if kind is None:  # old files leave the type out; the fields tell
        kind = "BPE" if "merges" in obj else "Unigram" if isinstance(obj.get("vocab"), list) else \
            "WordPiece" if "continuing_subword_prefix" in obj else "WordLevel"
    if kind not in MODELS:
        raise TaesanError(f"tokenizer.json: model type {kind!r} is not supported ({', '.join(MODELS)})")
    return MODELS[kind].from_json(obj)


class PipelineTokenizer(Tokenizer):
    """A tokenizer.json pipeline: the stages, the added tokens, and the file's truncation/padding sections
    (written back as they were read; encode takes its own truncation and padding arguments)."""

    kind = "pipeline"

    def __init__(self, model: Model, normalizer: normalizers.Normalizer | None = None,
                 pre_tokenizer: pre_tokenizers.PreTokenizer | None = None,
                 post_processor: post_processors.PostProcessor | None = None, decoder: decoders.Decoder | None = None,
                 added_tokens: Iterable[AddedToken] = (), truncation: Any = None, padding: Any = None) -> None:
        self.model, self.normalizer, self.pre_tokenizer = model, normalizer, pre_tokenizer
        self.post_processor, self.decoder = post_processor, decoder
        self.added = AddedVocabulary(list(added_tokens), normalizer)
        self.truncation_json, self.padding_json = truncation, padding
        vocab = dict(model.vocab)
        for t in self.added.tokens:
            vocab[t.content] = t.id
        specials = [t.content for t in self.added.tokens if t.special]
        super().__init__(vocab, specials, _taesan_template(post_processor))
        self.inverse = dict(model.inverse)
        self._read_back(self.added.tokens)
        self._word_ids: dict[str, list[int]] = {}
        self._around = self._single_specials()

    def _read_back(self, tokens: Iterable[AddedToken]) -> None:
        """A normalized added token reads back as its normalized form, as in the library."""
        for t in tokens:
            normalized = t.normalized and self.normalizer is not None
            self.inverse[t.id] = self.normalizer.normalize_str(t.content) if normalized else t.content

    def add_tokens(self, tokens: Iterable[AddedToken]) -> None:
        """More added tokens (HF's added_tokens.json or additional_special_tokens beside a vocabulary file); one
        whose content is already added replaces it (an existing piece made special keeps its id)."""
        tokens = list(tokens)
        contents = {t.content for t in tokens}
        self.added = AddedVocabulary([t for t in self.added.tokens if t.content not in contents] + tokens, self.normalizer)
        for t in tokens:
            self.vocab[t.content] = t.id
        self._read_back(tokens)
        self.special_tokens += [t.content for t in tokens if t.special and t.content not in self.special_tokens]
        self._word_ids.clear()

    @property
    def vocab_size(self) -> int:
        """One more than the largest id (ids need not be contiguous: a Unigram piece may be listed twice)."""
        return max(self.inverse, default=-1) + 1

    # ---- encoding ------------------------------------------------------------------------------------
    def pieces(self, text: str) -> list[Piece]:
        """One text through added tokens, normalizer, pre-tokenizer and model (no special tokens around it).
        A word id counts the pieces the text was cut into before the model (added tokens included)."""
        if not isinstance(text, str):
            raise TaesanError(f"expected text (str), got {type(text).__name__}")
        out: list[Piece] = []
        word = 0
        tokenize, pre = self.model.tokenize, self.pre_tokenizer
        for s, added in self.added.split(text):
            if added is not None:
                out.append(Piece(s.text, added.id, *s.span(0, len(s.text)), word))
                word += 1
                continue
            for w in (pre.pre_tokenize(s) if pre is not None else [s]):
                if not w.text:
                    continue
                for idx, token, a, b in tokenize(w.text):
                    out.append(Piece(token, idx, *w.span(a, b), word))
                word += 1
        return out

    tokenize = pieces

    # ---- the fast path: ids only ---------------------------------------------------------------------
    def _single_specials(self) -> tuple[list[int], list[int]] | None:
        """The special ids the post-processor puts before and after one text, None if it does more."""
        if self.post_processor is None:
            return [], []
        layout = self.post_processor.layout(False)
        seqs = [k for k, (kind, _, _) in enumerate(layout) if kind == "seq"]
        if len(seqs) != 1:
            return None
        ids = [list(v[0]) for kind, v, _ in layout if kind == "special"]
        return [i for v in ids[: seqs[0]] for i in v], [i for v in ids[seqs[0] :] for i in v]

    def plain_ids(self, text: str) -> list[int] | None:
        """The ids of one text without added tokens written in it, through the stages without keeping offsets
        (the same ids as `pieces`); None when an added token is in it."""
        added = self.added
        if added.raw_pattern is not None and added.raw_pattern.search(text) is not None:
            return None
        norm = self.normalizer.normalize_str(text) if self.normalizer is not None else text
        if added.normalized_pattern is not None and added.normalized_pattern.search(norm) is not None:
            return None
        words = self.pre_tokenizer.words(norm) if self.pre_tokenizer is not None else ([norm] if norm else [])
        cache = self._word_ids
        entries = list(map(cache.get, words))
        if None in entries:
            entries = [e if e is not None else self._ids_of_word(w) for w, e in zip(words, entries)]
        return list(chain.from_iterable(entries))

    def _ids_of_word(self, word: str) -> list[int]:
        ids = [t[0] for t in self.model.tokenize(word)]
        if len(self._word_ids) >= CACHE_LIMIT:
            self._word_ids.clear()
        self._word_ids[word] = ids
        return ids

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True, max_length: int | None = None,
               truncation: str | bool = False, stride: int = 0, return_overflowing: bool = False,
               padding: str | bool = False, padding_side: str = "right") -> Encoding:
        """See Tokenizer.encode. One text with nothing to cut or pad and no added token in it takes the fast
        path: ids now, the other columns from the full pipeline when first read (the same Encoding)."""
        if pair is None and not truncation and padding != "max_length" and isinstance(text, str) and self._around is not None:
            ids = self.plain_ids(text)
            if ids is not None:
                return self._encoding_of_ids(text, ids, add_special_tokens)
        return super().encode(text, pair, add_special_tokens=add_special_tokens, max_length=max_length,
                              truncation=truncation, stride=stride, return_overflowing=return_overflowing,
                              padding=padding, padding_side=padding_side)

    def _encoding_of_ids(self, text: str, ids: list[int], add_special_tokens: bool = True) -> Encoding:
        """The fast path's Encoding from a text's own ids (also what a forked worker sends back)."""
        if add_special_tokens and (self._around[0] or self._around[1]):
            ids = self._around[0] + ids + self._around[1]
        return Encoding.lazy(ids, PipelineTokenizer._full_column, self, text, add_special_tokens, [])

    def _worker_ids(self, text: Any) -> tuple[list[int]] | None:
        """For a forked worker (tokenizers/parallel.py): a text's own ids, None when the parent must encode it."""
        ids = self.plain_ids(text) if isinstance(text, str) else None
        return None if ids is None else (ids,)

    def _full_column(self, text: str, add_special_tokens: bool, box: list, name: str) -> list:
        """A column of the fast path's Encoding: the whole Encoding is built once (the general path) and kept."""
        if not box:
            box.append(Tokenizer.encode(self, text, add_special_tokens=add_special_tokens))
        return list(getattr(box[0], name))

    def encode_batch(self, texts: list[str], pairs: list[str] | None = None, padding: str | bool = "longest",
                     padding_side: str = "right", workers: int = 1, **kwargs: Any) -> list[Encoding]:
        """See Tokenizer.encode_batch; the cycle collector is paused meanwhile (many small lists). workers > 1
        (for 200,000 characters or more of single texts) encodes slices of the batch in forked processes."""
        check_batch(texts, pairs)
        if (pairs is None and padding != "max_length" and set(kwargs) <= {"add_special_tokens"}
                and self._around is not None and parallel.worth_it(texts, workers)):
            add = kwargs.get("add_special_tokens", True)
            with gc_paused():
                encs = parallel.encode(texts, workers, lambda part: [self.encode(t, add_special_tokens=add) for t in part],
                                       lambda part: [self._worker_ids(t) for t in part],
                                       partial(self._encoding_of_ids, add_special_tokens=add))
            return self._pad_longest(encs, padding, padding_side)
        with gc_paused():
            return super().encode_batch(texts, pairs, padding=padding, padding_side=padding_side, **kwargs)

    def num_special_tokens(self, pair: bool) -> int:
        return self.post_processor.added_tokens(pair) if self.post_processor is not None else 0

    def _assemble(self, a: list[Piece], b: list[Piece] | None, add_special_tokens: bool) -> Encoding:
        if self.post_processor is None:
            return assemble([("seq", 0, None), ("seq", 1, None)], a, b, add_special_tokens)
        return self.post_processor.process(a, b, add_special_tokens)

    # ---- decoding ------------------------------------------------------------------------------------
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> token strings (special ones dropped when asked) -> the decoder (or joined by spaces). An id
        outside the vocabulary is an error here (the library silently drops it)."""
        special = set(self.special_tokens) if skip_special_tokens else ()
        tokens = []
        for i in as_ids(ids):
            t = self.inverse.get(i)
            if t is None:
                raise TaesanError(f"token id {i} is not in the vocabulary (size {self.vocab_size})")
            if t not in special:
                tokens.append(t)
        return self.decoder.decode(tokens) if self.decoder is not None else " ".join(tokens)

    @classmethod
    def train(cls, data: Any, vocab_size: int, min_frequency: int = 2, special_tokens: Any = None, **kwargs: Any):
        raise TaesanError("a pipeline tokenizer is read from a tokenizer.json; train a kind (bpe, wordpiece, word, char) instead")

    # ---- files ---------------------------------------------------------------------------------------
    @classmethod
    def from_hf_json(cls, data: dict[str, Any]) -> "PipelineTokenizer":
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise TaesanError("tokenizer.json: not a tokenizer.json (no 'model' object)")
        normalizer = normalizers.from_json(data.get("normalizer"))
        return cls(model_from_json(data["model"]), normalizer, pre_tokenizers.from_json(data.get("pre_tokenizer")),
                   post_processors.from_json(data.get("post_processor")), decoders.from_json(data.get("decoder")),
                   [AddedToken.from_json(t) for t in data.get("added_tokens") or []],
                   data.get("truncation"), data.get("padding"))

    def to_hf_json(self) -> dict[str, Any]:
        def part(stage: Any) -> Any:
            return stage.to_json() if stage is not None else None

        return {"version": "1.0", "truncation": self.truncation_json, "padding": self.padding_json,
                "added_tokens": [t.to_json() for t in self.added.tokens], "normalizer": part(self.normalizer),
                "pre_tokenizer": part(self.pre_tokenizer), "post_processor": part(self.post_processor),
                "decoder": part(self.decoder), "model": self.model.to_json()}


def _taesan_template(post: post_processors.PostProcessor | None) -> dict[str, list[str]] | None:
    """The post-processor as taesan's {"single": [...], "pair": [...]} (token strings), None when it adds nothing."""
    if post is None:
        return None
    out = {}
    for name, pair in (("single", False), ("pair", True)):
        layout = []
        for kind, value, _ in post.layout(pair):
            layout += [f"${'AB'[value]}"] if kind == "seq" else list(value[1])
        out[name] = layout
    return None if out["single"] == ["$A"] else out
