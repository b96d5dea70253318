"""pipeline.Bundle: a checkpoint with its files read back whole, from a taesan directory (pretrained GPT, BERT,
encoder-decoder), a HuggingFace directory (transformers' own GPT-2 files and GPT-2's vocab.json + merges.txt),
a fine-tuned one and a prompt-tuned one: the model, tokenizer, objective or task, separator and stop ids, and
what each can do; the wrong tokenizer and a missing one as one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

import taesan
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle, WrongTask, byte_table
from taesan.tasks.classification import SequenceClassification
from taesan.tasks.readers.sentiment import TextExample
from taesan.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune

SMALL = dict(n_layers=1, d_model=32, n_heads=2, n_positions=32)


@pytest.fixture(scope="module")
def toks():
    lines = korean_corpus(200)
    return (BPETokenizer.train(lines, vocab_size=320, special_tokens=["<|endoftext|>"]),
            WordPieceTokenizer.train(lines, vocab_size=300))


def _training(directory, objective, separator):
    (directory / "training.json").write_text(json.dumps({"objective": objective, "separator_id": separator}), encoding="utf-8")


def test_a_pretrained_gpt_reads_its_separator_and_objective(tmp_path, toks):
    bpe, _ = toks
    taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL).save(tmp_path, bpe)
    _training(tmp_path, "causal", 0)  # id 0 as the separator: not the tokenizer's <|endoftext|>, so it must be read
    b = Bundle.load(tmp_path)
    assert b.name == tmp_path.name and b.task is None and b.objective == "causal"
    assert b.separator_id == 0 and b.stop_ids == [0] and b.model.config.eos_token_id == 0  # older config: filled
    assert b.actions == ["tokenize", "generate", "score", "attention"]
    assert not b.model.training and isinstance(b.tokenizer, BPETokenizer)
    _training(tmp_path, "backward", bpe.eos_id)
    back = Bundle.load(tmp_path)
    assert back.objective == "backward" and back.separator_id == bpe.eos_id and "generate" in back.actions


def test_without_training_json_the_model_type_and_the_tokenizer_decide(tmp_path, toks):
    bpe, wp = toks
    taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL).save(tmp_path / "gpt", bpe)
    gpt = Bundle.load(tmp_path / "gpt")
    assert gpt.objective == "causal" and gpt.separator_id == bpe.eos_id  # the tokenizer's <|endoftext|>
    taesan.create("bert-mlm", vocab_size=wp.vocab_size, d_ff=64, **SMALL).save(tmp_path / "bert", wp)
    bert = Bundle.load(tmp_path / "bert")
    assert bert.objective == "masked" and bert.actions == ["tokenize", "fill-mask", "score", "attention"]
    s2s = taesan.create("transformer-tiny", src_vocab_size=wp.vocab_size, n_positions=32, d_model=32, n_heads=2,
                        d_ff=64, n_encoder_layers=1, n_decoder_layers=1, pad_token_id=wp.pad_id, eos_token_id=wp.sep_id,
                        decoder_start_token_id=wp.cls_id)
    s2s.save(tmp_path / "s2s", wp)
    b = Bundle.load(tmp_path / "s2s")
    assert b.seq2seq and b.separator_id is None and b.stop_ids == [wp.sep_id] and "generate" in b.actions
    assert "score" not in b.actions
    with pytest.raises(WrongTask, match=r"cannot classify \(it can: tokenize, generate, attention\)"):
        b.need("classify")


def test_a_huggingface_directory_with_gpt2s_vocab_and_merges(tmp_path, toks):
    transformers = pytest.importorskip("transformers")
    bpe, _ = toks
    config = transformers.GPT2Config(vocab_size=bpe.vocab_size, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=bpe.eos_id, eos_token_id=bpe.eos_id)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    bpe.save_vocab_merges(tmp_path)  # vocab.json + merges.txt, no tokenizer.json
    assert not (tmp_path / "tokenizer.json").exists()
    b = Bundle.load(tmp_path)
    assert b.model_type == "gpt" and isinstance(b.tokenizer, BPETokenizer)
    assert b.tokenizer.encode("어제 카페 갔었어").ids == bpe.encode("어제 카페 갔었어").ids
    assert b.model.config.eos_token_id == bpe.eos_id and b.separator_id == bpe.eos_id  # from the HF config
    assert b.objective == "causal" and "generate" in b.actions and b.token_bytes is not None


def test_a_fine_tuned_and_a_prompt_tuned_checkpoint_bring_their_task(tmp_path, toks):
    _, wp = toks
    data = [TextExample(t, "긍정" if y else "부정", f"demo {i}") for i, (t, y) in enumerate(sentiment_examples(24))]
    config = TrainConfig(max_steps=2, lr=1e-3, warmup=0, eval_every=0, save_every=0, log_every=1000, progress=False)
    backbone = taesan.create("bert-tiny", vocab_size=wp.vocab_size, d_ff=64, **SMALL)
    backbone.save(tmp_path / "base", wp)
    for mode in ("full", "prompt"):
        task = SequenceClassification(tokenizer=wp)
        result = finetune(task, taesan.load(tmp_path / "base"), data, data[:4], tmp_path / mode, config, batch_size=8,
                          device="cpu", mode=mode, prompt_tokens=2)
        b = Bundle.load(tmp_path / mode)
        assert b.task is not None and b.task.name == "classification" and b.task.labels == ["긍정", "부정"]
        assert b.objective is None and b.separator_id is None and b.actions[:2] == ["classify", "tokenize"]
        assert b.model_type == ("soft-prompt" if mode == "prompt" else "bert-sequence-classification")
        assert b.task.tokenizer is b.tokenizer
        text = "배우들 연기가 훌륭하다"
        assert b.task.predict(b.model, [text]) == task.predict(result.model.eval(), [text])  # the model as trained


def test_wrong_or_missing_tokenizer_and_missing_directory_are_one_line(tmp_path, toks):
    bpe, _ = toks
    small = CharTokenizer.train(["티끌 모아 태산"], vocab_size=50, min_frequency=1, special_tokens=["<|endoftext|>"])
    taesan.create("gpt", vocab_size=small.vocab_size, **SMALL).save(tmp_path / "gpt", small)
    bpe.save(tmp_path / "big.json")
    with pytest.raises(TaesanError, match="not this model's tokenizer"):
        Bundle.load(tmp_path / "gpt", tokenizer=tmp_path / "big.json")
    taesan.create("gpt", vocab_size=small.vocab_size, **SMALL).save(tmp_path / "bare")
    bare = Bundle.load(tmp_path / "bare")
    assert bare.tokenizer is None and bare.actions == []
    with pytest.raises(TaesanError, match="no tokenizer"):
        bare.need_tokenizer()
    with pytest.raises(TaesanError, match="no such checkpoint directory"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(TaesanError, match="not fine-tuned for a task"):
        Bundle.load(tmp_path / "gpt").need_task()


def test_the_byte_table_gives_each_token_its_bytes(toks):
    bpe, wp = toks
    table = byte_table(bpe)
    assert len(table) == bpe.vocab_size and table[bpe.eos_id] is None
    for text in ("어제 카페 갔었어", "티끌 모아 태산!", "a b\n"):
        ids = bpe.encode(text, add_special_tokens=False).ids
        assert b"".join(table[i] for i in ids) == text.encode("utf-8")  # the bytes the tokens stand for, in order
    assert byte_table(wp) is None  # WordPiece tokens are whole characters
    metaspace = BPETokenizer({"<unk>": 0, "▁": 1, "카": 2, "페": 3, "▁카": 4, "▁카페": 5}, [("▁", "카"), ("▁카", "페")], ["<unk>"])
    assert byte_table(metaspace) is None  # a SentencePiece-style BPE (KoGPT2's): its tokens are characters too
