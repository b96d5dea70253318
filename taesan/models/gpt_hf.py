"""GPT <-> HuggingFace GPT-2: the key table (as data), the config fields, and the conversions of GPT
(GPT2Model / GPT2LMHeadModel) and of GPTForSequenceClassification (GPT2ForSequenceClassification).

Not the model (gpt.py, gpt_heads.py): those know nothing of HuggingFace.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.gpt import GPT, GPTConfig
from taesan.models.gpt_heads import GPTClassifierConfig, GPTForSequenceClassification
from taesan.models.hf import (
    expand,
    export_state,
    import_state,
    labels_from_hf,
    labels_to_hf,
    read_hf_weights,
)

HF_ARCHITECTURE = "GPT2ForSequenceClassification"


# taesan key -> HF GPT2Model key ({i} = layer). HF's Conv1D stores (in, out) weights: those are transposed.
HF_KEYS = {
    "tok_emb.weight": "wte.weight",
    "pos_emb.weight": "wpe.weight",
    "blocks.{i}.attn_norm.weight": "h.{i}.ln_1.weight",
    "blocks.{i}.attn_norm.bias": "h.{i}.ln_1.bias",
    "blocks.{i}.attn.qkv.weight": "h.{i}.attn.c_attn.weight",
    "blocks.{i}.attn.qkv.bias": "h.{i}.attn.c_attn.bias",
    "blocks.{i}.attn.out.weight": "h.{i}.attn.c_proj.weight",
    "blocks.{i}.attn.out.bias": "h.{i}.attn.c_proj.bias",
    "blocks.{i}.mlp_norm.weight": "h.{i}.ln_2.weight",
    "blocks.{i}.mlp_norm.bias": "h.{i}.ln_2.bias",
    "blocks.{i}.mlp.up.weight": "h.{i}.mlp.c_fc.weight",
    "blocks.{i}.mlp.up.bias": "h.{i}.mlp.c_fc.bias",
    "blocks.{i}.mlp.down.weight": "h.{i}.mlp.c_proj.weight",
    "blocks.{i}.mlp.down.bias": "h.{i}.mlp.c_proj.bias",
    "norm.weight": "ln_f.weight",
    "norm.bias": "ln_f.bias",
}
HF_TRANSPOSED = ("blocks.{i}.attn.qkv.weight", "blocks.{i}.attn.out.weight", "blocks.{i}.mlp.up.weight", "blocks.{i}.mlp.down.weight")
HF_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers in old GPT-2 checkpoints, not weights

# HF config field -> (taesan field, GPT2Config's default, used when save_pretrained left the field out)
HF_CONFIG = {
    "vocab_size": ("vocab_size", 50257),
    "n_positions": ("n_positions", 1024),
    "n_embd": ("d_model", 768),
    "n_layer": ("n_layers", 12),
    "n_head": ("n_heads", 12),
    "n_inner": ("d_ff", None),
    "resid_pdrop": ("dropout", 0.1),
    "attn_pdrop": ("attn_dropout", 0.1),
    "layer_norm_epsilon": ("norm_eps", 1e-5),
    "activation_function": ("activation", "gelu_new"),
    "tie_word_embeddings": ("tie_embeddings", True),
}
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
# settings taesan's GPT does not implement: field -> the only value accepted
HF_REQUIRED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}


def hf_table(n_layers: int) -> tuple[dict, set[str]]:
    return expand(HF_KEYS, i=n_layers), set(expand({k: k for k in HF_TRANSPOSED}, i=n_layers))


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json") -> GPTConfig:
    """HF GPT2Config fields -> GPTConfig; an unsupported setting raises a one-line TaesanError."""
    for field, value in HF_REQUIRED.items():
        if hf_config.get(field, value) != value:
            raise TaesanError(f"{source}: field {field!r}={hf_config[field]!r} is not supported by taesan's GPT (needs {value!r})")
    fields = {ours: hf_config.get(theirs, default) for theirs, (ours, default) in HF_CONFIG.items()}
    if fields["activation"] not in HF_ACTIVATIONS:
        raise TaesanError(f"{source}: field 'activation_function'={fields['activation']!r} is not supported; known: {sorted(HF_ACTIVATIONS)}")
    fields["activation"] = HF_ACTIVATIONS[fields["activation"]]
    eos = hf_config.get("eos_token_id")  # GPT2Config's default 50256 lies outside a small vocabulary: no end token then
    fields["eos_token_id"] = eos if isinstance(eos, int) and 0 <= eos < fields["vocab_size"] else None
    # reorder_and_upcast_attn only changes the order of fp32 operations in HF's eager path: the same attention.
    return config_from_dict(GPTConfig, fields, source=source)


def to_hf_config(config: GPTConfig) -> dict[str, Any]:
    """GPTConfig -> a HF GPT2Config dict for GPT2LMHeadModel."""
    if not config.bias:
        raise TaesanError("GPT with bias=False has no HuggingFace GPT-2 equivalent (GPT-2 always has biases)")
    activation = {"gelu_tanh": "gelu_new"}.get(config.activation, config.activation)
    out = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}
    for theirs, (ours, _) in HF_CONFIG.items():
        out[theirs] = getattr(config, ours)
    out.update(activation_function=activation, embd_pdrop=config.dropout, n_ctx=config.n_positions)
    eos = config.eos_token_id
    if eos is None:
        eos = 50256 if config.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, only if the vocabulary has it
    out.update(bos_token_id=eos, eos_token_id=eos)
    return out


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> GPT:
    """A HF GPT2Model or GPT2LMHeadModel directory (keys with or without `transformer.`) -> GPT."""
    if HF_ARCHITECTURE in (hf_config.get("architectures") or []):
        return classifier_from_hf(directory, hf_config)
    directory = Path(directory)
    config = from_hf_config(hf_config, str(directory / "config.json"))
    weights = directory / "model.safetensors"
    hf_state = {k.removeprefix("transformer."): v for k, v in read_hf_weights(directory).items() if not k.endswith(HF_BUFFERS)}
    table, transposed = hf_table(config.n_layers)
    if not config.tie_embeddings:
        table["lm_head.weight"] = "lm_head.weight"
    known = set(table.values()) | {"lm_head.weight"}  # a tied head may still be stored (older transformers)
    unknown = sorted(k for k in hf_state if k not in known)
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all); only GPT2Model/GPT2LMHeadModel load")
    state = import_state(hf_state, table, transposed, source=str(weights))
    model = GPT(config)
    check_and_load(model, state, str(weights), ignore=model.tied_keys)
    return model


def to_hf(model: GPT) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """GPT -> (HF config dict, HF GPT2LMHeadModel state dict) for `transformers.GPT2LMHeadModel.from_pretrained`."""
    hf_config = to_hf_config(model.config)
    table, transposed = hf_table(model.config.n_layers)
    state = export_state(model.state_dict(), table, transposed)
    hf_state = {"transformer." + k: v for k, v in state.items()}
    if not model.config.tie_embeddings:
        hf_state["lm_head.weight"] = model.lm_head.weight.detach().contiguous()
    return hf_config, hf_state


# ---- GPT2ForSequenceClassification -------------------------------------------------------------------------------


def classifier_from_hf(directory: str | Path, hf_config: dict[str, Any]) -> GPTForSequenceClassification:
    """A HF GPT2ForSequenceClassification directory (transformer.* + score.weight) -> the taesan head model."""
    directory = Path(directory)
    source = str(directory / "config.json")
    base = from_hf_config(hf_config, source)
    num_labels, names = labels_from_hf(hf_config, source)
    labels = {"num_labels": int(num_labels if num_labels is not None else 2), "labels": names}
    fields = {**dataclasses.asdict(base), **labels, "pad_token_id": hf_config.get("pad_token_id")}
    config = config_from_dict(GPTClassifierConfig, fields, source)
    weights = directory / "model.safetensors"
    hf_state = {k: v for k, v in read_hf_weights(directory).items() if not k.endswith(HF_BUFFERS)}
    table, transposed = hf_table(config.n_layers)
    table = {"gpt." + ours: "transformer." + theirs for ours, theirs in table.items()}
    transposed = {"gpt." + k for k in transposed}
    table["score.weight"] = "score.weight"
    unknown = sorted(k for k in hf_state if k not in set(table.values()))
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all) for {HF_ARCHITECTURE}")
    model = GPTForSequenceClassification(config)
    check_and_load(model, import_state(hf_state, table, transposed, source=str(weights)), str(weights))
    return model


def classifier_to_hf(model: GPTForSequenceClassification) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """-> (HF config dict, HF state dict) that `transformers.GPT2ForSequenceClassification.from_pretrained` loads."""
    config = model.config
    hf_config = to_hf_config(config)
    hf_config.update(architectures=[HF_ARCHITECTURE], pad_token_id=config.pad_token_id,
                     **labels_to_hf(config.labels, config.num_labels))
    table, transposed = hf_table(config.n_layers)
    state = export_state(model.gpt.state_dict(), table, transposed)
    hf_state = {"transformer." + k: v for k, v in state.items()}
    hf_state["score.weight"] = model.score.weight.detach().contiguous()
    return hf_config, hf_state
