"""ELECTRA <-> HuggingFace ELECTRA: the family's names (architectures, head tensors, the embedding projection) and
its config fields; the key table and the loading/export machinery are BERT's (bert_hf.py), which ELECTRA's layout shares.

Not the model (electra.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from taesan.config import config_from_dict
from taesan.models import bert_hf
from taesan.models.base import TaesanModel
from taesan.models.electra import (
    ELECTRA,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
)

# HF architecture -> the taesan class it loads into; the first is the bare backbone
HF_ARCHITECTURES: dict[str, type[TaesanModel]] = {
    "ElectraModel": ELECTRA,
    "ElectraForPreTraining": ElectraForPreTraining,
    "ElectraForMaskedLM": ElectraForMaskedLM,
    "ElectraForSequenceClassification": ElectraForSequenceClassification,
    "ElectraForTokenClassification": ElectraForTokenClassification,
    "ElectraForQuestionAnswering": ElectraForQuestionAnswering,
}
# present only when embedding_size != hidden_size
HF_PROJECTION_KEYS = {"emb_proj.weight": "embeddings_project.weight", "emb_proj.bias": "embeddings_project.bias"}
# buffers, and the generator's decoder weight (a copy of the word embeddings in older files)
HF_SKIPPED = ("embeddings.position_ids", "embeddings.token_type_ids", "generator_lm_head.weight")
HF_OTHER_HEADS = ("discriminator_predictions.", "generator_predictions.", "generator_lm_head.", "classifier.", "qa_outputs.")
# BERT's fields plus embedding_size, with ElectraConfig's defaults in transformers (ELECTRA-Small), used when absent
HF_CONFIG = {
    **bert_hf.HF_CONFIG,
    "hidden_size": ("d_model", 256),
    "num_attention_heads": ("n_heads", 4),
    "intermediate_size": ("d_ff", 1024),
    "embedding_size": ("embedding_size", 128),
}


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json", pooler: bool = False) -> ElectraConfig:
    """HF ElectraConfig fields -> ElectraConfig (`pooler` is ignored: ELECTRA has none)."""
    fields = bert_hf.read_fields(hf_config, HF_CONFIG, "ELECTRA", source)
    return config_from_dict(ElectraConfig, fields, source=source)


def to_hf_config(config: ElectraConfig, architecture: str = "ElectraModel") -> dict[str, Any]:
    """ElectraConfig -> a HF ElectraConfig dict for `architecture` (ElectraModel, ElectraForPreTraining, ...)."""
    return bert_hf.write_fields(config, HF_CONFIG, "electra", architecture)


FAMILY = bert_hf.HFFamily("electra", HF_ARCHITECTURES, bert_hf.HF_KEYS, HF_PROJECTION_KEYS, HF_SKIPPED,
                          HF_OTHER_HEADS, from_hf_config, to_hf_config)


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> TaesanModel:
    """A HF ELECTRA directory -> ELECTRA or the head model named by `architectures` (default ElectraModel)."""
    return bert_hf.load(FAMILY, directory, hf_config)


def to_hf(model: TaesanModel) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """ELECTRA or a head model -> (HF config dict, HF state dict) that `transformers.Electra*.from_pretrained` loads."""
    return bert_hf.export(FAMILY, model)
