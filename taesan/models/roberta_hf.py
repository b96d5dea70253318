"""RoBERTa <-> HuggingFace RoBERTa: the family's names (architectures, head tensors, skipped tensors) and its
config fields; the key table and the loading/export machinery are BERT's (bert_hf.py), which RoBERTa's layout shares.

HF counts `max_position_embeddings` with the pad_token_id + 1 rows before position 0; taesan's `n_positions` is
the longest sequence (514 -> 512). Not the model (roberta.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models import bert_hf
from taesan.models.base import TaesanModel
from taesan.models.roberta import (
    RoBERTa,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)

# HF architecture -> the taesan class it loads into; the first is the bare backbone
HF_ARCHITECTURES: dict[str, type[TaesanModel]] = {
    "RobertaModel": RoBERTa,
    "RobertaForMaskedLM": RobertaForMaskedLM,
    "RobertaForSequenceClassification": RobertaForSequenceClassification,
    "RobertaForTokenClassification": RobertaForTokenClassification,
    "RobertaForQuestionAnswering": RobertaForQuestionAnswering,
}
# buffers, and the LM decoder (its weight is the word embeddings, its bias is lm_head.bias)
HF_SKIPPED = ("embeddings.position_ids", "embeddings.token_type_ids", "lm_head.decoder.")
HF_OTHER_HEADS = ("lm_head.", "classifier.", "qa_outputs.")
# BERT's fields with RobertaConfig's defaults in transformers, used when a field is absent
HF_CONFIG = {**bert_hf.HF_CONFIG, "vocab_size": ("vocab_size", 50265), "pad_token_id": ("pad_token_id", 1)}


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json", pooler: bool = False) -> RobertaConfig:
    """HF RobertaConfig fields -> RobertaConfig; an unsupported setting raises a one-line TaesanError."""
    fields = bert_hf.read_fields(hf_config, HF_CONFIG, "RoBERTa", source)
    pad = fields["pad_token_id"]
    if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
        raise TaesanError(f"{source}: field 'pad_token_id'={pad!r} must be a token id: RoBERTa's positions are counted from it")
    if not isinstance(fields["n_positions"], int) or fields["n_positions"] <= pad + 1:
        raise TaesanError(f"{source}: field 'max_position_embeddings'={fields['n_positions']!r} leaves no position "
                          f"after the {pad + 1} rows RoBERTa keeps before position 0")
    fields["n_positions"] -= pad + 1  # 514 rows -> 512 tokens
    fields["pooler"] = pooler
    return config_from_dict(RobertaConfig, fields, source=source)


def to_hf_config(config: RobertaConfig, architecture: str = "RobertaModel") -> dict[str, Any]:
    """RobertaConfig -> a HF RobertaConfig dict for `architecture` (RobertaModel, RobertaForMaskedLM, ...)."""
    out = bert_hf.write_fields(config, HF_CONFIG, "roberta", architecture)
    out["max_position_embeddings"] = config.n_positions + config.pad_token_id + 1
    return out


FAMILY = bert_hf.HFFamily("roberta", HF_ARCHITECTURES, bert_hf.HF_KEYS, bert_hf.HF_POOLER_KEYS, HF_SKIPPED,
                          HF_OTHER_HEADS, from_hf_config, to_hf_config)


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> TaesanModel:
    """A HF RoBERTa directory -> RoBERTa or the head model named by `architectures` (default RobertaModel)."""
    return bert_hf.load(FAMILY, directory, hf_config)


def to_hf(model: TaesanModel) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """RoBERTa or a head model -> (HF config dict, HF state dict) that `transformers.Roberta*.from_pretrained` loads."""
    return bert_hf.export(FAMILY, model)
