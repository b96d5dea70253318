"""Seq2SeqTransformer <-> HuggingFace Marian and BART: tiny random HF models (from a config, no download) agree both ways.

Not the model's own behaviour (cache, causality, padding, presets): that is tests/test_transformer.py.
"""
import json

import pytest
import torch

import taesan
from taesan import models as interop
from taesan.pipeline.convert import convert
from taesan.errors import TaesanError

transformers = pytest.importorskip("transformers")

SIZES = dict(
    vocab_size=61, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=40,
)
CONFIGS = {  # name -> (config class, LM class, bare class, fields)
    "marian": ("MarianConfig", "MarianMTModel", "MarianModel",
               dict(pad_token_id=60, decoder_start_token_id=60, eos_token_id=0, scale_embedding=True, activation_function="swish")),
    "marian-two-vocabs": ("MarianConfig", "MarianMTModel", "MarianModel",
                          dict(share_encoder_decoder_embeddings=False, decoder_vocab_size=47, pad_token_id=46,
                               decoder_start_token_id=46, eos_token_id=0, scale_embedding=True, activation_function="relu")),
    "marian-untied-head": ("MarianConfig", "MarianMTModel", "MarianModel",
                           dict(share_encoder_decoder_embeddings=False, tie_word_embeddings=False, pad_token_id=60,
                                decoder_start_token_id=60, eos_token_id=0)),
    "bart": ("BartConfig", "BartForConditionalGeneration", "BartModel", dict()),
}


def _randomise(model):
    """Every weight random (LayerNorm gains around 1, a random final_logits_bias), so a swapped tensor shows.

    Small (std 0.05), so attention stays soft and a greedy decode does not collapse to one repeated token.
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name and not p.requires_grad:  # Marian's fixed sinusoidal table
                continue
            p.copy_(1 + 0.1 * torch.randn_like(p) if "layer_norm" in name or "layernorm" in name else 0.05 * torch.randn_like(p))
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.normal_(std=0.01)
    return model.eval()


def _hf_model(name, bare=False, **overrides):
    config_cls, lm_cls, bare_cls, fields = CONFIGS[name]
    config = getattr(transformers, config_cls)(**{**SIZES, **fields, **overrides})
    return _randomise(getattr(transformers, bare_cls if bare else lm_cls)(config))


@pytest.fixture(scope="module", params=list(CONFIGS))
def hf_dir(request, tmp_path_factory):
    torch.manual_seed(1)
    model = _hf_model(request.param)
    d = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(d)
    return d, model


def _batch(src_vocab=61, tgt_vocab=61, seed=0):
    """Right-padded source and target rows (pads under the masks), as a collator would make them."""
    g = torch.Generator().manual_seed(seed)
    src, tgt = torch.randint(1, src_vocab - 2, (3, 9), generator=g), torch.randint(1, tgt_vocab - 2, (3, 7), generator=g)
    src_mask, tgt_mask = torch.ones_like(src), torch.ones_like(tgt)
    src_mask[1, 6:], src_mask[2, 3:] = 0, 0
    tgt_mask[1, 4:] = 0
    return src, tgt, src_mask, tgt_mask


def _hf_logits(hf, src, tgt, src_mask, tgt_mask):
    out = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def test_hf_model_loads_with_equal_logits_under_padding(hf_dir):
    d, hf = hf_dir
    model = taesan.load(d)
    assert model.model_type == "transformer" and not model.training
    batch = _batch(hf.config.vocab_size, hf.config.decoder_vocab_size if hf.config.model_type == "marian" else hf.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)
        # the encoder alone, too
        memory, _ = model.encode(batch[0], batch[2])
        theirs = hf.get_encoder()(input_ids=batch[0], attention_mask=batch[2]).last_hidden_state
        torch.testing.assert_close(memory, theirs, atol=1e-5, rtol=0)


def test_export_loads_back_in_hf_with_equal_logits(hf_dir, tmp_path):
    d, hf = hf_dir
    model = taesan.load(d)
    interop.to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == hf.config.model_type and config["d_model"] == 32 and config["decoder_layers"] == 3
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval()
    assert type(back) is type(hf)
    batch = _batch(hf.config.vocab_size, model.config.tgt_vocab_size, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["marian", "bart"])
def test_bare_model_round_trip(name, tmp_path):
    """A bare MarianModel / BartModel tied to its embeddings loads with the head its *ForConditionalGeneration ties
    there (logits as that class gives them from the same directory; its hidden states under pre_logits) and exports
    as that class, which AutoModel still reads as the bare model."""
    torch.manual_seed(2)
    hf = _hf_model(name, bare=True)
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert model.lm_head.weight is model.tgt_emb.weight and not model.final_logits_bias.any()
    writer = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf").eval()
    batch = _batch(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch, pre_logits=True), _hf_logits(hf, *batch), atol=1e-5, rtol=0)
        torch.testing.assert_close(model(*batch), _hf_logits(writer, *batch), atol=1e-5, rtol=0)
    _exports_as_bare(model, hf, batch, tmp_path)


def _exports_as_bare(model, hf, batch, tmp_path) -> None:
    """The export, read by AutoModel, is the bare HF model it came from: same class, same hidden states."""
    interop.to_hf(model, tmp_path / "out")
    back = transformers.AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(back) is type(hf)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


def test_untied_bare_model_stays_bare(tmp_path):
    """A bare MarianModel with an untied output layer has none to take: it loads and exports as the bare model."""
    torch.manual_seed(2)
    hf = _hf_model("marian-untied-head", bare=True)
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert model.lm_head is None and model.final_logits_bias is None
    batch = _batch(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)
    _exports_as_bare(model, hf, batch, tmp_path)


@pytest.mark.parametrize("name", ["marian", "bart"])
@torch.no_grad()
def test_cached_greedy_decoding_matches_hf_generate(name, tmp_path):
    """Our encode-once, cached decode loop gives HF generate's raw logits at every step, and so its tokens."""
    torch.manual_seed(3)
    hf = _hf_model(name)
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    src, _, src_mask, _ = _batch(seed=3)
    out = hf.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=1,
                      forced_eos_token_id=None, return_dict_in_generate=True, output_logits=True)
    memory, _ = model.encode(src, src_mask)
    cache = model.new_cache()
    tokens = torch.full((3, 1), model.config.decoder_start_token_id)
    for step in range(8):
        logits, _ = model.decode(tokens[:, -1:], memory, src_mask, cache=cache)
        torch.testing.assert_close(logits[:, -1], out.logits[step], atol=1e-5, rtol=0)
        logits[..., model.config.eos_token_id] = float("-inf")  # what min_new_tokens does in HF
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert tokens.tolist() == out.sequences.tolist()


