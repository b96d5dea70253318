"""T5's own behaviour: relative position buckets, KV-cached decoding, causality, padding, attention weights, presets,
save/load, generate and training.

Not HuggingFace parity: that is tests/test_interop_t5.py.
"""
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import taesan
from taesan.errors import TaesanError
from taesan.models.t5 import PRESETS, T5, T5Config, T5Encoder
from taesan.models.t5_layers import T5LayerNorm, relative_position_bucket

# n_heads · d_kv = 24 != d_model = 32, as in mT5-small; 8 buckets up to distance 12 so short rows reach the log buckets
SMALL = dict(vocab_size=40, d_model=32, d_kv=6, d_ff=48, n_encoder_layers=2, n_decoder_layers=2, n_heads=4, n_buckets=8,
             max_distance=12, dropout=0.0)
VARIANTS = {
    "v1.0": {},
    "v1.1": dict(activation="gelu_tanh", gated=True, tie_word_embeddings=False),
}


def _model(**overrides) -> T5:
    torch.manual_seed(0)
    model = T5(T5Config(**{**SMALL, **overrides}))
    with torch.no_grad():  # position biases of init size are tiny next to the scores: make them matter
        for stack in (model.encoder, model.decoder):
            stack.position_bias.weight.normal_(std=1.0)
    return model.eval()


def _ids(B, T, V=40, seed=0):
    return torch.randint(2, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _src_batch():
    src = _ids(2, 15, seed=1)
    src_mask = torch.ones(2, 15, dtype=torch.long)
    src_mask[1, 9:] = 0  # row 1 has 6 pad positions
    src[1, 9:] = 0
    return src, src_mask


def test_buckets_by_hand():
    """Bidirectional, 32 buckets up to 128: exact below 8, log-spaced to 128, keys after the query in the upper half."""
    relative = torch.tensor([0, -1, 1, -7, -8, -100, -127, -128, -1000, 200])
    assert relative_position_bucket(relative, True, 32, 128).tolist() == [0, 1, 17, 7, 8, 15, 15, 15, 15, 31]
    # causal: keys after the query share bucket 0; 32 buckets, 16 of them exact
    assert relative_position_bucket(relative, False, 32, 128).tolist() == [0, 1, 0, 7, 8, 30, 31, 31, 31, 0]


def test_layer_norm_is_rms_without_mean_or_bias():
    norm = T5LayerNorm(4, eps=0.0)
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, -2.0, 2.0, -2.0], [3.0, 0.0, 0.0, 4.0]])
    expected = x / torch.tensor([[1.0], [2.0], [2.5]])  # divided by the root mean square, the mean left in
    torch.testing.assert_close(norm(x), expected)
    assert [n for n, _ in norm.named_parameters()] == ["weight"]
    half = norm.to(torch.bfloat16)(torch.full((1, 4), 300.0, dtype=torch.bfloat16))  # 300² overflows no fp32 variance
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), torch.ones(1, 4))


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_cached_step_by_step_decoding_equals_the_full_pass(variant):
    model = _model(**VARIANTS[variant])
    src, src_mask = _src_batch()
    tgt = _ids(2, 16, seed=2)  # past max_distance: the cached rows reach the last bucket
    full = model(src, tgt, src_mask)
    memory, _ = model.encode(src, src_mask)
    kv_calls = []
    for block in model.decoder.blocks:  # the cross-attention k/v projection reads the memory: count its calls
        block.cross_attn.kv.register_forward_hook(lambda *_: kv_calls.append(1))
    cache = model.new_cache()
    steps = []
    for t in range(tgt.shape[1]):
        logits, _ = model.decode(tgt[:, t : t + 1], memory if t == 0 else None, src_mask, cache=cache)
        steps.append(logits)
        assert cache.length == t + 1
    assert len(kv_calls) == model.config.n_decoder_layers  # memory projected once per layer, not once per step
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_cache_accepts_chunks_and_padding_mask_over_all_positions():
    """A 3-token prompt, then single steps; tgt_mask covers cached + new positions (a hole in row 1)."""
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 6, seed=3)
    tgt_mask = torch.ones(2, 6, dtype=torch.long)
    tgt_mask[1, 2] = 0  # nobody may attend to position 2 of row 1
    full = model(src, tgt, src_mask, tgt_mask)
    memory, _ = model.encode(src, src_mask)
    cache = model.new_cache()
    first, _ = model.decode(tgt[:, :3], memory, src_mask, tgt_mask[:, :3], cache=cache)
    rest = [model.decode(tgt[:, t : t + 1], None, src_mask, tgt_mask[:, : t + 1], cache=cache)[0] for t in range(3, 6)]
    torch.testing.assert_close(torch.cat([first, *rest], 1), full, atol=1e-5, rtol=0)
    changed = tgt.clone()
    changed[1, 2] = (changed[1, 2] + 5) % 40
    later = model(src, changed, src_mask, tgt_mask)[1, 3:]
    torch.testing.assert_close(later, full[1, 3:], atol=1e-5, rtol=0)  # the masked token is not read


