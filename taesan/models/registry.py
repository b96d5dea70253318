"""The model registry: model_type -> class, preset name -> (model_type, config fields), and which HuggingFace
family loads into (and exports from) which class. Loading a checkpoint directory, taesan's or HF's, is here too.

Not a soft prompt (tuning/prompt.py) and not a tokenizer: `taesan.load` (pipeline) adds those on top.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from taesan.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_and_load,
    load_state_dict,
    read_config,
    save_state_dict,
)
from taesan.config import config_from_dict, write_json
from taesan.errors import TaesanError
from taesan.models import (
    bert,
    bert_hf,
    electra,
    electra_hf,
    gpt,
    gpt_hf,
    roberta,
    roberta_hf,
    size,
    t5,
    t5_hf,
    transformer,
    transformer_hf,
    vit,
    vit_hf,
)
from taesan.models.base import TaesanModel
from taesan.models.bert import BERT
from taesan.models.bert_heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from taesan.models.gpt import GPT
from taesan.models.gpt_heads import GPTForSequenceClassification
from taesan.models.t5 import T5, T5Encoder
from taesan.models.transformer import Seq2SeqTransformer
from taesan.models.vit import ViT

MODEL_TYPES: dict[str, type[TaesanModel]] = {
    cls.model_type: cls
    for cls in (GPT, GPTForSequenceClassification, Seq2SeqTransformer, T5, T5Encoder, BERT, BertForMaskedLM,
                BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering, ViT,
                # the BERT-shaped families: every class their HF architectures load into
                *roberta_hf.HF_ARCHITECTURES.values(), *electra_hf.HF_ARCHITECTURES.values())
}

# each family's file holds PRESETS = {name: (model_type, {config fields})}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    **gpt.PRESETS, **transformer.PRESETS, **t5.PRESETS, **bert.PRESETS, **roberta.PRESETS, **electra.PRESETS, **vit.PRESETS,
}

# HF model_type -> from_hf(directory, hf_config): the HF checkpoint families that load
HF_IMPORTERS: dict[str, Callable[[Path, dict], TaesanModel]] = {
    "gpt2": gpt_hf.from_hf,
    "marian": transformer_hf.from_hf,
    "bart": transformer_hf.from_hf,
    "t5": t5_hf.from_hf,
    "mt5": t5_hf.from_hf,
    "bert": bert_hf.from_hf,
    "roberta": roberta_hf.from_hf,
    "electra": electra_hf.from_hf,
    "vit": vit_hf.from_hf,
}

# taesan class -> to_hf(model) -> (HF config dict, HF state dict)
HF_EXPORTERS: dict[type, Callable[[Any], tuple[dict, dict]]] = {
    GPT: gpt_hf.to_hf,
    GPTForSequenceClassification: gpt_hf.classifier_to_hf,
    Seq2SeqTransformer: transformer_hf.to_hf,
    T5: t5_hf.to_hf,
    T5Encoder: t5_hf.to_hf,
    ViT: vit_hf.to_hf,
    **{cls: bert_hf.to_hf for cls in (BERT, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
                                       BertForQuestionAnswering)},
    **{cls: roberta_hf.to_hf for cls in roberta_hf.HF_ARCHITECTURES.values()},
    **{cls: electra_hf.to_hf for cls in electra_hf.HF_ARCHITECTURES.values()},
}


def model_class(model_type: str, source: str = "config.json") -> type[TaesanModel]:
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise TaesanError(f"{source}: unknown model_type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type]


def presets() -> dict[str, tuple[str, dict[str, Any]]]:
    return dict(PRESETS)


def create(name: str, **overrides: Any) -> TaesanModel:
    """A freshly initialised model from a preset name (`gpt-tiny`) or a model_type, with config overrides."""
    if name in PRESETS:
        model_type, fields = PRESETS[name]
    elif name in MODEL_TYPES:
        model_type, fields = name, {}
    else:
        raise TaesanError(f"unknown model or preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    cls = model_class(model_type)
    config = config_from_dict(cls.config_class, {**fields, **overrides}, source=f"preset {name!r}")
    return cls(config)


def create_for(name: str, vocab_size: int, pad_id: int | None = None, model_type: str | None = None,
               **overrides: Any) -> TaesanModel:
    """A preset (or model_type) sized to a tokenizer: its vocabulary size (an encoder-decoder's source and target
    share it) and its padding id, where the family's config has those fields; `overrides` win. `model_type` puts
    another head on the preset's shape (bert-tiny as a bert-mlm).

    create_for("gpt-tiny", 800) -> gpt-tiny with vocab_size=800;  create_for("transformer-tiny", 800, 0) ->
    src_vocab_size=800, pad_token_id=0;  create_for("bert-tiny", 800, 0, "bert-mlm") -> a masked LM of bert-tiny's size
    """
    if name not in PRESETS and name not in MODEL_TYPES:
        return create(name)  # the one-line error that lists the presets
    kind, fields = PRESETS[name] if name in PRESETS else (name, {})
    cls = model_class(model_type or kind)
    own = {f.name for f in dataclasses.fields(cls.config_class)}
    sized: dict[str, Any] = {field: vocab_size for field in ("vocab_size", "src_vocab_size") if field in own}
    if "pad_token_id" in own and pad_id is not None:
        sized["pad_token_id"] = pad_id
    config = config_from_dict(cls.config_class, {**fields, **sized, **overrides}, source=f"preset {name!r}")
    return cls(config)


def is_taesan_checkpoint(config: dict[str, Any]) -> bool:
    """A config.json written by taesan (it names its format version); else HuggingFace's."""
    return "taesan_version" in config


