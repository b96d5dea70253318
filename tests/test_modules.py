"""The building blocks: mask convention, fast path == explicit path, KV cache == full pass, blocks."""
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
