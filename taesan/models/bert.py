"""BERT: the encoder-only transformer (token + position + segment embeddings, post-LN blocks, [CLS] pooler), HF compatible.

Not the task heads (masked LM, classification, QA live in `bert_heads`) and not a tokenizer or a loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taesan.config import check_fields
from taesan.errors import TaesanError
from taesan.models.base import TaesanModel
from taesan.modules import (
    LearnedPositionEmbedding,
    PostNormBlock,
    SegmentEmbedding,
    TokenEmbedding,
    key_padding_mask,
)
from taesan.modules.transformer import ACTIVATIONS

POOLINGS = ("cls", "mean")  # how a sequence classifier reads the last hidden states (BertConfig.pooling)


@dataclass
class BertConfig:
    vocab_size: int = 30522
    n_positions: int = 512  # the longest sequence (learned position table size)
    type_vocab_size: int = 2  # segments: sentence A = 0, sentence B = 1
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.1  # embeddings, residual branches
    attn_dropout: float = 0.1  # attention weights
    norm_eps: float = 1e-12
    activation: str = "gelu"  # exact erf GELU, as BERT
    pad_token_id: int | None = 0  # its embedding row starts at zero and gets no gradient from the lookup
    pooler: bool = True  # dense + tanh over [CLS]; only sequence classification uses it
    num_labels: int = 2  # classification heads: output size
    labels: list[str] | None = None  # classification heads: label names, index = class id
    classifier_dropout: float | None = None  # classification heads; None -> `dropout`
    pooling: str = "cls"  # sequence classifiers: "cls" (pooled [CLS] / first token, as HF) or "mean" (masked mean, no pooler)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_fields(self, positive=("vocab_size", "n_positions", "type_vocab_size", "d_model", "n_layers", "n_heads", "d_ff",
                                     "num_labels"),
                     divisible=(("d_model", "n_heads"),), fractions=("dropout", "attn_dropout", "classifier_dropout"),
                     positive_floats=("norm_eps",), choices={"activation": ACTIVATIONS})
        if self.pooling not in POOLINGS:
            raise ValueError(f"field 'pooling' is {self.pooling!r}; choose one of {list(POOLINGS)}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"field 'pad_token_id'={self.pad_token_id} is outside the vocabulary (size {self.vocab_size})")
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) != self.num_labels:
                raise ValueError(f"field 'labels' has {len(self.labels)} names but 'num_labels' is {self.num_labels}")


PRESETS = {
    "bert-tiny": ("bert", dict(vocab_size=4096, n_positions=256, d_model=128, n_layers=2, n_heads=2)),
    "bert-base": ("bert", dict(vocab_size=30522, n_positions=512, d_model=768, n_layers=12, n_heads=12)),  # 110M
    "bert-large": ("bert", dict(vocab_size=30522, n_positions=512, d_model=1024, n_layers=24, n_heads=16)),  # 335M
    # all-MiniLM-L6-v2's shape (22.7M): 6 layers, 384 wide, 12 heads of 32, feed-forward 1536
    "minilm-l6": ("bert", dict(vocab_size=30522, n_positions=512, d_model=384, n_layers=6, n_heads=12, d_ff=1536)),
}


def init_bert_weights(m: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, the padding row zero, LayerNorm = identity."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)
    if isinstance(m, nn.Embedding) and m.padding_idx is not None:
        with torch.no_grad():
            m.weight[m.padding_idx].zero_()
    if isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Pooler(nn.Module):
    """The sentence vector: tanh(W · h_[CLS] + b), (B, T, C) -> (B, C)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, C)


class BERT(TaesanModel):
    """tokens -> token + position + segment embeddings -> LayerNorm -> n_layers × PostNormBlock -> hidden states.

    Bidirectional: every token attends to every real (unpadded) token. `pool(hidden)` gives the [CLS]
    sentence vector. Calling the bare backbone returns the last hidden states (B, T, C).
    """

    model_type = "bert"
    config_class = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        c = config
        E = self.embedding_size
        self.tok_emb = TokenEmbedding(c.vocab_size, E, padding_idx=c.pad_token_id)
        self.pos_emb = LearnedPositionEmbedding(c.n_positions, E, offset=self.position_offset)
        self.seg_emb = SegmentEmbedding(c.type_vocab_size, E)
        self.emb_norm = nn.LayerNorm(E, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            PostNormBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.activation, c.norm_eps)
            for _ in range(c.n_layers)
        )
        self.pooler = Pooler(c.d_model) if c.pooler else None
        self.apply(init_bert_weights)

    @property
    def embedding_size(self) -> int:
        """Width of the token, position and segment vectors: d_model (ELECTRA's are narrower, projected up)."""
        return self.config.d_model

    @property
    def position_offset(self) -> int:
        """Rows of the position table before position 0: none (RoBERTa keeps padding_idx + 1)."""
        return 0

    def embed(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(token or given vectors) + position + segment, then LayerNorm and dropout: -> (B, T, C)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.tok_emb(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        T = x.shape[1]
        if position_ids is None:
            position_ids = torch.arange(T, device=x.device)[None]  # (1, T)
        if token_type_ids is None:
            token_type_ids = torch.zeros(1, T, dtype=torch.long, device=x.device)  # (1, T): all sentence A
        x = x + self.pos_emb(position_ids) + self.seg_emb(token_type_ids)
        return self.drop(self.emb_norm(x))

    def forward_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """ids (B, T) or inputs_embeds (B, T, C) -> (last hidden states (B, T, C), attentions).

        attention_mask: (B, T) 1 = real token, 0 = padding (padded keys get zero attention weight).
        token_type_ids: (B, T) segment ids, default all 0. position_ids: (B, T), default 0..T-1.
        attentions: per layer {"self": (B, H, T, T)} when need_weights, else [].
        """
        x = self.embed(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = key_padding_mask(attention_mask, x.shape[0], x.shape[1])
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask=mask, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return x, attentions

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, C) -> the pooled [CLS] vector (B, C)."""
        if self.pooler is None:
            raise TaesanError("this BERT has no pooler (config field 'pooler' is false)")
        return self.pooler(hidden)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """-> last hidden states (B, T, C). Arguments as in `forward_features`."""
        return self.forward_features(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds=inputs_embeds)[0]
