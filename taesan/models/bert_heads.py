"""BERT's task heads: masked LM, sequence classification, token classification, question answering (start/end).

Not the backbone (`bert.BERT`, held by every head as `.bert`) and not a loss: heads return logits; tasks own losses.
The BERT-shaped families (RoBERTa, ELECTRA) build their heads on these classes with their own backbone.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from taesan.checkpoint import check_and_load
from taesan.errors import TaesanError
from taesan.models.base import TaesanModel
from taesan.models.bert import BERT, BertConfig, init_bert_weights
from taesan.modules.pooling import masked_mean
from taesan.modules.transformer import ACTIVATIONS

POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")


class BertHeadModel(TaesanModel):
    """A BERT backbone (`self.bert`) plus a head. Swapping heads = `OtherHead.from_backbone(model)`.

    `hf_architecture` and `hf_keys` (taesan key -> HF key of the head's own tensors) drive the HF interop.
    `backbone_class` is BERT or a BERT-shaped family (RoBERTa, ELECTRA); it is held under `backbone_prefix`,
    the name HF uses (`.bert`, `.roberta`, `.electra`), and reached as `.backbone` whatever the family.
    """

    config_class = BertConfig
    backbone_class: ClassVar[type[BERT]] = BERT
    backbone_prefix: ClassVar[str] = "bert"
    hf_architecture: ClassVar[str]
    hf_keys: ClassVar[dict[str, str]] = {}
    needs_pooler: ClassVar[bool] = False  # with pooling "cls" (a mean-pooled classifier has none)

    def __init__(self, config: BertConfig) -> None:
        if self.needs_pooler and config.pooling == "cls" and not config.pooler:
            config = dataclasses.replace(config, pooler=True)
        elif self.needs_pooler and config.pooling == "mean" and config.pooler:
            config = dataclasses.replace(config, pooler=False)  # nothing reads it: no dead weights in the checkpoint
        super().__init__(config)
        self.add_module(self.backbone_prefix, self.backbone_class(config))

    @property
    def backbone(self) -> BERT:
        return getattr(self, self.backbone_prefix)

    @classmethod
    def from_backbone(cls, source: TaesanModel, **changes: Any) -> "BertHeadModel":
        """A new, freshly initialised head on a copy of `source`'s backbone weights (a BERT or any BERT head model).

        `changes` are config fields for the new model, e.g. num_labels=3, labels=["neg", "neu", "pos"].
        A pooler the source lacks starts from its initialisation.
        """
        backbone = source if isinstance(source, BERT) else source.backbone
        if type(backbone) is not cls.backbone_class:  # a RoBERTa under BERT's head would lose its positions
            raise TaesanError(f"{cls.__name__} needs a {cls.backbone_class.__name__} backbone, "
                              f"got {type(backbone).__name__}: use that family's head")
        model = cls(dataclasses.replace(backbone.config, **changes))
        state = backbone.state_dict()
        if model.backbone.pooler is None:
            state = {k: v for k, v in state.items() if k not in POOLER_KEYS}
        check_and_load(model.backbone, state, f"backbone of {type(source).__name__}", ignore=POOLER_KEYS)
        return model.to(backbone.device)

    def forward_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """The backbone's last hidden states (B, T, C) and attentions; see `BERT.forward_features`."""
        return self.backbone.forward_features(input_ids, attention_mask, token_type_ids, position_ids, need_weights, inputs_embeds)


class MaskedLMHead(nn.Module):
    """hidden -> dense -> activation -> LayerNorm -> decoder (weight = the word embeddings) + bias -> vocab scores.

    `d_model` in, `embedding_size` wide after the dense layer: the word embeddings' width (ELECTRA's are narrower).
    """

    def __init__(self, d_model: int, embedding_size: int, vocab_size: int, activation: str, norm_eps: float) -> None:
        super().__init__()
        self.transform = nn.Linear(d_model, embedding_size)
        self.act = ACTIVATIONS[activation]
        self.norm = nn.LayerNorm(embedding_size, eps=norm_eps)
        self.decoder = nn.Linear(embedding_size, vocab_size)

    def forward(self, hidden: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(..., d_model) -> vocabulary scores (..., vocab); with pre_logits, what the decoder reads (..., embedding_size)."""
        x = self.norm(self.act(self.transform(hidden)))
        return x if pre_logits else self.decoder(x)  # (..., vocab)


class BertForMaskedLM(BertHeadModel):
    """BERT + the masked-LM head: -> (B, T, vocab_size) scores of the token at each position."""

    model_type = "bert-mlm"
    tied_keys = ("mlm.decoder.weight",)
    hf_architecture = "BertForMaskedLM"
    hf_keys = {
        "mlm.transform.weight": "cls.predictions.transform.dense.weight",
        "mlm.transform.bias": "cls.predictions.transform.dense.bias",
        "mlm.norm.weight": "cls.predictions.transform.LayerNorm.weight",
        "mlm.norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "mlm.decoder.bias": "cls.predictions.bias",
    }
    mlm_activation: ClassVar[str | None] = None  # None: the config's activation (BERT); RoBERTa and ELECTRA fix GELU

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        c, E = self.config, self.backbone.embedding_size
        self.mlm = MaskedLMHead(c.d_model, E, c.vocab_size, self.mlm_activation or c.activation, c.norm_eps)
        self.mlm.apply(init_bert_weights)
        self.mlm.decoder.weight = self.backbone.tok_emb.weight  # tied: one matrix reads and writes tokens

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        pre_logits: bool = False,
    ) -> torch.Tensor:
        """-> logits (B, T, vocab_size); with `masked_positions` (B, T) bool, only those rows: (N, vocab_size).

        Scoring only the masked ~15% skips most of the vocabulary projection, the costliest matmul in pretraining.
        pre_logits: what the tied decoder reads instead of its scores (B, T, E) or (N, E); see `output_layer`.
        """
        hidden, _ = self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)
        if masked_positions is not None:
            hidden = hidden[masked_positions.bool()]  # (N, C), row-major order
        return self.mlm(hidden, pre_logits=pre_logits)

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The decoder as (weight (vocab_size, E), bias (vocab_size,)): logits = pre_logits @ weight.T + bias."""
        return self.mlm.decoder.weight, self.mlm.decoder.bias


class BertForSequenceClassification(BertHeadModel):
    """BERT -> pooled [CLS] -> dropout -> linear: -> (B, num_labels) logits (one sentence or a pair).

    With config.pooling "mean" the sentence vector is the masked mean of the last hidden states and there is no
    pooler: a masked-LM-only backbone never trains [CLS] or the pooler (issue 17). HF has no such classifier.
    """

    model_type = "bert-sequence-classification"
    hf_architecture = "BertForSequenceClassification"
    hf_keys = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
    needs_pooler = True

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        c = self.config
        self.dropout = nn.Dropout(c.dropout if c.classifier_dropout is None else c.classifier_dropout)
        self.classifier = _new_classifier(c.d_model, c.num_labels)

    def reset_classifier(self, num_labels: int, labels: list[str] | None = None) -> None:
        """A fresh `num_labels`-way classifier on the same backbone (the config is updated to match)."""
        self.config = dataclasses.replace(self.config, num_labels=num_labels, labels=labels)
        self.classifier = _new_classifier(self.config.d_model, num_labels).to(self.backbone.device)

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
            pooled = self.backbone.pool(hidden)  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class BertForTokenClassification(BertHeadModel):
    """BERT -> dropout -> linear at every position: -> (B, T, num_labels) logits (NER tags)."""

    model_type = "bert-token-classification"
    hf_architecture = "BertForTokenClassification"
    hf_keys = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        c = self.config
        self.dropout = nn.Dropout(c.dropout if c.classifier_dropout is None else c.classifier_dropout)
        self.classifier = _new_classifier(c.d_model, c.num_labels)

    reset_classifier = BertForSequenceClassification.reset_classifier

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden, _ = self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)
        return self.classifier(self.dropout(hidden))  # (B, T, num_labels)


class BertForQuestionAnswering(BertHeadModel):
    """BERT -> linear to two scores per token: -> (B, T, 2) logits, [..., 0] = answer start, [..., 1] = answer end.

    `start, end = logits.unbind(-1)` gives HF's start_logits and end_logits, each (B, T).
    """

    model_type = "bert-qa"
    hf_architecture = "BertForQuestionAnswering"
    hf_keys = {"qa.weight": "qa_outputs.weight", "qa.bias": "qa_outputs.bias"}

    def __init__(self, config: BertConfig) -> None:
        if config.num_labels != 2 or config.labels is not None:
            config = dataclasses.replace(config, num_labels=2, labels=None)  # start and end, nothing else
        super().__init__(config)
        self.qa = _new_classifier(config.d_model, 2)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden, _ = self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)
        return self.qa(hidden)  # (B, T, 2)


def _new_classifier(d_model: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(d_model, n_out)
    init_bert_weights(layer)
    return layer
