"""T5's building blocks (Raffel et al. 2020): RMS-style layer norm, relative position buckets, attention without
scaling that adds one float bias (positions + mask), the ReLU and gated feed-forwards, and the pre-norm block.

Not the model (taesan.models.t5 wires embeddings, stacks and the head) and not the generic blocks of
taesan.modules: T5 differs from them in each piece (no biases, no mean subtraction, no 1/√d, an additive bias).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from taesan.modules import LayerCache
from taesan.modules.attention import explicit_attention, scaled_dot_product
from taesan.modules.transformer import ACTIVATIONS


class T5LayerNorm(nn.Module):
    """x / √(mean(x²) + eps) · weight: no mean subtraction, no bias (RMSNorm); the mean of squares in fp32."""

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)  # (B, T, 1), fp32 even for half inputs
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


def relative_position_bucket(relative: torch.Tensor, bidirectional: bool, n_buckets: int, max_distance: int) -> torch.Tensor:
    """key position - query position -> a bucket id in [0, n_buckets): exact for small distances, log-spaced up to
    max_distance, one bucket beyond. Bidirectional (encoder): half the buckets for keys after the query. Causal
    (decoder): keys after the query share bucket 0 with the query itself (they are masked anyway).

    bidirectional, 32 buckets, max 128: relative [0, -1, 1, -7, -8, -100, 200] -> [0, 1, 17, 7, 8, 15, 31]
    """
    buckets = torch.zeros_like(relative)
    if bidirectional:
        n_buckets //= 2
        buckets += (relative > 0).long() * n_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    max_exact = n_buckets // 2
    # same operations in the same order as Mesh TensorFlow (and HF), so the bucket edges agree to the bit
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (n_buckets - max_exact)).long()).clamp(max=n_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class RelativePositionBias(nn.Module):
    """One learned scalar per (bucket, head) added to every attention score: T5's only position signal.

    Computed once per stack (by its first layer in HF's layout) and shared by all its layers.
    """

    def __init__(self, n_buckets: int, max_distance: int, n_heads: int, bidirectional: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_buckets, n_heads))
        self.max_distance, self.bidirectional = max_distance, bidirectional

    def forward(self, q_len: int, k_len: int, past: int = 0) -> torch.Tensor:
        """-> (1, H, q_len, k_len) for queries at positions past .. past + q_len - 1 over keys 0 .. k_len - 1."""
        device = self.weight.device
        query = torch.arange(past, past + q_len, device=device)[:, None]
        key = torch.arange(k_len, device=device)[None, :]
        buckets = relative_position_bucket(key - query, self.bidirectional, self.weight.shape[0], self.max_distance)
        return self.weight[buckets].permute(2, 0, 1)[None]  # (q, k, H) -> (1, H, q, k)


def attention_bias(position_bias: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor | None:
    """A position bias and a boolean mask (True = may attend) combined once into the float bias attention adds.

    Masked scores get the dtype's most negative finite value (not -inf), as HF does: a fully masked row
    becomes a uniform average instead of NaN. Either part may be None.
    """
    if mask is None:
        return position_bias
    if position_bias is None:
        position_bias = torch.zeros((), device=mask.device)
    return torch.where(mask, position_bias, torch.finfo(position_bias.dtype).min)  # (B, H|1, T, S)


class T5Attention(nn.Module):
    """softmax(Q Kᵀ + bias) V over n_heads heads of width d_kv: no 1/√d_kv (T5 folds it into q's init), no biases.

    Self-attention projects q, k, v with one fused matmul (`qkv`); cross-attention q from x, k and v from the
    encoder output (`q`, `kv`). n_heads · d_kv need not be d_model (mT5-small: 6 · 64 = 384 < 512).
    """

    def __init__(self, d_model: int, n_heads: int, d_kv: int, dropout: float = 0.0, cross: bool = False) -> None:
        super().__init__()
        self.n_heads, self.d_kv, self.cross, self.dropout = n_heads, d_kv, cross, dropout
        inner = n_heads * d_kv
        if cross:
            self.q = nn.Linear(d_model, inner, bias=False)
            self.kv = nn.Linear(d_model, 2 * inner, bias=False)
        else:
            self.qkv = nn.Linear(d_model, 3 * inner, bias=False)
        self.out = nn.Linear(inner, d_model, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_kv).transpose(1, 2)  # (B, H, T, D)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (output (B, T, C), weights (B, H, T, S) or None).

        bias: float, broadcastable to (B, H, T, S): the position bias with the mask folded in (attention_bias).
        cache: self-attention appends this step's keys/values; cross-attention stores the memory's once.
        """
        B, T, _ = x.shape
        inner = self.n_heads * self.d_kv
        if self.cross:
            q = self._heads(self.q(x))
            if cache is not None and cache.filled:
                k, v = cache.keys_values()
            else:
                k, v = (self._heads(t) for t in self.kv(memory).split(inner, dim=2))
                if cache is not None:
                    cache.store(k, v)
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).split(inner, dim=2))  # each (B, H, T, D)
            if cache is not None:
                k, v = cache.append(k, v)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = explicit_attention(q, k, v, bias, dropout, scale=1.0)  # T5's scores are unscaled
        else:
            y = scaled_dot_product(q, k, v, attn_mask=bias, dropout_p=dropout, scale=1.0)
            weights = None
        y = y.transpose(1, 2).reshape(B, T, inner)  # (B, T, H·D)
        return self.out(y), weights


class T5FeedForward(nn.Module):
    """v1.0 (DenseReluDense): down(dropout(act(up x))). Gated (v1.1, mT5): down(dropout(act(gate x) · up x))."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", gated: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False) if gated else None
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)
        self.act = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.gate(x)) * self.up(x) if self.gate is not None else self.act(self.up(x))  # (B, T, d_ff)
        return self.down(self.dropout(h))


class T5Block(nn.Module):
    """Pre-norm: x = x + attn(norm(x)); [x = x + cross(norm(x), memory)]; x = x + ffn(norm(x)); dropout on each branch."""

    def __init__(self, d_model: int, n_heads: int, d_kv: int, d_ff: int, activation: str, gated: bool, dropout: float,
                 norm_eps: float, cross_attention: bool = False) -> None:
        super().__init__()
        self.attn_norm = T5LayerNorm(d_model, norm_eps)
        self.attn = T5Attention(d_model, n_heads, d_kv, dropout)
        self.cross_norm = T5LayerNorm(d_model, norm_eps) if cross_attention else None
        self.cross_attn = T5Attention(d_model, n_heads, d_kv, dropout, cross=True) if cross_attention else None
        self.mlp_norm = T5LayerNorm(d_model, norm_eps)
        self.mlp = T5FeedForward(d_model, d_ff, activation, gated, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        memory: torch.Tensor | None = None,
        cross_bias: torch.Tensor | None = None,
        cache=None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """x (B, T, C) -> (x (B, T, C), {"self": (B, H, T, T'), ["cross": (B, H, T, S)]} or None)."""
        y, w = self.attn(self.attn_norm(x), bias, cache=cache.self_attn[layer] if cache is not None else None,
                         need_weights=need_weights)
        x = x + self.dropout(y)
        weights = {"self": w}
        if self.cross_attn is not None:
            y, w = self.cross_attn(self.cross_norm(x), cross_bias, memory=memory,
                                   cache=cache.cross_attn[layer] if cache is not None else None, need_weights=need_weights)
            x = x + self.dropout(y)
            weights["cross"] = w
        x = x + self.dropout(self.mlp(self.mlp_norm(x)))
        return x, weights if need_weights else None