@torch.no_grad()
def test_reordering_the_cache_equals_decoding_the_reordered_batch():
    """What beam search does: cache.reorder(index) + src_mask[index] continues as if the batch had been reordered."""
    model = _model(**VARIANTS["v1.1"])
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
def test_decoder_is_causal_and_positions_matter():
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 8, seed=5)
    base = model(src, tgt, src_mask)
    for t in (0, 3, 7):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 7) % 40
        out = model(src, changed, src_mask)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t:], base[:, t:])  # the change is seen from t on
    # relative positions are the only order signal: swapping two source tokens changes the output
    swapped = src.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert not torch.allclose(model(swapped, tgt, src_mask), base, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
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
    assert not torch.allclose(model(padded, tgt), model(src, tgt), atol=1e-5)  # the mask is what makes them equal


@torch.no_grad()
def test_attention_weights_path_matches_fast_path():
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 5, seed=9)
    hidden, attentions = model.forward_features(src, tgt, src_mask, need_weights=True)
    assert len(attentions) == 4 and set(attentions[0]) == {"self"} and set(attentions[2]) == {"self", "cross"}
    assert attentions[0]["self"].shape == (2, 4, 15, 15) and attentions[2]["cross"].shape == (2, 4, 5, 15)
    assert attentions[3]["self"][:, :, 0, 1:].abs().max() == 0  # causal
    assert attentions[2]["cross"][1, :, :, 9:].abs().max() == 0  # source padding
    assert attentions[0]["self"][1, :, :, 9:].abs().max() == 0
    torch.testing.assert_close(attentions[2]["cross"].sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(model.head(hidden), model(src, tgt, src_mask), atol=1e-5, rtol=0)


@torch.no_grad()
def test_encoder_model_and_inputs_embeds_agree_with_encode():
    model = _model(**VARIANTS["v1.1"])
    src, src_mask = _src_batch()
    memory, _ = model.encode(src, src_mask)
    b, _ = model.encode(src_mask=src_mask, inputs_embeds=model.shared(src))
    torch.testing.assert_close(memory, b)
    encoder = T5Encoder(model.config).eval()
    encoder.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith(("shared.", "encoder."))})
    torch.testing.assert_close(encoder(src, src_mask), memory)
    hidden, attentions = encoder.forward_features(src, src_mask, need_weights=True)
    assert len(attentions) == 2 and attentions[1]["self"].shape == (2, 4, 15, 15)


@pytest.mark.parametrize("tied, scale", [(True, True), (False, False), (True, False)])
@torch.no_grad()
def test_head_rescaling_rule(tied, scale):
    """A tied head rescales the decoder output by d_model^-0.5 first (T5's rule); scale_decoder_outputs can say otherwise."""
    config = dict(tie_word_embeddings=tied) if scale == tied else dict(tie_word_embeddings=tied, scale_decoder_outputs=scale)
    model = _model(**config)
    assert (model.lm_head.weight is model.shared.weight) is tied and model.config.scale_decoder_outputs is scale
    src, src_mask = _src_batch()
    tgt = _ids(2, 3)
    hidden, _ = model.forward_features(src, tgt, src_mask)
    expected = hidden @ model.lm_head.weight.T * (32**-0.5 if scale else 1.0)
    torch.testing.assert_close(model(src, tgt, src_mask), expected)


@torch.no_grad()
def test_autocast_bf16_keeps_padded_rows_finite():
    """Under bf16 the fp32 "masked" value would round to -inf; a fully masked row must still not turn into NaN."""
    model = _model()
    src, src_mask = _src_batch()
    tgt = _ids(2, 4, seed=10)
    tgt_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])  # row 0's first query sees no key at all
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, tgt, src_mask, tgt_mask)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits.float()[1], model(src, tgt, src_mask, tgt_mask)[1], atol=0.15, rtol=0.05)


