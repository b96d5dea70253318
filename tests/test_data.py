"""The pretraining data pipeline: token cache on disk (parallel, reused), samplers, packing, collators."""
from __future__ import annotations

import json
import math
import os
import tracemalloc

import numpy as np
import pytest
import torch

import taesan.data.cache as data_mod
from taesan.data import (
    CausalWindows,
    PackedDocuments,
    ShuffledSampler,
    TokenSplit,
    build_token_cache,
    open_token_cache,
    pack_documents,
    pad_batch,
    sentence_end_ids,
    unigram_perplexity,
)
from taesan.data.cache import token_dtype
from taesan.errors import TaesanError
from taesan.tokenizers.base import BERT_SPECIALS, Piece, Tokenizer


class CharTokenizer(Tokenizer):
    """A stand-in tokenizer: one token per character (the pipeline only needs encode(...).ids)."""

    kind = "char"

    def tokenize(self, text):
        return [Piece(c, self.vocab.get(c, self.vocab["[UNK]"]), i, i + 1, i) for i, c in enumerate(text)]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.inverse[i] for i in ids)

    @classmethod
    def train(cls, data, vocab_size=0, min_frequency=1, special_tokens=None, **kwargs):
        from taesan.tokenizers.corpus import iter_texts

        chars = sorted({c for t in iter_texts(data) for c in t})
        vocab = {t: i for i, t in enumerate(BERT_SPECIALS + chars)}
        return cls(vocab, BERT_SPECIALS, {"single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]})

    def to_hf_json(self):
        return {"model": {"type": "char", "vocab": self.vocab}}


LINES = ["어제 카페 갔었어", "티끌 모아 태산", "", "난폭 운전은 위험하다", "오늘 도서관 갔다", "가는 말이 고와야 오는 말이 곱다"] * 5


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tok(corpus):
    return CharTokenizer.train([str(corpus)])


def _expected(tok, lines, sep):
    docs = [tok.encode(t, add_special_tokens=False).ids + [sep] for t in lines if t.strip()]
    return docs


def test_cache_holds_every_document_with_separators_and_a_valid_split(tmp_path, corpus, tok):
    sep = tok.sep_id
    cache = build_token_cache([corpus], tok, tmp_path / "cache", sep, valid_every=5)
    docs = _expected(tok, LINES, sep)
    train = [d for i, d in enumerate(docs) if i % 5 != 4]
    valid = [d for i, d in enumerate(docs) if i % 5 == 4]
    assert cache.train.tokens.dtype == np.uint16 and isinstance(cache.train.tokens, np.memmap)
    assert cache.train.tokens.tolist() == sum(train, [])
    assert cache.valid.tokens.tolist() == sum(valid, [])
    assert cache.train.n_docs == len(train)
    for i, d in enumerate(train):
        s, e = cache.train.offsets[i], cache.train.offsets[i + 1]
        assert cache.train.tokens[s:e].tolist() == d
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["fingerprint"]["files"][0]["size"] == corpus.stat().st_size
    assert not list((tmp_path / "cache").glob("*.tmp"))  # atomic writes leave no temp files


def test_jsonl_corpus_reads_the_text_field(tmp_path, tok):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "id": i}, ensure_ascii=False) for i, t in enumerate(LINES[:4])), encoding="utf-8")
    cache = build_token_cache([path], tok, tmp_path / "cache", tok.sep_id, valid_every=0)
    assert cache.valid is None
    assert cache.train.tokens.tolist() == sum(_expected(tok, LINES[:4], tok.sep_id), [])


def test_parallel_tokenization_writes_the_same_cache(tmp_path, corpus, tok):
    one = build_token_cache([corpus], tok, tmp_path / "one", tok.sep_id, workers=1)
    two = build_token_cache([corpus], tok, tmp_path / "two", tok.sep_id, workers=2, chunk_size=3)
    assert (tmp_path / "one" / "train.bin").read_bytes() == (tmp_path / "two" / "train.bin").read_bytes()
    assert one.train.offsets.tolist() == two.train.offsets.tolist()


