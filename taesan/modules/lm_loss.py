"""Fused "LM head + cross-entropy": mean next-token loss from hidden states and the output matrix, chunk by chunk.

Not a model output (models return logits): an objective may call this instead of
`F.cross_entropy(hidden @ weight.T, targets)` to skip materialising the full (N, vocab) fp32 logits and
their log-softmax, the largest tensors of a small GPT's training step. Same value, same gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_TINY = 1e-30  # below this, float32 softmax loses the digits its log would need


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, the gradients too (softmax − one-hot); backward scales them."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, chunk: int, reduction: str):
        N = hidden.shape[0]
        valid = targets != ignore_index  # (N,)
        count = int(valid.sum()) if reduction == "mean" else 1
        scale = 1.0 / max(count, 1)
        safe = torch.where(valid, targets, 0)  # (N,) index 0 where ignored; their rows are zeroed below
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_grad else None
        grad_weight = (torch.empty_like(weight) if N else torch.zeros_like(weight)) if need_grad else None  # set by chunk 0
        total = hidden.new_zeros(())
        for s in range(0, N, chunk):
            h, t, v = hidden[s : s + chunk], safe[s : s + chunk], valid[s : s + chunk]
            logits = h @ weight.t()  # (n, V)
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
            g = probs  # d loss_i / d logits_i = (softmax − one-hot) · row weight; the row weight is applied to (n, C) sides
            g.scatter_add_(1, t[:, None], torch.full_like(picked[:, None], -1.0))
            row = (v * scale).to(h.dtype)[:, None]  # (n, 1): 0 for ignored rows
            torch.mm(g, weight, out=grad_hidden[s : s + chunk])  # (n, C)
            grad_hidden[s : s + chunk].mul_(row)
            if s == 0:
                torch.mm(g.t(), h * row, out=grad_weight)  # (V, C)
            else:
                grad_weight.addmm_(g.t(), h * row)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = grad_hidden * grad_out if ctx.needs_input_grad[0] else None
        gw = grad_weight * grad_out if ctx.needs_input_grad[1] else None
        return gh, gw, None, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    chunk: int = 256,
    reduction: str = "mean",
) -> torch.Tensor:
    """cross_entropy(hidden @ weight.T, targets), computed `chunk` rows at a time.

    hidden (..., C), weight (V, C) (e.g. a tied LM head), targets (...) with `ignore_index` for positions
    without a target. reduction "mean" (over non-ignored targets, as F.cross_entropy) or "sum".
    linear_cross_entropy(h, W, t) == F.cross_entropy(h @ W.T, t) up to float rounding, gradients included.
    Under autocast or in half precision, use F.cross_entropy on logits instead: this runs in hidden's dtype.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    C = hidden.shape[-1]
    hidden = hidden.reshape(-1, C)  # (N, C)
    targets = targets.reshape(-1)  # (N,)
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"hidden has {hidden.shape[0]} positions but targets has {targets.shape[0]}")
    if not (hidden.requires_grad or weight.requires_grad) or not torch.is_grad_enabled():
        return F.cross_entropy(hidden @ weight.t(), targets, ignore_index=ignore_index, reduction=reduction)
    return _LinearCrossEntropy.apply(hidden, weight, targets, ignore_index, chunk, reduction)
