"""GPT's one-token step through every layer as one function TorchScript can compile: pre-LN attention over the
KV cache, then the MLP, per layer, then the final LayerNorm and the LM head, for a (B, C) row per sequence.

Not the model's definition (that is PreNormBlock, through GPT.forward) and not the weights' preparation
(gpt_decode.py). This repeats a block's arithmetic for one token without modules, because at batch 1 the
Python interpreter between ~25 operations per layer costs more than their arithmetic; tests/test_generate.py
holds it equal to forward, scripted and interpreted, on both kernels, with and without padding.
`torch.jit.script` compiles it once per process (~0.1 s, no C++ toolchain). TorchScript is deprecated in
favour of torch.compile, which needs a compiler and much longer to start; where scripting fails, `compiled()`
returns None and the same function runs in the interpreter.
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F

_SCRIPTED: object = None  # the scripted function, False when scripting failed, None before the first try


def linear(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], onednn: bool, attr: str = "none",
           algorithm: str = "") -> torch.Tensor:
    """x @ Wᵀ + b. onednn: W packed by oneDNN, the activation `attr` ("gelu", algorithm "tanh") fused after the
    product; else W transposed, (in, out), for addmm, and `attr` must be "none"."""
    if onednn:
        return torch.ops.mkldnn._linear_pointwise(x, w, b, attr, [], algorithm)
    if b is None:
        return torch.mm(x, w)
    return torch.addmm(b, x, w)


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """The MLP's activation by its config name: the same functions as taesan.modules.transformer.ACTIVATIONS
    (a test holds every name equal), spelled out because a scripted function cannot call a Python dict."""
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu(x)
    if name == "relu":
        return F.relu(x)
    if name == "silu":
        return F.silu(x)
    raise ValueError("unknown activation " + name)


def layers_step(x: torch.Tensor, norms: List[torch.Tensor], mats: List[torch.Tensor], biases: List[torch.Tensor],
                keys: List[torch.Tensor], values: List[torch.Tensor], length: int, heads: int, eps: float, onednn: bool,
                act: str, fused_attr: str, fused_algorithm: str, allowed: Optional[torch.Tensor],
                final_w: torch.Tensor, final_b: torch.Tensor, lm_head: torch.Tensor) -> torch.Tensor:
    """x (B, C) -> logits (B, vocab).

    Per layer i: norms[4i:4i+4] = (attention LN weight, bias, MLP LN weight, bias); mats/biases[4i:4i+4] = qkv,
    out, up, down in the kernel's layout (`linear`). keys/values[i]: (B, H, capacity, D) storages from
    `KVCache.extend`, which counted this token, in the attention's dtype (q is cast to it, the output back): its
    keys/values go to position length - 1, attention reads [0, length). allowed: (B, 1, 1, length), True = may attend, or None. fused_attr: the activation as a oneDNN post-op of the up-projection ("" = apply `act` after it).
    """
    B, C = x.shape
    D = C // heads
    for i in range(len(keys)):
        h = torch.layer_norm(x, [C], norms[4 * i], norms[4 * i + 1], eps)
        qkv = linear(h, mats[4 * i], biases[4 * i], onednn)  # (B, 3C): q, k, v in one product
        q, k, v = qkv.view(B, 3, heads, 1, D).unbind(1)  # (B, H, 1, D) each: one token, no transpose
        keys[i].narrow(2, length - 1, 1).copy_(k)  # into the cache's dtype (fp32 on CPU, see gpt_decode)
        values[i].narrow(2, length - 1, 1).copy_(v)
        y = F.scaled_dot_product_attention(q.to(keys[i].dtype), keys[i].narrow(2, 0, length), values[i].narrow(2, 0, length),
                                           attn_mask=allowed).to(x.dtype)  # (B, H, 1, D)
        x = x + linear(y.view(B, C), mats[4 * i + 1], biases[4 * i + 1], onednn)  # heads side by side, (B, C)
        h = torch.layer_norm(x, [C], norms[4 * i + 2], norms[4 * i + 3], eps)
        if fused_attr != "":
            h = linear(h, mats[4 * i + 2], biases[4 * i + 2], onednn, fused_attr, fused_algorithm)
        else:
            h = activation(linear(h, mats[4 * i + 2], biases[4 * i + 2], onednn), act)
        x = x + linear(h, mats[4 * i + 3], biases[4 * i + 3], onednn)
    x = torch.layer_norm(x, [C], final_w, final_b, eps)
    return linear(x, lm_head, None, onednn)


def compiled():
    """`layers_step` as TorchScript, made once per process; None where that is not possible."""
    global _SCRIPTED
    if _SCRIPTED is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the deprecation notice of torch.jit
                _SCRIPTED = torch.jit.script(layers_step)
        except Exception:  # noqa: BLE001 - any failure means: run the same function in the interpreter
            _SCRIPTED = False
    return _SCRIPTED or None
