"""The encoder-decoder Transformer's own behaviour: KV-cached decoding, causality, padding, presets, save/load, training.

Not HuggingFace parity: that is tests/test_interop_seq2seq.py.
"""
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import taesan
from taesan.errors import TaesanError
from taesan.models.transformer import PRESETS, Seq2SeqTransformer, TransformerConfig

SMALL = dict(src_vocab_size=40, n_positions=32, d_model=32, n_encoder_layers=2, n_decoder_layers=2, n_heads=4, d_ff=64)
VARIANTS = {  # the settings the families differ in
    "paper": {},
    "marian-like": dict(position_embedding="sinusoidal_halves", activation="silu"),
    "bart-like": dict(position_embedding="learned", position_offset=2, layernorm_embedding=True, scale_embedding=False, activation="gelu"),
    "pre-ln": dict(norm="pre", share_embeddings=False, tgt_vocab_size=30, tie_output=False, final_logits_bias=True),
}


def _model(**overrides) -> Seq2SeqTransformer:
    model = Seq2SeqTransformer(TransformerConfig(**{**SMALL, **overrides}))
    if model.final_logits_bias is not None:
        model.final_logits_bias.normal_()
    return model.eval()


def _ids(B, T, V=30, seed=0):
    return torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _src_batch():
    src = _ids(2, 7, seed=1)
    src_mask = torch.ones(2, 7, dtype=torch.long)
    src_mask[1, 4:] = 0  # row 1 has 3 pad positions
    src[1, 4:] = 0
    return src, src_mask


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_cached_step_by_step_decoding_equals_the_full_pass(variant):
    model = _model(**VARIANTS[variant])
    src, src_mask = _src_batch()
    tgt = _ids(2, 6, seed=2)
    full = model(src, tgt, src_mask)
    memory, _ = model.encode(src, src_mask)
    kv_calls = []
    for block in model.decoder:  # the cross-attention k/v projection reads the memory: count its calls
        block.cross_attn.kv.register_forward_hook(lambda *_: kv_calls.append(1))
    cache = model.new_cache()
    steps, cross_keys = [], None
    for t in range(tgt.shape[1]):
        logits, _ = model.decode(tgt[:, t : t + 1], memory if t == 0 else None, src_mask, cache=cache)
        steps.append(logits)
        if cross_keys is None:
            cross_keys = [c.k for c in cache.cross_attn]
        assert all(c.k is k for c, k in zip(cache.cross_attn, cross_keys))  # stored once, reused
        assert cache.length == t + 1
    assert len(kv_calls) == model.config.n_decoder_layers  # memory projected once per layer, not once per step
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_cache_accepts_chunks_and_padding_mask_over_all_positions():
    """A 3-token prompt, then single steps; tgt_mask covers cached + new positions (right-padded row 1)."""
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 6, seed=3)
    tgt_mask = torch.ones(2, 6, dtype=torch.long)
    tgt_mask[1, 2] = 0  # a hole in row 1: nobody may attend to position 2 of row 1
    full = model(src, tgt, src_mask, tgt_mask)
    memory, _ = model.encode(src, src_mask)
    cache = model.new_cache()
    first, _ = model.decode(tgt[:, :3], memory, src_mask, tgt_mask[:, :3], cache=cache)
    rest = [model.decode(tgt[:, t : t + 1], None, src_mask, tgt_mask[:, : t + 1], cache=cache)[0] for t in range(3, 6)]
    torch.testing.assert_close(torch.cat([first, *rest], 1), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_reordering_the_cache_equals_decoding_the_reordered_batch():
    """What beam search does: cache.reorder(index) + src_mask[index] continues as if the batch had been reordered."""
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 5, seed=4)
    index = torch.tensor([1, 1, 0])
    memory, _ = model.encode(src, src_mask)
    cache = model.new_cache()
    model.decode(tgt[:, :3], memory, src_mask, cache=cache)
    cache.reorder(index)
    ours, _ = model.decode(tgt[index, 3:], None, src_mask[index], cache=cache)
    expected = model(src[index], tgt[index], src_mask[index])[:, 3:]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_decoder_is_causal():
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 8, seed=5)
    base = model(src, tgt, src_mask)
    for t in (0, 3, 7):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 7) % 30
        out = model(src, changed, src_mask)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t:], base[:, t:])  # the change is seen from t on


@pytest.mark.parametrize("variant", ["paper", "pre-ln"])
@torch.no_grad()
def test_source_padding_leaves_real_outputs_unchanged(variant):
    model = _model(**VARIANTS[variant])
    src = _ids(1, 5, seed=6)
    tgt = _ids(1, 4, seed=7)
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    memory, _ = model.encode(src)
    memory_padded, _ = model.encode(padded, mask)
    torch.testing.assert_close(memory_padded[:, :5], memory, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(padded, tgt, mask), model(src, tgt), atol=1e-5, rtol=0)
    # without the mask the pads are read: the mask is what makes the outputs equal
    assert not torch.allclose(model(padded, tgt), model(src, tgt), atol=1e-5)


@torch.no_grad()
def test_target_padding_leaves_real_outputs_unchanged():
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 4, seed=8)
    padded = torch.cat([torch.zeros(2, 2, dtype=torch.long), tgt], 1)  # left padding, positions kept per row
    tgt_mask = torch.tensor([[0, 0, 1, 1, 1, 1]] * 2)
    positions = (tgt_mask.cumsum(-1) - 1).clamp(min=0)
    memory, _ = model.encode(src, src_mask)
    ours, _ = model.decode(padded, memory, src_mask, tgt_mask, position_ids=positions)
    plain, _ = model.decode(tgt, memory, src_mask)
    torch.testing.assert_close(ours[:, 2:], plain, atol=1e-5, rtol=0)


