"""T5 <-> HuggingFace T5 / mT5: tiny random HF models (from a config, no download) agree both ways, and taesan.generate
gives HF generate's greedy and beam outputs.

Not the model's own behaviour (cache, causality, padding, presets, save/load): that is tests/test_t5.py.
"""
import json

import pytest
import torch

import taesan
from taesan import models as interop
from taesan.errors import TaesanError
from taesan.models.t5 import T5, T5Encoder
from taesan.models.t5_layers import relative_position_bucket
from taesan.pipeline.convert import convert

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # HF warns about every untied head it keeps untied

# 2 encoder and 3 decoder layers; 8 buckets up to distance 20, so 25-token rows reach the log-spaced and the last bucket
SIZES = dict(vocab_size=61, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3, num_heads=4,
             relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0)
VARIANTS = {  # name -> (config fields, a head of its own (untied))
    "v1.0-tied": (dict(feed_forward_proj="relu"), False),
    "v1.1-untied": (dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False), True),
    "relu-untied": (dict(feed_forward_proj="relu", tie_word_embeddings=False), True),
    "gated-gelu-tied": (dict(feed_forward_proj="gated-gelu"), False),
    # what transformers 5 itself saves for tie_word_embeddings=False: the head IS shared, only not rescaled
    "tied-unscaled": (dict(feed_forward_proj="gated-silu", tie_word_embeddings=False), False),
}


