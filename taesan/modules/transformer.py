"""Feed-forward network and the two residual blocks (pre-LN and post-LN), with optional cross-attention.

Not a model: a stack of blocks plus embeddings and heads is wired in `taesan.models`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taesan.modules.attention import KVCache, MultiHeadAttention

ACTIVATIONS = {
    "gelu": F.gelu,  # exact erf GELU (BERT, ViT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": F.relu,  # the 2017 Transformer
    "silu": F.silu,
}


class FeedForward(nn.Module):
    """Position-wise FFN: Linear(d, d_ff) -> activation -> Linear(d_ff, d) -> dropout."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.act = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


class _Block(nn.Module):
    """What both blocks own: self-attention, optional cross-attention, feed-forward, three norms."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        activation: str = "gelu",
        norm_eps: float = 1e-5,
        cross_attention: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, attn_dropout, bias=bias)
        self.attn_norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, bias=bias, cross=True) if cross_attention else None
        self.cross_norm = nn.LayerNorm(d_model, eps=norm_eps) if cross_attention else None
        self.mlp = FeedForward(d_model, d_ff, activation, dropout, bias=bias)
        self.mlp_norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)

    def _self(self, x, mask, is_causal, cache, need_weights, layer):
        c = cache.self_attn[layer] if cache is not None else None
        y, w = self.attn(x, mask=mask, is_causal=is_causal, cache=c, need_weights=need_weights)
        return self.dropout(y), w

    def _cross(self, x, memory, memory_mask, cache, need_weights, layer):
        c = cache.cross_attn[layer] if cache is not None else None
        y, w = self.cross_attn(x, memory=memory, mask=memory_mask, cache=c, need_weights=need_weights)
        return self.dropout(y), w


class PreNormBlock(_Block):
    """Pre-LN (GPT-2, ViT, mBART): x = x + attn(norm(x)); [x = x + cross(norm(x), memory)]; x = x + mlp(norm(x))."""

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (B, T, C) -> (x (B, T, C), {"self": weights, "cross": weights} when need_weights)."""
        y, w_self = self._self(self.attn_norm(x), mask, is_causal, cache, need_weights, layer)
        x = x + y
        w_cross = None
        if self.cross_attn is not None:
            y, w_cross = self._cross(self.cross_norm(x), memory, memory_mask, cache, need_weights, layer)
            x = x + y
        x = x + self.mlp(self.mlp_norm(x))
        return x, _weights(w_self, w_cross)


class PostNormBlock(_Block):
    """Post-LN (BERT, the 2017 Transformer, BART): x = norm(x + attn(x)); [x = norm(x + cross(x))]; x = norm(x + mlp(x))."""

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y, w_self = self._self(x, mask, is_causal, cache, need_weights, layer)
        x = self.attn_norm(x + y)
        w_cross = None
        if self.cross_attn is not None:
            y, w_cross = self._cross(x, memory, memory_mask, cache, need_weights, layer)
            x = self.cross_norm(x + y)
        x = self.mlp_norm(x + self.mlp(x))
        return x, _weights(w_self, w_cross)


def _weights(w_self, w_cross) -> dict[str, torch.Tensor]:
    return {k: w for k, w in (("self", w_self), ("cross", w_cross)) if w is not None}
