"""Attention masks, built in one place. Convention: boolean, True = may attend.

Shapes broadcast to (batch, heads, q_len, k_len). Padding and causality combine into one mask.
"""
from __future__ import annotations

import torch


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(q_len, k_len) lower-triangular mask; queries are the last q_len of k_len positions (KV cache).

    causal_mask(2, 3) -> [[True, True, False], [True, True, True]]
    """
    k_len = q_len if k_len is None else k_len
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=k_len - q_len)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, k_len) 1/0 (or bool) key mask -> (B, 1, 1, k_len) boolean mask, True at real tokens."""
    return attention_mask.bool()[:, None, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND together the masks that are given; None when none is given (attend everywhere)."""
    out = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else out & m
    return out


def ensure_attends_somewhere(mask: torch.Tensor, q_len: int, k_len: int) -> torch.Tensor:
    """Let a query row with no allowed key attend to its own position.

    A fully masked row (a left-pad query under a causal mask) would make softmax produce NaN, and
    0 * NaN spreads to real tokens in the next layer. Real rows are never changed.
    """
    mask = mask.expand(*mask.shape[:-2], q_len, k_len)
    empty = ~mask.any(dim=-1, keepdim=True)
    return mask | (empty & _diagonal(q_len, k_len, mask.device))


def _diagonal(q_len: int, k_len: int, device) -> torch.Tensor:
    """(q_len, k_len) True where key position == query position (queries are the last q_len keys)."""
    q = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k = torch.arange(k_len, device=device)[None, :]
    return q == k
