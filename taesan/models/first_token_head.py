"""The sentence classifier RoBERTa and ELECTRA share: dense -> activation -> out_proj over the first token's
hidden state (<s> or [CLS]), with no pooler in between. RoBERTa's activation is tanh, ELECTRA's GELU. With
config.pooling "mean" the head reads the masked mean of the hidden states instead (no HF equivalent).

Not BERT's classifier (bert_heads.BertForSequenceClassification reads the pooled [CLS]) and not a loss.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar

import torch
from torch import nn

from taesan.models.bert import BertConfig, init_bert_weights
from taesan.models.bert_heads import BertHeadModel
from taesan.modules.pooling import masked_mean
from taesan.modules.transformer import ACTIVATIONS

HEAD_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"tanh": torch.tanh, **ACTIVATIONS}


class ClassificationHead(nn.Module):
    """sentence vector (B, C) -> dropout -> dense -> activation -> dropout -> out_proj: (B, num_labels)."""

    def __init__(self, d_model: int, num_labels: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.act = HEAD_ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(d_model, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.dropout(pooled)  # (B, C)
        x = self.dropout(self.act(self.dense(x)))
        return self.out_proj(x)  # (B, num_labels)


class FirstTokenClassifier(BertHeadModel):
    """A BERT-shaped backbone -> ClassificationHead: (B, num_labels) logits (one sentence or a pair).

    A family sets `head_activation` ("tanh", "gelu") with its backbone class and names.
    """

    head_activation: ClassVar[str]
    hf_keys = {f"classifier.{m}.{p}": f"classifier.{m}.{p}" for m in ("dense", "out_proj") for p in ("weight", "bias")}

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.classifier = self._new_head(self.config)

    def _new_head(self, c: BertConfig) -> ClassificationHead:
        dropout = c.dropout if c.classifier_dropout is None else c.classifier_dropout
        head = ClassificationHead(c.d_model, c.num_labels, self.head_activation, dropout)
        head.apply(init_bert_weights)
        return head

    def reset_classifier(self, num_labels: int, labels: list[str] | None = None) -> None:
        """A fresh `num_labels`-way head (dense and out_proj) on the same backbone; the config is updated to match."""
        self.config = dataclasses.replace(self.config, num_labels=num_labels, labels=labels)
        self.classifier = self._new_head(self.config).to(self.backbone.device)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden, _ = self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)
        if self.config.pooling == "mean":
            pooled = masked_mean(hidden, attention_mask)  # (B, C)
        else:
            pooled = hidden[:, 0]  # (B, C): <s> / [CLS]
        return self.classifier(pooled)  # (B, num_labels)
