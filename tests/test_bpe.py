"""Byte-level BPE: the lecture's aaabdaaabac example, the incremental trainer against naive re-counting,
exactness with GPT-2 (transformers and the `tokenizers` library) on every line of ../shared/data, files and
errors, and property tests (round trip, offsets, no exception on any input)."""
from __future__ import annotations

import json
import random
from collections import Counter
from functools import partial
from itertools import accumulate
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taesan.errors import TaesanError
from taesan.tokenizers import bpe as bpe_module
from taesan.tokenizers import parallel
from taesan.tokenizers.bpe import BPETokenizer, bytes_to_unicode, from_symbols, to_symbols
from taesan.tokenizers.bpe_train import learn_merges

BERT_TEMPLATE = {"single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B", "[SEP]"]}
TRICKY = [
    "", " ", "\n", "  \n\n  ", "어제 카페 갔었어", "어제 카페 갔었는데요", "Hello world", " Hello  world ",
    "I'm here, they'll've", "🙂👍🏽 이모지 😀!!", "tab\there\r\nCRLF", "x" * 300, "=" * 1000, "가" * 500,
    "<|endoftext|>", "a<|endoftext|>b <|endoftext|> c", "Ünïcödé café ½ ², ٣", "\u200b\u00a0zero width",
]


# ---- the lecture's example ---------------------------------------------------------------------------
def test_aaabdaaabac_three_merges():
    """aaabdaaabac -> ZabdZabac -> ZYdZYac -> XdXac: 4 -> 7 symbols, 11 -> 5 tokens.

    At step 2 (Z,a) and (a,b) are both seen twice: the tie goes to the pair of older symbols (a,b)."""
    seen = []
    tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=7, min_frequency=1, special_tokens=[], full_alphabet=False,
                             on_merge=lambda rank, a, b, count: seen.append((rank, a, b, count)))
    assert seen == [(0, "a", "a", 4), (1, "a", "b", 2), (2, "aa", "ab", 2)]
    assert tok.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert tok.vocab == {"a": 0, "b": 1, "c": 2, "d": 3, "aa": 4, "ab": 5, "aaab": 6}
    enc = tok.encode("aaabdaaabac")
    assert enc.tokens == ["aaab", "d", "aaab", "a", "c"]
    assert enc.offsets == [(0, 4), (4, 5), (5, 9), (9, 10), (10, 11)]
    assert tok.decode(enc.ids) == "aaabdaaabac"
    # every intermediate step of the lecture, by stopping training earlier
    steps = {4: 11, 5: 9, 6: 7, 7: 5}  # vocab size -> tokens: aaabdaaabac, ZabdZabac, ZYdZYac, XdXac
    for size, n in steps.items():
        t = BPETokenizer.train(["aaabdaaabac"], vocab_size=size, min_frequency=1, special_tokens=[], full_alphabet=False)
        assert len(t.vocab) == size and len(t.encode("aaabdaaabac")) == n


def test_min_frequency_stops_training_and_specials_come_first():
    tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=50, min_frequency=2, special_tokens=["<|endoftext|>"], full_alphabet=False)
    assert tok.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]  # (aaab, d) etc. are seen once only
    assert tok.vocab["<|endoftext|>"] == 0 and tok.vocab["a"] == 1
    assert len(BPETokenizer.train(["hi"], vocab_size=300).vocab) == 257  # 256 bytes + <|endoftext|>, nothing seen twice


def _naive_merges(words, counts, next_id, n, min_frequency):
    """Reference: recount every pair from scratch after each merge (quadratic, obviously right)."""
    words, merges = [list(w) for w in words], []
    for _ in range(n):
        stats = Counter()
        for w, c in zip(words, counts):
            for p in zip(w, w[1:]):
                stats[p] += c
        if not stats:
            break
        best = min(stats, key=lambda p: (-stats[p], p))
        if stats[best] < min_frequency:
            break
        merges.append(best)
        for j, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(next_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[j] = out
        next_id += 1
    return merges, words


def test_incremental_trainer_equals_naive_recounting():
    rng = random.Random(0)
    for _ in range(300):
        k = rng.randint(1, 4)  # few symbols: many repeats, overlaps (a a a) and ties
        words = [[rng.randrange(k) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 8))]
        counts = [rng.randint(1, 3) for _ in words]
        want, want_words = _naive_merges(words, counts, k, 15, 1)
        got_words = [list(w) for w in words]
        assert learn_merges(got_words, counts, k, 15, 1) == want
        assert got_words == want_words