def test_cache_is_reused_when_nothing_changed_and_rebuilt_when_the_corpus_changes(tmp_path, corpus, tok, monkeypatch):
    first = build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id)
    assert not first.reused

    def boom(texts):
        raise AssertionError("re-tokenized an unchanged corpus")

    monkeypatch.setattr(data_mod, "_encode_chunk", boom)
    again = build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id)
    assert again.reused and again.train.tokens.tolist() == first.train.tokens.tolist()
    monkeypatch.undo()
    corpus.write_text("티끌 모아 태산\n" * 3, encoding="utf-8")
    os.utime(corpus, ns=(1, 1))  # a different mtime and size
    changed = build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id)
    assert not changed.reused and changed.train.n_docs == 3


def test_bad_corpora_are_one_line_errors(tmp_path, tok):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="no text"):
        build_token_cache([empty], tok, tmp_path / "c1", tok.sep_id)
    with pytest.raises(TaesanError, match="not found"):
        build_token_cache([tmp_path / "missing.txt"], tok, tmp_path / "c2", tok.sep_id)


def test_token_dtype_grows_with_the_vocabulary():
    assert token_dtype(50_000) == np.uint16 and token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32 and token_dtype(250_000) == np.uint32


def test_sampler_ranks_share_each_epoch_without_overlap_and_resume_exactly():
    n, b = 24, 3
    ranks = [ShuffledSampler(n, b, seed=5, rank=r, world_size=2) for r in range(2)]
    seen = [np.concatenate([s.next_indices()[0] for _ in range(4)]) for s in ranks]  # 2 ranks × 4 steps × 3 = 24
    assert sorted(np.concatenate(seen).tolist()) == list(range(n))  # one epoch, every item once
    assert not set(seen[0]) & set(seen[1])
    nxt = ranks[0].next_indices()
    assert nxt[1].tolist() == [1, 1, 1]  # the next epoch
    fresh = ShuffledSampler(n, b, seed=5, rank=0, world_size=2)
    state = ShuffledSampler(n, b, seed=5, rank=0, world_size=2)
    for _ in range(3):
        state.next_indices()
    fresh.load_state_dict(state.state_dict())
    assert fresh.next_indices()[0].tolist() == state.next_indices()[0].tolist()
    with pytest.raises(TaesanError, match="does not match"):
        ShuffledSampler(n + 1, b, seed=5).load_state_dict(state.state_dict())


def test_causal_windows_cover_the_data_without_growing_memory():
    tokens = np.arange(1001, dtype=np.uint16)
    split = TokenSplit(tokens, np.array([0, 1001]))
    src = CausalWindows(split, block_size=10, batch_size=4, seed=0)
    assert src.n_windows == 100
    rows = torch.cat([src.next_batch()["input_ids"] for _ in range(25)])  # one epoch: 100 windows
    assert rows.shape == (100, 11)
    assert bool((rows[:, 1:] - rows[:, :-1] == 1).all())  # each window is a contiguous slice
    starts = sorted(rows[:, 0].tolist())
    assert [b - a for a, b in zip(starts, starts[1:])] == [10] * 99  # a grid: no overlap, nothing skipped
    covered = set(rows[:, :10].flatten().tolist())
    assert len(covered) == 1000
    tracemalloc.start()
    for _ in range(50):
        src.next_batch()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(500):
        src.next_batch()
    now, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert now - base < 50_000  # bytes: nothing accumulates across batches


def test_too_short_corpus_for_the_block_is_a_clear_error():
    with pytest.raises(TaesanError, match="lower --block-size"):
        CausalWindows(TokenSplit(np.arange(5, dtype=np.uint16), np.array([0, 5])), 8, 2)


def test_pack_documents_keeps_documents_whole_and_cuts_only_long_ones():
    plan = pack_documents(np.array([0, 3, 6, 20]), block_size=8)
    assert plan.tolist() == [[0, 0, 2], [0, 3, 5], [1, 6, 12], [2, 12, 18], [3, 18, 19]]


