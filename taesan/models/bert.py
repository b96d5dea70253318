"""BERT: the encoder-only transformer (token + position + segment embeddings, post-LN blocks, [CLS] pooler), HF compatible.

Not the task heads (masked LM, classification, QA live in `bert_heads`) and not a tokenizer or a loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.interop import expand, export_state, import_state, labels_from_hf, labels_to_hf, read_hf_weights
from taesan.models.base import TaesanModel
from taesan.modules import LearnedPositionEmbedding, PostNormBlock, SegmentEmbedding, TokenEmbedding, padding_mask
from taesan.modules.transformer import ACTIVATIONS


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

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        for name in ("vocab_size", "n_positions", "type_vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "num_labels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"field {name!r} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"field 'd_model'={self.d_model} is not divisible by 'n_heads'={self.n_heads}")
        for name in ("dropout", "attn_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"field {name!r} must be in [0, 1), got {value!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"field 'norm_eps' must be positive, got {self.norm_eps!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"field 'activation' is {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
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
        self.tok_emb = TokenEmbedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.pos_emb = LearnedPositionEmbedding(c.n_positions, c.d_model)
        self.seg_emb = SegmentEmbedding(c.type_vocab_size, c.d_model)
        self.emb_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            PostNormBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.activation, c.norm_eps)
            for _ in range(c.n_layers)
        )
        self.pooler = Pooler(c.d_model) if c.pooler else None
        self.apply(init_bert_weights)

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
        mask = self._attention_mask(attention_mask, x.shape[0], x.shape[1])
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask=mask, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return x, attentions

    @staticmethod
    def _attention_mask(attention_mask: torch.Tensor | None, B: int, T: int) -> torch.Tensor | None:
        """(B, T) 1/0 -> (B, 1, 1, T) boolean key mask; None when nothing is padded (the fastest SDPA kernel)."""
        if attention_mask is None:
            return None
        if tuple(attention_mask.shape) != (B, T):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, T) = {(B, T)}")
        if bool(attention_mask.bool().all()):
            return None
        return padding_mask(attention_mask)  # (B, 1, 1, T)

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


# ---- HuggingFace BERT interop ------------------------------------------------------------------------------

# taesan backbone key -> HF BertModel key ({i} = layer); a tuple is concatenated into our fused q/k/v.
HF_KEYS = {
    "tok_emb.weight": "embeddings.word_embeddings.weight",
    "pos_emb.weight": "embeddings.position_embeddings.weight",
    "seg_emb.weight": "embeddings.token_type_embeddings.weight",
    "emb_norm.weight": "embeddings.LayerNorm.weight",
    "emb_norm.bias": "embeddings.LayerNorm.bias",
    "blocks.{i}.attn.qkv.weight": tuple(f"encoder.layer.{{i}}.attention.self.{p}.weight" for p in ("query", "key", "value")),
    "blocks.{i}.attn.qkv.bias": tuple(f"encoder.layer.{{i}}.attention.self.{p}.bias" for p in ("query", "key", "value")),
    "blocks.{i}.attn.out.weight": "encoder.layer.{i}.attention.output.dense.weight",
    "blocks.{i}.attn.out.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "blocks.{i}.attn_norm.weight": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "blocks.{i}.attn_norm.bias": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "blocks.{i}.mlp.up.weight": "encoder.layer.{i}.intermediate.dense.weight",
    "blocks.{i}.mlp.up.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "blocks.{i}.mlp.down.weight": "encoder.layer.{i}.output.dense.weight",
    "blocks.{i}.mlp.down.bias": "encoder.layer.{i}.output.dense.bias",
    "blocks.{i}.mlp_norm.weight": "encoder.layer.{i}.output.LayerNorm.weight",
    "blocks.{i}.mlp_norm.bias": "encoder.layer.{i}.output.LayerNorm.bias",
}
HF_POOLER_KEYS = {"pooler.dense.weight": "pooler.dense.weight", "pooler.dense.bias": "pooler.dense.bias"}
# HF tensors that are not weights of the model being loaded: buffers, the NSP head, an aliased or tied copy
HF_SKIPPED = ("embeddings.position_ids", "embeddings.token_type_ids", "cls.seq_relationship.", "cls.predictions.decoder.")
# heads of other architectures, present when e.g. a BertForMaskedLM checkpoint is loaded as BertModel (HF ignores them)
HF_OTHER_HEADS = ("cls.", "classifier.", "qa_outputs.")

# HF architecture -> taesan model_type
HF_ARCHITECTURES = {
    "BertModel": "bert",
    "BertForMaskedLM": "bert-mlm",
    "BertForPreTraining": "bert-mlm",  # the original checkpoints: MLM + next-sentence heads; NSP is dropped
    "BertForSequenceClassification": "bert-sequence-classification",
    "BertForTokenClassification": "bert-token-classification",
    "BertForQuestionAnswering": "bert-qa",
}

# HF config field -> (taesan field, BertConfig's default in transformers, used when the field is absent)
HF_CONFIG = {
    "vocab_size": ("vocab_size", 30522),
    "max_position_embeddings": ("n_positions", 512),
    "type_vocab_size": ("type_vocab_size", 2),
    "hidden_size": ("d_model", 768),
    "num_hidden_layers": ("n_layers", 12),
    "num_attention_heads": ("n_heads", 12),
    "intermediate_size": ("d_ff", 3072),
    "hidden_dropout_prob": ("dropout", 0.1),
    "attention_probs_dropout_prob": ("attn_dropout", 0.1),
    "layer_norm_eps": ("norm_eps", 1e-12),
    "hidden_act": ("activation", "gelu"),
    "pad_token_id": ("pad_token_id", 0),
    "classifier_dropout": ("classifier_dropout", None),
}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}
# settings taesan's BERT does not implement: field -> the only value accepted
HF_REQUIRED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False, "tie_word_embeddings": True}


def from_hf_config(hf_config: dict[str, Any], source: str = "config.json", pooler: bool = True) -> BertConfig:
    """HF BertConfig fields -> BertConfig; an unsupported setting raises a one-line TaesanError."""
    for field, value in HF_REQUIRED.items():
        if hf_config.get(field, value) != value:
            raise TaesanError(f"{source}: field {field!r}={hf_config[field]!r} is not supported by taesan's BERT (needs {value!r})")
    fields = {ours: hf_config.get(theirs, default) for theirs, (ours, default) in HF_CONFIG.items()}
    if fields["activation"] not in HF_ACTIVATIONS:
        raise TaesanError(f"{source}: field 'hidden_act'={fields['activation']!r} is not supported; known: {sorted(HF_ACTIVATIONS)}")
    fields["activation"] = HF_ACTIVATIONS[fields["activation"]]
    num_labels, names = labels_from_hf(hf_config, source)
    if num_labels is not None:
        fields["num_labels"] = num_labels
    if names:
        fields["labels"] = names
    fields["pooler"] = pooler
    return config_from_dict(BertConfig, fields, source=source)


def to_hf_config(config: BertConfig, architecture: str = "BertModel") -> dict[str, Any]:
    """BertConfig -> a HF BertConfig dict for `architecture` (BertModel, BertForMaskedLM, ...)."""
    activation = {"gelu_tanh": "gelu_new"}.get(config.activation, config.activation)
    out: dict[str, Any] = {"model_type": "bert", "architectures": [architecture]}
    for theirs, (ours, _) in HF_CONFIG.items():
        out[theirs] = getattr(config, ours)
    out.update(
        hidden_act=activation,
        **labels_to_hf(config.labels, config.num_labels),
        position_embedding_type="absolute",
        initializer_range=0.02,
        tie_word_embeddings=True,
        is_decoder=False,
        add_cross_attention=False,
    )
    return out


def hf_table(model: TaesanModel) -> dict[str, Any]:
    """The expanded taesan key -> HF key table of a BERT or a head model, HF names without the `bert.` prefix."""
    backbone = model if isinstance(model, BERT) else model.bert
    keys = {**HF_KEYS, **(HF_POOLER_KEYS if backbone.pooler is not None else {})}
    table = expand(keys, i=backbone.config.n_layers)
    if backbone is model:
        return table
    return {**{"bert." + k: v for k, v in table.items()}, **getattr(model, "hf_keys", {})}


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> TaesanModel:
    """A HF BERT directory -> BERT or the head model named by `architectures` (default BertModel).

    Keys load with or without the `bert.` prefix; old `LayerNorm.gamma/beta` names are accepted.
    """
    from taesan.models import model_class

    directory = Path(directory)
    source = str(directory / "config.json")
    architectures = hf_config.get("architectures") or ["BertModel"]
    architecture = architectures[0]
    if architecture not in HF_ARCHITECTURES:
        raise TaesanError(f"{source}: field 'architectures'={architecture!r} is not supported; known: {', '.join(HF_ARCHITECTURES)}")
    cls = model_class(HF_ARCHITECTURES[architecture])
    hf_state = {}
    for k, v in read_hf_weights(directory).items():
        k = k.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        hf_state[k] = v
    pooler = "pooler.dense.weight" in hf_state or getattr(cls, "needs_pooler", False)
    config = from_hf_config(hf_config, source, pooler=pooler)
    model = cls(config)
    table = hf_table(model)
    wanted = {p for theirs in table.values() for p in (theirs if isinstance(theirs, tuple) else (theirs,))}
    unknown = sorted(k for k in hf_state if k not in wanted and not k.startswith(HF_SKIPPED + HF_OTHER_HEADS))
    weights = directory / "model.safetensors"
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all) for {architecture}")
    state = import_state(hf_state, table, source=str(weights))
    check_and_load(model, state, str(weights), ignore=model.tied_keys)
    return model


def _with_prefix(spec, prefix: str):
    """A table entry (one HF name or a tuple of them) with `prefix` put before each name."""
    return tuple(prefix + t for t in spec) if isinstance(spec, tuple) else prefix + spec


def to_hf(model: TaesanModel) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """BERT or a head model -> (HF config dict, HF state dict) that `transformers.Bert*.from_pretrained` loads.

    A head that does not use the pooler (masked LM, token classification, QA) is written without it, as HF does.
    """
    architecture = getattr(model, "hf_architecture", "BertModel")
    config = model.config
    table = hf_table(model)
    if architecture != "BertModel":  # a head model's backbone tensors are `bert.`-prefixed in HF
        table = {k: _with_prefix(v, "bert.") if k.startswith("bert.") else v for k, v in table.items()}
        if not getattr(model, "needs_pooler", False):
            table = {k: v for k, v in table.items() if not k.startswith("bert.pooler.")}
    return to_hf_config(config, architecture), export_state(model.state_dict(), table)
