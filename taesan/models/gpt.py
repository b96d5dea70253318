"""GPT: a decoder-only transformer (token + learned position embeddings, pre-LN blocks, tied LM head), GPT-2 compatible.

Not a trainer or a sampler: the model returns hidden states or logits; losses live in objectives, decoding in generate.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taesan.models import gpt_step
from taesan.models.base import TaesanModel
from taesan.modules import (
    KVCache,
    LearnedPositionEmbedding,
    PreNormBlock,
    TokenEmbedding,
    causal_mask,
    padding_mask,
)
from taesan.modules.transformer import ACTIVATIONS


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
        for name in ("vocab_size", "n_positions", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be a positive integer, got {getattr(self, name)!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"field 'd_model'={self.d_model} is not divisible by 'n_heads'={self.n_heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"field {name!r} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"field 'norm_eps' must be positive, got {self.norm_eps!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"field 'activation' is {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")


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
        mask, is_causal = self._attention_mask(attention_mask, B, T, past + T, x.device)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, mask=mask, is_causal=is_causal, cache=cache, layer=i, need_weights=need_weights)
            if need_weights:
                attentions.append(weights)
        return self.norm(x), attentions

    @staticmethod
    def _attention_mask(attention_mask, B: int, T: int, S: int, device) -> tuple[torch.Tensor | None, bool]:
        """Padding and causality combined once: (None, True) when nothing is padded, the fast SDPA kernel."""
        if attention_mask is None:
            return None, True
        if tuple(attention_mask.shape) != (B, S):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, S) = {(B, S)}")
        if bool(attention_mask.bool().all()):
            return None, True
        return padding_mask(attention_mask) & causal_mask(T, S, device), False  # (B, 1, T, S)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """-> next-token logits (B, T, vocab_size). Arguments as in `forward_features`."""
        hidden, _ = self.forward_features(input_ids, attention_mask, position_ids, cache, inputs_embeds=inputs_embeds)
        return self.lm_head(hidden)

    def decode_step(
        self,
        tokens: torch.Tensor,
        cache: KVCache,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        weights: tuple | None = None,
    ) -> torch.Tensor:
        """The decoding hot path: one new token per row (B, 1) after a filled cache -> logits (B, vocab_size).

        The same math as `forward` (tests check they agree), written with functional ops on the blocks'
        parameters: at batch 1 the per-module Python overhead costs more than the arithmetic. With oneDNN the
        layers run as one TorchScript call (gpt_step.py) when the cache has room in place. Eval mode only
        (no dropout); attention_mask (B, S) and position_ids (B, 1) as in `forward`. weights: `step_weights()`,
        fetched once per generation instead of once per step. Rows are (B, C): a single token needs no time axis.
        """
        if self.training:
            return self.forward(tokens, attention_mask, position_ids, cache)[:, -1]
        B, past = tokens.shape[0], cache.length
        if past >= self.config.n_positions:
            raise ValueError(f"position {past} is beyond the model's {self.config.n_positions} positions")
        tok_w, pos_w, norm_w, norm_b, head, linear, up, layers, (C, H, D, eps), flat = weights or self.step_weights()
        pos = pos_w[past] if position_ids is None else torch.embedding(pos_w, position_ids.view(B))  # (C,) or (B, C)
        x = torch.embedding(tok_w, tokens.view(B)) + pos  # (B, C)
        allowed = None if attention_mask is None else attention_mask[:, None, None, :] != 0  # (B, 1, 1, S)
        step = gpt_step.scripted() if flat is not None else None
        if step is not None and cache.has_room(1):  # the same loop as below, as one TorchScript call
            norms, mats, biases, attr, algorithm = flat
            logits = step(x, norms, mats, biases, [c.k for c in cache.self_attn], [c.v for c in cache.self_attn],
                          past, H, D, eps, attr, algorithm, allowed, norm_w, norm_b, head)
            cache.advance(1)
            return logits
        for (n1w, n1b, qkv_w, qkv_b, out_w, out_b, n2w, n2b, up_w, up_b, down_w, down_b), layer_cache in zip(layers, cache.self_attn):
            qkv = linear(torch.layer_norm(x, (C,), n1w, n1b, eps), qkv_w, qkv_b)  # (B, 3C): q, k, v in one product
            q, k, v = qkv.view(B, 3, H, 1, D).unbind(1)  # (B, H, 1, D) each: one token, no transpose
            k, v = layer_cache.append(k, v)  # (B, H, S, D)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, 1, D)
            x = x + linear(y.view(B, C), out_w, out_b)  # (B, C): heads side by side, as (B, 1, H, D) would be
            x = x + linear(up(torch.layer_norm(x, (C,), n2w, n2b, eps), up_w, up_b), down_w, down_b)
        return linear(torch.layer_norm(x, (C,), norm_w, norm_b, eps), head, None)  # (B, vocab_size)

    def step_weights(self) -> tuple:
        """The parameters `decode_step` reads, gathered once per generation (attribute lookups are slow in a
        hot loop), with the matrix product to compute with.

        On CPU with oneDNN (PyTorch's x86 and ARM builds) every matrix is repacked into oneDNN's blocked
        layout and multiplied by its linear kernel, GELU/ReLU fused into the up-projection: for a few rows
        that runs 1.5-6x faster than `addmm` (the same fp32 products, summed in another order; measured in
        benchmarks/generate.py). Elsewhere the matrices come transposed, (in, out), for `addmm`. The packed
        or transposed copies (one more set of the matrices) are kept on the model and made again only when a
        weight changes (its version or storage), up to STEP_COPY_BYTES: a bigger model reads transposed views.
        """
        matrices = [self.lm_head.weight] + [w for b in self.blocks for w in (b.attn.qkv.weight, b.attn.out.weight, b.mlp.up.weight, b.mlp.down.weight)]
        key = tuple((w.data_ptr(), w._version, tuple(w.shape), w.device, w.dtype) for w in matrices)
        cached = self.__dict__.get("_step_matrices")
        if cached is None or cached[0] != key:
            size = sum(w.numel() * w.element_size() for w in matrices)
            copy = matrices[0].device.type == "cpu" and size <= STEP_COPY_BYTES  # GPU BLAS reads a view as fast
            packed = copy and _onednn_usable(matrices[0].dtype)
            if packed:
                made = [torch.ops.mkldnn._reorder_linear_weight(w.detach(), PACK_ROWS) for w in matrices]
            else:
                made = [w.detach().t().contiguous() if copy else w.detach().t() for w in matrices]  # each (in, out)
            cached = (key, made, packed)
            self.__dict__["_step_matrices"] = cached
        (head, *rest), packed = cached[1], cached[2]
        act = self.blocks[0].mlp.act
        if packed and self.config.activation in FUSED_ACTIVATIONS:
            attr, algorithm = FUSED_ACTIVATIONS[self.config.activation]
            linear, up = _onednn_linear, functools.partial(_onednn_linear, attr=attr, algorithm=algorithm)
        elif packed:
            linear, up = _onednn_linear, _then(act, _onednn_linear)
        else:
            linear, up = _addmm, _then(act, _addmm)
        layers = [
            (b.attn_norm.weight, b.attn_norm.bias, rest[4 * i], _bias(b.attn.qkv), rest[4 * i + 1], _bias(b.attn.out),
             b.mlp_norm.weight, b.mlp_norm.bias, rest[4 * i + 2], _bias(b.mlp.up), rest[4 * i + 3], _bias(b.mlp.down))
            for i, b in enumerate(self.blocks)
        ]
        c = self.config
        shape = (c.d_model, c.n_heads, c.d_model // c.n_heads, c.norm_eps)
        flat = None  # the same, flat, for the scripted step (taesan/models/gpt_step.py): oneDNN with a fused activation
        if packed and self.config.activation in FUSED_ACTIVATIONS:
            flat = ([t for l in layers for t in (l[0], l[1], l[6], l[7])], [t for l in layers for t in (l[2], l[4], l[8], l[10])],
                    [t for l in layers for t in (l[3], l[5], l[9], l[11])], *FUSED_ACTIVATIONS[self.config.activation])
        return self.tok_emb.weight, self.pos_emb.weight, self.norm.weight, self.norm.bias, head, linear, up, layers, shape, flat


STEP_COPY_BYTES = 256 * 2**20  # packed or transposed decoding copies only for models whose matrices fit in this
PACK_ROWS = 8  # the batch size oneDNN lays packed matrices out for: as fast at batch 1 as a layout for 1 row
FUSED_ACTIVATIONS = {"gelu_tanh": ("gelu", "tanh"), "gelu": ("gelu", "none"), "relu": ("relu", "")}  # oneDNN post-ops


def _onednn_usable(dtype: torch.dtype) -> bool:
    """oneDNN's packed linear kernel exists here (private ops PyTorch's own compiler uses; else addmm)."""
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2, dtype=dtype), PACK_ROWS)
        return bool(torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2, dtype=dtype), w, None, "none", [], "").sum() == 4)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _onednn_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, attr: str = "none", algorithm: str = "") -> torch.Tensor:
    """x @ Wᵀ + b with W packed by oneDNN, then the fused activation `attr` (e.g. "gelu", algorithm "tanh")."""
    return torch.ops.mkldnn._linear_pointwise(x, w, b, attr, [], algorithm)


def _addmm(x: torch.Tensor, w_t: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x @ W_t + b with W_t transposed, (in, out)."""
    return x @ w_t if b is None else torch.addmm(b, x, w_t)


def _then(act, linear):
    """The up-projection where no fused kernel is used: the product, then the activation."""
    return lambda x, w, b: act(linear(x, w, b))


def _bias(linear: nn.Linear) -> torch.Tensor:
    """A Linear's bias, or zeros when it has none (bias=False): addmm always adds one."""
    return linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.weight.shape[0])