def _randomise(model, own_head: bool):
    """Every weight random (norm gains around 1), small enough that attention stays soft and greedy decoding varies;
    `own_head` gives the LM head a matrix of its own, as T5 v1.1 / mT5 checkpoints have."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "layer_norm" in name else 0.1 * torch.randn_like(p))
        if own_head:
            model.lm_head.weight = torch.nn.Parameter(0.1 * torch.randn_like(model.shared.weight))
    return model.eval()


def _hf_model(name, cls="T5ForConditionalGeneration", config_cls="T5Config", **overrides):
    fields, own_head = VARIANTS[name]
    config = getattr(transformers, config_cls)(**{**SIZES, **fields, **overrides})
    return _randomise(getattr(transformers, cls)(config), own_head and "ForConditional" in cls)


@pytest.fixture(scope="module", params=list(VARIANTS))
def hf_dir(request, tmp_path_factory):
    torch.manual_seed(1)
    model = _hf_model(request.param)
    d = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(d)
    return d, model, request.param


def _batch(seed=0, S=25, T=22):
    """Right-padded source and target rows (pads under the masks), as a collator would make them."""
    g = torch.Generator().manual_seed(seed)
    src, tgt = torch.randint(2, 61, (3, S), generator=g), torch.randint(2, 61, (3, T), generator=g)
    src_mask, tgt_mask = torch.ones_like(src), torch.ones_like(tgt)
    src_mask[1, 6:], src_mask[2, 3:] = 0, 0
    tgt_mask[1, 4:] = 0
    return src, tgt, src_mask, tgt_mask


def _hf_logits(hf, src, tgt, src_mask, tgt_mask):
    out = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def test_relative_position_buckets_are_hfs():
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-300, 301)[None] - torch.zeros(1, 1, dtype=torch.long)
    for bidirectional in (True, False):
        for n_buckets, max_distance in ((32, 128), (8, 20), (6, 7), (64, 1000)):
            ours = relative_position_bucket(relative, bidirectional, n_buckets, max_distance)
            theirs = T5Attention._relative_position_bucket(relative, bidirectional, n_buckets, max_distance)
            assert ours.tolist() == theirs.tolist(), (bidirectional, n_buckets, max_distance)
            if max_distance < 300:  # every bucket is reached (exact, log-spaced, the last), but "after, at distance 0"
                assert set(ours.flatten().tolist()) == set(range(n_buckets)) - ({n_buckets // 2} if bidirectional else set())


def test_hf_model_loads_with_equal_logits_under_padding(hf_dir):
    d, hf, name = hf_dir
    model = taesan.load(d)
    assert type(model) is T5 and not model.training
    own_head = VARIANTS[name][1]
    assert (model.lm_head.weight is model.shared.weight) is not own_head
    assert model.config.scale_decoder_outputs is hf.config.scale_decoder_outputs
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)
        memory, _ = model.encode(batch[0], batch[2])
        theirs = hf.get_encoder()(input_ids=batch[0], attention_mask=batch[2]).last_hidden_state
        torch.testing.assert_close(memory, theirs, atol=1e-5, rtol=0)


def test_export_loads_back_in_hf_with_equal_logits(hf_dir, tmp_path):
    d, hf, name = hf_dir
    model = taesan.load(d)
    interop.to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "t5" and config["num_decoder_layers"] == 3 and config["feed_forward_proj"] == hf.config.feed_forward_proj
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval()
    assert type(back) is type(hf)
    assert (back.lm_head.weight is back.shared.weight) is not VARIANTS[name][1]
    batch = _batch(seed=1)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


def test_convert_both_ways_keeps_logits(hf_dir, tmp_path):
    d, hf, _ = hf_dir
    convert(d, tmp_path / "ours", "from-hf")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model_type"] == "t5"
    convert(tmp_path / "ours", tmp_path / "theirs", "to-hf")
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "theirs").eval()
    batch = _batch(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


def test_cli_convert_both_ways(tmp_path, capsys):
    from taesan.cli import main

    torch.manual_seed(6)
    hf = _hf_model("v1.1-untied")
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ours")]) == 0
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "theirs")]) == 0
    back = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "theirs").eval()
    batch = _batch(seed=6)
    with torch.no_grad():
        torch.testing.assert_close(_hf_logits(back, *batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls, ours", [("T5Model", T5), ("T5EncoderModel", T5Encoder)])
def test_bare_model_and_encoder_round_trip(cls, ours, tmp_path):
    """A T5Model (transformers 5 saves it tied) loads with the head T5ForConditionalGeneration ties to `shared` and
    exports as that class, which T5Model still reads; a T5EncoderModel stays an encoder."""
    torch.manual_seed(2)
    hf = _hf_model("v1.1-untied", cls=cls)
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert type(model) is ours
    src, tgt, src_mask, tgt_mask = _batch(seed=2)
    with torch.no_grad():
        if ours is T5:
            assert model.lm_head.weight is model.shared.weight
            hidden, _ = model.forward_features(src, tgt, src_mask, tgt_mask)
            torch.testing.assert_close(hidden, _hf_logits(hf, src, tgt, src_mask, tgt_mask), atol=1e-5, rtol=0)
            writer = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
            torch.testing.assert_close(model(src, tgt, src_mask, tgt_mask), _hf_logits(writer, src, tgt, src_mask, tgt_mask),
                                       atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(model(src, src_mask), hf(input_ids=src, attention_mask=src_mask).last_hidden_state, atol=1e-5, rtol=0)
    interop.to_hf(model, tmp_path / "out")
    back = getattr(transformers, cls).from_pretrained(tmp_path / "out").eval()
    exported = "T5ForConditionalGeneration" if ours is T5 else cls
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == [exported]
    with torch.no_grad():
        theirs, again = (m(input_ids=src, attention_mask=src_mask) if ours is T5Encoder else
                         m(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt) for m in (hf, back))
        torch.testing.assert_close(again.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)


def test_mt5_loads_with_equal_logits(tmp_path):
    """mT5 is T5 v1.1 by another name; transformers 5 never rescales its decoder output."""
    torch.manual_seed(7)
    hf = _hf_model("v1.1-untied", cls="MT5ForConditionalGeneration", config_cls="MT5Config")
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    assert model.config.gated and model.config.activation == "gelu_tanh" and not model.config.scale_decoder_outputs
    batch = _batch(seed=7)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


@pytest.fixture(scope="module", params=["v1.0-tied", "v1.1-untied"])
def generator_pair(request, tmp_path_factory):
    """An HF model and its taesan load, with equal encoder and decoder depth (transformers 5.25's generate sizes its
    cache by num_layers) and an end-of-sequence token likely enough that beams finish at different lengths."""
    torch.manual_seed(3)
    hf = _hf_model(request.param, num_decoder_layers=2)
    with torch.no_grad():
        hf.lm_head.weight[1] *= 2.5  # eos_token_id = 1
    d = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(d)
    return hf, taesan.load(d)


@torch.no_grad()
def test_cached_decoding_gives_hf_generate_logits_at_every_step(generator_pair):
    hf, model = generator_pair
    src, _, src_mask, _ = _batch(seed=3, S=9)
    out = hf.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=1,
                      return_dict_in_generate=True, output_logits=True)
    memory, _ = model.encode(src, src_mask)
    cache = model.new_cache()
    tokens = torch.full((3, 1), model.config.decoder_start_token_id)
    for step in range(8):
        logits, _ = model.decode(tokens[:, -1:], memory if step == 0 else None, src_mask, cache=cache)
        torch.testing.assert_close(logits[:, -1], out.logits[step], atol=1e-5, rtol=0)
        logits[..., model.config.eos_token_id] = float("-inf")  # what min_new_tokens does in HF
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert tokens.tolist() == out.sequences.tolist()


SETTINGS = [
    dict(),
    dict(min_new_tokens=3, no_repeat_ngram_size=2, repetition_penalty=1.2),
    dict(num_beams=3),
    dict(num_beams=3, num_return_sequences=2, length_penalty=0.8),
    dict(num_beams=4, length_penalty=1.5, early_stopping=True),
    dict(num_beams=2, length_penalty=-0.5, early_stopping="never"),
]


def test_greedy_and_beam_search_equal_hf_generate(generator_pair):
    hf, model = generator_pair
    g = torch.Generator().manual_seed(5)
    src = torch.randint(2, 61, (4, 10), generator=g)
    src_mask = torch.ones_like(src)
    src_mask[1, 6:], src_mask[3, 2:] = 0, 0
    ended_early = 0
    for settings in SETTINGS:
        ours = taesan.generate(model, src, src_mask, max_new_tokens=12, **settings)
        with torch.no_grad():
            theirs = hf.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=12, do_sample=False, **settings)
        if settings.get("num_beams", 1) > 1:
            theirs = _pad_after_eos(theirs)
        assert ours.tolist() == theirs.tolist(), settings
        assert (ours[:, 0] == 0).all()  # T5 starts the decoder with its pad token
        ended_early += int((ours[:, 1:-1] == 1).any())
    assert ended_early >= 2  # some runs stop rows early: the stopping rules are exercised, not only max length


def _pad_after_eos(ids, eos=1, pad=0):
    """transformers 5.25's beam search fills finished rows with `pad_token_id or eos_token_id`: eos when pad is 0,
    as in T5. taesan fills with the pad token; the tokens up to each row's end must agree."""
    hit = ids[:, 1:] == eos
    after = (hit.long().cumsum(1) - hit.long()) > 0
    out = ids.clone()
    out[:, 1:] = ids[:, 1:].masked_fill(after, pad)
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(feed_forward_proj="gated-quick_gelu"), "feed_forward_proj"),
        (dict(feed_forward_proj="relu-gelu"), "feed_forward_proj"),
        (dict(architectures=["T5ForSequenceClassification"]), "T5ForSequenceClassification"),
        (dict(eos_token_id=[1, 2]), "eos_token_id"),
        (dict(d_model=40), "shape"),
    ],
)
def test_unsupported_hf_settings_raise_one_line(change, message, tmp_path):
    torch.manual_seed(4)
    _hf_model("v1.0-tied").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TaesanError, match=message) as err:
        taesan.load(tmp_path)
    assert "\n" not in str(err.value)


