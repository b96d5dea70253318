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


def key_padding_mask(attention_mask: torch.Tensor | None, batch: int, length: int,
                     name: str = "attention_mask") -> torch.Tensor | None:
    """A model's (B, S) 1/0 `attention_mask` -> the (B, 1, 1, S) boolean key mask, checked against its shape;
    None when nothing is padded (SDPA's fastest kernel).

    key_padding_mask(tensor([[1, 1, 0]]), 1, 3) -> [[[[True, True, False]]]]
    """
    if attention_mask is None:
        return None
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(f"{name} has shape {tuple(attention_mask.shape)}, expected (B, S) = {(batch, length)}")
    if bool(attention_mask.bool().all()):
        return None
    return padding_mask(attention_mask)


def causal_padding_mask(attention_mask: torch.Tensor | None, batch: int, q_len: int, k_len: int, device,
                        name: str = "attention_mask") -> tuple[torch.Tensor | None, bool]:
    """Causality and key padding combined once, for a decoder: -> (mask, is_causal). (None, True) when nothing is
    padded: SDPA then applies causality itself, with its fastest kernel; else a (B, 1, q_len, k_len) mask."""
    pad = key_padding_mask(attention_mask, batch, k_len, name)
    if pad is None:
        return None, True
    return pad & causal_mask(q_len, k_len, device), False


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
