"""Word, morpheme and character tokenizers, and the shared encode pipeline (pair template, truncation with
overflowing windows, padding, special tokens written in text) exercised through them."""
from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taesan.errors import TaesanError
from taesan.tokenizers import CharTokenizer, MorphemeTokenizer, WordTokenizer

LINES = ["어제 카페 갔었어", "어제 카페 갔었는데요", "오늘 카페 갔었다!!", "티끌 모아 태산", "Hello, world... 😀",
         "카페 라떼 맛있어", "어제 오늘 내일"] * 3


@pytest.fixture(scope="module")
def word():
    return WordTokenizer.train(LINES, vocab_size=40, min_frequency=2, workers=1)


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.train(LINES, vocab_size=200, min_frequency=1, workers=1)


# ---- word -------------------------------------------------------------------------------------------
def test_word_split_offsets_and_unk(word):
    text = "어제  카페 갔었어?! 냥냥"
    enc = word.encode(text, add_special_tokens=False)
    assert enc.tokens == ["어제", "카페", "갔었어", "[UNK]", "[UNK]"]  # "?!" and 냥냥 are unseen
    assert [text[s:e] for s, e in enc.offsets] == ["어제", "카페", "갔었어", "?!", "냥냥"]
    assert enc.word_ids == [0, 1, 2, 3, 4]
    assert word.decode(enc.ids) == "어제 카페 갔었어 [UNK] [UNK]"


def test_word_training_orders_by_frequency_and_respects_min_frequency():
    tok = WordTokenizer.train(["a a a b b c", "a b d"], vocab_size=100, min_frequency=2, special_tokens=["[UNK]"], workers=1)
    assert list(tok.vocab) == ["[UNK]", "a", "b"]  # a=4, b=3; c and d seen once
    small = WordTokenizer.train(["a a a b b c", "a b d"], vocab_size=2, min_frequency=1, special_tokens=["[UNK]"], workers=1)
    assert list(small.vocab) == ["[UNK]", "a"]


def test_word_variants_explode_the_vocabulary(word):
    """The motivating example: one verb, three words."""
    assert {"갔었어", "갔었는데요", "갔었다"} <= set(word.vocab)


