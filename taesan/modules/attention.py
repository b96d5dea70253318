"""Multi-head attention (self and cross) with one boolean mask convention and a KV cache.

Not a model: no embeddings, no norms. Masks come from `taesan.modules.masks` (True = may attend).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from taesan.modules.masks import causal_mask, ensure_attends_somewhere


FP32_ATTENTION_BELOW = 256  # keys: on CPU, attention over fewer runs in fp32 (see attention_dtype)


def attention_dtype(q: torch.Tensor, keys: int) -> torch.dtype:
    """The dtype attention over `keys` positions computes in for queries `q`: on CPU over fewer than
    FP32_ATTENTION_BELOW keys fp32, else q's own (autocast decides). Under bf16 autocast PyTorch's CPU attention
    backward over short sequences runs 1.4-4x slower in bf16 than in fp32 (ViT's 65 tokens: 40 against 14 ms a
    layer), level near 256 keys and faster from 384 (benchmarks/RESULTS.md); so on CPU short attention casts
    q, k, v up with autocast held off, and the output goes back to q's dtype."""
    return torch.float32 if q.device.type == "cpu" and keys < FP32_ATTENTION_BELOW else q.dtype


def full_precision(q: torch.Tensor, dtype: torch.dtype) -> ContextManager:
    """Where attention on `q` runs in `dtype`: with CPU autocast off when that is fp32 (autocast would lower the
    products to bf16 again)."""
    off = dtype == torch.float32 and q.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    return torch.autocast("cpu", enabled=False) if off else nullcontext()


MATH_MAX_KEYS = 256  # bf16 attention on CPU over at most this many keys runs as plain products (see math_in_bf16)
MATH_MAX_SCORES = 2**23  # ... when its score matrix (B x H x T x S) holds at most this many numbers (32 MB in fp32)


def math_in_bf16(q: torch.Tensor, keys: int) -> bool:
    """bf16 attention on CPU over at most MATH_MAX_KEYS keys runs as two bf16 matrix products around an fp32
    softmax: oneDNN's bf16 products make it 1.2-6x faster than PyTorch's CPU attention kernel in either dtype
    up to 256 keys (ViT's 65: 6.4 against 13 ms a layer, forward and backward; a GPT's 256: 13 against 25),
    slower from 512 (benchmarks/RESULTS.md). It keeps the score matrix for backward, hence MATH_MAX_SCORES."""
    return (q.device.type == "cpu" and q.dtype == torch.bfloat16 and keys <= MATH_MAX_KEYS
            and q.shape[:-1].numel() * keys <= MATH_MAX_SCORES)


def scaled_dot_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                       dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """F.scaled_dot_product_attention in `attention_dtype`, or as bf16 products (`math_in_bf16`); the output in
    q's dtype. A float mask (an additive bias) is cast too, its most negative value kept the dtype's own."""
    if math_in_bf16(q, k.shape[-2]):
        return math_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)[0]
    dtype = attention_dtype(q, k.shape[-2])
    if attn_mask is not None and attn_mask.is_floating_point() and attn_mask.dtype != dtype:
        attn_mask = attn_mask.to(dtype).clamp(min=torch.finfo(dtype).min)
    with full_precision(q, dtype):
        y = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=attn_mask,
                                           dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    return y.to(q.dtype)


class LayerCache:
    """Keys and values of one attention layer for incremental decoding.

    Self-attention appends each step's keys/values (`append`, or `extend` and write in place); cross-attention
    stores the encoder's once (`store`). Storage grows by doubling, so a step costs a slice copy, not a
    concatenation. Only this class moves `length`: the first `length` positions of the storage are the cache.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, H, capacity, D)
        self.v: torch.Tensor | None = None
        self.length = 0
        self.reserved = 0  # capacity to allocate at the first append (see `reserve`)

    def reserve(self, n: int) -> None:
        """Allocate room for n positions at the first append, so decoding up to n never copies the cache."""
        self.reserved = n

    def make_room(self, t: int, like: torch.Tensor | None = None) -> None:
        """Make sure the storage can take t more positions, doubling it when full (the cached ones are copied).

        like: a (B, H, t, D) tensor giving batch, heads, head size, dtype and device when nothing is cached yet.
        """
        if self.k is not None and self.length + t <= self.k.shape[2]:
            return
        like = like if like is not None else self.k
        if like is None:
            raise ValueError("an empty LayerCache needs `like` to know the shape of its keys")
        capacity = max(2 * (self.k.shape[2] if self.k is not None else 0), self.length + t, 16, self.reserved)
        new_k = like.new_empty(like.shape[0], like.shape[1], capacity, like.shape[3])  # (B, H, capacity, D)
        new_v = like.new_empty(new_k.shape)
        if self.k is not None:
            new_k[:, :, : self.length] = self.k[:, :, : self.length]
            new_v[:, :, : self.length] = self.v[:, :, : self.length]
        self.k, self.v = new_k, new_v

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add (B, H, t, D) keys/values; return all keys/values so far, (B, H, length, D)."""
        t = k.shape[2]
        self.make_room(t, like=k)
        self.k.narrow(2, self.length, t).copy_(k)
        self.v.narrow(2, self.length, t).copy_(v)
        self.length += t
        return self.k.narrow(2, 0, self.length), self.v.narrow(2, 0, self.length)

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Keep keys/values computed once (cross-attention over the encoder output)."""
        self.k, self.v, self.length = k, v, k.shape[2]

    @property
    def filled(self) -> bool:
        return self.k is not None

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows (beam search): row i becomes old row index[i]."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)

    def cast(self, dtype: torch.dtype) -> None:
        """Keep keys and values in `dtype` from now on (a model decoding in bf16 after an fp32 prefill)."""
        if self.k is not None and self.k.dtype != dtype:
            self.k, self.v = self.k.to(dtype), self.v.to(dtype)


class KVCache:
    """The cache of a whole stack: one LayerCache per layer for self-attention, one for cross-attention."""

    def __init__(self, n_layers: int) -> None:
        self.self_attn = [LayerCache() for _ in range(n_layers)]
        self.cross_attn = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """How many positions are cached (the position of the next token)."""
        return self.self_attn[0].length

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype keys and values are kept in (None while empty)."""
        k = self.self_attn[0].k
        return None if k is None else k.dtype

    def reserve(self, n: int) -> None:
        """Preallocate self-attention room for n positions (prompt + new tokens): no copy while decoding."""
        for c in self.self_attn:
            c.reserve(n)

    def extend(self, t: int = 1) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        """Count t more positions in every self-attention layer, growing storage where full -> (per layer the
        key and value storage (B, H, capacity, D), the new length). Positions [length - t, length) are the
        caller's to write in place before it reads [0, length): GPT's scripted step does, for its one token,
        without a Python view per layer. The cache must hold the prompt already."""
        keys, values = [], []
        for c in self.self_attn:
            c.make_room(t)
            c.length += t
            keys.append(c.k)
            values.append(c.v)
        return keys, values, self.self_attn[0].length

    def cast(self, dtype: torch.dtype) -> None:
        """Keep every layer's keys and values in `dtype` from now on."""
        for c in self.self_attn + self.cross_attn:
            c.cast(dtype)

    def reorder(self, index: torch.Tensor) -> None:
        for c in self.self_attn + self.cross_attn:
            c.reorder(index)


