"""The building blocks: mask convention, fast path == explicit path, KV cache == full pass, blocks."""
import pytest
import torch

from taesan.modules import KVCache, MultiHeadAttention, PostNormBlock, PreNormBlock, causal_mask, padding_mask
from taesan.modules.embeddings import SinusoidalPositionEmbedding


def test_causal_mask_with_cache_offset():
    assert causal_mask(2, 3).tolist() == [[True, True, False], [True, True, True]]


def test_sdpa_path_equals_explicit_path_and_returns_weights():
    attn = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    mask = padding_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])) & causal_mask(5)
    fast, none = attn(x, mask=mask)
    slow, w = attn(x, mask=mask, need_weights=True)
    assert none is None and w.shape == (2, 4, 5, 5)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    assert not torch.isnan(fast).any(), "a fully masked (left-pad) query row must not produce NaN"
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 5))
    assert (w[1].triu(1) == 0).all(), "future positions get zero weight"


def test_is_causal_shortcut_equals_explicit_causal_mask():
    attn = MultiHeadAttention(16, 2).eval()
    x = torch.randn(1, 6, 16)
    torch.testing.assert_close(attn(x, is_causal=True)[0], attn(x, mask=causal_mask(6))[0], atol=1e-6, rtol=0)


def test_cross_attention_caches_encoder_keys_once():
    attn = MultiHeadAttention(8, 2, cross=True).eval()
    x, mem = torch.randn(1, 3, 8), torch.randn(1, 7, 8)
    full, _ = attn(x, memory=mem)
    cache = KVCache(1)
    steps = [attn(x[:, i : i + 1], memory=mem, cache=cache.cross_attn[0])[0] for i in range(3)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-6, rtol=0)
    assert cache.cross_attn[0].length == 7


def test_decoder_blocks_step_by_step_equal_full_pass():
    for cls in (PreNormBlock, PostNormBlock):
        block = cls(16, 4, 32, cross_attention=True).eval()
        x, mem = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
        full, _ = block(x, is_causal=True, memory=mem)
        cache = KVCache(1)
        steps = [block(x[:, i : i + 1], is_causal=True, memory=mem, cache=cache)[0] for i in range(6)]
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)


def test_kv_cache_reorder_selects_rows():
    attn = MultiHeadAttention(8, 2).eval()
    cache = KVCache(1)
    attn(torch.randn(3, 4, 8), cache=cache.self_attn[0], is_causal=True)
    before = cache.self_attn[0].keys_values()[0].clone()
    cache.reorder(torch.tensor([2, 2, 0]))
    after = cache.self_attn[0].keys_values()[0]
    torch.testing.assert_close(after, before[[2, 2, 0]])


def test_sinusoidal_positions_match_formula():
    emb = SinusoidalPositionEmbedding(10, 8)
    pe = emb(torch.arange(10))
    pos, i = 3, 1
    assert abs(pe[pos, 2 * i] - torch.sin(torch.tensor(pos / 10000 ** (2 * i / 8)))) < 1e-6
    assert abs(pe[pos, 2 * i + 1] - torch.cos(torch.tensor(pos / 10000 ** (2 * i / 8)))) < 1e-6


def test_kv_cache_extend_counts_the_step_and_grows_keeping_what_is_cached():
    """extend(1) hands out the storages with the new position counted; the caller writes it in place. A full
    storage doubles first, keeping the cached keys; an empty cache cannot guess its shape and says so."""
    cache = KVCache(2)
    k = torch.randn(1, 2, 16, 4)
    for layer in cache.self_attn:
        layer.append(k, -k)  # 16 positions: the first storage holds exactly 16
    assert cache.self_attn[0].k.shape[2] == 16
    keys, values, length = cache.extend(1)
    assert length == cache.length == 17 and [t.shape[2] for t in keys + values] == [32] * 4
    new = torch.randn(1, 2, 1, 4)
    for key, value in zip(keys, values):
        key.narrow(2, length - 1, 1).copy_(new)
        value.narrow(2, length - 1, 1).copy_(-new)
    got_k, got_v = cache.self_attn[1].keys_values()
    torch.testing.assert_close(got_k, torch.cat([k, new], 2), atol=0, rtol=0)
    torch.testing.assert_close(got_v, -torch.cat([k, new], 2), atol=0, rtol=0)
    keys_again, _, _ = cache.extend(1)
    assert keys_again[0] is cache.self_attn[0].k and cache.length == 18  # room left: the same storage
    with pytest.raises(ValueError, match="empty LayerCache"):
        KVCache(1).extend(1)


def test_kv_cache_cast_keeps_values_in_the_new_dtype():
    cache = KVCache(1)
    k = torch.randn(2, 2, 3, 4)
    cache.self_attn[0].append(k, k)
    cache.cast(torch.bfloat16)
    assert cache.dtype == torch.bfloat16
    torch.testing.assert_close(cache.self_attn[0].keys_values()[0].float(), k, atol=1e-2, rtol=1e-2)
    cache.self_attn[0].append(k[:, :, :1].bfloat16(), k[:, :, :1].bfloat16())
    assert cache.length == 4 and cache.dtype == torch.bfloat16


def test_bf16_attention_on_cpu_picks_its_kernel_by_length_and_stays_near_fp32(monkeypatch):
    """bf16 attention on CPU: up to 256 keys as bf16 products around an fp32 softmax (math_in_bf16); past the score
    budget and under 256 keys PyTorch's kernel in fp32; from 256 keys on, PyTorch's kernel in bf16. Each answers in
    bf16 near fp32 attention on the same inputs, with causal, boolean and additive masks; gradients reach bf16."""
    from taesan.modules import attention as A

    sdpa = torch.nn.functional.scaled_dot_product_attention
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8).bfloat16().requires_grad_() for _ in range(3))
    assert A.math_in_bf16(q, 5) and not A.math_in_bf16(q, A.MATH_MAX_KEYS + 1) and not A.math_in_bf16(q.float(), 5)
    keep = torch.rand(2, 1, 5, 5) > 0.3
    keep[..., 0] = True
    bias = torch.zeros(1, 1, 5, 5).masked_fill(torch.ones(5, 5).triu(1).bool(), torch.finfo(torch.float32).min)
    for options in ({"is_causal": True}, {"attn_mask": keep}, {"attn_mask": bias, "scale": 1.0}):
        y = A.scaled_dot_product(q, k, v, **options)
        reference = sdpa(q.float(), k.float(), v.float(), **options)
        assert y.dtype == torch.bfloat16 and torch.allclose(y.float(), reference, atol=3e-2), options
    y.sum().backward()
    assert q.grad.dtype == torch.bfloat16 and torch.isfinite(q.grad.float()).all()
    monkeypatch.setattr(A, "MATH_MAX_SCORES", 0)  # over the budget: PyTorch's kernel, in fp32 below 256 keys
    assert torch.equal(A.scaled_dot_product(q, k, v, is_causal=True), sdpa(q.float(), k.float(), v.float(), is_causal=True).bfloat16())
    long = torch.randn(1, 1, A.FP32_ATTENTION_BELOW, 8).bfloat16()  # 256 keys and over: in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(A.scaled_dot_product(long, long, long), sdpa(long, long, long))
    attention = MultiHeadAttention(16, 2)
    x = torch.randn(2, 4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast, _ = attention(x, is_causal=True)
        explicit, weights = attention(x, is_causal=True, need_weights=True)
    assert fast.dtype == explicit.dtype == torch.bfloat16 and weights.dtype == torch.float32
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 4))  # the rows sum to 1 in fp32
    assert torch.allclose(fast.float(), explicit.float(), atol=2e-2)
