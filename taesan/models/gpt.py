"""GPT: a decoder-only transformer (token + learned position embeddings, pre-LN blocks, tied LM head), GPT-2 compatible.

Not a trainer or a sampler: the model returns hidden states or logits; losses live in objectives, decoding in generate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from taesan.config import check_fields
from taesan.models import gpt_decode
from taesan.models.base import TaesanModel
from taesan.modules import (
    KVCache,
    LearnedPositionEmbedding,
    PreNormBlock,
    TokenEmbedding,
    causal_padding_mask,
)
from taesan.modules.transformer import ACTIVATIONS
from taesan.util import resolve_precision


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    n_positions: int = 1024  # the longest sequence (learned position table size)
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.1  # embeddings, residual branches
    attn_dropout: float = 0.1  # attention weights
    norm_eps: float = 1e-5
    activation: str = "gelu_tanh"  # GPT-2's "gelu_new"
    tie_embeddings: bool = True  # the LM head reuses the token embedding matrix
    bias: bool = True
    eos_token_id: int | None = None  # end-of-text (the pretraining separator): taesan.generate stops there by default

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_fields(self, positive=("vocab_size", "n_positions", "d_model", "n_layers", "n_heads", "d_ff"),
                     divisible=(("d_model", "n_heads"),), fractions=("dropout", "attn_dropout"),
                     positive_floats=("norm_eps",), choices={"activation": ACTIVATIONS})


PRESETS = {
    "gpt-tiny": ("gpt", dict(vocab_size=4096, n_positions=256, d_model=128, n_layers=4, n_heads=4)),
    "gpt2-small": ("gpt", dict(vocab_size=50257, n_positions=1024, d_model=768, n_layers=12, n_heads=12)),  # 124M
    "gpt2-medium": ("gpt", dict(vocab_size=50257, n_positions=1024, d_model=1024, n_layers=24, n_heads=16)),  # 355M
    "gpt2-large": ("gpt", dict(vocab_size=50257, n_positions=1024, d_model=1280, n_layers=36, n_heads=20)),  # 774M
    "gpt2-xl": ("gpt", dict(vocab_size=50257, n_positions=1024, d_model=1600, n_layers=48, n_heads=25)),  # 1.5B
}


class GPT(TaesanModel):
    """tokens -> token + position embeddings -> n_layers × PreNormBlock (causal) -> LayerNorm -> LM head.

    Positions: by default 0..T-1, continuing from `cache.length` when a KV cache is given (as HF GPT-2
    does; padding does not shift them). With left padding, pass `position_ids` yourself, e.g.
    `(attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -T:]`, to give every row's first real token position 0.
    """

    model_type = "gpt"
    config_class = GPTConfig
    tied_keys = ("lm_head.weight",)

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        c = config
        self.tok_emb = TokenEmbedding(c.vocab_size, c.d_model)
        self.pos_emb = LearnedPositionEmbedding(c.n_positions, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            PreNormBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.attn_dropout, c.activation, c.norm_eps, bias=c.bias)
            for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/√(2·n_layers)
            for proj in (block.attn.out, block.mlp.down):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * c.n_layers))
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        else:
            self.tied_keys = ()
        self._decode = gpt_decode.DecodeState()  # decode_step's weights and precision (not a parameter or buffer)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def new_cache(self) -> KVCache:
        """An empty KV cache for incremental decoding: pass it to every forward call of one sequence batch."""
        return KVCache(self.config.n_layers)

    def forward_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """ids (B, T) or inputs_embeds (B, T, C) -> (hidden (B, T, C) after the final LayerNorm, attentions).

        attention_mask: (B, S) 1 = real token, 0 = padding, over ALL S = cache.length + T positions.
        cache: a `new_cache()`; keys/values of these T tokens are appended to it.
        attentions: per layer {"self": (B, H, T, S)} when need_weights, else [].
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.tok_emb(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T, _ = x.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=x.device)[None]  # (1, T)
        x = self.drop(x + self.pos_emb(position_ids))
        mask, is_causal = causal_padding_mask(attention_mask, B, T, past + T, x.device)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, mask=mask, is_causal=is_causal, cache=cache, layer=i, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return self.norm(x), attentions

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pre_logits: bool = False,
    ) -> torch.Tensor:
        """-> next-token logits (B, T, vocab_size). Arguments as in `forward_features`.

        pre_logits: return what the LM head reads instead, the final hidden states (B, T, C), as timm's
        `forward_head(x, pre_logits=True)`: logits = hidden @ weight.T with `output_layer()`'s weight. A language-model
        objective asks for them to compute its loss chunk by chunk, never holding the (B, T, vocab) logits.
        """
        hidden, _ = self.forward_features(input_ids, attention_mask, position_ids, cache, inputs_embeds=inputs_embeds)
        return hidden if pre_logits else self.lm_head(hidden)

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LM head as (weight (vocab_size, C), bias or None): logits = pre_logits @ weight.T (+ bias)."""
        return self.lm_head.weight, None

    # ---- decoding: one token per row after a filled cache (the fast path lives in gpt_decode.py) ----------
    def decode_step(
        self,
        tokens: torch.Tensor,
        cache: KVCache,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoding hot path: one new token per row (B, 1) after the prompt went through `forward` with this
        cache -> fp32 logits (B, vocab_size); the cache takes the token's keys and values.

        The same arithmetic as `forward` (tests hold them equal) on the model's decode weights (packed copies
        in the decode precision, see `set_decode_precision` and `decode_weights`), through every layer in one
        TorchScript call. attention_mask (B, S) over all S = cache.length + 1 positions and position_ids (B, 1)
        as in `forward`. In training mode, or on an empty cache, this is `forward`'s last position.
        """
        if self.training or cache.length == 0:
            return self.forward(tokens, attention_mask, position_ids, cache)[:, -1].float()
        if cache.length >= self.config.n_positions:
            raise ValueError(f"position {cache.length} is beyond the model's {self.config.n_positions} positions")
        weights = self._decode.weights_for(self, cache)
        return gpt_decode.step(weights, tokens, cache, attention_mask, position_ids)

    def set_decode_precision(self, precision: str) -> torch.dtype:
        """The precision of `decode_step`: "fp32" (the default), "bf16", or "auto" (bf16 where the device
        computes it natively: a CPU with AMX or AVX512-BF16, CUDA with bf16; fp32 elsewhere) -> the dtype
        chosen. In bf16 the decode weights are bf16 copies (the KV cache too, except on CPU, where attention
        runs in fp32: gpt_decode.cache_dtype); the prompt still goes through `forward` in the model's own
        precision, and logits come back in fp32."""
        chosen = resolve_precision(precision, self.lm_head.weight.device.type)
        dtype = torch.bfloat16 if chosen == "bf16" else torch.float32
        self._decode.set_dtype(dtype)
        return dtype

    @property
    def decode_dtype(self) -> torch.dtype:
        """The dtype `decode_step` computes in (see `set_decode_precision`)."""
        return self._decode.dtype

    def train(self, mode: bool = True) -> "GPT":
        """Entering or leaving training drops the decode weights: a fused optimizer (AdamW(fused=True), which the
        Trainer uses) updates parameters in place without moving their version, so `stale` could not see it."""
        self._decode.forget()
        return super().train(mode)

    def decode_weights(self) -> gpt_decode.DecodeWeights:
        """The weights `decode_step` reads, made again first if a parameter changed (in place, replaced or moved)
        or the precision did; the same object otherwise. A decoding run checks them once, at its first step."""
        return self._decode.current(self)
