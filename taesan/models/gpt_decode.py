"""GPT's one-token decoding fast path: the decode weights (the model's matrices repacked for the kernel, in the
decode precision), the rule that rebuilds them when a parameter changes, and the step that runs them.

Not the model (gpt.py owns the parameters and `decode_step`, the public call) and not the layer arithmetic
(gpt_step.py). On CPU with oneDNN every matrix is repacked into oneDNN's blocked layout and multiplied by its
linear kernel with the activation fused into the up-projection, faster than `addmm` for a few rows (the
figures are in benchmarks/RESULTS.md, from benchmarks/generate.py). Elsewhere the matrices are transposed, (in, out), for `addmm`.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch

from taesan.models import gpt_step
from taesan.modules import KVCache

STEP_COPY_BYTES = 256 * 2**20  # fp32 copies only for models whose matrices fit in this; bigger ones read views
PACK_ROWS = 8  # the batch size oneDNN lays packed matrices out for: as fast at batch 1 as a layout for 1 row
FUSED_ACTIVATIONS = {  # config activation -> oneDNN post-op (attr, algorithm) of the up-projection
    "gelu_tanh": ("gelu", "tanh"), "gelu": ("gelu", "none"), "relu": ("relu", ""), "silu": ("swish", ""),
}


@dataclass(frozen=True)
class Norm:
    """A LayerNorm's gain and bias, (C,) each."""

    weight: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class Product:
    """One linear layer: its matrix in the kernel's layout (oneDNN-packed, or (in, out) for addmm) and bias
    (zeros when the layer has none, so every product adds one; None only for the LM head)."""

    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class LayerWeights:
    """One pre-LN block as the step reads it: x += out(attn(qkv(attn_norm(x)))); x += down(act(up(mlp_norm(x))))."""

    attn_norm: Norm
    qkv: Product
    out: Product
    mlp_norm: Norm
    up: Product
    down: Product


