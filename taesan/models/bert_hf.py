"""BERT <-> HuggingFace BERT: the key table (as data), the config fields, and the conversions of the
backbone and of every head (masked LM, sequence and token classification, QA) by HF architecture name.

The BERT-shaped families (roberta_hf.py, electra_hf.py) describe themselves as an `HFFamily` and use the same
`load` and `export`. Not the model (bert.py, bert_heads.py): those know nothing of HuggingFace.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.base import TaesanModel
from taesan.models.bert import BERT, BertConfig
from taesan.models.bert_heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from taesan.models.hf import (
    Spec,
    expand,
    export_state,
    import_state,
    labels_from_hf,
    labels_to_hf,
    read_hf_weights,
)

# taesan backbone key -> HF BertModel key ({i} = layer); a tuple is concatenated into our fused q/k/v.
HF_KEYS = {
    "tok_emb.weight": "embeddings.word_embeddings.weight",
    "pos_emb.weight": "embeddings.position_embeddings.weight",
    "seg_emb.weight": "embeddings.token_type_embeddings.weight",
    "emb_norm.weight": "embeddings.LayerNorm.weight",
    "emb_norm.bias": "embeddings.LayerNorm.bias",
    "blocks.{i}.attn.qkv.weight": tuple(f"encoder.layer.{{i}}.attention.self.{p}.weight" for p in ("query", "key", "value")),
    "blocks.{i}.attn.qkv.bias": tuple(f"encoder.layer.{{i}}.attention.self.{p}.bias" for p in ("query", "key", "value")),
    "blocks.{i}.attn.out.weight": "encoder.layer.{i}.attention.output.dense.weight",
    "blocks.{i}.attn.out.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "blocks.{i}.attn_norm.weight": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "blocks.{i}.attn_norm.bias": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "blocks.{i}.mlp.up.weight": "encoder.layer.{i}.intermediate.dense.weight",
    "blocks.{i}.mlp.up.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "blocks.{i}.mlp.down.weight": "encoder.layer.{i}.output.dense.weight",
    "blocks.{i}.mlp.down.bias": "encoder.layer.{i}.output.dense.bias",
    "blocks.{i}.mlp_norm.weight": "encoder.layer.{i}.output.LayerNorm.weight",
    "blocks.{i}.mlp_norm.bias": "encoder.layer.{i}.output.LayerNorm.bias",
}
HF_POOLER_KEYS = {"pooler.dense.weight": "pooler.dense.weight", "pooler.dense.bias": "pooler.dense.bias"}
# HF tensors that are not weights of the model being loaded: buffers, the NSP head, an aliased or tied copy
HF_SKIPPED = ("embeddings.position_ids", "embeddings.token_type_ids", "cls.seq_relationship.", "cls.predictions.decoder.")
# heads of other architectures, present when e.g. a BertForMaskedLM checkpoint is loaded as BertModel (HF ignores them)
HF_OTHER_HEADS = ("cls.", "classifier.", "qa_outputs.")

# HF architecture -> the taesan class it loads into
HF_ARCHITECTURES: dict[str, type[TaesanModel]] = {
    "BertModel": BERT,
    "BertForMaskedLM": BertForMaskedLM,
    "BertForPreTraining": BertForMaskedLM,  # the original checkpoints: MLM + next-sentence heads; NSP is dropped
    "BertForSequenceClassification": BertForSequenceClassification,
    "BertForTokenClassification": BertForTokenClassification,
    "BertForQuestionAnswering": BertForQuestionAnswering,
}

# HF config field -> (taesan field, BertConfig's default in transformers, used when the field is absent)
HF_CONFIG = {
    "vocab_size": ("vocab_size", 30522),
    "max_position_embeddings": ("n_positions", 512),
    "type_vocab_size": ("type_vocab_size", 2),
    "hidden_size": ("d_model", 768),
    "num_hidden_layers": ("n_layers", 12),
    "num_attention_heads": ("n_heads", 12),
    "intermediate_size": ("d_ff", 3072),
    "hidden_dropout_prob": ("dropout", 0.1),
    "attention_probs_dropout_prob": ("attn_dropout", 0.1),
    "layer_norm_eps": ("norm_eps", 1e-12),
    "hidden_act": ("activation", "gelu"),
    "pad_token_id": ("pad_token_id", 0),
    "classifier_dropout": ("classifier_dropout", None),
}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}
# settings taesan's BERT does not implement: field -> the only value accepted
HF_REQUIRED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False, "tie_word_embeddings": True}


@dataclass(frozen=True)
class HFFamily:
    """What a BERT-shaped HF family names its own way: the classes, the backbone's key table, the config conversion.

    """

    prefix: str  # where HF's head models hold the backbone: "bert" (taesan's heads use the same `backbone_prefix`)
    architectures: dict[str, type[TaesanModel]]  # HF architecture -> taesan class; the first is the bare backbone
    keys: dict[str, Spec]  # taesan backbone key -> HF key ({i} = layer)
    optional: dict[str, Spec]  # the same for tensors a backbone may lack (a pooler, an embedding projection)
    skipped: tuple[str, ...]  # HF tensors that are no weights of the model being loaded: buffers, tied copies
    other_heads: tuple[str, ...]  # other architectures' heads, present when e.g. an MLM checkpoint loads as a backbone
    from_config: Callable[[dict[str, Any], str, bool], Any]  # (HF config, source, pooler) -> taesan config
    to_config: Callable[[Any, str], dict[str, Any]]  # (taesan config, architecture) -> HF config


def read_fields(hf_config: dict[str, Any], table: dict[str, tuple[str, Any]], name: str, source: str) -> dict[str, Any]:
    """The taesan config fields of a HF config by `table` (HF field -> (taesan field, HF default)), checked:
    unsupported settings (HF_REQUIRED) and activations raise one-line TaesanErrors; label names come along."""
    for field, value in HF_REQUIRED.items():
        if hf_config.get(field, value) != value:
            raise TaesanError(f"{source}: field {field!r}={hf_config[field]!r} is not supported by taesan's {name} (needs {value!r})")
    fields = {ours: hf_config.get(theirs, default) for theirs, (ours, default) in table.items()}
    if fields["activation"] not in HF_ACTIVATIONS:
        raise TaesanError(f"{source}: field 'hidden_act'={fields['activation']!r} is not supported; known: {sorted(HF_ACTIVATIONS)}")
    fields["activation"] = HF_ACTIVATIONS[fields["activation"]]
    num_labels, names = labels_from_hf(hf_config, source)
    if num_labels is not None:
        fields["num_labels"] = num_labels
    if names:
        fields["labels"] = names
    return fields


def write_fields(config: Any, table: dict[str, tuple[str, Any]], model_type: str, architecture: str) -> dict[str, Any]:
    """A HF config dict of `model_type` for `architecture` from a taesan config, by the same table as `read_fields`."""
    out: dict[str, Any] = {"model_type": model_type, "architectures": [architecture]}
    for theirs, (ours, _) in table.items():
        out[theirs] = getattr(config, ours)
    out.update(
        hidden_act={"gelu_tanh": "gelu_new"}.get(config.activation, config.activation),
        **labels_to_hf(config.labels, config.num_labels),
        position_embedding_type="absolute",
        initializer_range=0.02,
        tie_word_embeddings=True,
        is_decoder=False,
        add_cross_attention=False,
    )
    return out


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json", pooler: bool = True) -> BertConfig:
    """HF BertConfig fields -> BertConfig; an unsupported setting raises a one-line TaesanError."""
    fields = read_fields(hf_config, HF_CONFIG, "BERT", source)
    fields["pooler"] = pooler
    return config_from_dict(BertConfig, fields, source=source)


def to_hf_config(config: BertConfig, architecture: str = "BertModel") -> dict[str, Any]:
    """BertConfig -> a HF BertConfig dict for `architecture` (BertModel, BertForMaskedLM, ...)."""
    return write_fields(config, HF_CONFIG, "bert", architecture)


FAMILY = HFFamily("bert", HF_ARCHITECTURES, HF_KEYS, HF_POOLER_KEYS, HF_SKIPPED, HF_OTHER_HEADS, from_hf_config, to_hf_config)


def hf_table(model: TaesanModel, family: HFFamily) -> dict[str, Spec]:
    """The expanded taesan key -> HF key table of a backbone or a head model (HF names without the backbone prefix)."""
    backbone = model if isinstance(model, BERT) else model.backbone
    own = backbone.state_dict()
    keys = {**family.keys, **{k: v for k, v in family.optional.items() if k in own}}
    table = expand(keys, i=backbone.config.n_layers)
    if backbone is model:
        return table
    prefix = model.backbone_prefix + "."
    return {**{prefix + k: v for k, v in table.items()}, **model.hf_keys}


def load(family: HFFamily, directory: str | Path, hf_config: dict[str, Any]) -> TaesanModel:
    """A HF directory of `family` -> its backbone or the head model named by `architectures` (default: the backbone).

    Keys load with or without the backbone prefix; old `LayerNorm.gamma/beta` names are accepted.
    """
    directory = Path(directory)
    source = str(directory / "config.json")
    base = next(iter(family.architectures))
    architecture = (hf_config.get("architectures") or [base])[0]
    if architecture not in family.architectures:
        raise TaesanError(f"{source}: field 'architectures'={architecture!r} is not supported; known: {', '.join(family.architectures)}")
    cls = family.architectures[architecture]
    prefix = family.prefix + "."
    hf_state = {}
    for k, v in read_hf_weights(directory).items():
        k = k.removeprefix(prefix).replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        hf_state[k] = v
    pooler = "pooler.dense.weight" in hf_state or getattr(cls, "needs_pooler", False)
    model = cls(family.from_config(hf_config, source, pooler))
    table = hf_table(model, family)
    wanted = {p for theirs in table.values() for p in (theirs if isinstance(theirs, tuple) else (theirs,))}
    unknown = sorted(k for k in hf_state if k not in wanted and not k.startswith(family.skipped + family.other_heads))
    weights = directory / "model.safetensors"
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all) for {architecture}")
    state = import_state(hf_state, table, source=str(weights))
    check_and_load(model, state, str(weights), ignore=model.tied_keys)
    return model


def _with_prefix(spec, prefix: str):
    """A table entry (one HF name or a tuple of them) with `prefix` put before each name."""
    return tuple(prefix + t for t in spec) if isinstance(spec, tuple) else prefix + spec


def export(family: HFFamily, model: TaesanModel) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A backbone or head model of `family` -> (HF config dict, HF state dict) that transformers loads.

    A head that does not use the pooler is written without it, as HF does.
    """
    base = next(iter(family.architectures))
    architecture = getattr(model, "hf_architecture", base)
    pooling = getattr(model.config, "pooling", "cls")
    if pooling != "cls" and architecture.endswith("ForSequenceClassification"):
        raise TaesanError(f"a {type(model).__name__} with pooling={pooling!r} has no HuggingFace equivalent "
                          f"(HF's {architecture} classifies the [CLS] / first token)")
    table = hf_table(model, family)
    if architecture != base:  # a head model's backbone tensors are prefixed in HF
        ours, theirs = model.backbone_prefix + ".", family.prefix + "."
        table = {k: _with_prefix(v, theirs) if k.startswith(ours) else v for k, v in table.items()}
        if not getattr(model, "needs_pooler", False):
            table = {k: v for k, v in table.items() if not k.startswith(ours + "pooler.")}
    return family.to_config(model.config, architecture), export_state(model.state_dict(), table)


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> TaesanModel:
    """A HF BERT directory -> BERT or the head model named by `architectures` (default BertModel)."""
    return load(FAMILY, directory, hf_config)


def to_hf(model: TaesanModel) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """BERT or a head model -> (HF config dict, HF state dict) that `transformers.Bert*.from_pretrained` loads."""
    return export(FAMILY, model)