def from_hf(directory: str | Path) -> TaesanModel:
    """Load a HuggingFace checkpoint directory into the matching taesan model (eval mode, CPU).

    A dry run on the meta device comes first (models/size.py): its size is known before anything is allocated.
    """
    directory = Path(directory)
    hf_config = read_config(directory)
    hf_type = hf_config.get("model_type")
    source = str(directory / CONFIG_NAME)
    if not isinstance(hf_type, str) or hf_type not in HF_IMPORTERS:
        raise TaesanError(
            f"{source}: model_type {hf_type!r} is neither a taesan checkpoint nor a supported "
            f"HuggingFace family ({', '.join(sorted(HF_IMPORTERS))})"
        )
    importer = HF_IMPORTERS[hf_type]
    size.check_hf(lambda: importer(directory, hf_config), hf_config, directory, source)
    with size.allocating(source):
        return importer(directory, hf_config).eval()


def to_hf(model: TaesanModel, directory: str | Path) -> Path:
    """Write `model` in the HuggingFace layout (config.json + model.safetensors) that transformers loads."""
    exporter = HF_EXPORTERS.get(type(model))
    if exporter is None:
        raise TaesanError(f"model_type {getattr(model, 'model_type', type(model).__name__)!r} has no HuggingFace export")
    hf_config, hf_state = exporter(model)  # raises before anything is written when the model cannot be exported
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_state_dict(hf_state, directory / WEIGHTS_NAME)
    write_json(directory / CONFIG_NAME, hf_config)
    return directory


def load_model(directory: str | Path, map_location: str = "cpu") -> TaesanModel:
    """A model from a checkpoint directory (config.json + model.safetensors), taesan's or HuggingFace's.

    A HF directory (no `taesan_version` in its config) is converted on the fly. A soft prompt is not a model
    of its own: `taesan.load` reads those.
    """
    directory = Path(directory)
    data = read_config(directory)
    if not is_taesan_checkpoint(data):
        model = from_hf(directory)
    else:
        source = str(directory / CONFIG_NAME)
        if "model_type" not in data:
            raise TaesanError(f"{source}: field 'model_type' is missing")
        cls = model_class(data["model_type"], source)
        config = config_from_dict(cls.config_class, data, source)
        weights = directory / WEIGHTS_NAME
        size.check_checkpoint(lambda: cls(config), data, weights, source, MODEL_TYPES)
        with size.allocating(source):
            model = cls(config)
            state = load_state_dict(weights)
            check_and_load(model, state, str(weights), ignore=model.tied_keys)  # per instance: an untied head is required
    model.checkpoint_dir = str(directory.resolve())  # where it came from: a soft prompt names its base
    return model.to(map_location).eval()