def test_training_is_deterministic_and_independent_of_workers():
    texts = ["어제 카페 갔었어", "어제 카페 갔었는데요", "오늘 카페 갈까요?", "hello hello world"] * 30
    one = BPETokenizer.train(texts, vocab_size=300, workers=1)
    two = BPETokenizer.train(texts, vocab_size=300, workers=2)
    assert one.merges == two.merges and one.vocab == two.vocab
    assert len(one.merges) == 300 - 257
    assert len(one.encode("어제 카페 갔었어")) < len("어제 카페 갔었어".encode())  # merges shorten Korean


# ---- GPT-2's files: exact with HF -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2(gpt2_bpe_files) -> BPETokenizer:
    return BPETokenizer.from_files(*gpt2_bpe_files)


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_bpe_files):
    transformers = pytest.importorskip("transformers")
    vocab, merges = gpt2_bpe_files
    # transformers 5 takes the paths as vocab=/merges= (vocab_file=/merges_file= are ignored: empty tokenizer)
    tok = transformers.GPT2TokenizerFast(vocab=str(vocab), merges=str(merges))
    assert len(tok) == 50257
    return tok


def _shared_texts(root: Path) -> dict[str, list[str]]:
    """Every line of every text file (and each JSONL 'text' as a whole multi-line document)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in (".txt", ".tsv", ".en", ".ko"):
            raw = path.read_text(encoding="utf-8")
            out[str(path.relative_to(root))] = raw.split("\n")
        elif path.suffix == ".jsonl":
            out[str(path.relative_to(root))] = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


@pytest.mark.slow  # ~20 s CPU: 120k distinct lines through both tokenizers
def test_ids_equal_gpt2_tokenizer_fast_on_every_line_of_shared_data(gpt2, hf_gpt2, shared_data):
    files = _shared_texts(shared_data)
    assert any("corpus" in f for f in files) and any("english" in f for f in files)
    lines = sorted({line for texts in files.values() for line in texts})  # ~120k distinct lines
    want = [e.ids for e in hf_gpt2.backend_tokenizer.encode_batch_fast(lines, add_special_tokens=False)]
    got = [gpt2.encode(line).ids for line in lines]
    bad = [line for line, w, g in zip(lines, want, got) if w != g]
    assert not bad, f"{len(bad)} lines differ, e.g. {bad[0]!r}"
    # the same through transformers' own call, on whole documents (multi-line, CRLF constitution)
    docs = [(shared_data / "corpus" / "kolaw_constitution.txt").read_text(encoding="utf-8")]
    docs += files["corpus/kowiki_AA_wiki_00.jsonl"][:20] + ["\n".join(files["english/tinyshakespeare.txt"][:400])]
    want = hf_gpt2(docs, add_special_tokens=False)["input_ids"]
    assert [gpt2.encode(d).ids for d in docs] == want


def test_tricky_strings_ids_and_offsets_equal_hf(gpt2, hf_gpt2):
    """Offsets too: HF gives a token that covers part of a character the span of the characters it touches."""
    for text in TRICKY:
        want = hf_gpt2(text, return_offsets_mapping=True, add_special_tokens=False)
        enc = gpt2.encode(text)
        assert enc.ids == want["input_ids"], text
        assert enc.offsets == [tuple(o) for o in want["offset_mapping"]], text
        assert gpt2.decode(enc.ids, skip_special_tokens=False) == text
        assert hf_gpt2.decode(enc.ids) == text


def test_taesan_tokenizer_json_loads_in_tokenizers_library(gpt2, tmp_path, shared_data):
    tokenizers = pytest.importorskip("tokenizers")
    path = gpt2.save(tmp_path / "tokenizer.json")
    rust = tokenizers.Tokenizer.from_file(str(path))
    lines = (shared_data / "translation" / "korean-english-park.test.ko").read_text(encoding="utf-8").split("\n")[:300]
    lines += (shared_data / "english" / "sst2_dev.tsv").read_text(encoding="utf-8").split("\n")[:300] + TRICKY
    for line, r in zip(lines, rust.encode_batch(lines)):
        e = gpt2.encode(line)
        assert (e.ids, e.offsets) == (r.ids, r.offsets), line
    # a trained tokenizer, with a BERT-like template, round-trips through the Rust library too
    tok = BPETokenizer.train(lines, vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], template=BERT_TEMPLATE)
    rust = tokenizers.Tokenizer.from_file(str(tok.save(tmp_path / "trained.json")))
    for a, b in zip(lines[:50], lines[50:100]):
        assert tok.encode(a).ids == rust.encode(a).ids
        e, r = tok.encode(a, b), rust.encode(a, b)
        assert (e.ids, e.type_ids) == (r.ids, r.type_ids)
    assert tok.encode("x").tokens[0] == "[CLS]" and tok.encode("x").tokens[-1] == "[SEP]"


def test_hf_gpt2_tokenizer_json_loads_in_taesan(gpt2, hf_gpt2, tmp_path):
    hf_gpt2.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    tok = BPETokenizer.from_hf_json(data)
    assert tok.vocab == gpt2.vocab and tok.merges == gpt2.merges and tok.special_tokens == ["<|endoftext|>"]
    assert tok.template is None
    for text in TRICKY:
        assert tok.encode(text).ids == hf_gpt2(text, add_special_tokens=False)["input_ids"]


def test_vocab_merges_files_round_trip(gpt2, tmp_path):
    vocab_path, merges_path = gpt2.save_vocab_merges(tmp_path)
    again = BPETokenizer.from_files(vocab_path, merges_path)
    assert again.vocab == gpt2.vocab and again.merges == gpt2.merges
    assert merges_path.read_text(encoding="utf-8").splitlines()[:3] == ["#version: 0.2", "Ġ t", "Ġ a"]
    trained = BPETokenizer.train(TRICKY * 3, vocab_size=300)
    again = BPETokenizer.from_hf_json(json.loads(trained.save(tmp_path / "t.json").read_text(encoding="utf-8")))
    assert again.vocab == trained.vocab and again.merges == trained.merges


def test_batch_encoding_in_processes_equals_one_by_one(gpt2, monkeypatch):
    texts = TRICKY * 20  # texts with <|endoftext|> written in them are left to the parent process
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)
    fresh = BPETokenizer(gpt2.vocab, gpt2.merges)
    in_processes = fresh.encode_batch(texts, padding=False, workers=2)
    assert in_processes == [gpt2.encode(t) for t in texts]  # every column, the lazily built ones too
    with pytest.raises(TaesanError, match="pad"):  # GPT-2 has no pad token: padding to the longest must say so
        fresh.encode_batch(texts, workers=2)


def _built(encoding, column: str) -> bool:
    try:
        getattr(type(encoding), column).__get__(encoding)  # the slot itself, without the lazy fallback
        return True
    except AttributeError:
        return False


def test_lazy_columns_are_built_on_first_read_and_behave_like_plain_lists(gpt2):
    """The fast path builds ids only; the other columns, built when read, equal the generic pipeline's, and
    copying, pickling and padding a lazy Encoding give what they give for an eager one."""
    import copy
    import pickle

    from taesan.tokenizers.base import LAZY_COLUMNS, Tokenizer

    text = "어제 카페 갔었어 🙂 Hello!!"
    eager = Tokenizer.encode(gpt2, text)
    for read in (lambda e: e, copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))):
        lazy = gpt2.encode(text)
        assert not any(map(partial(_built, lazy), LAZY_COLUMNS))
        assert read(lazy) == eager
    lazy = gpt2.encode(text)
    lazy.pad(len(lazy) + 2, 0, "!", side="left")
    assert lazy.attention_mask == [0, 0] + [1] * len(eager) and lazy.offsets[:3] == [(0, 0), (0, 0), eager.offsets[0]]
    with pytest.raises(AttributeError, match="no attribute 'idz'"):
        lazy.idz


# ---- files and errors ---------------------------------------------------------------------------------
def test_missing_or_corrupted_files_give_one_clear_error(gpt2_bpe_files, tmp_path):
    vocab, merges = gpt2_bpe_files
    with pytest.raises(TaesanError, match="not found"):
        BPETokenizer.from_files(tmp_path / "nope.json", merges)
    with pytest.raises(TaesanError, match="not found"):
        BPETokenizer.from_files(vocab, tmp_path / "nope.txt")
    bad_json = tmp_path / "vocab.json"
    bad_json.write_text('{"a": 0, "b": ', encoding="utf-8")
    with pytest.raises(TaesanError, match="vocab.json"):
        BPETokenizer.from_files(bad_json, merges)
    bad_json.write_text('["a", "b"]', encoding="utf-8")
    with pytest.raises(TaesanError, match="JSON object"):
        BPETokenizer.from_files(bad_json, merges)
    bad_merges = tmp_path / "merges.txt"
    bad_merges.write_text("#version: 0.2\nĠ t\nĠ a b\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="merges.txt:3"):
        BPETokenizer.from_files(vocab, bad_merges)
    bad_merges.write_text("Ġ t\nqqqq zzzz\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="missing from the vocabulary"):
        BPETokenizer.from_files(vocab, bad_merges)
    bad_merges.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TaesanError, match="UTF-8"):
        BPETokenizer.from_files(vocab, bad_merges)
    with pytest.raises(TaesanError, match="BPE"):
        BPETokenizer.from_hf_json({"model": {"type": "WordPiece", "vocab": {}}})
    with pytest.raises(TaesanError, match="ByteLevel"):
        BPETokenizer.from_hf_json({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})
    with pytest.raises(TaesanError, match="tokenizer.json"):
        BPETokenizer.from_hf_json(["not", "a", "dict"])


def test_bad_arguments_give_clear_errors(gpt2):
    with pytest.raises(TaesanError, match="str"):
        gpt2.encode(b"bytes")
    with pytest.raises(TaesanError, match="not in the vocabulary"):
        gpt2.decode([50257])
    with pytest.raises(TaesanError, match="unknown BPE training option"):
        BPETokenizer.train(["x"], vocab_size=300, vocab_sise=3)
    partial = BPETokenizer.train(["abc abc"], vocab_size=20, special_tokens=[], full_alphabet=False)
    with pytest.raises(TaesanError, match="not in the vocabulary"):  # a byte it never saw, and no [UNK]
        partial.encode("z")


def test_partial_alphabet_with_unk_matches_tokenizers_library():
    tokenizers = pytest.importorskip("tokenizers")
    tok = BPETokenizer.train(["abc abc ab", "어제 abc"], vocab_size=30, special_tokens=["[UNK]"], full_alphabet=False)
    rust = tokenizers.Tokenizer.from_str(json.dumps(tok.to_hf_json()))
    for text in ["abc zab", "어제 카페", "🙂 abc"]:
        enc = tok.encode(text)
        assert enc.ids == rust.encode(text).ids and tok.unk_id in enc.ids
        assert enc.offsets == rust.encode(text).offsets


# ---- properties -----------------------------------------------------------------------------------
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)  # includes lone surrogates
MIXED = st.lists(st.sampled_from(["어제", " 카페", "갔었어", " ", "  ", "\n", "\r\n", "'s", "'ll", "🙂", "👍🏽", "a", "Ab", "12", "!!",
                                  "<|endoftext|>", "\t", "é", "\u0301", "＝"]), max_size=30).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(ANY_TEXT, MIXED))
def test_property_round_trip_and_offsets(gpt2, text):
    enc = gpt2.encode(text)
    # any text a UTF-8 file can hold comes back; a lone surrogate (no file holds one) comes back as U+FFFD per
    # byte of its encoding, as HF's ByteLevel decoder writes it, so decoded text always prints
    printable = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert printable == text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert gpt2.decode(enc.ids, skip_special_tokens=False) == printable
    assert gpt2.decode(enc.ids) == printable.replace("<|endoftext|>", "")
    assert len(enc.ids) == len(enc.tokens) == len(enc.offsets) == len(enc.word_ids) == len(enc.attention_mask)
    # documented offset rule: a token spans the characters its bytes fall in
    sizes = [len(ch.encode("utf-8", "surrogatepass")) for ch in text]
    char_of_byte = [i for i, n in enumerate(sizes) for _ in range(n)]
    byte_of_char = [0] + list(accumulate(sizes))
    pos = 0  # byte position
    for tok, (s, e) in zip(enc.tokens, enc.offsets):
        if tok == "<|endoftext|>":
            assert text[s:e] == tok
            pos += len(tok)
            continue
        start, end = pos, pos + len(tok)  # a byte-level token has one symbol per byte
        assert (s, e) == (char_of_byte[start], char_of_byte[end - 1] + 1)
        if (byte_of_char[s], byte_of_char[e]) == (start, end):  # whole characters: the slice is the token
            assert to_symbols(text[s:e]) == tok
        else:  # part of a character: the slice holds the token's bytes
            assert from_symbols_bytes(tok) in text[s:e].encode("utf-8", "surrogatepass")
        pos = end
    assert pos == len(text.encode("utf-8", "surrogatepass"))
    assert enc.word_ids == sorted(enc.word_ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(ANY_TEXT, MIXED), min_size=1, max_size=12))
def test_property_words_cut_together_equal_words_cut_one_by_one(gpt2, monkeypatch, texts):
    """encode_batch cuts the new words of a block of texts in numpy rounds (bpe_batch.py); every column
    equals what a fresh tokenizer gives one text at a time (the one-word loop), blocks split anywhere."""
    monkeypatch.setattr(bpe_module, "BATCH_MIN_WORDS", 1)
    monkeypatch.setattr(bpe_module, "BATCH_TEXTS", 5)
    together = BPETokenizer(gpt2.vocab, gpt2.merges).encode_batch(texts, padding=False)
    alone = BPETokenizer(gpt2.vocab, gpt2.merges)
    assert together == [alone.encode(t) for t in texts]


def test_words_cut_together_on_real_lines(gpt2, shared_data, monkeypatch):
    """The same on real Korean and English lines, in processes too (GPT-2's 50,000 merges; long words
    beyond bpe_batch.MAX_BYTES go one by one)."""
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)
    lines = (shared_data / "corpus" / "nsmc_raw_reviews.txt").read_text(encoding="utf-8").split("\n")[:1500]
    lines += (shared_data / "english" / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")[:1500]
    lines.append("=" * 300 + " " + "가" * 40)
    alone = BPETokenizer(gpt2.vocab, gpt2.merges)
    expected = [alone.encode(t) for t in lines]
    for workers in (1, 2):
        assert BPETokenizer(gpt2.vocab, gpt2.merges).encode_batch(lines, padding=False, workers=workers) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=6), st.integers(257, 330))
def test_property_trained_tokenizer_never_fails(texts, vocab_size):
    tok = BPETokenizer.train(texts, vocab_size=vocab_size, min_frequency=1, workers=1)
    assert len(tok.vocab) <= vocab_size
    for t in texts:
        assert tok.decode(tok.encode(t).ids) == t


def from_symbols_bytes(token: str) -> bytes:
    return bytes(BYTE_OF[c] for c in token)


BYTE_OF = {c: b for b, c in bytes_to_unicode().items()}


def test_empty_and_very_long_input(gpt2, hf_gpt2):
    empty = gpt2.encode("")
    assert empty.ids == [] and empty.offsets == [] and gpt2.decode([]) == ""
    long = ("어제 카페 갔었어. The café was full!! 🙂\n" * 20000) + "=" * 50000 + "a" * 20000  # ~1 MB, two huge words
    enc = gpt2.encode(long)
    assert enc.ids == hf_gpt2(long, add_special_tokens=False)["input_ids"]
    assert gpt2.decode(enc.ids) == long and enc.offsets[-1][1] == len(long)


def test_symbol_map_is_a_bijection_and_decoding_cut_characters_is_safe():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(not c.isspace() for c in table.values())
    assert from_symbols(to_symbols("어제 🙂")) == "어제 🙂"
    assert from_symbols(to_symbols("어")[:2]) == "\ufffd"  # a cut-off character never raises


def test_bytes_no_utf8_text_holds_decode_to_replacement_characters_as_hf_does():
    """A model can write the bytes of a lone surrogate (ED B1 B0), an overlong form or a code point past U+10FFFF;
    decoded they are U+FFFD as in HF's ByteLevel decoder, never a surrogate that print() or a UTF-8 file refuses."""
    decoders = pytest.importorskip("tokenizers.decoders")
    table = bytes_to_unicode()
    for raw in (b"\xed\xb1\xb0", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", "어".encode() + b"\xed\xa0\x80" + b"a"):
        symbols = "".join(table[b] for b in raw)
        text = from_symbols(symbols)
        assert text == decoders.ByteLevel().decode([symbols]) and "\ufffd" in text
        text.encode("utf-8")  # strict: no surrogate left
