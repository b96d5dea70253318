"""fp32 matrix products on the CPU's faster kernel: oneDNN where it beats PyTorch's default BLAS (MKL), else as is.

Why: PyTorch multiplies fp32 matrices on x86 CPUs with MKL, which runs AMD's AVX-512 units at less than half of
what oneDNN (also in every PyTorch wheel) gets from them: 86-109 against 158-254 GFLOP/s a core on an AMD EPYC
with AVX-512, for the shapes of a small GPT's training step (benchmarks/RESULTS.md). `onednn_faster()` measures
both once per process on this CPU and picks oneDNN only where it is clearly faster; where MKL keeps up (it is
Intel's own library) nothing changes.

Not autocast's job: under bf16 autocast PyTorch already sends products to oneDNN, so `linear` leaves them to it.
The Trainer turns a model's nn.Linear layers into `FastLinear` (`use_fast_products`) when the probe says so;
the fused LM loss (lm_loss.py) multiplies through `mm_nt`.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

PROBE_SIZE = 512  # the probe multiplies two 512 x 512 fp32 matrices: ~1-3 ms a product
PROBE_MARGIN = 1.25  # oneDNN is used only where it is this much faster than the default
MIN_MACS = 2**22  # smaller products stay with PyTorch's own: a 32 x 64 x 64 layer's forward + backward took 99 µs
# through oneDNN against 43, level near 128 x 64 x 256, and 256 x 128 x 128 (2**22 multiply-adds) took 224 against 291


def _onednn_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T through oneDNN's linear kernel (a: (M, K), b: (N, K); either may be a transposed view)."""
    return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")


_DECIDED: dict[int, bool] = {}  # thread count -> the kernel fp32 products use: probed once, or pinned (pin_onednn)


def onednn_faster(threads: int | None = None) -> bool:
    """oneDNN multiplies fp32 matrices at least PROBE_MARGIN times faster than torch.mm on this CPU, measured
    once per process and thread count (the best of three 512³ products each, taken in turn, ~20 ms in all), unless
    a resumed run pinned the answer its checkpoint recorded (`pin_onednn`)."""
    key = threads if threads is not None else torch.get_num_threads()
    if key not in _DECIDED:
        _DECIDED[key] = _probe()
    return _DECIDED[key]


def pin_onednn(onednn: bool) -> bool:
    """Use oneDNN for fp32 products (or not) as an earlier run did, whatever a new probe would say: a resumed
    run then multiplies as the run began and continues bit for bit (the kernels round differently). Where
    oneDNN's kernel does not run (another machine), the default stays -> whether oneDNN is in use now."""
    _DECIDED[torch.get_num_threads()] = onednn = onednn and _onednn_works(*_operands())
    return onednn


def _onednn_works(a: torch.Tensor, b: torch.Tensor) -> bool:
    """oneDNN's linear kernel runs here and agrees with torch.mm on the product of `a` and `b`ᵀ."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return torch.allclose(_onednn_nt(a, b), a @ b.t(), rtol=1e-4, atol=1e-3)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _operands() -> tuple[torch.Tensor, torch.Tensor]:
    """Two PROBE_SIZE² matrices from a generator of their own: probing never moves the global random stream, so a
    seeded run draws the same dropout whether or not (and whenever) the probe ran."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(PROBE_SIZE, PROBE_SIZE, generator=g), torch.randn(PROBE_SIZE, PROBE_SIZE, generator=g)


def _probe() -> bool:
    a, b = _operands()
    if not _onednn_works(a, b):
        return False

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    # the two kernels alternate, so a burst of load from elsewhere slows both rather than the one it lands on
    mkl, onednn = [], []
    for _ in range(3):
        mkl.append(timed(lambda: torch.mm(a, b.t())))
        onednn.append(timed(lambda: _onednn_nt(a, b)))
    return min(mkl) > PROBE_MARGIN * min(onednn)


def fast_here(t: torch.Tensor) -> bool:
    """Products on `t` go through oneDNN: an fp32 CPU tensor, autocast off, and the probe said so."""
    return (t.device.type == "cpu" and t.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and onednn_faster(torch.get_num_threads()))


def mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T for a (M, K) and b (N, K), on the faster kernel for fp32 CPU tensors."""
    return _onednn_nt(a, b) if a.numel() * b.shape[0] >= MIN_MACS and fast_here(a) else a @ b.t()


class _Linear(torch.autograd.Function):
    """y = x Wᵀ + b with all three products (y, dx = dy W, dW = dyᵀ x) through oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])  # (M, in)
        ctx.save_for_backward(rows, weight)
        ctx.has_bias, ctx.shape = bias is not None, x.shape
        y = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        g = grad.reshape(-1, weight.shape[0])  # (M, out)
        dx = _onednn_nt(g, weight.t()).view(ctx.shape) if ctx.needs_input_grad[0] else None
        dw = _onednn_nt(g.t(), rows.t()) if ctx.needs_input_grad[1] else None
        db = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear, its products on oneDNN where `fast_here` and the product is large enough (MIN_MACS; forward and
    backward); F.linear itself elsewhere."""
    macs = x.numel() * weight.shape[0]  # oneDNN wants at least one row
    if macs > 0 and macs >= MIN_MACS and weight.dtype == torch.float32 and fast_here(x):
        return _Linear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class FastLinear(nn.Linear):
    """nn.Linear whose products run through `linear`: the same parameters, state dict and results (to fp32
    rounding), faster where oneDNN beats the default BLAS."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_fast_products(model: nn.Module) -> int:
    """Turn every plain nn.Linear in `model` into a FastLinear in place (the class only: parameters, hooks and
    the optimizer's references are untouched) when oneDNN is faster here -> how many were turned."""
    if not onednn_faster(torch.get_num_threads()):
        return 0
    turned = 0
    for m in model.modules():
        if type(m) is nn.Linear:
            m.__class__ = FastLinear
            turned += 1
    return turned
