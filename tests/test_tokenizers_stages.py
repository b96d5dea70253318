"""Each tokenizer.json stage alone against the `tokenizers` library: normalizers keep every character's
alignment to the original text exactly as the library does (seen through the offsets of a tokenizer that
isolates every normalized character), pre-tokenizers cut the same pieces with the same offsets, decoders
give the same text, on real lines and on random text full of combining marks, jamo, compatibility
characters, controls and odd whitespace."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_lines import sample_lines
from taesan.tokenizers.stages import decoders as TD
from taesan.tokenizers.stages import normalizers as TN
from taesan.tokenizers.stages import pre_tokenizers as TP
from taesan.tokenizers.stages.normalized import NormalizedString

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, Tokenizer  # noqa: E402
from tokenizers import decoders as D  # noqa: E402
from tokenizers import models as M  # noqa: E402
from tokenizers import normalizers as N  # noqa: E402
from tokenizers import pre_tokenizers as P  # noqa: E402

ALPHABET = list("ab xAÉé각ㅋ가\u1100\u1161\u11a8\u0301\u0323\u0344\u0308Å\u3000\t\n\r\x00\x01\u200b\ufeff①ﬁ中日ＡＢ１！？～･ｶﾞ"
                "\u3099ァ😀👍🏽İΣ™½…!?.,'-_$^~｡、٣²\xa0\x85▁ǅ\u0f71\u0f72") + ["\r\n", "  ", "'s", "ab"]
TEXT = st.lists(st.sampled_from(ALPHABET), max_size=14).map("".join)


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    return sample_lines(shared_data, per_file=60)


def alignments_hf(normalizer, text: str) -> tuple[str, list[tuple[int, int]]]:
    """The library's normalized text and, per normalized character, its offsets in the original."""
    t = Tokenizer(M.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    t.normalizer = normalizer
    t.pre_tokenizer = P.Split(Regex(r"[\s\S]"), behavior="isolated")
    return normalizer.normalize_str(text), t.encode(text).offsets


def alignments_ours(normalizer, text: str) -> tuple[str, list[tuple[int, int]]]:
    s = NormalizedString(text)
    normalizer.normalize(s)
    return s.text, s.alignments()


def normalizer_pairs(charsmap: bytes | None):
    pairs = [
        (N.NFD(), TN.NFD()), (N.NFC(), TN.NFC()), (N.NFKD(), TN.NFKD()), (N.NFKC(), TN.NFKC()),
        (N.BertNormalizer(), TN.BertNormalizer()),
        (N.BertNormalizer(lowercase=False), TN.BertNormalizer(lowercase=False)),
        (N.BertNormalizer(strip_accents=True, lowercase=False, handle_chinese_chars=False, clean_text=False),
         TN.BertNormalizer(False, False, True, False)),
        (N.Lowercase(), TN.Lowercase()), (N.StripAccents(), TN.StripAccents()),
        (N.Strip(), TN.Strip()), (N.Strip(left=False), TN.Strip(False, True)),
        (N.Replace(Regex(" {2,}"), "▁"), TN.Replace({"Regex": " {2,}"}, "▁")),
        (N.Replace("ab", ""), TN.Replace({"String": "ab"}, "")),
        (N.Replace(Regex("x*"), "-"), TN.Replace({"Regex": "x*"}, "-")),
        (N.Prepend("▁"), TN.Prepend("▁")),
        (N.Nmt(), TN.Nmt()),
        (N.Sequence([N.Nmt(), N.NFKC()]), TN.Sequence([TN.Nmt(), TN.NFKC()])),
        (N.Sequence([N.NFD(), N.StripAccents(), N.Lowercase(), N.Strip()]),
         TN.Sequence([TN.NFD(), TN.StripAccents(), TN.Lowercase(), TN.Strip()])),
    ]
    if charsmap is not None:
        pairs.append((N.Precompiled(charsmap), TN.Precompiled(charsmap)))
    return pairs


@pytest.fixture(scope="module")
def charsmap(tmp_path_factory) -> bytes | None:
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm")
    (d / "t.txt").write_text("어제 카페 갔었어\n티끌 모아 태산\n" * 50, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(d / "t.txt"), model_prefix=str(d / "m"), vocab_size=30, minloglevel=2,
                                   hard_vocab_limit=False)
    from taesan.tokenizers.sentencepiece_proto import read_model_proto

    return read_model_proto((d / "m.model").read_bytes())["normalizer"]["precompiled_charsmap"]


@pytest.fixture(scope="module")
def normalizers(charsmap):
    return normalizer_pairs(charsmap)


def test_normalizers_keep_the_library_alignments_on_real_lines(normalizers, lines):
    for ref, ours in normalizers:
        for line in lines:
            assert alignments_ours(ours, line) == alignments_hf(ref, line), (type(ours).__name__, line)
            assert ours.normalize_str(line) == ref.normalize_str(line)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_normalizers_keep_the_library_alignments_on_random_text(normalizers, text):
    for ref, ours in normalizers:
        assert alignments_ours(ours, text) == alignments_hf(ref, text), type(ours).__name__
        assert ours.normalize_str(text) == ref.normalize_str(text), type(ours).__name__


LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
PRE = [
    (P.ByteLevel(add_prefix_space=False), TP.ByteLevel(False)), (P.ByteLevel(add_prefix_space=True), TP.ByteLevel(True)),
    (P.ByteLevel(add_prefix_space=True, use_regex=False), TP.ByteLevel(True, use_regex=False)),
    (P.Whitespace(), TP.Whitespace()), (P.WhitespaceSplit(), TP.WhitespaceSplit()), (P.BertPreTokenizer(), TP.BertPreTokenizer()),
    (P.Metaspace(), TP.Metaspace()), (P.Metaspace(prepend_scheme="never", split=False), TP.Metaspace("▁", "never", False)),
    (P.Metaspace(prepend_scheme="first"), TP.Metaspace("▁", "first")), (P.Metaspace(replacement="_"), TP.Metaspace("_")),
    (P.Punctuation(), TP.Punctuation()), (P.Punctuation("contiguous"), TP.Punctuation("contiguous")),
    (P.Punctuation("merged_with_previous"), TP.Punctuation("merged_with_previous")),
    (P.Punctuation("merged_with_next"), TP.Punctuation("merged_with_next")), (P.Punctuation("removed"), TP.Punctuation("removed")),
    (P.Digits(), TP.Digits()), (P.Digits(True), TP.Digits(True)), (P.CharDelimiterSplit("a"), TP.CharDelimiterSplit("a")),
    (P.Split(Regex(r"\s+"), "merged_with_next"), TP.Split({"Regex": r"\s+"}, "merged_with_next")),
    (P.Split(Regex(r"\p{L}+"), "removed", invert=True), TP.Split({"Regex": r"\p{L}+"}, "removed", True)),
    (P.Split(" ", "contiguous"), TP.Split({"String": " "}, "contiguous")),
    (P.Split(Regex(LLAMA3), "isolated"), TP.Split({"Regex": LLAMA3}, "isolated")),
    (P.Sequence([P.WhitespaceSplit(), P.Digits(True), P.Punctuation(), P.Metaspace()]),
     TP.Sequence([TP.WhitespaceSplit(), TP.Digits(True), TP.Punctuation(), TP.Metaspace()])),
    (P.Sequence([P.Whitespace(), P.Metaspace(prepend_scheme="first")]),
     TP.Sequence([TP.Whitespace(), TP.Metaspace("▁", "first")])),
]


def test_pre_tokenizers_cut_as_the_library_on_real_lines(lines):
    for ref, ours in PRE:
        for line in lines:
            assert ours.pre_tokenize_str(line) == ref.pre_tokenize_str(line), (type(ours).__name__, line)
            assert ours.words(line) == [w for w, _ in ref.pre_tokenize_str(line)]


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_pre_tokenizers_cut_as_the_library_on_random_text(text):
    for ref, ours in PRE:
        assert ours.pre_tokenize_str(text) == ref.pre_tokenize_str(text), type(ours).__name__
        assert ours.words(text) == [w for w, _ in ref.pre_tokenize_str(text)], type(ours).__name__


DECODERS = [
    (D.ByteLevel(), TD.ByteLevel()), (D.Metaspace(), TD.Metaspace()), (D.Metaspace(prepend_scheme="never"), TD.Metaspace("▁", "never")),
    (D.WordPiece(), TD.WordPiece()), (D.WordPiece(cleanup=False), TD.WordPiece(cleanup=False)), (D.BPEDecoder(), TD.BPEDecoder()),
    (D.ByteFallback(), TD.ByteFallback()), (D.Fuse(), TD.Fuse()), (D.Strip(" ", 1, 1), TD.Strip(" ", 1, 1)),
    (D.Replace("▁", " "), TD.Replace({"String": "▁"}, " ")),
    (D.Sequence([D.Replace("▁", " "), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0)]),
     TD.Sequence([TD.Replace({"String": "▁"}, " "), TD.ByteFallback(), TD.Fuse(), TD.Strip(" ", 1, 0)])),
]
TOKENS = st.lists(st.sampled_from(["▁어제", "▁카", "페", "##s", "un", "##aff", "</w>", "ab</w>", "Ġhello", "Ġìĸĳìłľ", "ì", "ĸ",
                                   "<0xEC>", "<0x96>", "<0xB4>", "<0x41>", "<0xZZ>", " .", ",", "'", "n't", "do", "not", "<s>",
                                   "▁", "  ", "카페", "Ċ"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(tokens=TOKENS)
def test_decoders_give_the_library_text(tokens):
    for ref, ours in DECODERS:
        assert ours.decode(tokens) == ref.decode(tokens), (type(ours).__name__, tokens)


def test_offsets_of_an_inserted_space_and_of_a_replacement():
    """Worked examples of the alignment rules: a prepended "▁" points at the first character; what replaces
    a match points at the match's last character; a composed character points at its first part."""
    s = NormalizedString("ab")
    TN.Prepend("▁").normalize(s)
    assert (s.text, s.alignments()) == ("▁ab", [(0, 1), (0, 1), (1, 2)])
    s = NormalizedString("zabz")
    TN.Replace({"String": "ab"}, "X").normalize(s)
    assert (s.text, s.alignments()) == ("zXz", [(0, 1), (2, 3), (3, 4)])
    s = NormalizedString("e\u0301x")
    TN.NFC().normalize(s)
    assert (s.text, s.alignments()) == ("éx", [(0, 1), (2, 3)])