def test_unexpected_or_missing_tensors_raise(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(5)
    _hf_model("v1.0-tied").save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({**state, "decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight": torch.ones(8, 4)},
              tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="unexpected tensor 'decoder.block.1.layer.0.SelfAttention.relative_attention_bias"):
        taesan.load(tmp_path)
    del state["decoder.block.2.layer.1.EncDecAttention.k.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="EncDecAttention.k.weight' is missing"):
        taesan.load(tmp_path)


def test_older_checkpoints_with_every_tied_copy_load(tmp_path):
    """Older saves keep encoder/decoder embed_tokens, lm_head and the unused cross-attention bias as tensors of their own."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(8)
    hf = _hf_model("v1.0-tied")
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    shared = state["shared.weight"]
    extra = {"encoder.embed_tokens.weight": shared, "decoder.embed_tokens.weight": shared, "lm_head.weight": shared,
             "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight": torch.randn(8, 4)}
    save_file({k: v.clone() for k, v in {**state, **extra}.items()}, tmp_path / "model.safetensors")
    model = taesan.load(tmp_path)
    assert model.lm_head.weight is model.shared.weight
    batch = _batch(seed=8)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)


def test_export_of_a_gated_exact_gelu_raises(tmp_path):
    model = taesan.create("t5-tiny", activation="gelu", gated=True)
    with pytest.raises(TaesanError, match="gated exact-GELU"):
        interop.to_hf(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_older_config_fields_fall_back_as_hf_does(tmp_path):
    """Hub configs written by older transformers: no num_decoder_layers (symmetric), a null decoder_start_token_id
    (T5 starts with pad), no scale_decoder_outputs (tie_word_embeddings decides), and n_positions."""
    torch.manual_seed(9)
    hf = _hf_model("v1.1-untied", num_decoder_layers=2)
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for field in ("num_decoder_layers", "scale_decoder_outputs", "dense_act_fn", "is_gated_act"):
        config.pop(field, None)
    config.update(decoder_start_token_id=None, tie_word_embeddings=False, n_positions=256)
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = taesan.load(tmp_path)
    c = model.config
    assert (c.n_decoder_layers, c.decoder_start_token_id, c.scale_decoder_outputs, c.n_positions) == (2, 0, False, 256)
    batch = _batch(seed=9)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), _hf_logits(hf, *batch), atol=1e-5, rtol=0)
