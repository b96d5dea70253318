"""Every command finds the tokenizer taesan.tokenizers.load finds: a KE-T5 / mT5 checkpoint ships only a
SentencePiece spiece.model (with tokenizer_config.json and special_tokens_map.json), and generate, attention,
taesan.pipeline and convert --from-hf read it as finetune does; convert takes the hub's tokenizer files along.
A checkpoint without a tokenizer says what the loader looked for; a broken tokenizer file is still an error naming it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_files import corpus_lines

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle, read_tokenizer

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

TEXTS = ["어제 카페 갔었어", "티끌 모아 태산 ㅋㅋ 😀", ""]
SIDE_FILES = ("spiece.model", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def ke_t5(tmp_path_factory) -> Path:
    """A KE-T5-style hub directory: T5ForConditionalGeneration (config.json, model.safetensors), spiece.model (T5's
    ids: pad 0, eos 1, unk 2), tokenizer_config.json and special_tokens_map.json; no tokenizer.json, no vocab file."""
    d = tmp_path_factory.mktemp("ke-t5-small")
    (d / "train.txt").write_text("\n".join(corpus_lines()), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(d / "train.txt"), model_prefix=str(d / "spiece"), vocab_size=600,
                                   character_coverage=0.995, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
                                   hard_vocab_limit=False)
    (d / "train.txt").unlink()
    (d / "spiece.vocab").unlink()
    specials = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    (d / "special_tokens_map.json").write_text(json.dumps(specials))
    (d / "tokenizer_config.json").write_text(json.dumps({**specials, "extra_ids": 0, "model_max_length": 512}))
    torch.manual_seed(0)
    size = spm.SentencePieceProcessor(model_file=str(d / "spiece.model")).get_piece_size()
    config = transformers.T5Config(vocab_size=size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    transformers.T5ForConditionalGeneration(config).eval().save_pretrained(d)
    return d


def run(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, (argv, err)
    return out


def ids(tok) -> list[list[int]]:
    return [tok.encode(t).ids for t in TEXTS]


def test_every_command_reads_the_sentencepiece_model_finetune_reads(ke_t5, tmp_path, capsys):
    loaded = taesan.tokenizers.load(ke_t5)  # what finetune reads
    bundle = Bundle.load(ke_t5)
    assert ids(read_tokenizer(ke_t5)[0]) == ids(bundle.tokenizer) == ids(loaded)
    assert bundle.tokenizer.eos_id == 1 and "generate" in bundle.actions and "tokenize" in bundle.actions
    out = run(["generate", "--model", str(ke_t5), "--prompt", "어제 카페", "--max-new-tokens", "4", "--threads", "1"], capsys)
    assert out.strip()
    run(["attention", "--model", str(ke_t5), "어제 카페", "--target", "갔었어", "--out", str(tmp_path / "a.png")], capsys)
    assert (tmp_path / "a.png").is_file()
    written = taesan.pipeline(ke_t5, precision="fp32")("어제 카페", max_new_tokens=4)
    assert written["finish_reason"] in ("stop", "length")
    assert taesan.pipeline(ke_t5, task="tokenize")(TEXTS[0])["ids"] == loaded.encode(TEXTS[0]).ids


def test_convert_from_hf_takes_the_tokenizer_files_along(ke_t5, tmp_path, capsys):
    out = tmp_path / "converted"
    run(["convert", "--from-hf", str(ke_t5), "--out", str(out)], capsys)
    for name in (*SIDE_FILES, "tokenizer.json"):  # the hub's files as they are, and the tokenizer taesan reads
        assert (out / name).is_file(), name
    assert (out / "spiece.model").read_bytes() == (ke_t5 / "spiece.model").read_bytes()
    assert ids(taesan.tokenizers.load(out)) == ids(taesan.tokenizers.load(ke_t5))
    ours, theirs = Bundle.load(out), Bundle.load(ke_t5)
    assert ours.tokenizer.eos_id == theirs.tokenizer.eos_id and ours.actions == theirs.actions


def test_no_tokenizer_says_what_the_loader_looked_for_and_a_broken_one_is_named(ke_t5, tmp_path):
    bare = tmp_path / "bare"
    taesan.load(ke_t5).save(bare)  # weights and config, no tokenizer
    b = Bundle.load(bare)
    assert b.tokenizer is None and read_tokenizer(bare)[0] is None
    with pytest.raises(TaesanError, match=r"no tokenizer.json, .*SentencePiece .model.*; pass --tokenizer FILE"):
        b.need_tokenizer()
    (bare / "tokenizer.json").write_text('{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0', encoding="utf-8")
    with pytest.raises(TaesanError, match="tokenizer.json"):
        Bundle.load(bare)
