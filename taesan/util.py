"""Small helpers with no better home: the device to run on, and a pause of Python's cycle collector.

Not a grab bag: anything with a concept of its own gets its own module.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import TYPE_CHECKING

from taesan.errors import TaesanError

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; anything else is taken as given ("cpu", "cuda:1")."""
    import torch  # here, not at the top: the tokenizers use this module and need no torch

    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError:
            raise TaesanError(f"--device {name!r} is not a device (try auto, cpu, cuda, mps)") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
