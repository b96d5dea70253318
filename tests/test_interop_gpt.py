"""GPT <-> HuggingFace GPT-2: tiny random HF models (built from a config, no download) give the same logits both ways.

Not the model's own behaviour (causality, cache, padding): that is tests/test_gpt.py.
"""
import json

import pytest
import torch

import taesan
from taesan import models as interop
from taesan.cli import main as cli_main
from taesan.errors import TaesanError

transformers = pytest.importorskip("transformers")


def _hf_config(**overrides):
    fields = dict(vocab_size=101, n_positions=24, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2Config(**{**fields, **overrides})


def _randomise(model):
    """Every parameter random (LayerNorm gains around 1), so a swapped or missing tensor cannot go unnoticed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "ln" in name and name.endswith("weight") else 0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(1)
    model = _randomise(transformers.GPT2LMHeadModel(_hf_config()))
    d = tmp_path_factory.mktemp("hf_gpt2")
    model.save_pretrained(d)
    return d, model


def _ids(B=2, T=9, V=101, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_hf_lm_head_model_loads_with_equal_logits(hf_dir):
    d, hf = hf_dir
    model = taesan.load(d)
    assert model.model_type == "gpt" and not model.training
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-5, rtol=0)


def test_hf_parity_with_padding_mask_and_explicit_positions(hf_dir):
    d, hf = hf_dir
    model = taesan.load(d)
    ids = _ids()
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :3] = 0  # row 0 left-padded
    mask[1, 7:] = 0  # row 1 right-padded
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, position_ids=positions)
        theirs = hf(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=0)


def test_export_loads_in_hf_with_equal_logits(hf_dir, tmp_path):
    d, hf = hf_dir
    model = taesan.load(d)
    interop.to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 32 and config["activation_function"] == "gelu_new"
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(back).__name__ == "GPT2LMHeadModel"
    ids = _ids(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)


def test_cli_convert_both_ways(hf_dir, tmp_path, capsys):
    d, hf = hf_dir
    assert cli_main(["convert", "--from-hf", str(d), "--out", str(tmp_path / "t")]) == 0
    assert "taesan_version" in json.loads((tmp_path / "t" / "config.json").read_text())
    ids = _ids(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(taesan.load(tmp_path / "t")(ids), hf(ids).logits, atol=1e-5, rtol=0)
    assert cli_main(["convert", "--to-hf", str(tmp_path / "t"), "--out", str(tmp_path / "h")]) == 0
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "h").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)


def test_bare_gpt2_model_without_prefix_gives_equal_hidden_states(tmp_path):
    hf = _randomise(transformers.GPT2Model(_hf_config(n_inner=48, layer_norm_epsilon=1e-6)))
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    assert model.config.d_ff == 48 and model.config.norm_eps == 1e-6
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(ids)[0], hf(ids).last_hidden_state, atol=1e-5, rtol=0)


def test_untied_head_round_trips(tmp_path):
    hf = _randomise(transformers.GPT2LMHeadModel(_hf_config(tie_word_embeddings=False)))
    assert not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert not model.config.tie_embeddings and model.lm_head.weight is not model.tok_emb.weight
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-5, rtol=0)
    interop.to_hf(model, tmp_path / "back")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)


def test_reorder_and_upcast_attention_is_the_same_attention_in_fp32(tmp_path):
    hf = _randomise(transformers.GPT2LMHeadModel(_hf_config(reorder_and_upcast_attn=True, attn_implementation="eager")))
    hf.save_pretrained(tmp_path)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(taesan.load(tmp_path)(ids), hf(ids).logits, atol=1e-5, rtol=0)


def test_unsupported_hf_setting_is_one_clear_error(tmp_path, capsys):
    hf = transformers.GPT2LMHeadModel(_hf_config(scale_attn_by_inverse_layer_idx=True))
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(TaesanError, match="scale_attn_by_inverse_layer_idx"):
        taesan.load(tmp_path / "hf")
    capsys.readouterr()  # drop HF's own progress output
    assert cli_main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "scale_attn_by_inverse_layer_idx" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_foreign_head_tensor_is_rejected(tmp_path):
    # GPT2ForSequenceClassification loads as taesan's GPTForSequenceClassification (tests/test_gpt_heads.py)
    hf = transformers.GPT2ForTokenClassification(_hf_config(num_labels=3, pad_token_id=0))
    hf.save_pretrained(tmp_path)
    with pytest.raises(TaesanError, match="unexpected tensor 'classifier."):
        taesan.load(tmp_path)


def test_cli_convert_carries_the_tokenizer_both_ways(tmp_path, capsys):
    """The export held weights only: transformers could not read text with it, nor taesan generate after
    --from-hf. Now tokenizer.json goes along, and HF's fast tokenizer gives the same ids as taesan's."""
    from taesan.data.embedded import korean_corpus
    from taesan.tokenizers import BPETokenizer, load

    tok = BPETokenizer.train(korean_corpus(200), vocab_size=300, special_tokens=["<|endoftext|>"])
    model = taesan.create("gpt-tiny", vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=32)
    model.save(tmp_path / "ours", tokenizer=tok)
    assert cli_main(["convert", "--to-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "hf")]) == 0
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"))
    text = "어제 카페 갔었어 티끌 모아 태산"
    assert hf_tok(text)["input_ids"] == tok.encode(text).ids
    assert cli_main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    assert load(tmp_path / "back" / "tokenizer.json").encode(text).ids == tok.encode(text).ids
    assert cli_main(["generate", "--model", str(tmp_path / "back"), "--prompt", "티끌", "--max-new-tokens", "3"]) == 0
    bare = tmp_path / "bare"  # a checkpoint without a tokenizer still converts, weights only
    model.save(bare)
    assert cli_main(["convert", "--to-hf", str(bare), "--out", str(tmp_path / "hf2")]) == 0
    assert not (tmp_path / "hf2" / "tokenizer.json").exists()
