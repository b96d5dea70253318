"""Small helpers with no better home: the device to run on, whether its CPU multiplies bf16 natively, and a
pause of Python's cycle collector.

Not a grab bag: anything with a concept of its own gets its own module.
"""
from __future__ import annotations

import functools
import gc
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from taesan.errors import TaesanError

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; anything else is taken as given ("cpu", "cuda:1")."""
    import torch  # here, not at the top: the tokenizers use this module and need no torch

    if name != "auto":
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise TaesanError(f"--device {name!r} is not a device (try auto, cpu, cuda, mps)") from None
        mps = getattr(torch.backends, "mps", None)
        if device.type == "cuda" and not torch.cuda.is_available() or device.type == "mps" and not (mps and mps.is_available()):
            raise TaesanError(f"--device {name!r}: this machine's torch has no {device.type.upper()} device "
                              f"(auto picks what there is; cpu always works)")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 CPU flags of a bf16 matrix unit / bf16 dot-product instructions


@functools.cache
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """This CPU multiplies bf16 in hardware (AMX or AVX512-BF16), read once from the kernel's CPU flags.

    Elsewhere (an x86 CPU without them, or no /proc/cpuinfo) bf16 products are emulated and slower than fp32,
    so `precision="auto"` stays in fp32 there.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device_type: str = "cpu") -> str:
    """"auto" -> "bf16" where the device computes bf16 natively (a CPU with AMX or AVX512-BF16, CUDA with bf16),
    else "fp32"; "fp32" and "bf16" as given. A caller's `--precision` goes through here."""
    if precision not in PRECISIONS:
        raise TaesanError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device_type == "cuda":
        import torch  # here, not at the top: the tokenizers use this module and need no torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device_type == "cpu" and native_bf16() else "fp32"


def describe_precision(precision: str, device_type: str = "cpu") -> str:
    """The line a command logs about its precision: the choice, and why when "auto" made it.

    describe_precision("auto", "cpu") on a CPU without AMX/AVX512-BF16 ->
    "precision: fp32 (auto: this CPU has no native bf16 (AMX or AVX512-BF16), where bf16 runs slower than fp32)"
    """
    chosen = resolve_precision(precision, device_type)
    if precision != "auto":
        return f"precision: {chosen} (asked for)"
    if device_type == "cuda":
        why = "this GPU computes bf16" if chosen == "bf16" else "this GPU has no bf16"
    elif device_type == "cpu":
        why = ("this CPU multiplies bf16 natively (AMX or AVX512-BF16)" if chosen == "bf16" else
               "this CPU has no native bf16 (AMX or AVX512-BF16), where bf16 runs slower than fp32")
    else:
        why = f"no bf16 choice on {device_type}"
    return f"precision: {chosen} (auto: {why})"


@contextmanager
def gc_paused():
    """Pause Python's cycle collector: building millions of small lists and tuples (which hold no cycles)
    otherwise sets off full collections that walk everything alive, a third of the time here."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
