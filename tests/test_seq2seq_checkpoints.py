"""Encoder-decoder checkpoints as the hub ships them: KoBART is a bare `BartModel` (no LM head, embeddings tied,
decoder_start_token_id 1 = </s>). Loaded, it writes through its tied output layer as HF's
BartForConditionalGeneration does from the same directory (generate, pipeline, pretrain, finetune all see that
model), a model without an output layer refuses to generate in one line, and fine-tuning keeps the checkpoint's
own decoder start token (a preset built here still takes the tokenizer's).

Not the weight tables (test_interop_seq2seq.py, test_interop_t5.py) and not the HF export (test_convert_export.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_files import corpus_lines, write_task_files

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.tasks.heads import decoder_start

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

KOBART_SPECIALS = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"]  # KoBART's first ids
FAST = ["--threads", "1", "--no-progress", "--max-steps", "2", "--batch-size", "8"]


def randomise(model):
    """Every weight random (std 0.05, LayerNorm gains around 1): logits differ enough that greedy choices are clear."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else 0.05 * torch.randn_like(p))
    return model.eval()


def kobart_like(directory: Path, seed: int = 0) -> Path:
    """gogamza/kobart-base-v2's layout, tiny: a byte-level BPE tokenizer.json (KoBART's specials first, no
    post-processor), a bare BartModel (architectures ["BartModel"]), tokenizer_config.json, special_tokens_map.json."""
    directory.mkdir(parents=True, exist_ok=True)
    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator(corpus_lines(), vocab_size=400, min_frequency=1, special_tokens=KOBART_SPECIALS)
    tok.save(str(directory / "tokenizer.json"))
    torch.manual_seed(seed)
    config = transformers.BartConfig(
        vocab_size=tok.get_vocab_size(), d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=3,
        bos_token_id=0, eos_token_id=1, decoder_start_token_id=1, forced_eos_token_id=1)
    randomise(transformers.BartModel(config)).save_pretrained(directory)
    assert json.loads((directory / "config.json").read_text())["architectures"] == ["BartModel"]
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials))
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return directory


@pytest.fixture(scope="module")
def kobart(tmp_path_factory) -> Path:
    return kobart_like(tmp_path_factory.mktemp("hub") / "kobart-base-v2")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("task_files"))


