"""ELECTRA: BERT's encoder with narrower embeddings (embedding_size) projected up to d_model, no pooler; and its
heads: the discriminator (replaced-token detection), the generator (masked LM), sequence classification, token
classification, QA.

Not the replaced-token-detection objective (a generator and a discriminator trained together) and not a loss.
The blocks, masks and forward are BERT's (bert.py); the embeddings' width and the heads differ.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taesan.models.bert import BERT, BertConfig, init_bert_weights
from taesan.models.bert_heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertHeadModel,
)
from taesan.models.first_token_head import FirstTokenClassifier
from taesan.modules.transformer import ACTIVATIONS


@dataclass
class ElectraConfig(BertConfig):
    # the defaults are ELECTRA-Small's, as transformers' ElectraConfig (d_ff: 4 * d_model = 1024)
    d_model: int = 256
    n_heads: int = 4
    pooler: bool = False  # ELECTRA has none
    embedding_size: int | None = 128  # token/position/segment vectors; None -> d_model (no projection)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_size is None:
            self.embedding_size = self.d_model
        if isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int) or self.embedding_size < 1:
            raise ValueError(f"field 'embedding_size' must be a positive integer, got {self.embedding_size!r}")
        if self.pooler:
            raise ValueError("field 'pooler' must be false: ELECTRA has no pooler (its classifier reads [CLS] itself)")


PRESETS = {
    "electra-tiny": ("electra", dict(vocab_size=4096, n_positions=256, embedding_size=64, d_model=128, n_layers=2, n_heads=2)),
    "electra-small-discriminator": ("electra-discriminator", dict(vocab_size=30522, n_positions=512, embedding_size=128,
                                                                  d_model=256, n_layers=12, n_heads=4, d_ff=1024)),
    "electra-base-discriminator": ("electra-discriminator", dict(vocab_size=30522, n_positions=512, embedding_size=768,
                                                                 d_model=768, n_layers=12, n_heads=12, d_ff=3072)),
    "electra-base-generator": ("electra-generator", dict(vocab_size=30522, n_positions=512, embedding_size=768,
                                                         d_model=256, n_layers=12, n_heads=4, d_ff=1024)),
}


class ELECTRA(BERT):
    """BERT whose embeddings (and their LayerNorm) are `embedding_size` wide; `emb_proj` maps them up to d_model
    before the blocks when the widths differ. inputs_embeds are `embedding_size` wide, as the token table."""

    model_type = "electra"
    config_class = ElectraConfig

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        c = config
        self.emb_proj = nn.Linear(c.embedding_size, c.d_model) if c.embedding_size != c.d_model else None
        if self.emb_proj is not None:
            init_bert_weights(self.emb_proj)

    @property
    def embedding_size(self) -> int:
        return self.config.embedding_size

    def embed(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = super().embed(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)
        return x if self.emb_proj is None else self.emb_proj(x)  # (B, T, C)


class DiscriminatorHead(nn.Module):
    """hidden -> dense -> activation -> one score per token (B, T): above 0 = "replaced by the generator"."""

    def __init__(self, d_model: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.act = ACTIVATIONS[activation]
        self.out = nn.Linear(d_model, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.dense(hidden))).squeeze(-1)  # (B, T)


class ElectraForPreTraining(BertHeadModel):
    """The discriminator: ELECTRA -> DiscriminatorHead: (B, T) logits of "this token was replaced"."""

    model_type = "electra-discriminator"
    config_class = ElectraConfig
    backbone_class = ELECTRA
    backbone_prefix = "electra"
    hf_architecture = "ElectraForPreTraining"
    hf_keys = {
        "discriminator.dense.weight": "discriminator_predictions.dense.weight",
        "discriminator.dense.bias": "discriminator_predictions.dense.bias",
        "discriminator.out.weight": "discriminator_predictions.dense_prediction.weight",
        "discriminator.out.bias": "discriminator_predictions.dense_prediction.bias",
    }

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        self.discriminator = DiscriminatorHead(config.d_model, config.activation)
        self.discriminator.apply(init_bert_weights)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden, _ = self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)
        return self.discriminator(hidden)  # (B, T)


class ElectraForMaskedLM(BertForMaskedLM):
    """The generator: ELECTRA -> dense to embedding_size -> GELU -> LayerNorm -> tied decoder + bias:
    -> (B, T, vocab_size) scores; `masked_positions` as BertForMaskedLM."""

    model_type = "electra-generator"
    config_class = ElectraConfig
    backbone_class = ELECTRA
    backbone_prefix = "electra"
    mlm_activation = "gelu"
    hf_architecture = "ElectraForMaskedLM"
    hf_keys = {
        "mlm.transform.weight": "generator_predictions.dense.weight",
        "mlm.transform.bias": "generator_predictions.dense.bias",
        "mlm.norm.weight": "generator_predictions.LayerNorm.weight",
        "mlm.norm.bias": "generator_predictions.LayerNorm.bias",
        "mlm.decoder.bias": "generator_lm_head.bias",
    }


class ElectraForSequenceClassification(FirstTokenClassifier):
    """ELECTRA -> ElectraClassificationHead on [CLS] (dense -> GELU -> out_proj): -> (B, num_labels)."""

    model_type = "electra-sequence-classification"
    config_class = ElectraConfig
    backbone_class = ELECTRA
    backbone_prefix = "electra"
    head_activation = "gelu"
    hf_architecture = "ElectraForSequenceClassification"


class ElectraForTokenClassification(BertForTokenClassification):
    """ELECTRA -> dropout -> linear at every position: -> (B, T, num_labels) logits (NER tags)."""

    model_type = "electra-token-classification"
    config_class = ElectraConfig
    backbone_class = ELECTRA
    backbone_prefix = "electra"
    hf_architecture = "ElectraForTokenClassification"


class ElectraForQuestionAnswering(BertForQuestionAnswering):
    """ELECTRA -> linear to (start, end) scores per token: -> (B, T, 2), as BertForQuestionAnswering."""

    model_type = "electra-qa"
    config_class = ElectraConfig
    backbone_class = ELECTRA
    backbone_prefix = "electra"
    hf_architecture = "ElectraForQuestionAnswering"