@torch.no_grad()
def test_attention_weights_path_matches_fast_path():
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 5, seed=9)
    hidden, attentions = model.forward_features(src, tgt, src_mask, need_weights=True)
    assert len(attentions) == 4 and set(attentions[0]) == {"self"} and set(attentions[2]) == {"self", "cross"}
    assert attentions[0]["self"].shape == (2, 4, 7, 7) and attentions[2]["cross"].shape == (2, 4, 5, 7)
    assert attentions[3]["self"][:, :, 0, 1:].abs().max() == 0  # causal
    assert attentions[2]["cross"][1, :, :, 4:].abs().max() == 0  # source padding
    torch.testing.assert_close(attentions[2]["cross"].sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(model.head(hidden), model(src, tgt, src_mask), atol=1e-5, rtol=0)


@torch.no_grad()
def test_inputs_embeds_replace_source_ids():
    model = _model()
    src, src_mask = _src_batch()
    a, _ = model.encode(src, src_mask)
    b, _ = model.encode(src_mask=src_mask, inputs_embeds=model.src_emb(src))
    torch.testing.assert_close(a, b)


def test_bad_inputs_and_configs_raise_clearly():
    model = _model()
    src, src_mask = _src_batch()
    with pytest.raises(ValueError, match="memory"):
        model.decode(_ids(2, 3), None, cache=model.new_cache())
    with pytest.raises(ValueError, match="src_mask"):
        model(src, _ids(2, 3), src_mask[:, :5])
    with pytest.raises(ValueError, match="n_positions"):
        model(_ids(1, 33), _ids(1, 2))
    with pytest.raises(TaesanError, match="share_embeddings"):
        taesan.create("transformer-tiny", tgt_vocab_size=100)
    with pytest.raises(TaesanError, match="position_embedding"):
        taesan.create("transformer-tiny", position_embedding="rotary")
    with pytest.raises(TaesanError, match="pad_token_id"):
        taesan.create("transformer-tiny", pad_token_id=512)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_finite(variant):
    model = _model(**VARIANTS[variant]).train()
    src, src_mask = _src_batch()
    logits = model(src, _ids(2, 5), src_mask)
    assert logits.shape == (2, 5, model.config.tgt_vocab_size) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_tiny_preset_forward_backward_finite():
    model = taesan.create("transformer-tiny")
    src = torch.randint(3, 512, (2, 9))
    logits = model(src, src[:, :6])
    logits.float().pow(2).mean().backward()
    assert logits.shape == (2, 6, 512) and torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _hand_count(V, d, ff, n_enc, n_dec):
    """Parameters of the paper's model with one shared V-token embedding (also the output projection)."""
    attention = 4 * (d * d + d)  # q, k, v, out with biases
    ffn = d * ff + ff + ff * d + d
    norm = 2 * d
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    return V * d + n_enc * encoder_layer + n_dec * decoder_layer


@pytest.mark.parametrize("name, millions", [("transformer-base", 63.08), ("transformer-big", 214.25), ("transformer-tiny", 0.27)])
def test_preset_parameter_counts(name, millions):
    model_type, fields = PRESETS[name]
    config = TransformerConfig(**fields)
    with torch.device("meta"):  # counts without allocating 213M parameters
        model = taesan.create(name)
    expected = _hand_count(config.src_vocab_size, config.d_model, config.d_ff, config.n_encoder_layers, config.n_decoder_layers)
    assert model.num_parameters() == expected
    assert abs(expected / 1e6 - millions) < 0.01 * millions + 0.005


def test_save_load_round_trip_keeps_ties_and_logits(tmp_path):
    model = _model(**VARIANTS["bart-like"], final_logits_bias=True)
    model.save(tmp_path / "ckpt")
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "src_emb.weight" in keys and "final_logits_bias" in keys
    assert "tgt_emb.weight" not in keys and "lm_head.weight" not in keys  # tied: stored once
    loaded = taesan.load(tmp_path / "ckpt")
    assert loaded.lm_head.weight is loaded.tgt_emb.weight is loaded.src_emb.weight
    src, src_mask = _src_batch()
    tgt = _ids(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, tgt, src_mask), model(src, tgt, src_mask), atol=0, rtol=0)


def test_save_load_round_trip_untied(tmp_path):
    model = _model(**VARIANTS["pre-ln"])
    model.save(tmp_path / "ckpt")
    loaded = taesan.load(tmp_path / "ckpt")
    assert loaded.lm_head.weight is not loaded.tgt_emb.weight
    src, src_mask = _src_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, _ids(2, 4), src_mask), model(src, _ids(2, 4), src_mask), atol=0, rtol=0)


def test_untied_head_missing_from_checkpoint_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    _model(**VARIANTS["pre-ln"]).save(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["lm_head.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="'lm_head.weight' is missing"):
        taesan.load(tmp_path)


def test_teacher_forced_copy_task_trains():
    """Copy a random 6-token source: decoder input = [start] + target[:-1]. The loss must fall well below chance."""
    torch.manual_seed(0)
    model = Seq2SeqTransformer(TransformerConfig(**{**SMALL, "src_vocab_size": 16, "dropout": 0.0}))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = model.config.decoder_start_token_id

    def batch():
        src = torch.randint(3, 16, (32, 6))
        return src, F.pad(src[:, :-1], (1, 0), value=start), src

    losses = []
    for _ in range(120):
        src, tgt_in, labels = batch()
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first and last < 1.0, (first, last)  # chance is ln 13 ≈ 2.56
