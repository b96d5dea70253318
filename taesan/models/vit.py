"""ViT: an image cut into patches, each embedded, a [CLS] token and learned positions, pre-LN encoder blocks, HF compatible.

Not an image pipeline (resizing, normalisation) and not a loss: pixels (B, C, H, W) in, features or logits out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taesan.config import check_fields, config_from_dict
from taesan.errors import TaesanError
from taesan.models.base import TaesanModel
from taesan.modules import PatchEmbedding, PreNormBlock
from taesan.modules.transformer import ACTIVATIONS

POOLINGS = ("cls", "mean")


@dataclass
class ViTConfig:
    image_size: int = 224  # square images, image_size × image_size pixels
    patch_size: int = 16  # square patches; (image_size / patch_size)² patches
    channels: int = 3
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.0  # embeddings, residual branches
    attn_dropout: float = 0.0  # attention weights
    norm_eps: float = 1e-12
    activation: str = "gelu"  # exact erf GELU, as ViT
    pooling: str = "cls"  # "cls": the [CLS] token's final state; "mean": the mean over patch tokens
    num_labels: int = 0  # classifier outputs; 0 = a bare backbone (forward returns pooled features)
    labels: list[str] | None = None  # class names, index = class id
    qkv_bias: bool = True  # biases on the query/key/value projections (the others always have one)
    pooler: bool = False  # HF ViTModel's dense + tanh over [CLS]; kept only so HF checkpoints round-trip

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 0:
            raise ValueError(f"field 'num_labels' must be an integer >= 0, got {self.num_labels!r}")
        check_fields(self, positive=("image_size", "patch_size", "channels", "d_model", "n_layers", "n_heads", "d_ff"),
                     divisible=(("image_size", "patch_size"), ("d_model", "n_heads")), fractions=("dropout", "attn_dropout"),
                     positive_floats=("norm_eps",), choices={"activation": ACTIVATIONS})
        if self.pooling not in POOLINGS:
            raise ValueError(f"field 'pooling' is {self.pooling!r}; choose one of {list(POOLINGS)}")
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) != self.num_labels:
                raise ValueError(f"field 'labels' has {len(self.labels)} names but 'num_labels' is {self.num_labels}")

    @property
    def grid(self) -> int:
        """Patches per side at the trained image size."""
        return self.image_size // self.patch_size


PRESETS = {
    # sklearn's digits: 8×8 grey images, 10 classes; 2×2 patches -> 16 patches + [CLS]
    "vit-tiny": ("vit", dict(image_size=8, patch_size=2, channels=1, d_model=64, n_layers=2, n_heads=4, d_ff=128, num_labels=10)),
    # MNIST: 28×28 grey images, 10 classes; 4×4 patches -> 49 patches + [CLS]
    "vit-tiny-mnist": ("vit", dict(image_size=28, patch_size=4, channels=1, d_model=64, n_layers=3, n_heads=4, d_ff=128, num_labels=10)),
    # Dosovitskiy et al. 2021, ImageNet-1k heads: 86.6M and 304.3M parameters
    "vit-base-patch16-224": ("vit", dict(d_model=768, n_layers=12, n_heads=12, num_labels=1000)),
    "vit-large-patch16-224": ("vit", dict(d_model=1024, n_layers=24, n_heads=16, num_labels=1000)),
}


def init_vit_weights(m: nn.Module) -> None:
    """ViT's initialisation: truncated normal(0, 0.02) weights, zero biases, LayerNorm = identity."""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    if isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class ViT(TaesanModel):
    """pixels -> patch embeddings, [CLS] first, + positions -> n_layers × PreNormBlock -> LayerNorm -> pool -> classifier.

    `forward_features` gives the final-normed states of [CLS] and every patch (HF's `last_hidden_state`);
    `pool` turns them into one vector per image; `head` maps it to logits. With num_labels = 0 there is
    no head and calling the model returns the pooled features (B, d_model).
    """

    model_type = "vit"
    config_class = ViTConfig

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        c = config
        self.patch_emb = PatchEmbedding(c.image_size, c.patch_size, c.channels, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_emb = nn.Parameter(torch.zeros(1, 1 + c.grid**2, c.d_model))  # [CLS] first, then patches row by row
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            PreNormBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.activation, c.norm_eps)
            for _ in range(c.n_layers)
        )
        if not c.qkv_bias:  # ViT variants without q/k/v biases keep the output projection's bias
            for block in self.blocks:
                block.attn.qkv = nn.Linear(c.d_model, 3 * c.d_model, bias=False)
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.pooler = nn.Linear(c.d_model, c.d_model) if c.pooler else None
        self.head = nn.Linear(c.d_model, c.num_labels) if c.num_labels else None
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    def position_embeddings(self, height: int, width: int, interpolate: bool = False) -> torch.Tensor:
        """The position table for an image of height × width pixels: (1, 1 + N, C).

        At the trained size it is the learned table. Otherwise, with `interpolate`, the patch part is
        resized bicubically to the new grid (as HF's `interpolate_pos_encoding`); [CLS] keeps its vector.
        """
        c = self.config
        if not interpolate:
            if (height, width) != (c.image_size, c.image_size):
                raise TaesanError(
                    f"image size {height}×{width} does not match the model's {c.image_size}×{c.image_size}; "
                    "resize the images or pass interpolate_pos_encoding=True"
                )
            return self.pos_emb
        rows, cols = height // c.patch_size, width // c.patch_size
        if (rows, cols) == (c.grid, c.grid):
            return self.pos_emb
        C = self.pos_emb.shape[-1]
        patches = self.pos_emb[:, 1:].reshape(1, c.grid, c.grid, C).permute(0, 3, 1, 2)  # (1, C, g, g)
        patches = F.interpolate(patches, size=(rows, cols), mode="bicubic", align_corners=False)  # (1, C, rows, cols)
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, C)  # (1, N, C)
        return torch.cat([self.pos_emb[:, :1], patches], dim=1)

    def embed(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """(B, channels, H, W) -> [CLS] + patch embeddings + positions, then dropout: (B, 1 + N, C)."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.channels:
            raise TaesanError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; expected (B, {self.config.channels}, H, W)"
            )
        B, _, H, W = pixel_values.shape
        x = self.patch_emb(pixel_values.to(self.pos_emb.dtype))  # (B, N, C)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1 + N, C)
        return self.drop(x + self.position_embeddings(H, W, interpolate_pos_encoding))

    def forward_features(
        self, pixel_values: torch.Tensor, need_weights: bool = False, interpolate_pos_encoding: bool = False
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """pixels (B, channels, H, W) -> (final-normed states (B, 1 + N, C), attentions).

        Position 0 is [CLS], then the patches row by row. attentions: per layer {"self": (B, H, T, T)}
        when need_weights, else []. Other image sizes need interpolate_pos_encoding=True.
        """
        x = self.embed(pixel_values, interpolate_pos_encoding)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return self.norm(x), attentions

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, 1 + N, C) -> (B, C): the [CLS] state ("cls") or the mean of the patch states ("mean")."""
        if self.config.pooling == "mean":
            return hidden[:, 1:].mean(dim=1)
        return hidden[:, 0]

    def pooler_output(self, hidden: torch.Tensor) -> torch.Tensor:
        """HF ViTModel's `pooler_output`: tanh(W · h_[CLS] + b), (B, C). Only for checkpoints that carry it."""
        if self.pooler is None:
            raise TaesanError("this ViT has no pooler (config field 'pooler' is false)")
        return torch.tanh(self.pooler(hidden[:, 0]))

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """pixels (B, channels, H, W) -> logits (B, num_labels), or pooled features (B, C) when num_labels = 0."""
        hidden, _ = self.forward_features(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        features = self.pool(hidden)
        return self.head(features) if self.head is not None else features

    def reset_classifier(self, num_labels: int, labels: list[str] | None = None) -> None:
        """Swap the head for a fresh one with `num_labels` outputs (0 removes it): transfer learning to a new task."""
        config = config_from_dict(
            ViTConfig, {**vars(self.config), "num_labels": num_labels, "labels": labels}, source="reset_classifier"
        )
        self.config = config
        self.head = nn.Linear(config.d_model, num_labels) if num_labels else None
        if self.head is not None:
            init_vit_weights(self.head)
            self.head.to(self.pos_emb.device, self.pos_emb.dtype)
