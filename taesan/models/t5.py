"""T5 (Raffel et al. 2020): a pre-norm encoder-decoder with one shared vocabulary and relative position buckets
instead of position embeddings. v1.0 (ReLU feed-forward, tied head) and v1.1 / mT5 (gated-GELU, untied head).

Not a task: ids in, logits out; no span corruption objective, no tokenizer. Decoding lives in taesan.decoding
(the same encode / decode / new_cache interface as the seq2seq Transformer).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taesan.config import check_fields
from taesan.models.base import TaesanModel
from taesan.models.t5_layers import (
    RelativePositionBias,
    T5Attention,
    T5Block,
    T5FeedForward,
    T5LayerNorm,
    attention_bias,
)
from taesan.modules import KVCache, causal_mask, key_padding_mask
from taesan.modules.transformer import ACTIVATIONS


@dataclass
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64  # the width of one head; n_heads · d_kv may differ from d_model
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    n_heads: int = 8
    n_buckets: int = 32  # relative position buckets (HF: relative_attention_num_buckets)
    max_distance: int = 128  # distances beyond share the last bucket (HF: relative_attention_max_distance)
    dropout: float = 0.1  # embeddings, every residual branch, attention weights, inside the feed-forward
    norm_eps: float = 1e-6
    activation: str = "relu"  # v1.0: relu; v1.1 / mT5: gelu_tanh (HF's "gated-gelu" is gated gelu_new)
    gated: bool = False  # act(gate x) · (up x) instead of act(up x)
    tie_word_embeddings: bool = True  # the LM head is the shared embedding matrix
    scale_decoder_outputs: bool | None = None  # × d_model**-0.5 before the head; None -> tie_word_embeddings (T5's rule)
    lm_head: bool = True  # False: a bare backbone whose decode() returns hidden states (HF T5Model)
    n_positions: int = 512  # the longest sequence tasks prepare; relative buckets themselves read any length
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0  # T5 starts the decoder with the pad token

    def __post_init__(self) -> None:
        if self.scale_decoder_outputs is None:
            self.scale_decoder_outputs = self.tie_word_embeddings
        check_fields(self, positive=("vocab_size", "d_model", "d_kv", "d_ff", "n_encoder_layers", "n_decoder_layers",
                                     "n_heads", "n_buckets", "max_distance", "n_positions"),
                     fractions=("dropout",), positive_floats=("norm_eps",), choices={"activation": ACTIVATIONS})
        if self.n_buckets < 4 or self.max_distance <= self.n_buckets // 2:
            raise ValueError(f"fields 'n_buckets'={self.n_buckets} and 'max_distance'={self.max_distance}: need n_buckets "
                             ">= 4 and max_distance > n_buckets // 2 (the exact buckets end where the log-spaced begin)")
        if not self.lm_head and not self.tie_word_embeddings:
            raise ValueError("tie_word_embeddings=False needs an LM head (lm_head=True)")
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"field {name!r}={getattr(self, name)} is outside the vocabulary")


_V11 = dict(activation="gelu_tanh", gated=True, tie_word_embeddings=False)  # T5 v1.1 / mT5
PRESETS = {
    "t5-tiny": ("t5", dict(vocab_size=512, d_model=64, d_kv=16, d_ff=256, n_encoder_layers=2, n_decoder_layers=2, n_heads=4)),
    # google-t5/t5-small and t5-base: 60.5M and 222.9M parameters
    "t5-small": ("t5", dict()),
    "t5-base": ("t5", dict(d_model=768, d_ff=3072, n_encoder_layers=12, n_decoder_layers=12, n_heads=12)),
    # google/t5-v1_1-small (77.0M) and google/mt5-small (300.2M: a 250k-token vocabulary)
    "t5-v1_1-small": ("t5", dict(_V11, d_ff=1024, n_encoder_layers=8, n_decoder_layers=8, n_heads=6)),
    "mt5-small": ("t5", dict(_V11, vocab_size=250112, d_ff=1024, n_encoder_layers=8, n_decoder_layers=8, n_heads=6)),
}


class T5Stack(nn.Module):
    """The encoder or the decoder: dropout(embeddings) -> blocks sharing one position bias -> final norm -> dropout.

    The caller builds the float biases (position bias with masks folded in): once per pass, read by every layer.
    """

    def __init__(self, c: T5Config, decoder: bool) -> None:
        super().__init__()
        self.position_bias = RelativePositionBias(c.n_buckets, c.max_distance, c.n_heads, bidirectional=not decoder)
        n_layers = c.n_decoder_layers if decoder else c.n_encoder_layers
        args = (c.d_model, c.n_heads, c.d_kv, c.d_ff, c.activation, c.gated, c.dropout, c.norm_eps)
        self.blocks = nn.ModuleList(T5Block(*args, cross_attention=decoder) for _ in range(n_layers))
        self.final_norm = T5LayerNorm(c.d_model, c.norm_eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, bias, memory=None, cross_bias=None, cache=None, need_weights=False):
        """x (B, T, C) embeddings -> (hidden (B, T, C), per layer {"self"[, "cross"]} weights or [])."""
        x = self.drop(x)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, bias, memory, cross_bias, cache, layer=i, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return self.drop(self.final_norm(x)), attentions


def init_t5_weights(model: nn.Module, c: T5Config) -> None:
    """Mesh TensorFlow's initialisation, as HF's T5 uses it: N(0, fan_in^-1/2) projections, except the query, which
    also takes the 1/√d_kv the attention does not apply; the embedding (and an untied head) N(0, 1); norms 1."""
    inner = c.n_heads * c.d_kv
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, T5LayerNorm):
                m.weight.fill_(1.0)
            elif isinstance(m, RelativePositionBias):
                m.weight.normal_(std=c.d_model**-0.5)
            elif isinstance(m, T5Attention):
                for proj in (m.q, m.kv) if m.cross else (m.qkv,):
                    proj.weight.normal_(std=c.d_model**-0.5)
                query = m.q.weight if m.cross else m.qkv.weight[:inner]  # (inner, d_model)
                query.mul_(c.d_kv**-0.5)  # the scale T5 folds into the init
                m.out.weight.normal_(std=inner**-0.5)
            elif isinstance(m, T5FeedForward):
                for proj in (m.gate, m.up) if m.gate is not None else (m.up,):
                    proj.weight.normal_(std=c.d_model**-0.5)
                m.down.weight.normal_(std=c.d_ff**-0.5)
        model.shared.weight.normal_(std=1.0)
        if getattr(model, "lm_head", None) is not None:
            model.lm_head.weight.normal_(std=1.0)


class T5(TaesanModel):
    """source ids -> encoder -> memory; target ids + memory -> decoder -> [× d_model^-0.5] -> LM head -> logits.

    The interface is the seq2seq Transformer's, so taesan.generate drives it unchanged: `encode` once per
    source batch, `decode` once per step with `new_cache()` (self-attention keys/values grow per step; the
    first decode stores every layer's cross-attention keys/values; a cached step's position bias is the row of
    its own position). `forward(src, tgt, src_mask, tgt_mask)` is the teacher-forced pass (HF's
    T5ForConditionalGeneration; with lm_head=False, T5Model's hidden states).
    """

    model_type = "t5"
    config_class = T5Config
    tied_keys = ("lm_head.weight",)  # narrowed per instance to what is actually tied

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        c = config
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = T5Stack(c, decoder=False)
        self.decoder = T5Stack(c, decoder=True)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False) if c.lm_head else None
        init_t5_weights(self, c)
        if c.lm_head and c.tie_word_embeddings:
            self.lm_head.weight = self.shared.weight
        self.tied_keys = ("lm_head.weight",) if c.lm_head and c.tie_word_embeddings else ()

    def new_cache(self) -> KVCache:
        """An empty decoder cache: self-attention keys grow per step, cross-attention keys are stored once."""
        return KVCache(self.config.n_decoder_layers)

    def encode(
        self,
        src_ids: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """src_ids (B, S) -> (memory (B, S, C), per encoder layer {"self": (B, H, S, S)} or []).

        src_mask: (B, S) 1 = real token, 0 = padding. inputs_embeds (B, S, C) replaces the token embeddings.
        """
        return _encode(self, src_ids, src_mask, need_weights, inputs_embeds)

    def decode_features(
        self,
        tgt_ids: torch.Tensor,
        memory: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """tgt_ids (B, T) + memory (B, S, C) -> (decoder hidden (B, T, C), per layer {"self", "cross"} weights or []).

        tgt_mask: (B, P + T) 1/0 over ALL target positions, the P cached ones included. The new tokens sit at
        positions P .. P + T - 1 (P = cache.length): their position bias rows are those.
        """
        B, T = tgt_ids.shape
        past = cache.length if cache is not None else 0
        if memory is None and (cache is None or not cache.cross_attn[0].filled):
            raise ValueError("decode needs the encoder's memory (only a filled cache may omit it)")
        S = memory.shape[1] if memory is not None else cache.cross_attn[0].length
        pad = key_padding_mask(tgt_mask, B, past + T, "tgt_mask")  # (B, 1, 1, P + T) or None
        causal = causal_mask(T, past + T, tgt_ids.device) if T > 1 else None  # one new token sees every key
        self_mask = causal if pad is None else pad if causal is None else pad & causal
        bias = attention_bias(self.decoder.position_bias(T, past + T, past), self_mask)  # (B|1, H, T, P + T)
        cross_bias = attention_bias(None, key_padding_mask(src_mask, B, S, "src_mask"))  # (B, 1, 1, S) or None
        return self.decoder(self.shared(tgt_ids), bias, memory, cross_bias, cache, need_weights)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decoder hidden (B, T, C) -> logits (B, T, V); a tied head first rescales by d_model^-0.5 (T5's rule).
        A bare backbone returns the hidden states unchanged."""
        if self.lm_head is None:
            return hidden
        return self.lm_head(self._pre_logits(hidden))

    def _pre_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * self.config.d_model**-0.5 if self.config.scale_decoder_outputs else hidden

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The LM head as (weight (V, C), None): logits = pre_logits @ weight.T; None for a bare backbone."""
        return None if self.lm_head is None else (self.lm_head.weight, None)

    def decode(
        self,
        tgt_ids: torch.Tensor,
        memory: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """`decode_features` then the head: -> (logits (B, T, V), attentions)."""
        hidden, attentions = self.decode_features(tgt_ids, memory, src_mask, tgt_mask, cache, need_weights)
        return self.head(hidden), attentions

    def forward_features(
        self,
        src_ids: torch.Tensor,
        tgt_ids: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """The whole teacher-forced pass -> (decoder hidden (B, T, C), encoder layers' then decoder layers' weights)."""
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
        """Teacher forcing: -> logits (B, T, V) for the token after each target position; with pre_logits, what the
        LM head reads (the decoder hidden states, rescaled when the head is tied; see `output_layer`)."""
        hidden, _ = self.forward_features(src_ids, tgt_ids, src_mask, tgt_mask)
        if pre_logits and self.lm_head is not None:
            return self._pre_logits(hidden)
        return self.head(hidden)


class T5Encoder(TaesanModel):
    """T5's encoder alone (HF T5EncoderModel): ids -> hidden states (B, S, C), e.g. for sentence embeddings.

    Its config is a whole T5Config (the decoder fields are kept for export, unused here).
    """

    model_type = "t5-encoder"
    config_class = T5Config

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, decoder=False)
        init_t5_weights(self, config)

    def forward_features(
        self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """input_ids (B, S) -> (hidden (B, S, C), per layer {"self": (B, H, S, S)} or [])."""
        return _encode(self, input_ids, attention_mask, need_weights, inputs_embeds)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(input_ids, attention_mask)[0]


def _encode(model, src_ids, src_mask, need_weights, inputs_embeds):
    """What T5 and T5Encoder share: embeddings -> encoder stack under the bidirectional position bias + padding."""
    if (src_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of src_ids and inputs_embeds")
    x = model.shared(src_ids) if inputs_embeds is None else inputs_embeds  # (B, S, C)
    B, S, _ = x.shape
    bias = attention_bias(model.encoder.position_bias(S, S), key_padding_mask(src_mask, B, S, "src_mask"))  # (B|1, H, S, S)
    return model.encoder(x, bias, need_weights=need_weights)
