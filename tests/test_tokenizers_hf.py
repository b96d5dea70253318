"""HuggingFace files: taesan's tokenizer.json loads in the `tokenizers` library with the same ids; HF's own
tokenizer.json, vocab.txt and vocab.json + merges.txt load in taesan; save/load round trips; clear errors."""
from __future__ import annotations

import shutil

import pytest

from taesan.errors import TaesanError
from taesan.tokenizers import (BPETokenizer, CharTokenizer, MorphemeTokenizer, PipelineTokenizer, WordPieceTokenizer,
                               WordTokenizer, from_hf_json, load)

TRAIN = ["어제 카페 갔었어", "어제 카페 갔었는데요", "오늘 카페 갔었다!!", "티끌 모아 태산", "Hello, world... 😀",
         "The cafe was full; we left.", "카페 라떼 맛있어 ㅋㅋ"] * 4
SAMPLES = ["어제 카페 갔었어", "티끌 [MASK] 태산!", "Hello, world... 😀 unseen 냥", "  runs  of\tspaces\n", "",
           "The CAFE was full.", "카페라떼맛있어"]
HF_KINDS = [WordTokenizer, CharTokenizer, WordPieceTokenizer, BPETokenizer]
SIZE = {"bpe": 300}  # byte-level BPE starts from 256 bytes


