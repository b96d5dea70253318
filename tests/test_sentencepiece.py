"""SentencePiece .model files (KoBERT's spiece.model and the like): tiny unigram and BPE models are trained
here with the `sentencepiece` package, and taesan must encode every sampled line of ../shared/data to exactly
its ids and decode any ids to exactly its text; user-defined symbols stay whole, control symbols are special
tokens but plain text when written in a text, unknown runs are one <unk> or <0xNN> bytes. Saved, the model
is the tokenizer.json HF's converter writes: the `tokenizers` library reads it and encodes like SentencePiece."""
from __future__ import annotations

import json
import shutil

import pytest
import regex
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared_lines import sample_lines
from taesan.errors import TaesanError
from taesan.tokenizers import PipelineTokenizer, load
from taesan.tokenizers.sentencepiece import SentencePieceTokenizer

spm = pytest.importorskip("sentencepiece")

SETTINGS = {
    "unigram": dict(model_type="unigram", vocab_size=1500, character_coverage=0.99, byte_fallback=True,
                    user_defined_symbols=["[MASK]", "<sep>"]),
    "unigram_unk": dict(model_type="unigram", vocab_size=1200, character_coverage=0.98),
    "bpe": dict(model_type="bpe", vocab_size=1500, character_coverage=0.99, byte_fallback=True, user_defined_symbols=["[MASK]"]),
    "bpe_unk": dict(model_type="bpe", vocab_size=1200, character_coverage=0.98, add_dummy_prefix=False),
}


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    return sample_lines(shared_data, per_file=80) + ["", " ", "  a  b  ", "[MASK] 티끌", "<s> x </s>", "<unk>", "<0x41>",
                                                      "ㅋㅋㅋㅋ 😀😀 ꙮ 𝔘", "\t\u3000x\u3000", "Ⅻ ﬁ ① ｶﾞ", "a\r\nb"]


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def model(request, shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    text = (shared_data / "corpus" / "nsmc_raw_reviews.txt").read_text(encoding="utf-8").split("\n")[:4000]
    (d / "train.txt").write_text("\n".join(text), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(d / "train.txt"), model_prefix=str(d / "spiece"), minloglevel=2,
                                   hard_vocab_limit=False, **SETTINGS[request.param])
    return d / "spiece.model", spm.SentencePieceProcessor(model_file=str(d / "spiece.model"))


def test_ids_and_decoding_equal_sentencepiece_on_shared_data(model, lines):
    path, sp = model
    tok = load(path)
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_size == sp.get_piece_size()
    for line in lines:
        ids = sp.encode(line)
        assert tok.encode(line).ids == ids, line
        assert tok.decode(ids) == sp.decode(ids), line


TEXT = st.lists(st.sampled_from(list("어제 카페갔었ㅋㅎㅠ ab!?.,~^  \t\u3000ﬁ①Ａｶﾞ😀ꙮ\u0301é") + ["[MASK]", "<s>", "<unk>", "  "]),
                max_size=20).map("".join)


def tie_after_user_defined(text: str) -> bool:
    """A user-defined symbol, then a run of three or more of one character: the known gap below."""
    at = min((i for i in (text.find("[MASK]"), text.find("<sep>")) if i >= 0), default=-1)
    return at >= 0 and regex.search(r"(.)\1\1", text[at:]) is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_random_text_equals_sentencepiece(model, text):
    assume(not tie_after_user_defined(text))
    path, sp = model
    tok = load(path)
    ids = sp.encode(text)
    assert tok.encode(text).ids == ids
    assert tok.decode(ids) == sp.decode(ids)


@pytest.mark.xfail(strict=True, reason="known gap: after a user-defined symbol, unigram ties between ?? · ? and ? · ?? "
                                       "are decided by float rounding that taesan does not reproduce exactly")
def test_known_gap_ties_after_a_user_defined_symbol(model):
    """Found by the property test above (2026-12-07): 5 of ~40,000 short strings, each a user-defined symbol and then
    a run of one character whose one- and two-character pieces tie to the last bit. strict: fixing it fails this."""
    path, sp = model
    if "unigram" not in path.parent.name or "unk" in path.parent.name:
        pytest.skip("the gap shows in the unigram model with user-defined symbols")
    tok = load(path)
    texts = ["[MASK]???", "<sep>ㅠㅠㅠ", "<sep>,,,", "a[MASK]ㅠㅠㅠ", "[MASK] ㅠㅠㅠ"]
    assert all(tie_after_user_defined(t) for t in texts)
    assert [tok.encode(t).ids for t in texts] == [sp.encode(t) for t in texts]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 10**6), max_size=15))
def test_decoding_any_ids_equals_sentencepiece(model, ids):
    path, sp = model
    ids = [i % sp.get_piece_size() for i in ids]
    assert load(path).decode(ids) == sp.decode(ids)


@pytest.mark.parametrize("run", [b"\xf2\xbd\xea\x0b^", b"\xea\xb0", b"\xed\xa0\x80", b"\xc0\xaf", "카페".encode() + b"\xff"])
def test_broken_utf8_byte_pieces_decode_as_sentencepiece(model, run):
    """Bytes that spell no character: SentencePiece writes one U+FFFD per byte, not per maximal bad subpart."""
    path, sp = model
    ids = [sp.piece_to_id(f"<0x{b:02X}>") for b in run]
    assert load(path).decode(ids) == sp.decode(ids)


