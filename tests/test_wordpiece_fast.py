"""WordPiece's fast encoding path (tiles covering the text, flat cached entries, columns assembled in C)
equals a slow reference written from the specification: normalize one character at a time, split on
whitespace and punctuation, greedy longest-match-first trying every length. Random text with accents,
combining marks, CJK, Hangul, punctuation, control characters and odd whitespace; lowercase on and off."""
from __future__ import annotations

import pytest
import regex
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taesan.tokenizers import wordpiece
from taesan.tokenizers.base import BERT_SPECIALS
from taesan.tokenizers.wordpiece import WordPieceTokenizer

# whitespace that separates words (Rust's char::is_whitespace) and BERT's punctuation, written independently
_SEPARATORS = (set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000")
               | {chr(c) for c in range(0x2000, 0x200B)})
_PUNCT = regex.compile(r"[!-/:-@\[-`{-~\p{P}]")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "ab", "abc", "##a", "##b", "##c", "##bc",
         "##ab", "e", "##e", "é", "##é", "cafe", "café", "##s", "어", "##제", "어제", "카", "##페", "카페", "갔", "##었",
         "##어", "中", "日", ",", ".", "!", "'", "—", "##\u0301", "ㅋ", "##ㅋ", "x", "##y", "1", "##2", "A", "##B", "É"]
ALPHABET = list("abcABCeéÉü\u0301xy12 어제카페갔었ㅋ中日,.!'—¿()"  # letters, marks, Hangul, CJK, punctuation
                "\t\n\r\xa0\u3000\u2003\x0b\x85\x00\x01\x7f\u200b\ufeff\ufffd😀")  # whitespace, controls
TEXT = st.text(alphabet=st.sampled_from(ALPHABET), max_size=40)
SETTINGS = [dict(lowercase=True), dict(lowercase=False), dict(lowercase=False, strip_accents=True),
            dict(lowercase=True, strip_accents=False), dict(lowercase=True, clean_text=False),
            dict(lowercase=False, handle_chinese_chars=False)]


def reference(tok: WordPieceTokenizer, text: str) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """ids, offsets and word ids of `text`, the slow way (no special tokens)."""
    words: list[list[tuple[str, int]]] = [[]]  # each word: (normalized character, index in text)
    for i, c in enumerate(text):
        for x in tok.normalizer._compute(c):
            if x in _SEPARATORS:
                words.append([])
            elif _PUNCT.match(x):
                words += [[(x, i)], []]
            else:
                words[-1].append((x, i))
    ids, offsets, word_ids = [], [], []
    for w, chars in enumerate(word for word in words if word):
        word = "".join(x for x, _ in chars)
        pieces, start = [], 0
        while start < len(word) and len(word) <= tok.max_input_chars_per_word:
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else tok.prefix + word[start:end]
                if piece in tok.vocab:
                    pieces.append((tok.vocab[piece], start, end))
                    start = end
                    break
            else:
                pieces = []
                break
        if not pieces:
            pieces = [(tok.vocab[tok.unk_token], 0, len(word))]
        for i, s, e in pieces:
            ids.append(i)
            offsets.append((chars[s][1], chars[e - 1][1] + 1))
            word_ids.append(w)
    return ids, offsets, word_ids


def _tokenizers():
    return [WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, **kw) for kw in SETTINGS]


TOKENIZERS = _tokenizers()


def _check(tok: WordPieceTokenizer, text: str) -> None:
    enc = tok.encode(text, add_special_tokens=False)
    assert (enc.ids, enc.offsets, enc.word_ids) == reference(tok, text), (text, enc.tokens)
    assert enc.tokens == [tok.inverse[i] for i in enc.ids]


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_fast_path_equals_the_reference(text):
    for tok in TOKENIZERS:
        _check(tok, text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=30))
def test_fast_path_equals_the_reference_on_any_unicode(text):
    assume(not any(s in text for s in BERT_SPECIALS))  # the reference has no special tokens written in text
    for tok in TOKENIZERS[:2]:
        _check(tok, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, max_size=8))
def test_cache_hits_and_batches_equal_fresh_tokenizers(texts):
    """A warm cache (the same tiles in other texts and positions) gives what a cold tokenizer gives."""
    warm = TOKENIZERS[0]
    batch = warm.encode_batch(texts + texts[::-1], padding=False)
    for text, enc in zip(texts + texts[::-1], batch):
        cold = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)})
        assert enc == cold.encode(text)


def test_hand_computed_tiles_and_offsets():
    tok = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=False)
    enc = tok.encode("  abcab, 어제\t카페!\n", add_special_tokens=False)
    assert enc.tokens == ["abc", "##ab", ",", "어제", "카페", "!"]
    assert enc.offsets == [(2, 5), (5, 7), (7, 8), (9, 11), (12, 14), (14, 15)]
    assert enc.word_ids == [0, 0, 1, 2, 3, 4]
    # accents stripped (lowercase) map both pieces of "Cafés" back onto the original characters
    low = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=True)
    enc = low.encode("Cafe\u0301s 中日", add_special_tokens=False)
    assert enc.tokens == ["cafe", "##s", "中", "日"] and enc.offsets == [(0, 4), (5, 6), (7, 8), (8, 9)]
    assert tok.wordpiece("abcab") == [("abc", 0, 3), ("##ab", 3, 5)] and tok.wordpiece("abz") is None


def test_a_full_cache_changes_no_result(monkeypatch):
    """With room for 3 cached tiles, a stream of many different texts (the cache is emptied again and again)
    encodes exactly as a fresh tokenizer encodes each one."""
    monkeypatch.setattr(wordpiece, "CACHE_LIMIT", 3)
    tok = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=False)
    texts = [f"ab abc, 어제 카페 {'갔었어 ' * k}ab{'!' * k}" for k in range(12)]
    for text in texts + texts[::-1]:
        _check(tok, text)
        fresh = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=False)
        assert tok.encode(text) == fresh.encode(text)


@pytest.mark.parametrize("lowercase", [True, False])
def test_real_lines_equal_the_reference(minilm_dir, shared_data, lowercase):
    tok = WordPieceTokenizer.from_vocab_txt(minilm_dir / "vocab.txt", lowercase=lowercase)
    lines = (shared_data / "corpus" / "nsmc_raw_reviews.txt").read_text(encoding="utf-8").split("\n")[:300]
    for line in lines + lines[:50]:
        _check(tok, line)


def test_forked_workers_equal_one_process(monkeypatch):
    from taesan.tokenizers import parallel

    monkeypatch.setattr(parallel, "MIN_CHARS", 10)
    tok = WordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=False)
    # a text with a special token written in it is left to the parent process
    texts = ["ab abc, 어제 카페 갔었어 ab!", "", "  Cafe\u0301s 中日\t", "abz ㅋㅋ", "ab [MASK] abc"] * 5
    assert parallel.worth_it(texts, 2) and not parallel.worth_it(texts, 1)
    for add in (True, False):
        one = tok.encode_batch(texts, add_special_tokens=add)
        assert tok.encode_batch(texts, workers=2, add_special_tokens=add) == one
        assert [len(e) for e in one] == [max(map(len, one))] * len(texts)  # padded to the longest
