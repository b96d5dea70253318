"""Where a ViT looks: attention rollout (Abnar & Zuidema 2020) as a patch-grid map per image, and a PNG overlay of it.

Not attention plots for text models and not training curves; the model only supplies per-layer attention weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from taesan.errors import TaesanError
from taesan.figures import save_png


def attention_rollout(attentions: list[dict[str, torch.Tensor]] | list[torch.Tensor]) -> torch.Tensor:
    """Per-layer self-attention (B, H, T, T) -> how much each token's final state draws on each input token, (B, T, T).

    Each layer: average the heads, add the identity (the residual path), renormalise rows to sum 1;
    then multiply the layers through, last layer on the left. Rows of the result sum to 1.
    With one layer whose heads attend uniformly over T = 2 tokens, a row is (0.75, 0.25).
    """
    if not attentions:
        raise TaesanError("attention rollout needs at least one layer of attention weights (need_weights=True)")
    rollout = None
    for layer in attentions:
        weights = layer["self"] if isinstance(layer, dict) else layer
        A = weights.float().mean(dim=1)  # (B, T, T): heads averaged
        A = A + torch.eye(A.shape[-1], device=A.device)  # the residual connection keeps each token's own state
        A = A / A.sum(dim=-1, keepdim=True)
        rollout = A if rollout is None else A @ rollout  # (B, T, T)
    return rollout


@torch.no_grad()
def vit_attention_map(model, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
    """pixels (B, C, H, W) -> the [CLS] token's rolled-out attention over the patches, (B, H/p, W/p), each map summing to 1.

    Put the model in eval mode first, or attention dropout makes the map random.
    """
    _, attentions = model.forward_features(pixel_values, need_weights=True, interpolate_pos_encoding=interpolate_pos_encoding)
    rollout = attention_rollout(attentions)  # (B, T, T)
    p = model.config.patch_size
    rows, cols = pixel_values.shape[-2] // p, pixel_values.shape[-1] // p
    cls_to_patches = rollout[:, 0, 1:]  # (B, N): what [CLS]'s final state draws on, patch by patch
    cls_to_patches = cls_to_patches / cls_to_patches.sum(dim=-1, keepdim=True)
    return cls_to_patches.reshape(-1, rows, cols)  # (B, rows, cols)


def save_attention_overlay(images: torch.Tensor, maps: torch.Tensor, path: str | Path, titles: list[str] | None = None) -> Path:
    """Write a PNG: each image beside its attention map upsampled onto it. images (B, C, H, W), maps (B, rows, cols)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    if images.shape[0] != maps.shape[0]:
        raise TaesanError(f"{images.shape[0]} images but {maps.shape[0]} attention maps")
    B, C, H, W = images.shape
    upsampled = F.interpolate(maps[:, None].float(), size=(H, W), mode="nearest")[:, 0]  # (B, H, W)
    fig, axes = plt.subplots(2, B, figsize=(2 * B, 4), squeeze=False)
    for i in range(B):
        img = images[i].detach().float().cpu()
        img = (img - img.min()) / (img.max() - img.min() + 1e-12)
        shown = (img[0] if C == 1 else img.permute(1, 2, 0)).numpy()  # (H, W) or (H, W, C)
        axes[0, i].imshow(shown, cmap="gray" if C == 1 else None)
        axes[1, i].imshow(shown, cmap="gray" if C == 1 else None)
        axes[1, i].imshow(upsampled[i].detach().cpu().numpy(), cmap="inferno", alpha=0.6)
        if titles:
            axes[0, i].set_title(titles[i], fontsize=8)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.tight_layout()
    return save_png(fig, path)