def test_packed_rows_are_cls_sentences_sep_padded_to_the_block(tmp_path, corpus, tok):
    cache = build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id, valid_every=0)
    src = PackedDocuments(cache.train, 24, 4, tok.cls_id, tok.sep_id, tok.pad_id, seed=0)
    docs = [d[:-1] for d in _expected(tok, LINES, tok.sep_id)]
    rebuilt = []
    for r in range(src.n_rows):
        row = src.row(r)
        assert row[0] == tok.cls_id and row[-1] == tok.sep_id and len(row) <= 24
        body, piece = [], []
        for t in row[1:]:
            if t == tok.sep_id:
                body.append(piece)
                piece = []
            else:
                piece.append(t)
        rebuilt.extend(body)
    assert rebuilt == docs  # every document once, whole, in order
    assert src.n_rows < len(docs)  # several short sentences share a row
    batch = src.next_batch()
    assert batch["input_ids"].shape == (4, 24)
    real = batch["attention_mask"].bool()
    assert bool((batch["input_ids"][~real] == tok.pad_id).all()) and bool((batch["input_ids"][real] != tok.pad_id).all())


def test_pad_batch_right_and_left():
    b = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_open_cache_rejects_a_truncated_file(tmp_path, corpus, tok):
    build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id)
    path = tmp_path / "cache" / "train.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(TaesanError, match="wrong size"):
        open_token_cache(tmp_path / "cache")
    rebuilt = build_token_cache([corpus], tok, tmp_path / "cache", tok.sep_id)  # a damaged cache is rebuilt
    assert not rebuilt.reused


def test_long_documents_are_cut_at_sentence_ends_when_packed():
    # ids: 9 ends a sentence. doc 0: a short one; doc 1: three sentences of 4, 3 and 5 tokens.
    tokens = np.array([5, 9, 0, 5, 6, 7, 9, 5, 6, 9, 5, 6, 7, 8, 9, 0], dtype=np.uint16)
    offsets = np.array([0, 3, 16])
    ends = np.zeros(10, dtype=bool)
    ends[9] = True
    hard = pack_documents(offsets, block_size=8)  # room for 6 text tokens per row: cut anywhere
    assert hard.tolist() == [[0, 0, 2], [1, 3, 9], [2, 9, 15]]  # a long document starts a fresh row
    plan = pack_documents(offsets, block_size=8, tokens=tokens, sentence_ends=ends)
    pieces = [tokens[s:e].tolist() for _, s, e in plan]
    assert pieces == [[5, 9], [5, 6, 7, 9], [5, 6, 9], [5, 6, 7, 8, 9]]  # every cut falls after a 9
    assert plan[:, 0].tolist() == [0, 1, 2, 3]
    for r in set(plan[:, 0].tolist()):
        assert 1 + sum(e - s + 1 for row, s, e in plan if row == r) <= 8


def test_sentence_end_ids_marks_punctuation_tokens(tok):
    ends = sentence_end_ids(tok)
    assert ends.shape == (tok.vocab_size,)
    assert not ends[tok.sep_id] and not ends[tok.token_to_id("티")]
    marked = {tok.id_to_token(i) for i in np.flatnonzero(ends)}
    assert marked <= {".", "?", "!", "。"}


def test_unigram_perplexity_is_the_exponentiated_frequency_cross_entropy():
    train = TokenSplit(np.array([1, 1, 1, 2], dtype=np.uint16), np.array([0, 4]))
    # add-one counts over a vocabulary of 4: [1, 4, 2, 1] / 8
    expected = math.exp(-(math.log(4 / 8) + math.log(2 / 8)) / 2)
    assert unigram_perplexity(train, np.array([1, 2]), 4, chunk=3) == pytest.approx(expected)
    uniform = TokenSplit(np.arange(10, dtype=np.uint16), np.array([0, 10]))
    assert unigram_perplexity(uniform, np.arange(10), 10) == pytest.approx(10.0)