@pytest.mark.parametrize("kind", HF_KINDS, ids=lambda k: k.kind)
def test_written_tokenizer_json_gives_the_same_ids_in_hf(kind, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer

    tok = kind.train(TRAIN, vocab_size=SIZE.get(kind.kind, 80), min_frequency=1, workers=1)
    path = tok.save(tmp_path / "tok.json")
    hf = HFTokenizer.from_file(str(path))
    for text in SAMPLES:
        ours, ref = tok.encode(text), hf.encode(text)
        assert ours.ids == ref.ids, (text, ours.tokens, ref.tokens)
        assert ours.type_ids == ref.type_ids
    ours, ref = tok.encode(SAMPLES[0], SAMPLES[2]), hf.encode(SAMPLES[0], SAMPLES[2])
    assert ours.ids == ref.ids and ours.type_ids == ref.type_ids


@pytest.mark.parametrize("kind", HF_KINDS + [MorphemeTokenizer], ids=lambda k: k.kind)
def test_save_load_round_trip(kind, tmp_path):
    if kind is MorphemeTokenizer:
        pytest.importorskip("kiwipiepy")
    tok = kind.train(TRAIN, vocab_size=SIZE.get(kind.kind, 80), min_frequency=1)
    path = tok.save(tmp_path)  # a directory gets tokenizer.json
    assert path.name == "tokenizer.json"
    for again in (load(path), load(tmp_path)):
        assert type(again) is kind and again.vocab == tok.vocab and again.special_tokens == tok.special_tokens
        assert again.template == tok.template
        for text in SAMPLES:
            assert again.encode(text, "카페").ids == tok.encode(text, "카페").ids


def test_wordpiece_options_survive_the_round_trip(tmp_path):
    tok = WordPieceTokenizer.train(TRAIN, vocab_size=90, min_frequency=1, lowercase=True, workers=1)
    again = load(tok.save(tmp_path / "wp.json"))
    assert again.normalizer.state() == tok.normalizer.state() and again.normalizer.lowercase
    assert again.encode("THE Café").tokens == tok.encode("THE Café").tokens


def test_hf_written_files_load(minilm_dir, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    from_json = load(minilm_dir / "tokenizer.json")
    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")
    from_txt, from_dir = load(tmp_path / "vocab.txt"), load(tmp_path)
    for tok in (from_json, from_txt, from_dir):
        assert isinstance(tok, WordPieceTokenizer) and tok.vocab_size == 30522
        for text in SAMPLES + ["Who wrote Hamlet? Shakespeare wrote it in 1600."]:
            assert tok.encode(text).ids == hf.encode(text).ids
    a, b = "Who wrote Hamlet?", "Shakespeare wrote it around 1600, in London."
    ours, ref = from_json.encode(a, b), hf.encode(a, b)
    assert ours.ids == ref.ids and ours.type_ids == ref.type_ids and ours.offsets == ref.offsets


def test_truncation_matches_hf(minilm_dir):
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    hf.no_padding()
    tok = load(minilm_dir / "tokenizer.json")
    for a, b, m in [("a b c", "d e f", 7), ("a b c d e", "x y z", 8), ("a", "d e f g h", 6), ("a b c d e f g", "x y", 9)]:
        hf.enable_truncation(max_length=m, strategy="longest_first")
        assert tok.encode(a, b, max_length=m, truncation=True).ids == hf.encode(a, b).ids


def test_gpt2_vocab_json_and_merges_txt_directory(gpt2_bpe_files, tmp_path):
    enc_json, vocab_bpe = gpt2_bpe_files
    shutil.copy(enc_json, tmp_path / "vocab.json")
    shutil.copy(vocab_bpe, tmp_path / "merges.txt")
    tok = load(tmp_path)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 50257
    assert load(tmp_path / "vocab.json").vocab == tok.vocab
    assert tok.decode(tok.encode("어제 카페 갔었어 😀").ids) == "어제 카페 갔었어 😀"


def test_from_hf_json_dispatch_on_the_whole_pipeline():
    """taesan's own files go back to their kind; the same model with another stage goes to the pipeline."""
    data = WordTokenizer.train(TRAIN, vocab_size=30, workers=1).to_hf_json()
    assert type(from_hf_json(data)) is WordTokenizer
    assert type(from_hf_json(CharTokenizer.train(TRAIN, vocab_size=30, workers=1).to_hf_json())) is CharTokenizer
    assert type(from_hf_json({**data, "normalizer": {"type": "NFKC"}})) is PipelineTokenizer
    bpe = BPETokenizer.train(TRAIN, vocab_size=300, min_frequency=1, workers=1).to_hf_json()
    assert type(from_hf_json(bpe)) is BPETokenizer
    assert type(from_hf_json({**bpe, "pre_tokenizer": {"type": "Metaspace"}})) is PipelineTokenizer
    wp = WordPieceTokenizer.train(TRAIN, vocab_size=80, min_frequency=1, workers=1).to_hf_json()
    assert type(from_hf_json(wp)) is WordPieceTokenizer
    assert type(from_hf_json({**wp, "pre_tokenizer": {"type": "Whitespace"}})) is PipelineTokenizer
    with pytest.raises(TaesanError, match="Unigram"):
        from_hf_json({**data, "model": {"type": "Unigram"}})  # no vocab
    with pytest.raises(TaesanError, match="CTC"):
        from_hf_json({**data, "decoder": {"type": "CTC"}})


BROKEN = {
    "corrupted.json": '{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0',
    "no_model.json": '{"version": "1.0"}',
    "list.json": "[1, 2, 3]",
    "bad_vocab.json": '{"model": {"type": "WordLevel", "vocab": {"a": "zero"}, "unk_token": "[UNK]"}}',
    "no_unk.json": '{"added_tokens": [], "model": {"type": "WordPiece", "vocab": {"a": 0}}}',
    "bad_added.json": '{"added_tokens": [{"id": 0}], "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}}}',
    "empty_unigram.json": '{"model": {"type": "Unigram", "vocab": []}}',
    "unknown_model.json": '{"model": {"type": "Chars", "vocab": {}}}',
    "bad_merge.json": '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}, "pre_tokenizer": {"type": "Metaspace"}}',
    "bad_regex.json": '{"model": {"type": "WordLevel", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}}',
    "bad_charsmap.json": '{"model": {"type": "WordLevel", "vocab": {"[UNK]": 0}}, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "!!"}}',
    "empty.txt": "",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_missing_or_corrupted_files_give_one_clear_error(name, tmp_path):
    path = tmp_path / name
    path.write_text(BROKEN[name], encoding="utf-8")
    with pytest.raises(TaesanError) as err:
        load(path)
    msg = str(err.value)
    assert "\n" not in msg and name in msg


def test_missing_and_non_utf8(tmp_path):
    for path in (tmp_path / "nope.json", tmp_path / "nodir" / "tokenizer.json", tmp_path):
        with pytest.raises(TaesanError, match=str(path.name)):
            load(path)
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"model": "\xff\xfe"}')
    with pytest.raises(TaesanError, match="UTF-8"):
        load(bad)


@pytest.mark.parametrize("kind", HF_KINDS + [PipelineTokenizer], ids=lambda k: k.kind if hasattr(k, "kind") else "pipeline")
def test_encode_batch_refuses_one_string(kind, tmp_path):
    """encode_batch("어제 카페") encoded each character as a text of its own, silently; HF's encode_batch refuses a
    str too. Every implementation (the base one and the three fast paths) says so in one line."""
    if kind is PipelineTokenizer:  # a tokenizer.json with a normalizer taesan's own kinds do not have
        tok = from_hf_json({**WordPieceTokenizer.train(TRAIN, vocab_size=80, min_frequency=1).to_hf_json(),
                            "normalizer": {"type": "NFKC"}})
        assert type(tok) is PipelineTokenizer
    else:
        tok = kind.train(TRAIN, vocab_size=SIZE.get(kind.kind, 80), min_frequency=1, workers=1)
    with pytest.raises(TaesanError, match=r"encode_batch takes a list of texts, got one string '어제 카페'"):
        tok.encode_batch("어제 카페")
    with pytest.raises(TaesanError, match="a list of pairs"):
        tok.encode_batch(["어제"], "카페")
    assert len(tok.encode_batch(["어제 카페"])) == 1


@pytest.mark.parametrize("kind", HF_KINDS + [PipelineTokenizer], ids=lambda k: k.kind if hasattr(k, "kind") else "pipeline")
def test_decode_takes_ids_as_hf_does(kind):
    """decode("abc") was a bare ValueError from int("a"), decode(5) a TypeError, and decode(["5"]) or 2.7 read as
    an id. HF's decode takes one id or a sequence (list, tensor, numpy); the rest is one line naming what it got."""
    import numpy as np
    import torch

    if kind is PipelineTokenizer:
        tok = from_hf_json({**WordPieceTokenizer.train(TRAIN, vocab_size=80, min_frequency=1).to_hf_json(),
                            "normalizer": {"type": "NFKC"}})
    else:
        tok = kind.train(TRAIN, vocab_size=SIZE.get(kind.kind, 80), min_frequency=1, workers=1)
    ids = tok.encode("어제 카페", add_special_tokens=False).ids
    text = tok.decode(ids)
    for same in (torch.tensor(ids), np.array(ids), [float(i) for i in ids], tuple(ids)):
        assert tok.decode(same) == text
    assert tok.decode(ids[0]) == tok.decode(ids[:1]) == tok.decode(torch.tensor(ids[0]))
    assert tok.decode_after(torch.tensor(ids[:1]), np.array(ids[1:])) == tok.decode_after(ids[:1], ids[1:])
    for bad, said in (("abc", "got text 'abc'"), ([ids], "a row of ids"), (torch.tensor([ids]), "a row of ids"),
                      ([ids[0], 2.5], "got 2.5"), ([str(ids[0])], "whole-number token ids"), ([True], "got True")):
        with pytest.raises(TaesanError, match=said):
            tok.decode(bad)