def test_a_bare_bart_loads_with_the_tied_output_layer(kobart):
    """Logits over the vocabulary, equal to BartForConditionalGeneration's from the same directory."""
    ours = taesan.load(kobart)
    theirs = transformers.BartForConditionalGeneration.from_pretrained(kobart).eval()
    assert ours.lm_head.weight is ours.tgt_emb.weight
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randint(7, ours.config.src_vocab_size, (2, 9), generator=g), torch.randint(7, 300, (2, 5), generator=g)
    src_mask = torch.ones_like(src)
    src_mask[1, 6:] = 0
    with torch.no_grad():
        logits = ours(src, tgt, src_mask=src_mask)
        expected = theirs(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
    assert logits.shape[-1] == ours.config.tgt_vocab_size
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_generate_pipeline_and_cli_write_what_hf_writes(kobart, capsys):
    """taesan.generate, the pipeline and `taesan generate` write tokens (HF's greedy ones), not hidden-state
    feature numbers below d_model."""
    tok = taesan.tokenizers.load(kobart)
    ids = [tok.encode("어제 카페 갔었어").ids]
    hf = transformers.BartForConditionalGeneration.from_pretrained(kobart).eval()
    with torch.no_grad():
        expected = hf.generate(torch.tensor(ids), max_new_tokens=8, do_sample=False, num_beams=1, forced_eos_token_id=None)
    ours = taesan.generate(taesan.load(kobart), ids, max_new_tokens=8)
    assert ours.tolist() == expected.tolist() and max(ours[0, 1:].tolist()) >= 32  # not an argmax over 32 features
    text = tok.decode([i for i in ours[0, 1:].tolist() if i != tok.eos_id])
    assert text and taesan.pipeline(kobart)("어제 카페 갔었어", max_new_tokens=8)["completion"] == text
    assert main(["generate", "--model", str(kobart), "--prompt", "어제 카페 갔었어", "--max-new-tokens", "8",
                 "--threads", "1", "--precision", "fp32"]) == 0
    assert text in capsys.readouterr().out


def test_generate_refuses_a_model_without_output_layer():
    """A backbone whose output is its hidden states (an untied bare model, or one built with lm_head=False) says so
    in one line instead of writing feature numbers."""
    bare = taesan.create("transformer-tiny", src_vocab_size=40, lm_head=False, n_positions=16, d_model=16, n_heads=2, d_ff=32)
    with pytest.raises(TaesanError, match="output layer") as err:
        taesan.generate(bare, [[5, 6, 7]], max_new_tokens=3)
    assert "\n" not in str(err.value)


def test_pretrain_denoising_trains_a_bare_bart(kobart, tmp_path, capsys):
    """The denoising objective scores the vocabulary (was: IndexError, target out of bounds for the hidden width)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(corpus_lines(60)) + "\n", encoding="utf-8")
    out = tmp_path / "pre"
    code = main(["pretrain", "--model", str(kobart), "--objective", "denoising", "--corpus", str(corpus), "--tokenizer",
                 str(kobart), "--out", str(out), "--block-size", "16", *FAST])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "training.json").read_text())["decoder_start_id"] == 1  # KoBART's </s>, its config's
    assert taesan.load(out).config.lm_head


def test_finetune_keeps_the_checkpoints_decoder_start(kobart, files, tmp_path, capsys):
    """KoBART starts its decoder from </s> (config 1): fine-tuning keeps it, not the tokenizer's <s> (0)."""
    out = tmp_path / "tr"
    assert main(["finetune", "--task", "translation", "--model", str(kobart), "--train", str(files["translation"]),
                 "--out", str(out), *FAST]) == 0, capsys.readouterr().err
    assert json.loads((out / "task.json").read_text())["decoder_start_id"] == 1
    assert json.loads((out / "config.json").read_text())["decoder_start_token_id"] == 1


def test_decoder_start_of_presets_and_taesan_checkpoints(kobart, tmp_path):
    """A model built from a preset has only its class default: the tokenizer's <s> (T5: pad) as before. A taesan
    checkpoint stores the start it trained with, and a loaded one keeps it."""
    tok = taesan.tokenizers.load(kobart)
    preset = taesan.create("transformer-tiny", src_vocab_size=tok.vocab_size, pad_token_id=3)
    assert decoder_start(preset, tok, 3, tok.eos_id) == tok.cls_id == 0
    assert decoder_start(taesan.create("t5-tiny", vocab_size=tok.vocab_size), tok, 3, tok.eos_id) == 3
    taesan.create("transformer-tiny", src_vocab_size=tok.vocab_size, decoder_start_token_id=5).save(tmp_path / "own")
    assert decoder_start(taesan.load(tmp_path / "own"), tok, 3, tok.eos_id) == 5
    assert decoder_start(taesan.load(kobart), tok, 3, tok.eos_id) == 1


def test_a_bare_tied_t5_model_writes_as_t5_for_conditional_generation(tmp_path):
    """T5Model gets T5ForConditionalGeneration's tied head, rescaled by d_model**-0.5 as HF does."""
    torch.manual_seed(1)
    config = transformers.T5Config(vocab_size=60, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2)
    randomise(transformers.T5Model(config)).save_pretrained(tmp_path)
    ours = taesan.load(tmp_path)
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    src, tgt = torch.randint(2, 60, (2, 7)), torch.randint(2, 60, (2, 4))
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt), theirs(input_ids=src, decoder_input_ids=tgt).logits, atol=1e-5, rtol=0)
