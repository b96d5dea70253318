"""GPT's classification head: the last real token's final state -> a linear score per class (HF GPT2ForSequenceClassification).

Not the backbone (`gpt.GPT`, held as `.gpt` without its LM head) and not a loss: the head returns logits.
A causal model has read the whole text only at its last token, so that token stands for the sentence.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taesan.checkpoint import check_and_load
from taesan.models.base import TaesanModel
from taesan.models.gpt import GPT, GPTConfig


@dataclass
class GPTClassifierConfig(GPTConfig):
    num_labels: int = 2  # output size
    labels: list[str] | None = None  # label names, index = class id
    pad_token_id: int | None = None  # without an attention mask, the last token that is not this one is read

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 1:
            raise ValueError(f"field 'num_labels' must be a positive integer, got {self.num_labels!r}")
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) != self.num_labels:
                raise ValueError(f"field 'labels' has {len(self.labels)} names but 'num_labels' is {self.num_labels}")


def last_token_index(input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, pad_token_id: int | None, length: int) -> torch.Tensor | int:
    """Per row, the position of the rightmost real token: from the attention mask, else the rightmost
    id != pad_token_id (as HF), else the last position (-1). Left or right padding both work.

    last_token_index(None, [[1, 1, 0], [1, 1, 1]], None, 3) -> [1, 2]
    """
    if attention_mask is not None:
        real = attention_mask.bool()
    elif pad_token_id is not None and input_ids is not None:
        real = input_ids != pad_token_id
    else:
        return -1
    positions = torch.arange(length, device=real.device)  # (T,)
    return (positions * real).argmax(-1)  # (B,) the largest position holding a real token


class GPTForSequenceClassification(TaesanModel):
    """GPT -> final state of the last real token -> linear (no bias): -> (B, num_labels) logits."""

    model_type = "gpt-sequence-classification"
    config_class = GPTClassifierConfig

    def __init__(self, config: GPTClassifierConfig) -> None:
        super().__init__(config)
        self.gpt = GPT(config)
        self.gpt.lm_head = None  # the vocabulary projection is not used by a classifier
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=0.02)

    @classmethod
    def from_backbone(cls, source: TaesanModel, **changes: Any) -> "GPTForSequenceClassification":
        """A fresh head on a copy of `source`'s backbone (a GPT or a GPT head model); `changes` are config
        fields such as num_labels=3, labels=[...], pad_token_id=0."""
        backbone = source if isinstance(source, GPT) else source.gpt
        fields = {f.name: getattr(backbone.config, f.name) for f in dataclasses.fields(GPTConfig)}
        if isinstance(source, GPTForSequenceClassification):
            fields["pad_token_id"] = source.config.pad_token_id
        model = cls(GPTClassifierConfig(**{**fields, **changes}))
        state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("lm_head.")}
        check_and_load(model.gpt, state, f"backbone of {type(source).__name__}")
        return model.to(backbone.device)

    def reset_classifier(self, num_labels: int, labels: list[str] | None = None) -> None:
        """A fresh `num_labels`-way score layer on the same backbone (the config is updated to match)."""
        self.config = dataclasses.replace(self.config, num_labels=num_labels, labels=labels)
        self.score = nn.Linear(self.config.d_model, num_labels, bias=False).to(self.device)
        nn.init.normal_(self.score.weight, std=0.02)

    def forward_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """The backbone's final-normed states (B, T, C) and attentions; see `GPT.forward_features`."""
        return self.gpt.forward_features(input_ids, attention_mask, position_ids, None, need_weights, inputs_embeds)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """-> logits (B, num_labels). attention_mask (B, T): 1 = real token (either padding side works)."""
        hidden, _ = self.forward_features(input_ids, attention_mask, position_ids, inputs_embeds=inputs_embeds)
        B, T, _ = hidden.shape
        last = last_token_index(input_ids, attention_mask, self.config.pad_token_id, T)
        pooled = hidden[torch.arange(B, device=hidden.device), last]  # (B, C)
        return self.score(pooled)  # (B, num_labels)
