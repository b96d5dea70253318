"""The encoder-decoder Transformer (Vaswani et al. 2017): an encoder stack reads the source, a decoder stack with
cross-attention writes the target left to right. Marian- and BART-compatible by configuration.

Not a translator: no tokenizer, no beam search, no loss. Ids in, logits out; decoding lives in generate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taesan.config import check_fields
from taesan.models.base import TaesanModel
from taesan.modules import (
    KVCache,
    LearnedPositionEmbedding,
    PostNormBlock,
    PreNormBlock,
    SinusoidalPositionEmbedding,
    TokenEmbedding,
    causal_padding_mask,
    key_padding_mask,
)
from taesan.modules.transformer import ACTIVATIONS

# "sinusoidal": sin at even, cos at odd dimensions (the paper); "sinusoidal_halves": all sines, then all
# cosines (Marian, fairseq); "learned": a trained table (BART, whose ids are shifted by position_offset=2).
POSITION_EMBEDDINGS = ("sinusoidal", "sinusoidal_halves", "learned")


@dataclass
class TransformerConfig:
    src_vocab_size: int = 37000
    tgt_vocab_size: int | None = None  # None -> src_vocab_size (one joint vocabulary)
    share_embeddings: bool = True  # encoder and decoder read one token embedding matrix (needs one vocabulary)
    tie_output: bool = True  # the output projection is the decoder's token embedding matrix (paper §3.4)
    lm_head: bool = True  # False: a bare backbone whose decode() returns hidden states (HF MarianModel/BartModel)
    final_logits_bias: bool = False  # a fixed (untrained) per-token bias added to the logits (Marian, BART)
    n_positions: int = 1024  # the longest source or target sequence
    d_model: int = 512
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1  # embeddings and residual branches (P_drop in the paper)
    attn_dropout: float = 0.0  # attention weights
    activation: str = "relu"
    norm_eps: float = 1e-5
    norm: str = "post"  # "post": x = norm(x + f(x)) (2017, Marian, BART); "pre": x = x + f(norm(x)), plus final norms
    position_embedding: str = "sinusoidal"  # one of POSITION_EMBEDDINGS
    position_offset: int = 0  # learned positions only: id p reads row p + offset (BART: 2)
    scale_embedding: bool = True  # token embeddings × √d_model (paper §3.4, Marian)
    layernorm_embedding: bool = False  # a LayerNorm right after token + position embeddings (BART)
    pad_token_id: int = 0
    bos_token_id: int | None = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 1  # the first decoder input (Marian: pad; BART: eos)

    def __post_init__(self) -> None:
        if self.tgt_vocab_size is None:
            self.tgt_vocab_size = self.src_vocab_size
        check_fields(self, positive=("src_vocab_size", "tgt_vocab_size", "n_positions", "d_model", "n_encoder_layers",
                                     "n_decoder_layers", "n_heads", "d_ff"),
                     divisible=(("d_model", "n_heads"),), fractions=("dropout", "attn_dropout"),
                     positive_floats=("norm_eps",), choices={"activation": ACTIVATIONS})
        if self.share_embeddings and self.tgt_vocab_size != self.src_vocab_size:
            raise ValueError(
                f"share_embeddings=True needs one vocabulary, but src_vocab_size={self.src_vocab_size} "
                f"!= tgt_vocab_size={self.tgt_vocab_size}"
            )
        if self.norm not in ("post", "pre"):
            raise ValueError(f"field 'norm' is {self.norm!r}; choose 'post' or 'pre'")
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"field 'position_embedding' is {self.position_embedding!r}; choose one of {list(POSITION_EMBEDDINGS)}")
        if self.position_embedding.startswith("sinusoidal") and (self.d_model % 2 or self.position_offset):
            raise ValueError("sinusoidal positions need an even d_model and position_offset=0")
        if self.position_offset < 0:
            raise ValueError(f"field 'position_offset' must be >= 0, got {self.position_offset!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < min(self.src_vocab_size, self.tgt_vocab_size):
                raise ValueError(f"field {name!r}={value} is outside the vocabulary")


PRESETS = {
    "transformer-tiny": (
        "transformer",
        dict(src_vocab_size=512, n_positions=256, d_model=64, n_encoder_layers=2, n_decoder_layers=2, n_heads=4, d_ff=256),
    ),
    # the paper's Table 3 sizes with a shared 37000-token BPE vocabulary (WMT En-De): 63.1M and 214.2M
    # parameters counted exactly (Table 3 lists 65M and 213M)
    "transformer-base": ("transformer", dict(src_vocab_size=37000, d_model=512, n_heads=8, d_ff=2048, dropout=0.1)),
    "transformer-big": ("transformer", dict(src_vocab_size=37000, d_model=1024, n_heads=16, d_ff=4096, dropout=0.3)),
}


class Seq2SeqTransformer(TaesanModel):
    """source ids -> encoder -> memory; target ids + memory -> decoder (causal self-attention, cross-attention) -> logits.

    The API is split the way decoding uses it: `encode` once per source batch, `decode` once per step.
    `forward_features(src_ids, tgt_ids, ...)` keeps the contract's name for the whole pass (decoder hidden
    states + attentions); `forward` adds the output projection.

    Cache (for generate): `cache = model.new_cache()`; the first `decode(.., memory, cache=cache)` stores every
    layer's cross-attention keys/values computed from `memory`; later steps reuse them (pass memory=None or
    the same memory: it is not read again) and append the new token's self-attention keys/values. Positions
    continue from `cache.length`. One cache belongs to one memory batch: for beam search, call
    `cache.reorder(index)` (rows of self- and cross-attention caches) and index `src_mask` the same way; to
    start k beams from B sources, reorder by `torch.arange(B).repeat_interleave(k)` after the first step (or
    repeat memory and src_mask before it).
    """

    model_type = "transformer"
    config_class = TransformerConfig
    tied_keys = ("tgt_emb.weight", "lm_head.weight")  # narrowed per instance to what is actually tied

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        c = config
        self.src_emb = TokenEmbedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_token_id, scale=c.scale_embedding)
        self.tgt_emb = TokenEmbedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_token_id, scale=c.scale_embedding)
        if c.position_embedding == "learned":
            self.src_pos = LearnedPositionEmbedding(c.n_positions, c.d_model, offset=c.position_offset)
            self.tgt_pos = LearnedPositionEmbedding(c.n_positions, c.d_model, offset=c.position_offset)
        else:  # a fixed table: one module serves both sides
            self.src_pos = SinusoidalPositionEmbedding(c.n_positions, c.d_model, interleaved=c.position_embedding == "sinusoidal")
            self.tgt_pos = self.src_pos
        self.src_emb_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.layernorm_embedding else None
        self.tgt_emb_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.layernorm_embedding else None
        self.drop = nn.Dropout(c.dropout)
        Block = PostNormBlock if c.norm == "post" else PreNormBlock
        args = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.activation, c.norm_eps)
        self.encoder = nn.ModuleList(Block(*args) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(Block(*args, cross_attention=True) for _ in range(c.n_decoder_layers))
        self.encoder_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.norm == "pre" else None
        self.decoder_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if c.norm == "pre" else None
        self.lm_head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False) if c.lm_head else None
        if c.lm_head and c.final_logits_bias:
            self.register_buffer("final_logits_bias", torch.zeros(c.tgt_vocab_size))
        else:
            self.final_logits_bias = None
        self.apply(self._init_weights)
        tied = []
        if c.share_embeddings:
            self.tgt_emb.weight = self.src_emb.weight
            tied.append("tgt_emb.weight")
        if c.lm_head and c.tie_output:
            self.lm_head.weight = self.tgt_emb.weight
            tied.append("lm_head.weight")
        self.tied_keys = tuple(tied)

    def _init_weights(self, m: nn.Module) -> None:
        """Xavier-uniform projections (fairseq's choice); embeddings N(0, d^-1/2), or N(0, 0.02) when unscaled."""
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            std = self.config.d_model**-0.5 if self.config.scale_embedding else 0.02
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])

    def new_cache(self) -> KVCache:
        """An empty KV cache for the decoder: self-attention keys grow per step, cross-attention keys are stored once."""
        return KVCache(self.config.n_decoder_layers)

    def _embed(self, x: torch.Tensor, pos: nn.Module, norm: nn.LayerNorm | None, position_ids: torch.Tensor) -> torch.Tensor:
        """token vectors + position vectors [-> LayerNorm] -> dropout."""
        last = int(position_ids.max()) if position_ids.numel() else 0
        if last >= self.config.n_positions:
            raise ValueError(f"position {last} is beyond the model's n_positions={self.config.n_positions}")
        x = x + pos(position_ids)  # (B, T, C)
        if norm is not None:
            x = norm(x)
        return self.drop(x)

    def encode(
        self,
        src_ids: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """src_ids (B, S) -> (memory (B, S, C), attentions: per encoder layer {"self": (B, H, S, S)} or []).

        src_mask: (B, S) 1 = real token, 0 = padding. inputs_embeds (B, S, C) replaces the (scaled) token
        embeddings, e.g. a soft prompt prepended to them.
        """
        if (src_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of src_ids and inputs_embeds")
        x = self.src_emb(src_ids) if inputs_embeds is None else inputs_embeds  # (B, S, C)
        B, S, _ = x.shape
        x = self._embed(x, self.src_pos, self.src_emb_norm, torch.arange(S, device=x.device)[None])
        mask = key_padding_mask(src_mask, B, S, "src_mask")  # (B, 1, 1, S) or None
        attentions = []
        for block in self.encoder:
            x, weights = block(x, mask=mask, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, attentions

    def decode_features(
        self,
        tgt_ids: torch.Tensor,
        memory: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """tgt_ids (B, T) + memory (B, S, C) -> (decoder hidden (B, T, C), per layer {"self", "cross"} weights or []).

        tgt_mask: (B, P + T) 1/0 over ALL target positions, the P cached ones included.
        position_ids: (B, T) or (1, T); default P .. P + T - 1 with P = cache.length.
        """
        B, T = tgt_ids.shape
        past = cache.length if cache is not None else 0
        if memory is None and (cache is None or not cache.cross_attn[0].filled):
            raise ValueError("decode needs the encoder's memory (only a filled cache may omit it)")
        x = self.tgt_emb(tgt_ids)  # (B, T, C)
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=x.device)[None]  # (1, T)
        x = self._embed(x, self.tgt_pos, self.tgt_emb_norm, position_ids)
        self_mask, is_causal = causal_padding_mask(tgt_mask, B, T, past + T, x.device, "tgt_mask")
        S = memory.shape[1] if memory is not None else cache.cross_attn[0].length
        cross_mask = key_padding_mask(src_mask, B, S, "src_mask")  # (B, 1, 1, S) or None
        attentions = []
        for i, block in enumerate(self.decoder):
            x, weights = block(
                x, mask=self_mask, is_causal=is_causal, memory=memory, memory_mask=cross_mask, cache=cache, layer=i,
                need_weights=need_weights,
            )
            if need_weights:
                attentions.append(weights)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return x, attentions

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states (B, T, C) -> logits (B, T, tgt_vocab_size); a bare backbone returns them unchanged."""
        if self.lm_head is None:
            return hidden
        logits = self.lm_head(hidden)
        return logits + self.final_logits_bias if self.final_logits_bias is not None else logits

    def decode(
        self,
        tgt_ids: torch.Tensor,
        memory: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """`decode_features` then the output projection: -> (logits (B, T, tgt_vocab_size), attentions)."""
        hidden, attentions = self.decode_features(tgt_ids, memory, src_mask, tgt_mask, cache, position_ids, need_weights)
        return self.head(hidden), attentions

    def forward_features(
        self,
        src_ids: torch.Tensor,
        tgt_ids: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """The whole teacher-forced pass -> (decoder hidden (B, T, C), attentions).

        attentions: the encoder layers' {"self"} dicts, then the decoder layers' {"self", "cross"} dicts.
        """
        memory, enc_attn = self.encode(src_ids, src_mask, need_weights)
        hidden, dec_attn = self.decode_features(tgt_ids, memory, src_mask, tgt_mask, need_weights=need_weights)
        return hidden, enc_attn + dec_attn

    def forward(
        self,
        src_ids: torch.Tensor,
        tgt_ids: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        pre_logits: bool = False,
    ) -> torch.Tensor:
        """Teacher forcing: -> logits (B, T, tgt_vocab_size) for the token after each target position; with
        pre_logits, the decoder hidden states the output projection reads (see `output_layer`)."""
        hidden, _ = self.forward_features(src_ids, tgt_ids, src_mask, tgt_mask)
        return hidden if pre_logits else self.head(hidden)

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The output projection as (weight (V, C), bias or None): logits = pre_logits @ weight.T + bias (the fixed
        final_logits_bias of Marian and BART); None for a bare backbone."""
        if self.lm_head is None:
            return None
        return self.lm_head.weight, self.final_logits_bias
