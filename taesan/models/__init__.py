"""The model registry: model_type -> class, preset name -> (model_type, config fields).

Each family's file holds its presets (`PRESETS`) and registers its classes in `MODEL_TYPES` below.
"""
from __future__ import annotations

import importlib
from typing import Any

from taesan.config import config_from_dict
from taesan.errors import TaesanError

# model_type -> "module:Class"; imported lazily so one family's import cost is paid only when used.
MODEL_TYPES: dict[str, str] = {
    "gpt": "taesan.models.gpt:GPT",
    "gpt-sequence-classification": "taesan.models.gpt_heads:GPTForSequenceClassification",
    "transformer": "taesan.models.transformer:Seq2SeqTransformer",
    "bert": "taesan.models.bert:BERT",
    "bert-mlm": "taesan.models.bert_heads:BertForMaskedLM",
    "bert-sequence-classification": "taesan.models.bert_heads:BertForSequenceClassification",
    "bert-token-classification": "taesan.models.bert_heads:BertForTokenClassification",
    "bert-qa": "taesan.models.bert_heads:BertForQuestionAnswering",
    "vit": "taesan.models.vit:ViT",
}

# modules that define PRESETS = {name: (model_type, {config fields})}
PRESET_MODULES: list[str] = [
    "taesan.models.gpt",
    "taesan.models.transformer",
    "taesan.models.bert",
    "taesan.models.vit",
]


def model_class(model_type: str, source: str = "config.json") -> type:
    if model_type not in MODEL_TYPES:
        raise TaesanError(f"{source}: unknown model_type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    module, name = MODEL_TYPES[model_type].split(":")
    return getattr(importlib.import_module(module), name)


def presets() -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for module in PRESET_MODULES:
        out.update(importlib.import_module(module).PRESETS)
    return out


def create(name: str, **overrides: Any):
    """A freshly initialised model from a preset name (`gpt-tiny`) or a model_type, with config overrides."""
    table = presets()
    if name in table:
        model_type, fields = table[name]
    elif name in MODEL_TYPES:
        model_type, fields = name, {}
    else:
        raise TaesanError(f"unknown model or preset {name!r}; presets: {', '.join(sorted(table))}")
    cls = model_class(model_type)
    config = config_from_dict(cls.config_class, {**fields, **overrides}, source=f"preset {name!r}")
    return cls(config)
