"""GPT's one-token decoding step through the layers as one TorchScript function: the same operations as
GPT.decode_step's Python loop (oneDNN-packed products, SDPA, the KV cache written in place), without the
Python interpreter between them, which at batch 1 costs more than the layers' arithmetic (the step alone,
4 layers × 256 on a 2-core EPYC: 0.70 instead of 0.90 ms a token; benchmarks/generate.py has the whole loop).

Not a compiler: `torch.jit.script` turns the function below into a graph once per process (~0.1 s, no C++
toolchain needed). TorchScript is deprecated in favour of torch.compile, which needs a compiler and much
longer to start; where scripting fails (a future PyTorch without it), `scripted()` returns None and
GPT.decode_step keeps its Python loop.
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F

_SCRIPTED: object = None  # the scripted function, False when scripting failed, None before the first try


def layers_step(x: torch.Tensor, norms: List[torch.Tensor], mats: List[torch.Tensor], biases: List[torch.Tensor],
                keys: List[torch.Tensor], values: List[torch.Tensor], at: int, heads: int, head_dim: int, eps: float,
                attr: str, algorithm: str, allowed: Optional[torch.Tensor], final_w: torch.Tensor, final_b: torch.Tensor,
                lm_head: torch.Tensor) -> torch.Tensor:
    """x (B, C) -> logits (B, vocab). Per layer i: norms[4i:4i+4] = (attn LN w, b, mlp LN w, b); mats/biases
    [4i:4i+4] = qkv, out, up, down (oneDNN-packed); keys/values[i] (B, H, capacity, D) get this token at `at`."""
    B = x.shape[0]
    C = heads * head_dim
    for i in range(len(keys)):
        h = torch.layer_norm(x, [C], norms[4 * i], norms[4 * i + 1], eps)
        qkv = torch.ops.mkldnn._linear_pointwise(h, mats[4 * i], biases[4 * i], "none", [], "")
        q, k, v = qkv.view(B, 3, heads, 1, head_dim).unbind(1)
        keys[i].narrow(2, at, 1).copy_(k)
        values[i].narrow(2, at, 1).copy_(v)
        y = F.scaled_dot_product_attention(q, keys[i].narrow(2, 0, at + 1), values[i].narrow(2, 0, at + 1), attn_mask=allowed)
        x = x + torch.ops.mkldnn._linear_pointwise(y.view(B, C), mats[4 * i + 1], biases[4 * i + 1], "none", [], "")
        h = torch.layer_norm(x, [C], norms[4 * i + 2], norms[4 * i + 3], eps)
        h = torch.ops.mkldnn._linear_pointwise(h, mats[4 * i + 2], biases[4 * i + 2], attr, [], algorithm)
        x = x + torch.ops.mkldnn._linear_pointwise(h, mats[4 * i + 3], biases[4 * i + 3], "none", [], "")
    x = torch.layer_norm(x, [C], final_w, final_b, eps)
    return torch.ops.mkldnn._linear_pointwise(x, lm_head, None, "none", [], "")


def scripted():
    """`layers_step` as TorchScript, made once per process; None where that is not possible."""
    global _SCRIPTED
    if _SCRIPTED is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the deprecation notice of torch.jit
                _SCRIPTED = torch.jit.script(layers_step)
        except Exception:  # noqa: BLE001 - any failure means: keep the Python loop
            _SCRIPTED = False
    return _SCRIPTED or None
