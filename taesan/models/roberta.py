"""RoBERTa: BERT's encoder with positions counted from after the padding id (padding tokens read the padding row),
one segment, no pooler by default; and its heads: masked LM, sequence classification, token classification, QA.

Not a tokenizer (RoBERTa's byte-level BPE and its <s> ... </s> template live in tokenizers) and not a loss.
The blocks, masks and forward are BERT's (bert.py); only the position rule and the sentence classifier differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from taesan.models.bert import BERT, BertConfig
from taesan.models.bert_heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForTokenClassification,
)
from taesan.models.first_token_head import FirstTokenClassifier


@dataclass
class RobertaConfig(BertConfig):
    vocab_size: int = 50265
    type_vocab_size: int = 1  # no sentence-B embedding: pairs are <s> a </s></s> b </s>
    norm_eps: float = 1e-5
    pad_token_id: int | None = 1  # required: positions count from pad_token_id + 1
    pooler: bool = False  # no RoBERTa head reads it; a checkpoint that has one keeps it

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pad_token_id is None:
            raise ValueError("field 'pad_token_id' is required: RoBERTa's positions are counted from it")


PRESETS = {
    "roberta-tiny": ("roberta", dict(vocab_size=4096, n_positions=256, d_model=128, n_layers=2, n_heads=2)),
    "roberta-base": ("roberta", dict(vocab_size=50265, n_positions=512, d_model=768, n_layers=12, n_heads=12)),
    "roberta-large": ("roberta", dict(vocab_size=50265, n_positions=512, d_model=1024, n_layers=24, n_heads=16)),
    # klue/roberta-base's shape: a 32000-token WordPiece vocabulary, [PAD] = 1
    "klue-roberta-base": ("roberta", dict(vocab_size=32000, n_positions=512, d_model=768, n_layers=12, n_heads=12)),
}


def padding_positions(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """(B, T) ids -> (B, T) positions that count real tokens only, from 0; padding gets -1.

    padding_positions([[5, 6, 1, 1], [1, 7, 8, 1]], pad_token_id=1) -> [[0, 1, -1, -1], [-1, 0, 1, -1]]
    (HF's create_position_ids_from_input_ids, shifted down by pad_token_id + 1.)
    """
    real = (input_ids != pad_token_id).long()  # (B, T)
    return real.cumsum(1) * real - 1


class RoBERTa(BERT):
    """BERT whose position table keeps pad_token_id + 1 rows before position 0: row pad_token_id is what padding
    tokens read, and real tokens count from the row after it, skipping padding wherever it sits.

    position_ids (when given) are those counts: 0 at the first real token, -1 for padding. Without them, they
    come from input_ids (`padding_positions`), or run 0..T-1 for inputs_embeds (HF does the same).
    """

    model_type = "roberta"
    config_class = RobertaConfig

    @property
    def position_offset(self) -> int:
        return self.config.pad_token_id + 1

    def embed(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if position_ids is None and input_ids is not None:
            position_ids = padding_positions(input_ids, self.config.pad_token_id)  # (B, T)
        return super().embed(input_ids, token_type_ids, position_ids, inputs_embeds)


class RobertaForMaskedLM(BertForMaskedLM):
    """RoBERTa + RobertaLMHead (dense -> GELU, whatever hidden_act says -> LayerNorm -> tied decoder + bias):
    -> (B, T, vocab_size) scores; `masked_positions` as BertForMaskedLM."""

    model_type = "roberta-mlm"
    config_class = RobertaConfig
    backbone_class = RoBERTa
    backbone_prefix = "roberta"
    mlm_activation = "gelu"
    hf_architecture = "RobertaForMaskedLM"
    hf_keys = {
        "mlm.transform.weight": "lm_head.dense.weight",
        "mlm.transform.bias": "lm_head.dense.bias",
        "mlm.norm.weight": "lm_head.layer_norm.weight",
        "mlm.norm.bias": "lm_head.layer_norm.bias",
        "mlm.decoder.bias": "lm_head.bias",
    }


class RobertaForSequenceClassification(FirstTokenClassifier):
    """RoBERTa -> RobertaClassificationHead on <s> (dense -> tanh -> out_proj; no pooler): -> (B, num_labels)."""

    model_type = "roberta-sequence-classification"
    config_class = RobertaConfig
    backbone_class = RoBERTa
    backbone_prefix = "roberta"
    head_activation = "tanh"
    hf_architecture = "RobertaForSequenceClassification"


class RobertaForTokenClassification(BertForTokenClassification):
    """RoBERTa -> dropout -> linear at every position: -> (B, T, num_labels) logits (NER tags)."""

    model_type = "roberta-token-classification"
    config_class = RobertaConfig
    backbone_class = RoBERTa
    backbone_prefix = "roberta"
    hf_architecture = "RobertaForTokenClassification"


class RobertaForQuestionAnswering(BertForQuestionAnswering):
    """RoBERTa -> linear to (start, end) scores per token: -> (B, T, 2), as BertForQuestionAnswering."""

    model_type = "roberta-qa"
    config_class = RobertaConfig
    backbone_class = RoBERTa
    backbone_prefix = "roberta"
    hf_architecture = "RobertaForQuestionAnswering"
