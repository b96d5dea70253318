"""Pooling a sequence of hidden states into one vector per row, padding left out.

Not a head and not a model: the masked mean that sentence classifiers may read instead of the [CLS] position
(an encoder pretrained with the masked LM alone never trains [CLS] or a pooler; the mean of the token states
carries what it did learn, issue 17).
"""
from __future__ import annotations

import torch


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, C) hidden states, (B, T) mask (1 = real token, 0 = padding) -> (B, C) mean over the real tokens.

    No mask: every position is real. A row with no real token gives zeros (not NaN).
    """
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, C)
    return total / weights.sum(dim=1).clamp(min=1.0)  # (B, C)