@torch.no_grad()
def test_bf16_attention_short_in_fp32_long_in_bf16_both_near_fp32():
    """Under bf16 autocast on CPU attention over fewer than 256 keys computes in fp32, longer attention's products in
    bf16 with the masked value clamped to bf16's own; the weights come back fp32 either way (an fp32 softmax, rows
    summing to 1, as MultiHeadAttention's), and both stay finite and near fp32."""
    from taesan.modules.attention import FP32_ATTENTION_BELOW

    model = _model()
    for length in (15, FP32_ATTENTION_BELOW + 4):
        src = _ids(2, length, seed=1)
        src_mask = torch.ones(2, length, dtype=torch.long)
        src_mask[1, length // 2:] = 0
        tgt = _ids(2, 3, seed=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, attentions = model.forward_features(src, tgt, src_mask, need_weights=True)
            logits = model(src, tgt, src_mask)
        cross = attentions[2]["cross"]
        assert cross.dtype == torch.float32, length
        torch.testing.assert_close(cross.sum(-1), torch.ones(2, 4, 3), atol=1e-5, rtol=0)
        assert cross[1, :, :, length // 2:].abs().max() == 0  # source padding
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(logits.float(), model(src, tgt, src_mask), atol=0.2, rtol=0.05)


def test_bad_inputs_and_configs_raise_clearly():
    model = _model()
    src, src_mask = _src_batch()
    with pytest.raises(ValueError, match="memory"):
        model.decode(_ids(2, 3), None, cache=model.new_cache())
    with pytest.raises(ValueError, match="src_mask"):
        model(src, _ids(2, 3), src_mask[:, :5])
    with pytest.raises(ValueError, match="tgt_mask"):
        model(src, _ids(2, 3), src_mask, torch.ones(2, 4))
    with pytest.raises(TaesanError, match="activation"):
        taesan.create("t5-tiny", activation="swiglu")
    with pytest.raises(TaesanError, match="pad_token_id"):
        taesan.create("t5-tiny", pad_token_id=512)
    with pytest.raises(TaesanError, match="n_buckets"):
        taesan.create("t5-tiny", n_buckets=32, max_distance=4)
    with pytest.raises(TaesanError, match="lm_head"):
        taesan.create("t5-tiny", lm_head=False, tie_word_embeddings=False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_finite_with_dropout(variant):
    model = _model(**VARIANTS[variant], dropout=0.1).train()
    src, src_mask = _src_batch()
    logits = model(src, _ids(2, 5), src_mask)
    assert logits.shape == (2, 5, 40) and torch.isfinite(logits).all()
    assert not torch.equal(logits, model(src, _ids(2, 5), src_mask))  # dropout is on in training
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def _hand_count(c: T5Config) -> int:
    """Parameters of a T5 counted from its parts: no biases, one norm vector per sublayer, one bias table per stack."""
    inner = c.n_heads * c.d_kv
    attention = 4 * c.d_model * inner
    ffn = (3 if c.gated else 2) * c.d_model * c.d_ff
    encoder = c.n_encoder_layers * (attention + ffn + 2 * c.d_model)
    decoder = c.n_decoder_layers * (2 * attention + ffn + 3 * c.d_model)
    stacks = 2 * (c.n_buckets * c.n_heads + c.d_model)
    head = 0 if c.tie_word_embeddings else c.vocab_size * c.d_model
    return c.vocab_size * c.d_model + encoder + decoder + stacks + head


# the published sizes: google-t5/t5-small, t5-base, google/t5-v1_1-small, google/mt5-small
@pytest.mark.parametrize("name, count", [("t5-small", 60_506_624), ("t5-base", 222_903_552), ("t5-v1_1-small", 76_961_152),
                                         ("mt5-small", 300_176_768)])
def test_preset_parameter_counts(name, count):
    with torch.device("meta"):  # counts without allocating 300M parameters
        model = taesan.create(name)
    assert model.num_parameters() == _hand_count(T5Config(**PRESETS[name][1])) == count


def test_tiny_preset_forward_backward_finite():
    model = taesan.create("t5-tiny")
    src = torch.randint(2, 512, (2, 9))
    logits = model(src, src[:, :6])
    logits.float().pow(2).mean().backward()
    assert logits.shape == (2, 6, 512) and torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip(variant, tmp_path):
    model = _model(**VARIANTS[variant])
    model.save(tmp_path / "ckpt")
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    tied = model.config.tie_word_embeddings
    assert "shared.weight" in keys and ("lm_head.weight" in keys) is not tied  # a tied head is stored once
    loaded = taesan.load(tmp_path / "ckpt")
    assert type(loaded) is T5 and (loaded.lm_head.weight is loaded.shared.weight) is tied
    src, src_mask = _src_batch()
    tgt = _ids(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, tgt, src_mask), model(src, tgt, src_mask), atol=0, rtol=0)


def test_generate_greedy_equals_the_step_loop_and_beams_run():
    model = _model(**VARIANTS["v1.1"])
    src, src_mask = _src_batch()
    out = taesan.generate(model, src, src_mask, max_new_tokens=6, eos_token_id=[])
    assert out.shape == (2, 7) and (out[:, 0] == model.config.decoder_start_token_id).all()
    with torch.no_grad():  # the uncached argmax loop over the whole target each step
        tgt = torch.zeros(2, 1, dtype=torch.long)
        for _ in range(6):
            tgt = torch.cat([tgt, model(src, tgt, src_mask)[:, -1:].argmax(-1)], 1)
    assert out.tolist() == tgt.tolist()
    beams = taesan.generate(model, src, src_mask, max_new_tokens=6, num_beams=3, num_return_sequences=3, eos_token_id=[])
    assert beams.shape == (6, 7) and len({tuple(r) for r in beams[:3].tolist()}) == 3


def test_teacher_forced_copy_task_trains():
    """Copy a random 6-token source: decoder input = [start] + target[:-1]. The loss must fall well below chance.

    Slower to learn than the 2017 Transformer's copy: T5's cross-attention has no position bias, so the encoder
    must first write each token's position into its output."""
    torch.manual_seed(0)
    model = T5(T5Config(**{**SMALL, "vocab_size": 20, "d_kv": 8})).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(120):
        src = torch.randint(2, 20, (32, 6), generator=g)
        tgt_in = F.pad(src[:, :-1], (1, 0), value=model.config.decoder_start_token_id)
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), src.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.65 * first, (first, last)  # chance is ln 18 ≈ 2.9; this seed reaches about 0.55
