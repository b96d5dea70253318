"""ViT <-> HuggingFace ViT: the key table (as data), the config fields, and the conversions of ViTModel
and ViTForImageClassification.

Not the model (vit.py): it knows nothing of HuggingFace.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.hf import (
    expand,
    export_state,
    import_state,
    labels_from_hf,
    labels_to_hf,
    read_hf_weights,
)
from taesan.models.vit import ViT, ViTConfig

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
