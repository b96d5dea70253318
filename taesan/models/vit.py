"""ViT: an image cut into patches, each embedded, a [CLS] token and learned positions, pre-LN encoder blocks, HF compatible.

Not an image pipeline (resizing, normalisation) and not a loss: pixels (B, C, H, W) in, features or logits out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.interop import expand, export_state, import_state, labels_from_hf, labels_to_hf, read_hf_weights
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
        for name in ("image_size", "patch_size", "channels", "d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"field {name!r} must be a positive integer, got {value!r}")
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 0:
            raise ValueError(f"field 'num_labels' must be an integer >= 0, got {self.num_labels!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"field 'image_size'={self.image_size} is not divisible by 'patch_size'={self.patch_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"field 'd_model'={self.d_model} is not divisible by 'n_heads'={self.n_heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"field {name!r} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"field 'norm_eps' must be positive, got {self.norm_eps!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"field 'activation' is {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
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


# ---- HuggingFace ViT interop -------------------------------------------------------------------------------

# taesan ViT key -> HF ViTModel key ({i} = layer) in the layout `save_pretrained` writes; a tuple is fused into qkv.
HF_KEYS = {
    "cls_token": "embeddings.cls_token",
    "pos_emb": "embeddings.position_embeddings",
    "patch_emb.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_emb.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "blocks.{i}.attn_norm.weight": "encoder.layer.{i}.layernorm_before.weight",
    "blocks.{i}.attn_norm.bias": "encoder.layer.{i}.layernorm_before.bias",
    "blocks.{i}.attn.qkv.weight": tuple(f"encoder.layer.{{i}}.attention.attention.{p}.weight" for p in ("query", "key", "value")),
    "blocks.{i}.attn.out.weight": "encoder.layer.{i}.attention.output.dense.weight",
    "blocks.{i}.attn.out.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "blocks.{i}.mlp_norm.weight": "encoder.layer.{i}.layernorm_after.weight",
    "blocks.{i}.mlp_norm.bias": "encoder.layer.{i}.layernorm_after.bias",
    "blocks.{i}.mlp.up.weight": "encoder.layer.{i}.intermediate.dense.weight",
    "blocks.{i}.mlp.up.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "blocks.{i}.mlp.down.weight": "encoder.layer.{i}.output.dense.weight",
    "blocks.{i}.mlp.down.bias": "encoder.layer.{i}.output.dense.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
HF_QKV_BIAS_KEYS = {
    "blocks.{i}.attn.qkv.bias": tuple(f"encoder.layer.{{i}}.attention.attention.{p}.bias" for p in ("query", "key", "value")),
}
HF_POOLER_KEYS = {"pooler.weight": "pooler.dense.weight", "pooler.bias": "pooler.dense.bias"}
HF_HEAD_KEYS = {"head.weight": "classifier.weight", "head.bias": "classifier.bias"}  # not `vit.`-prefixed in HF

# transformers 5 names ViTModel's modules anew (`layers.0.attention.q_proj`) but still writes the layout above;
# a state dict saved straight from the new modules is renamed back by these patterns ({i} = layer).
HF_MODERN_KEYS = {
    "layers.{i}.attention.q_proj.": "encoder.layer.{i}.attention.attention.query.",
    "layers.{i}.attention.k_proj.": "encoder.layer.{i}.attention.attention.key.",
    "layers.{i}.attention.v_proj.": "encoder.layer.{i}.attention.attention.value.",
    "layers.{i}.attention.o_proj.": "encoder.layer.{i}.attention.output.dense.",
    "layers.{i}.mlp.fc1.": "encoder.layer.{i}.intermediate.dense.",
    "layers.{i}.mlp.fc2.": "encoder.layer.{i}.output.dense.",
    "layers.{i}.layernorm_before.": "encoder.layer.{i}.layernorm_before.",
    "layers.{i}.layernorm_after.": "encoder.layer.{i}.layernorm_after.",
}

HF_ARCHITECTURES = ("ViTModel", "ViTForImageClassification")

# HF config field -> (taesan field, ViTConfig's default in transformers, used when the field is absent)
HF_CONFIG = {
    "hidden_size": ("d_model", 768),
    "num_hidden_layers": ("n_layers", 12),
    "num_attention_heads": ("n_heads", 12),
    "intermediate_size": ("d_ff", 3072),
    "hidden_act": ("activation", "gelu"),
    "hidden_dropout_prob": ("dropout", 0.0),
    "attention_probs_dropout_prob": ("attn_dropout", 0.0),
    "layer_norm_eps": ("norm_eps", 1e-12),
    "image_size": ("image_size", 224),
    "patch_size": ("patch_size", 16),
    "num_channels": ("channels", 3),
    "qkv_bias": ("qkv_bias", True),
}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}


def _square(value: Any, field: str, source: str) -> Any:
    """HF allows (height, width) image and patch sizes; taesan's ViT is square: [16, 16] -> 16."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise TaesanError(f"{source}: field {field!r}={list(value)!r} is not square; taesan's ViT needs equal height and width")
        return value[0]
    return value


