"""Fused "LM head + cross-entropy": mean next-token loss from hidden states and the output matrix, chunk by chunk.

Not a model output (models return logits): an objective calls this instead of
`F.cross_entropy(hidden @ weight.T + bias, targets)` to skip materialising the full (N, vocab) fp32 logits and
their log-softmax, the largest tensors of a small GPT's training step. Same value, same gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from taesan.modules.products import fast_here, mm_nt

_TINY = 1e-30  # below this, float32 softmax loses the digits its log would need


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, the gradients too (softmax − one-hot); backward scales them.

    The products run in `dtype` (bf16 under autocast), the softmax, the loss and every gradient sum in fp32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, ignore_index: int, chunk: int, reduction: str, dtype):
        N = hidden.shape[0]
        valid = targets != ignore_index  # (N,)
        count = int(valid.sum()) if reduction == "mean" else 1
        scale = 1.0 / max(count, 1)
        safe = torch.where(valid, targets, 0)  # (N,) index 0 where ignored; their rows are zeroed below
        need_grad = any(ctx.needs_input_grad[:3])
        low = dtype is not None and dtype != torch.float32
        w = weight.to(dtype) if low else weight  # (V, C), cast once
        fast = not low and fast_here(hidden)
        b = bias.float() if bias is not None else None
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_grad else None
        grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_grad and b is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for s in range(0, N, chunk):
            h, t, v = hidden[s : s + chunk], safe[s : s + chunk], valid[s : s + chunk]
            h = h.to(dtype) if low else h
            logits = mm_nt(h, w).float()  # (n, V): h @ w.T, on oneDNN where it is faster (products.py)
            if b is not None:
                logits += b
            probs = torch.softmax(logits, dim=-1)  # (n, V)
            p_target = probs.gather(1, t[:, None]).squeeze(1)  # (n,)
            picked = p_target.log()  # log p(target)
            tiny = p_target < _TINY
            if bool(tiny.any()):  # p(target) too small for its log to be exact: log-softmax of those rows
                rows = logits[tiny]
                picked[tiny] = rows.gather(1, t[tiny][:, None]).squeeze(1) - rows.logsumexp(-1)
            total -= (picked * v).sum()
            if not need_grad:
                continue
            g = probs  # d loss_i / d logits_i = (softmax − one-hot) · row weight
            g.scatter_add_(1, t[:, None], torch.full_like(picked[:, None], -1.0))
            g.mul_((v * scale)[:, None])  # (n, V): 0 for ignored rows
            if grad_bias is not None:
                grad_bias += g.sum(0)
            if low:
                gl = g.to(dtype)
                grad_hidden[s : s + chunk] = gl @ w  # (n, C)
                grad_weight += gl.t() @ h  # (V, C)
            elif fast:
                grad_hidden[s : s + chunk] = mm_nt(g, w.t())  # (n, C)
                grad_weight += mm_nt(g.t(), h.t())  # (V, C)
            else:
                torch.mm(g, w, out=grad_hidden[s : s + chunk])  # (n, C)
                grad_weight.addmm_(g.t(), h)  # (V, C)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grads = ctx.saved_tensors
        out = [None if g is None or not need else (g * grad_out).to(dt) for g, need, dt in zip(grads, ctx.needs_input_grad, ctx.dtypes)]
        return (*out, None, None, None, None, None)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    chunk: int = 256,
    reduction: str = "mean",
    bias: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """cross_entropy(hidden @ weight.T + bias, targets), computed `chunk` rows at a time.

    hidden (..., C), weight (V, C) (e.g. a tied LM head), bias (V,) or None, targets (...) with `ignore_index` for
    positions without a target. reduction "mean" (over non-ignored targets, as F.cross_entropy) or "sum".
    dtype: the products' precision (torch.bfloat16 where the model ran under bf16 autocast); the softmax, the loss
    and the gradient sums stay fp32 whatever it is, and autocast is off inside.
    linear_cross_entropy(h, W, t) == F.cross_entropy(h @ W.T, t) up to float rounding, gradients included.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    C = hidden.shape[-1]
    hidden = hidden.reshape(-1, C)  # (N, C)
    targets = targets.reshape(-1)  # (N,)
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"hidden has {hidden.shape[0]} positions but targets has {targets.shape[0]}")
    if dtype is None and (hidden.dtype != torch.float32 or weight.dtype != torch.float32):
        dtype = hidden.dtype if hidden.dtype != torch.float32 else weight.dtype  # a half-precision model
    with torch.autocast(hidden.device.type, enabled=False):
        if not any(t is not None and t.requires_grad for t in (hidden, weight, bias)) or not torch.is_grad_enabled():
            low = dtype is not None and dtype != torch.float32
            logits = (hidden.to(dtype) @ weight.to(dtype).t()).float() if low else mm_nt(hidden.float(), weight.float())
            if bias is not None:
                logits = logits + bias.float()
            return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction=reduction)
        return _LinearCrossEntropy.apply(hidden, weight, bias, targets, ignore_index, chunk, reduction, dtype)