@dataclass(frozen=True)
class DecodeWeights:
    """Everything a decoding step reads, made once from the model by `build` and kept until `stale`."""

    kernel: str  # "onednn" (packed matrices) or "addmm" (transposed copies or views)
    dtype: torch.dtype  # the decode precision: every tensor here is in it; logits are returned in fp32
    cache_dtype: torch.dtype  # the KV cache's and attention's: fp32 on CPU (`cache_dtype`), else `dtype`
    tok_emb: torch.Tensor  # (V, C)
    pos_emb: torch.Tensor  # (P, C)
    layers: tuple[LayerWeights, ...]
    norm: Norm  # the final LayerNorm
    head: Product  # the LM head, (C -> V), no bias
    heads: int
    eps: float
    activation: str  # the config's name (gpt_step.activation)
    made_from: tuple = field(repr=False)  # `fingerprint` of the parameters these were made from
    # the same tensors, flat in the order gpt_step.layers_step reads them: filled in once, here
    norms: list[torch.Tensor] = field(init=False, repr=False)
    mats: list[torch.Tensor] = field(init=False, repr=False)
    biases: list[torch.Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # a frozen dataclass sets its derived fields this way
        set_(self, "norms", [t for l in self.layers for t in (l.attn_norm.weight, l.attn_norm.bias, l.mlp_norm.weight, l.mlp_norm.bias)])
        set_(self, "mats", [p.weight for l in self.layers for p in (l.qkv, l.out, l.up, l.down)])
        set_(self, "biases", [p.bias for l in self.layers for p in (l.qkv, l.out, l.up, l.down)])

    @property
    def fused(self) -> tuple[str, str]:
        """The activation as a oneDNN post-op of the up-projection, ("", "") when it is applied after it."""
        return FUSED_ACTIVATIONS.get(self.activation, ("", "")) if self.kernel == "onednn" else ("", "")

    def stale(self, model, dtype: torch.dtype) -> bool:
        """A parameter was changed in place (its version moved), replaced or moved (its storage), or another
        precision is asked for: these copies no longer say what the model computes. Changes made through
        `.data` are invisible here, as they are to autograd."""
        return self.made_from != fingerprint(model, dtype)


def parameters_read(model) -> list[torch.Tensor]:
    """Every parameter a decoding step reads, in a fixed order."""
    out = [model.tok_emb.weight, model.pos_emb.weight, model.norm.weight, model.norm.bias, model.lm_head.weight]
    for b in model.blocks:
        for m in (b.attn_norm, b.attn.qkv, b.attn.out, b.mlp_norm, b.mlp.up, b.mlp.down):
            out += [m.weight] if m.bias is None else [m.weight, m.bias]
    return out


def fingerprint(model, dtype: torch.dtype) -> tuple:
    """(storage address, version) of every parameter read, and the precision: equal means nothing changed."""
    return (dtype, *((p.data_ptr(), p._version) for p in parameters_read(model)))


def build(model, dtype: torch.dtype = torch.float32) -> DecodeWeights:
    """The decode weights of a GPT in `dtype`. On CPU (up to STEP_COPY_BYTES of fp32 matrices, or any size in
    another dtype) the matrices are copied: oneDNN-packed where oneDNN runs, else transposed for addmm. On
    other devices fp32 matrices are read through transposed views (GPU BLAS reads them as fast)."""
    c = model.config
    blocks = list(model.blocks)
    matrices = [model.lm_head.weight] + [m.weight for b in blocks for m in (b.attn.qkv, b.attn.out, b.mlp.up, b.mlp.down)]
    device = matrices[0].device
    copy = matrices[0].dtype != dtype or (device.type == "cpu" and sum(w.numel() * 4 for w in matrices) <= STEP_COPY_BYTES)
    onednn = device.type == "cpu" and copy and onednn_usable(dtype)

    def tensor(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(dtype)  # the parameter itself (no copy) in its own dtype

    def product(linear: torch.nn.Linear, bias: bool = True) -> Product:
        w = tensor(linear.weight)
        if onednn:
            w = torch.ops.mkldnn._reorder_linear_weight(w, PACK_ROWS)
        else:
            w = w.t().contiguous() if copy else w.t()  # (in, out)
        if not bias:
            return Product(w, None)
        b = tensor(linear.bias) if linear.bias is not None else torch.zeros(linear.weight.shape[0], dtype=dtype, device=device)
        return Product(w, b)

    def norm(ln: torch.nn.LayerNorm) -> Norm:
        return Norm(tensor(ln.weight), tensor(ln.bias))

    layers = tuple(
        LayerWeights(norm(b.attn_norm), product(b.attn.qkv), product(b.attn.out), norm(b.mlp_norm), product(b.mlp.up), product(b.mlp.down))
        for b in blocks
    )
    return DecodeWeights(
        kernel="onednn" if onednn else "addmm", dtype=dtype, cache_dtype=cache_dtype(dtype, device),
        tok_emb=tensor(model.tok_emb.weight),
        pos_emb=tensor(model.pos_emb.weight), layers=layers, norm=norm(model.norm), head=product(model.lm_head, bias=False),
        heads=c.n_heads, eps=c.norm_eps, activation=c.activation, made_from=fingerprint(model, dtype),
    )


def cache_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype one token attends over the cache in. On CPU always fp32: PyTorch's CPU attention for a single
    query runs 3-9x slower in bf16 than in fp32 (597 against 87 µs at batch 8, 216 positions, 4 heads of 64;
    benchmarks/RESULTS.md), so bf16 decoding keeps its cache in fp32 and casts only q and the output."""
    return torch.float32 if device.type == "cpu" else dtype


def step(w: DecodeWeights, tokens: torch.Tensor, cache: KVCache, attention_mask: torch.Tensor | None = None,
         position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """One new token per row (B, 1) after a filled cache -> fp32 logits (B, V); the cache takes its keys/values.

    attention_mask (B, S) over all S = cache.length + 1 positions, 1 = real; position_ids (B, 1), else the
    position is cache.length. The cache must already be in `w.cache_dtype` (DecodeState.weights_for sees to it).
    """
    B = tokens.shape[0]
    past = cache.length
    pos = w.pos_emb[past] if position_ids is None else torch.embedding(w.pos_emb, position_ids.view(B))  # (C,) or (B, C)
    x = torch.embedding(w.tok_emb, tokens.view(B)) + pos  # (B, C): a single token needs no time axis
    allowed = None if attention_mask is None else attention_mask[:, None, None, :] != 0  # (B, 1, 1, S)
    keys, values, length = cache.extend(1)
    run = gpt_step.compiled() or gpt_step.layers_step
    attr, algorithm = w.fused
    logits = run(x, w.norms, w.mats, w.biases, keys, values, length, w.heads, w.eps, w.kernel == "onednn", w.activation,
                 attr, algorithm, allowed, w.norm.weight, w.norm.bias, w.head.weight)
    return logits if w.dtype == torch.float32 else logits.float()


class DecodeState:
    """What a GPT keeps for decoding: the precision asked for, the decode weights, and the caches they were
    checked for. The weights are checked (`stale`) once per cache, at its first step (comparing ~50 versions
    costs ~20 µs, a few percent of a step), and on every `current` call; a weight changed in the middle of one
    sequence's decoding shows from the next cache (or after a `current` call saw it). Several threads may
    decode with one model (the server does): each reads the weights once per step, never half made."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self.weights: DecodeWeights | None = None
        self._checked: weakref.WeakSet = weakref.WeakSet()  # the caches `weights` were checked for

    def forget(self) -> None:
        """Drop the decode weights: the next step builds them again."""
        self.weights = None
        self._checked = weakref.WeakSet()

    def current(self, model) -> DecodeWeights:
        """The decode weights, rebuilt first if stale."""
        weights = self.weights
        if weights is None or weights.stale(model, self.dtype):
            weights = self.weights = build(model, self.dtype)
            self._checked = weakref.WeakSet()
        return weights

    def weights_for(self, model, cache: KVCache) -> DecodeWeights:
        """The weights for a step on `cache`: checked at the cache's first step, which also casts it to the
        attention's dtype (the prompt went through forward in the model's own)."""
        weights = self.weights
        if weights is not None and cache in self._checked:
            return weights
        weights = self.current(model)
        cache.cast(weights.cache_dtype)
        self._checked.add(cache)
        return weights

    def set_dtype(self, dtype: torch.dtype) -> None:
        self.dtype, self._checked = dtype, weakref.WeakSet()

    def __deepcopy__(self, memo) -> DecodeState:
        """A copied model starts with no copies (oneDNN-packed tensors cannot be copied, and are remade)."""
        return DecodeState(self.dtype)


def onednn_usable(dtype: torch.dtype) -> bool:
    """oneDNN's packed linear kernel exists here for `dtype` (private ops PyTorch's own compiler uses; else addmm)."""
    if dtype not in _ONEDNN:
        _ONEDNN[dtype] = _probe_onednn(dtype)
    return _ONEDNN[dtype]


_ONEDNN: dict[torch.dtype, bool] = {}


def _probe_onednn(dtype: torch.dtype) -> bool:
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2, dtype=dtype), PACK_ROWS)
        return bool(torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2, dtype=dtype), w, None, "none", [], "").sum() == 4)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