def _classic_name(key: str) -> str:
    """A transformers-5 module name -> the layout `save_pretrained` writes: layers.3.mlp.fc1.bias -> encoder.layer.3.intermediate.dense.bias."""
    match = re.match(r"layers\.(\d+)\.", key)
    if match is None:
        return key
    for modern, classic in HF_MODERN_KEYS.items():
        modern = modern.format(i=match.group(1))
        if key.startswith(modern):
            return classic.format(i=match.group(1)) + key[len(modern):]
    return key


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json", classifier: bool = False, pooler: bool = False) -> ViTConfig:
    """HF ViTConfig fields -> ViTConfig; an unsupported setting raises a one-line TaesanError.

    classifier: the checkpoint is a ViTForImageClassification (labels from id2label or num_labels, default 2).
    """
    fields = {ours: hf_config.get(theirs, default) for theirs, (ours, default) in HF_CONFIG.items()}
    fields["image_size"] = _square(fields["image_size"], "image_size", source)
    fields["patch_size"] = _square(fields["patch_size"], "patch_size", source)
    if fields["activation"] not in HF_ACTIVATIONS:
        raise TaesanError(f"{source}: field 'hidden_act'={fields['activation']!r} is not supported; known: {sorted(HF_ACTIVATIONS)}")
    fields["activation"] = HF_ACTIVATIONS[fields["activation"]]
    if pooler:
        if hf_config.get("pooler_act", "tanh") != "tanh":
            raise TaesanError(f"{source}: field 'pooler_act'={hf_config['pooler_act']!r} is not supported (needs 'tanh')")
        size = hf_config.get("pooler_output_size") or fields["d_model"]
        if size != fields["d_model"]:
            raise TaesanError(f"{source}: field 'pooler_output_size'={size!r} is not supported (needs hidden_size={fields['d_model']})")
    fields["pooler"] = pooler
    if classifier:
        num_labels, names = labels_from_hf(hf_config, source)
        fields["num_labels"] = num_labels if num_labels is not None else 2
        if names:
            fields["labels"] = names
    return config_from_dict(ViTConfig, fields, source=source)


def to_hf_config(config: ViTConfig) -> dict[str, Any]:
    """ViTConfig -> a HF ViTConfig dict: ViTForImageClassification with a head, else ViTModel."""
    architecture = "ViTForImageClassification" if config.num_labels else "ViTModel"
    if config.num_labels and config.pooling != "cls":
        raise TaesanError(f"a ViT classifier with pooling={config.pooling!r} has no HuggingFace equivalent (HF classifies the [CLS] token)")
    out: dict[str, Any] = {"model_type": "vit", "architectures": [architecture]}
    for theirs, (ours, _) in HF_CONFIG.items():
        out[theirs] = getattr(config, ours)
    out.update(
        hidden_act={"gelu_tanh": "gelu_new"}.get(config.activation, config.activation),
        initializer_range=0.02,
        encoder_stride=config.patch_size,
        pooler_output_size=config.d_model,
        pooler_act="tanh",
    )
    if config.num_labels:
        out.update(labels_to_hf(config.labels, config.num_labels))
    return out


def hf_table(config: ViTConfig, prefix: str = "") -> dict[str, Any]:
    """The expanded taesan key -> HF key table; `prefix` ("vit.") goes before the backbone's HF names."""
    keys = {**HF_KEYS, **(HF_QKV_BIAS_KEYS if config.qkv_bias else {}), **(HF_POOLER_KEYS if config.pooler else {})}
    table = {
        ours: tuple(prefix + t for t in theirs) if isinstance(theirs, tuple) else prefix + theirs
        for ours, theirs in expand(keys, i=config.n_layers).items()
    }
    return {**table, **(HF_HEAD_KEYS if config.num_labels else {})}


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> ViT:
    """A HF ViTModel or ViTForImageClassification directory -> ViT (with a head for the latter).

    A ViTModel's pooler (dense + tanh) is kept when the checkpoint has it; features equal HF's `last_hidden_state`.
    """
    directory = Path(directory)
    source, weights = str(directory / "config.json"), directory / "model.safetensors"
    architecture = (hf_config.get("architectures") or ["ViTModel"])[0]
    if architecture not in HF_ARCHITECTURES:
        raise TaesanError(f"{source}: field 'architectures'={architecture!r} is not supported; known: {', '.join(HF_ARCHITECTURES)}")
    classifier = architecture == "ViTForImageClassification"
    hf_state = {_classic_name(k.removeprefix("vit.")): v for k, v in read_hf_weights(directory).items()}
    if not classifier:  # HF ignores a head when a classifier checkpoint is loaded as ViTModel; so do we
        hf_state = {k: v for k, v in hf_state.items() if not k.startswith("classifier.")}
    pooler = not classifier and "pooler.dense.weight" in hf_state
    config = from_hf_config(hf_config, source, classifier=classifier, pooler=pooler)
    table = hf_table(config)
    wanted = {p for theirs in table.values() for p in (theirs if isinstance(theirs, tuple) else (theirs,))}
    unknown = sorted(k for k in hf_state if k not in wanted and k != "embeddings.mask_token")
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all) for {architecture}")
    model = ViT(config)
    check_and_load(model, import_state(hf_state, table, source=str(weights)), str(weights))
    return model


def to_hf(model: ViT) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """ViT -> (HF config dict, HF state dict) for `ViTForImageClassification` (with a head) or `ViTModel`.

    A classifier is written without the optional ViTModel pooler, as HF's ViTForImageClassification has none.
    """
    config = model.config
    hf_config = to_hf_config(config)
    if config.num_labels:
        config = config_from_dict(ViTConfig, {**vars(config), "pooler": False}, source="to_hf")
    table = hf_table(config, prefix="vit." if config.num_labels else "")
    return hf_config, export_state(model.state_dict(), table)
