"""Embeddings: token, learned position, sinusoidal position, segment (token type) and image patch.

Not the sum of them: each model adds the embeddings it needs (GPT: token + position; BERT: + segment).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TokenEmbedding(nn.Embedding):
    """Token ids -> vectors, optionally scaled by √d_model (the 2017 Transformer, Marian)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None, scale: bool = False) -> None:
        super().__init__(vocab_size, d_model, padding_idx=padding_idx)
        self.scale = math.sqrt(d_model) if scale else 1.0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = super().forward(ids)
        return x * self.scale if self.scale != 1.0 else x


class LearnedPositionEmbedding(nn.Embedding):
    """Position ids -> learned vectors (GPT-2, BERT, BART). `offset` shifts ids (BART stores 2 extra rows)."""

    def __init__(self, max_positions: int, d_model: int, offset: int = 0) -> None:
        super().__init__(max_positions + offset, d_model)
        self.offset, self.max_positions = offset, max_positions

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        if position_ids.numel() and int(position_ids.max()) >= self.max_positions:
            raise ValueError(f"position {int(position_ids.max())} is beyond the model's {self.max_positions} positions")
        return super().forward(position_ids + self.offset)


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sin/cos position vectors (Vaswani et al. 2017), no parameters.

    interleaved=True puts sin at even and cos at odd dimensions (the paper); False puts all sines
    first, then all cosines (Marian, fairseq).
    """

    def __init__(self, max_positions: int, d_model: int, interleaved: bool = True) -> None:
        super().__init__()
        self.max_positions = max_positions
        # float64, then rounded once: float32 angles drift by ~3e-5 at position 1000 (HF Marian uses float64)
        pos = torch.arange(max_positions, dtype=torch.float64)[:, None]
        half = d_model // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, half, dtype=torch.float64) * 2 / d_model)
        angles = pos * freq  # (P, d/2)
        table = torch.zeros(max_positions, d_model, dtype=torch.float64)
        if interleaved:
            table[:, 0 : 2 * half : 2], table[:, 1 : 2 * half : 2] = angles.sin(), angles.cos()
        else:
            table[:, :half], table[:, half : 2 * half] = angles.sin(), angles.cos()
        self.register_buffer("table", table.float(), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(position_ids, self.table)


class SegmentEmbedding(nn.Embedding):
    """Token type ids (sentence A = 0, sentence B = 1) -> vectors (BERT)."""

    def __init__(self, n_segments: int, d_model: int) -> None:
        super().__init__(n_segments, d_model)


class PatchEmbedding(nn.Module):
    """An image cut into non-overlapping patches, each linearly embedded (ViT): (B, C, H, W) -> (B, N, d)."""

    def __init__(self, image_size: int, patch_size: int, channels: int, d_model: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.proj = nn.Conv2d(channels, d_model, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images)  # (B, d, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, d)
