"""A language model read as a classifier through its own LM head: a pattern goes after the text, and each label is
the score of its word (the verbalizer) where the LM predicts a token: a GPT's next token after the pattern, a masked
LM's [MASK] inside it (PET, Schick & Schütze 2021; the form prompt tuning takes in Lester et al. 2021 and PEFT).

    GPT:        [soft prompt] 이 영화 최고다 \\n정답:          -> next-token scores of " 긍정", " 부정"
    masked LM:  [CLS] [soft prompt] 이 영화 최고다 [SEP] 정답: [MASK] [SEP]   -> the [MASK]'s scores of 긍정, 부정

Not a new head: no weight is added, the LM and its head are the checkpoint's (a soft prompt around this model,
taesan.tuning.prompt, is what learns). Not a tokenizer: the pattern and the words arrive as ids
(taesan.tuning.verbalizer makes them from text). A label's score is its word's first token's (PET's one-token words).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.base import TaesanModel
from taesan.models.bert_heads import BertForMaskedLM
from taesan.models.electra import ElectraForMaskedLM
from taesan.models.gpt import GPT
from taesan.models.roberta import RobertaForMaskedLM
from taesan.modules.embeddings import TokenEmbedding

LANGUAGE_MODELS: dict[str, type[TaesanModel]] = {  # the LMs a verbalizer reads: a causal LM, the masked LMs
    cls.model_type: cls for cls in (GPT, BertForMaskedLM, RobertaForMaskedLM, ElectraForMaskedLM)
}


@dataclass
class VerbalizerConfig:
    lm: dict[str, Any] = field(default_factory=dict)  # the LM's config.json (model_type + fields)
    labels: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # each label's word, as written (for people)
    label_ids: list[int] = field(default_factory=list)  # each word's first token: its LM score is the label's logit
    pattern: str = ""  # the pattern's text (for people)
    pattern_ids: list[int] = field(default_factory=list)  # put after each text's tokens
    read_at: int = -1  # the pattern position whose LM output is read (a GPT: its last; a masked LM: the mask's)
    pattern_type_id: int = 0  # the pattern's segment id (BERT: 1, sentence B; RoBERTa, GPT: 0)
    n_positions: int = 0  # the positions left for the text: the LM's minus the pattern's
    vocab_size: int = 0  # the LM's (the tokenizer is checked against it)
    num_labels: int = 0

    def __post_init__(self) -> None:
        n = len(self.labels)
        if not (n == len(self.words) == len(self.label_ids) == self.num_labels) or n < 2:
            raise ValueError(f"labels, words and label_ids must be equal in number (>= 2) and num_labels {self.num_labels}")
        if len(set(self.label_ids)) != n:
            raise ValueError(f"two labels' words start with the same token (label_ids {self.label_ids})")
        if self.pattern_ids and not -len(self.pattern_ids) <= self.read_at < len(self.pattern_ids):
            raise ValueError(f"read_at {self.read_at} is outside the {len(self.pattern_ids)} pattern tokens")


class Verbalizer(TaesanModel):
    """(B, T) ids of texts (right-padded) -> (B, num_labels): the LM's scores of the labels' words after the pattern.

    The pattern is inserted after each row's last real token (the attention mask says where), so every row reads
    `text + pattern` from position 0 whatever its length; `inputs_embeds` (a soft prompt's) get the same.
    """

    model_type = "lm-verbalizer"
    config_class = VerbalizerConfig

    def __init__(self, config: VerbalizerConfig, lm: nn.Module | None = None) -> None:
        super().__init__(config)
        if lm is None:
            kind = config.lm.get("model_type")
            if kind not in LANGUAGE_MODELS:
                raise TaesanError(f"a verbalizer reads a GPT or a masked LM ({', '.join(LANGUAGE_MODELS)}), got {kind!r}")
            cls = LANGUAGE_MODELS[kind]
            lm = cls(config_from_dict(cls.config_class, config.lm, "the verbalizer's lm"))
        self.lm = lm
        self.masked = isinstance(lm, BertForMaskedLM)
        self.tied_keys = tuple(f"lm.{k}" for k in lm.tied_keys)
        self.register_buffer("label_ids", torch.tensor(config.label_ids, dtype=torch.long), persistent=False)
        self.register_buffer("pattern_ids", torch.tensor(config.pattern_ids, dtype=torch.long), persistent=False)

    @property
    def embed(self) -> TokenEmbedding:
        return self.lm.backbone.tok_emb if self.masked else self.lm.tok_emb

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if position_ids is not None:
            raise ValueError("the verbalizer numbers positions itself (rows are right-padded, text then pattern)")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T, C = x.shape
        S = self.pattern_ids.numel()
        n = attention_mask.sum(-1) if attention_mask is not None else torch.full((B,), T, device=x.device)  # (B,)
        x = insert_after(x, self.embed(self.pattern_ids).to(x.dtype).expand(B, S, C), n)  # (B, T + S, C)
        j = torch.arange(T + S, device=x.device)[None]  # (1, T + S)
        mask = (j < (n[:, None] + S)).long()  # (B, T + S): text and pattern real, padding after
        kwargs: dict[str, Any] = {"attention_mask": mask, "inputs_embeds": x}
        if self.masked:
            types = token_type_ids if token_type_ids is not None else torch.zeros(B, T, dtype=torch.long, device=x.device)
            pattern_types = torch.full((B, S, 1), self.config.pattern_type_id, dtype=types.dtype, device=x.device)
            kwargs["token_type_ids"] = insert_after(types[..., None], pattern_types, n)[..., 0]  # (B, T + S)
        hidden = self.lm.forward_features(**kwargs)[0]  # (B, T + S, C)
        at = n + (self.config.read_at % S if S else -1)  # (B,): where the label word is predicted
        return self.label_scores(hidden[torch.arange(B, device=x.device), at])  # (B, num_labels)

    def label_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C) hidden states -> (B, num_labels): the LM head's output, only at the label words' rows."""
        if self.masked:
            head = self.lm.mlm
            h = head.norm(head.act(head.transform(hidden)))  # (B, E)
            return F.linear(h, head.decoder.weight[self.label_ids], head.decoder.bias[self.label_ids])
        return F.linear(hidden, self.lm.lm_head.weight[self.label_ids])


def insert_after(x: torch.Tensor, inserted: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Each row of `inserted` (B, S, C) put after the first n[b] positions of row b of `x` (B, T, C): -> (B, T + S, C),
    what followed (padding) moved S places on.

    insert_after([[a b _]], [[P Q]], n=[2]) -> [[a b P Q _]]
    """
    B, T, C = x.shape
    S = inserted.shape[1]
    j = torch.arange(T + S, device=x.device)[None]  # (1, T + S)
    end = n[:, None]  # (B, 1)
    source = torch.where(j < end, j, torch.where(j < end + S, T + j - end, j - S))  # (B, T + S): index into cat
    return torch.cat([x, inserted], 1).gather(1, source[..., None].expand(B, T + S, C))