# ---- char -------------------------------------------------------------------------------------------
def test_char_round_trip_and_unk(char):
    text = "어제 카페\n갔었어 😀"
    enc = char.encode(text, add_special_tokens=False)
    assert char.decode(enc.ids) == text and len(enc.ids) == len(text)
    enc = char.encode("냥 H", add_special_tokens=False)
    assert enc.tokens == ["[UNK]", " ", "H"] and char.decode(enc.ids) == "[UNK] H"
    assert enc.word_ids == [0, None, 1]
    enc = char.encode("H\tH", add_special_tokens=False)  # a tab the corpus never held: [UNK] by id and by name
    assert enc.ids[1] == char.unk_id and enc.tokens == ["H", "[UNK]", "H"] and enc.word_ids == [0, None, 1]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_char_decode_encode_is_identity_over_its_vocabulary(char, data):
    alphabet = sorted(t for t in char.vocab if len(t) == 1)
    text = data.draw(st.text(alphabet=st.sampled_from(alphabet), max_size=60))
    enc = char.encode(text)
    assert char.decode(enc.ids) == text
    assert [text[s:e] for (s, e), m in zip(enc.offsets, enc.special_tokens_mask) if not m] == list(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_no_exception_and_offsets_slice_surface(word, char, text):
    pair = text[::-1]
    for tok in (word, char):
        enc = tok.encode(text, pair)
        for t, (s, e), seq in zip(enc.tokens, enc.offsets, enc.sequence_ids):
            if seq is None:
                continue
            src = text if seq == 0 else pair
            assert t == "[UNK]" or t == src[s:e], (t, s, e)
            assert 0 <= s < e <= len(src)


def test_empty_very_long_and_odd_inputs(word, char):
    for tok in (word, char):
        assert tok.encode("").tokens == ["[CLS]", "[SEP]"]
        assert tok.encode("", add_special_tokens=False).ids == []
        long = "어제 카페 갔었어 " * 20000
        assert len(tok.encode(long, add_special_tokens=False)) >= 60000
        tok.encode("\x00\x01\ud800\udfff😀\u200b\r\n\t")
    with pytest.raises(TaesanError):
        word.encode(123)


# ---- the shared pipeline ------------------------------------------------------------------------------
def test_pair_template_and_type_ids(word):
    enc = word.encode("어제 카페", "갔었어")
    assert enc.tokens == ["[CLS]", "어제", "카페", "[SEP]", "갔었어", "[SEP]"]
    assert enc.type_ids == [0, 0, 0, 0, 1, 1]
    assert enc.special_tokens_mask == [1, 0, 0, 1, 0, 1]
    assert enc.sequence_ids == [None, 0, 0, None, 1, None]


def test_special_tokens_written_in_text_stay_whole(word, char):
    for tok in (word, char):
        enc = tok.encode("티끌 [MASK] 태산", add_special_tokens=False)
        assert "[MASK]" in enc.tokens
        i = enc.tokens.index("[MASK]")
        assert enc.offsets[i] == (3, 9) and enc.ids[i] == tok.mask_id


def test_truncation_longest_first(word):
    a, b = "어제 오늘 내일 카페 라떼", "티끌 모아 태산"
    enc = word.encode(a, b, max_length=8, truncation=True)
    assert len(enc) == 8 and enc.tokens == ["[CLS]", "어제", "오늘", "내일", "[SEP]", "티끌", "모아", "[SEP]"]


def test_only_second_with_stride_makes_overlapping_windows(word):
    question, context = "어제", "어제 오늘 내일 카페 라떼 티끌 모아 태산"
    enc = word.encode(question, context, max_length=8, truncation="only_second", stride=2, return_overflowing=True)
    windows = [enc] + enc.overflowing
    room = 8 - 3 - 1  # specials and the question
    parts = [[t for t, s in zip(w.tokens, w.sequence_ids) if s == 1] for w in windows]
    assert all(len(w) == 8 for w in windows[:-1]) and all(len(p) <= room for p in parts)
    for prev, nxt in zip(parts, parts[1:]):
        assert prev[-2:] == nxt[:2]  # consecutive windows overlap by `stride` tokens
    assert parts[0][0] == "어제" and parts[-1][-1] == "태산"
    offs = [[o for o, s in zip(w.offsets, w.sequence_ids) if s == 1] for w in windows]
    assert offs[1][0] == offs[0][-2]  # offsets still point into the whole context
    with pytest.raises(TaesanError):
        word.encode(question, context, max_length=8, truncation="only_second", stride=4, return_overflowing=True)


def test_padding_and_batches(word):
    enc = word.encode("어제", max_length=6, truncation=True, padding="max_length")
    assert enc.tokens == ["[CLS]", "어제", "[SEP]", "[PAD]", "[PAD]", "[PAD]"] and enc.attention_mask == [1, 1, 1, 0, 0, 0]
    batch = word.encode_batch(["어제", "어제 카페 갔었어"])
    assert [len(e) for e in batch] == [5, 5] and batch[0].attention_mask == [1, 1, 1, 0, 0]
    left = word.encode_batch(["어제", "어제 카페 갔었어"], padding_side="left")
    assert left[0].tokens[:2] == ["[PAD]", "[PAD]"]


# ---- morphemes ----------------------------------------------------------------------------------------
def test_morpheme_split_of_verb_variants():
    pytest.importorskip("kiwipiepy")
    tok = MorphemeTokenizer.train(LINES, vocab_size=100, min_frequency=1)
    text = "어제 카페 갔었는데요"
    enc = tok.encode(text, add_special_tokens=False)
    assert enc.tokens == ["어제", "카페", "갔었", "##는데요"]
    assert [text[s:e] for s, e in enc.offsets] == ["어제", "카페", "갔었", "는데요"]
    assert enc.word_ids == [0, 1, 2, 2]
    assert tok.encode("갔었어", add_special_tokens=False).tokens == ["갔었", "##어"]
    assert tok.decode(enc.ids) == text
    assert "갔었" in tok.vocab and "갔었는데요" not in tok.vocab  # the stem is shared by the variants


@settings(max_examples=30, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("어제카페갔었는데요다 .!a😀\x00")), max_size=40))
def test_morpheme_offsets_slice_the_text(text):
    pytest.importorskip("kiwipiepy")
    tok = MorphemeTokenizer({"[UNK]": 0})
    for u, s, e in tok.units(text):
        assert u.removeprefix("##") == text[s:e] and text[s:e].strip() == text[s:e]


def test_morpheme_without_kiwipiepy_says_how_to_install(monkeypatch):
    import taesan.tokenizers.word as word_mod

    monkeypatch.setattr(word_mod, "_KIWI", None)
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    with pytest.raises(TaesanError, match=r'pip install "taesan\[korean\]"'):
        MorphemeTokenizer({"[UNK]": 0}).encode("갔었어")