class MultiHeadAttention(nn.Module):
    """softmax(Q Kᵀ / √d_head + mask) V over `n_heads` heads, then an output projection.

    Self-attention projects q, k, v from x with one fused matmul (`qkv`); cross-attention projects q
    from x and k, v from the encoder output (`q`, `kv`).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, cross: bool = False) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.d_head, self.cross = n_heads, d_model // n_heads, cross
        if cross:
            self.q = nn.Linear(d_model, d_model, bias=bias)
            self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, D)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: LayerCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (output (B, T, C), attention weights (B, H, T, S) or None).

        mask: boolean, True = may attend, broadcastable to (B, H, T, S). is_causal: a shortcut for
        the causal mask when no other mask is given (lets SDPA pick its fastest kernel).
        cache: a LayerCache; self-attention appends to it, cross-attention fills it once.
        need_weights: take the explicit path and return the softmax weights (for visualisation).
        """
        B, T, C = x.shape
        if self.cross:
            q = self._heads(self.q(x))
            if cache is not None and cache.filled:
                k, v = cache.keys_values()
            else:
                k, v = (self._heads(t) for t in self.kv(memory).split(C, dim=2))
                if cache is not None:
                    cache.store(k, v)
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).split(C, dim=2))  # each (B, H, T, D)
            if cache is not None:
                k, v = cache.append(k, v)
        S = k.shape[2]
        if is_causal and T == 1 and mask is None and not need_weights:
            is_causal = False  # one query at the last position sees every key: no mask at all
        if is_causal and (mask is not None or T != S or need_weights):
            mask = causal_mask(T, S, x.device) if mask is None else mask & causal_mask(T, S, x.device)
            is_causal = False
        if mask is not None and mask.shape[-2] != 1:
            mask = ensure_attends_somewhere(mask, T, S)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = explicit_attention(q, k, v, mask, dropout)
        else:
            y = scaled_dot_product(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
            weights = None
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.out(y), weights


def explicit_attention(q, k, v, mask=None, dropout: float = 0.0, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook path, for the weights (MultiHeadAttention's and T5's `need_weights`): `math_attention` with its
    products in `attention_dtype` -> (output in q's dtype, fp32 weights). mask: boolean or an additive float bias."""
    dtype, given = attention_dtype(q, k.shape[-2]), q.dtype
    with full_precision(q, dtype):
        y, weights = math_attention(q.to(dtype), k.to(dtype), v.to(dtype), mask, dropout, scale=scale)
    return y.to(given), weights


def math_attention(q, k, v, mask=None, dropout: float = 0.0, is_causal: bool = False,
                   scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale + mask) v as plain operations: the two products in q's dtype, the scores and the
    softmax in fp32 -> (output in v's dtype, fp32 weights (B, H, T, S)). mask: boolean (True = may attend; a
    masked score becomes fp32's most negative value) or an additive float bias."""
    T, S = q.shape[-2], k.shape[-2]
    scores = (q @ k.transpose(-2, -1)).float() * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if is_causal:
        causal = causal_mask(T, S, q.device)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores + mask.float() if mask.is_floating_point() else scores.masked_fill(~mask, torch.finfo(torch.float32).min)
    weights = scores.softmax(dim=-1)
    y = F.dropout(weights, dropout) if dropout else weights
    return y.to(v.dtype) @ v, weights