def test_pieces_roles_and_offsets(model):
    path, sp = model
    tok = load(path)
    assert tok.unk_id == sp.unk_id() and tok.vocab["<s>"] == sp.bos_id() and tok.vocab["</s>"] == sp.eos_id()
    assert {"<s>", "</s>", "<unk>"} <= set(tok.special_tokens)
    text = "어제 카페 갔었어 [MASK] 티끌"
    enc = tok.encode(text)
    assert enc.tokens == [sp.id_to_piece(i) for i in enc.ids] or "<unk>" in [sp.id_to_piece(i) for i in enc.ids]
    starts = [k for k, t in enumerate(enc.tokens) if t.startswith("▁") or k == 0]
    assert enc.word_ids == [sum(1 for s in starts if s <= k) - 1 for k in range(len(enc))]  # a word per "▁"
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert 0 <= s <= e <= len(text)
        if token.strip("▁") and not token.startswith("<0x"):
            assert text[s:e].replace(" ", "") == token.replace("▁", "")  # a piece covers its own characters


def test_saved_tokenizer_json_reads_in_the_library_and_encodes_like_sentencepiece(model, lines, tmp_path):
    from tokenizers import Tokenizer

    path, sp = model
    saved = load(path).save(tmp_path / "tokenizer.json")
    hf = Tokenizer.from_file(str(saved))
    again = load(saved)
    assert isinstance(again, PipelineTokenizer)
    agree = 0
    for line in lines:
        assert again.encode(line).ids == hf.encode(line).ids, line
        agree += hf.encode(line).ids == sp.encode(line)
    # HF's converter differs from SentencePiece only on rare text (ties between equal-scored cuts)
    assert agree >= 0.99 * len(lines)


def test_kobert_like_directory(model, tmp_path):
    path, sp = model
    shutil.copy(path, tmp_path / "spiece.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "model_max_length": 512,
        "tokenizer_class": "XLNetTokenizer"}), encoding="utf-8")
    tok = load(tmp_path)
    assert isinstance(tok, SentencePieceTokenizer) and tok.model_max_length == 512
    assert tok.bos_id == sp.bos_id() and tok.eos_id == sp.eos_id() and tok.unk_id == sp.unk_id()
    assert tok.encode("티끌 모아 태산").ids == sp.encode("티끌 모아 태산")


def test_broken_model_files_give_one_clear_error(tmp_path):
    for name, raw in [("empty.model", b""), ("garbage.model", b"\x0a\xff\xff\xff\xff\x0f"), ("text.model", b"hello world")]:
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(TaesanError) as err:
            load(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_decode_takes_a_tensor_or_one_id_and_refuses_text(model):
    path, sp = model
    tok, ids = load(path), sp.encode("어제 카페 갔었어")
    assert tok.decode(torch.tensor(ids)) == tok.decode(ids[0:1] + ids[1:]) == sp.decode(ids)
    assert tok.decode(ids[0]) == sp.decode(ids[:1])
    with pytest.raises(TaesanError, match="decode takes token ids, got text '카페'"):
        tok.decode("카페")


@pytest.fixture(scope="module")
def t5_spiece(shared_data, tmp_path_factory):
    """A spiece.model laid out as T5's: <pad> 0, </s> 1, <unk> 2, no <s>."""
    d = tmp_path_factory.mktemp("t5")
    text = (shared_data / "corpus" / "nsmc_raw_reviews.txt").read_text(encoding="utf-8").split("\n")[:2000]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=str(d / "spiece"), minloglevel=2, vocab_size=1000,
                                   character_coverage=0.99, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    return d / "spiece.model", spm.SentencePieceProcessor(model_file=str(d / "spiece.model"))


@pytest.mark.parametrize("marker", [("tokenizer_config.json", {"extra_ids": 100}),
                                    ("tokenizer_config.json", {"tokenizer_class": "T5Tokenizer"}),
                                    ("config.json", {"model_type": "mt5"})], ids=["extra_ids", "class", "model_type"])
def test_t5_directory_has_the_sentinels_at_hf_ids(t5_spiece, tmp_path, marker):
    """T5Tokenizer puts <extra_id_0>..<extra_id_99> after the model's pieces, <extra_id_i> at vocab_size + 99 - i, each
    one special token (the reference: transformers' own T5 converter and T5Tokenizer on the model's pieces)."""
    from transformers import T5Tokenizer
    from transformers.convert_slow_tokenizer import T5Converter

    path, sp = t5_spiece
    shutil.copy(path, tmp_path / "spiece.model")
    assert "<extra_id_0>" not in load(tmp_path).vocab  # not a T5 directory (yet)
    (tmp_path / marker[0]).write_text(json.dumps(marker[1]), encoding="utf-8")
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    hf = T5Tokenizer(**T5Converter.convert_from_spm(vocab=pieces, extra_ids=100))
    tok = load(tmp_path)
    n = sp.get_piece_size()
    assert len(tok) == len(hf) == n + 100 and tok.vocab["<extra_id_0>"] == n + 99 and tok.vocab["<extra_id_99>"] == n
    for text in ["<extra_id_0> 카페", "어제<extra_id_1>카페 <extra_id_99>", "티끌 모아 태산", "<extra_id_100> 영화"]:
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert tok.encode(text).ids == ids, text
        if hf.unk_token_id not in ids:  # taesan decodes <unk> as SentencePiece does (" ⁇ ")
            assert tok.decode(ids, skip_special_tokens=False) == hf.decode(ids), text
    assert tok.decode(tok.encode("<extra_id_0> 카페").ids) == "카페"
    saved = load(tok.save(tmp_path / "out" / "tokenizer.json"))
    assert saved.encode("어제<extra_id_1>카페").ids == tok.encode("어제<extra_id_1>카페").ids