def test_convert_both_ways_keeps_logits(hf_dir, tmp_path):
    d, hf = hf_dir
    convert(d, tmp_path / "ours", "from-hf")
    assert "taesan_version" in json.loads((tmp_path / "ours" / "config.json").read_text())
    convert(tmp_path / "ours", tmp_path / "theirs", "to-hf")
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "theirs").eval()
    batch = _batch(hf.config.vocab_size, taesan.load(tmp_path / "ours").config.tgt_vocab_size, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(encoder_layerdrop=0.1), "encoder_layerdrop"),
        (dict(decoder_attention_heads=2), "decoder_attention_heads"),
        (dict(decoder_ffn_dim=64), "decoder_ffn_dim"),
        (dict(activation_function="quick_gelu"), "activation_function"),
        (dict(architectures=["BartForSequenceClassification"]), "BartForSequenceClassification"),
    ],
)
def test_unsupported_hf_settings_raise_one_line(change, message, tmp_path):
    torch.manual_seed(4)
    _hf_model("bart").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TaesanError, match=message) as err:
        taesan.load(tmp_path)
    assert "\n" not in str(err.value)


def test_unexpected_or_missing_tensors_raise(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(5)
    _hf_model("marian").save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({**state, "model.encoder.layernorm_embedding.weight": torch.ones(32)}, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="unexpected tensor 'model.encoder.layernorm_embedding.weight'"):
        taesan.load(tmp_path)
    del state["model.decoder.layers.2.encoder_attn.k_proj.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="encoder_attn.k_proj.weight' is missing"):
        taesan.load(tmp_path)


def test_export_of_a_config_without_hf_family_raises(tmp_path):
    model = taesan.create("transformer-tiny")  # the paper's interleaved sinusoids: neither Marian nor BART
    with pytest.raises(TaesanError, match="matches no HuggingFace family"):
        interop.to_hf(model, tmp_path)
    marian_like = taesan.create("transformer-tiny", position_embedding="sinusoidal_halves", final_logits_bias=True)
    hf_config, hf_state = interop.HF_EXPORTERS[type(marian_like)](marian_like)
    assert hf_config["model_type"] == "marian" and hf_state["final_logits_bias"].shape == (1, 512)


def test_marian_sinusoidal_table_is_hfs_to_the_bit():
    """Far positions too: a float32 table drifts by ~3e-5 at position 1000, past the 1e-5 budget."""
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    model = taesan.create("transformer-tiny", n_positions=1024, position_embedding="sinusoidal_halves")
    theirs = MarianSinusoidalPositionalEmbedding(1024, 64).create_weight()
    assert torch.equal(model.src_pos.table, theirs)
