"""The precision a command runs a loaded model in: `--precision auto|fp32|bf16` -> what was chosen, the line that
says so, and the context to run the model under.

Not the rule itself (util.resolve_precision: bf16 where the device computes it natively) and not training (the
Trainer autocasts its own steps). A GPT decodes through its own bf16 weights (`set_decode_precision`); any other
model runs under bf16 autocast; fp32 on CPU multiplies on oneDNN where it is faster (modules/products.py).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from taesan.modules.products import use_fast_products
from taesan.util import describe_precision, resolve_precision


@dataclass
class Precision:
    chosen: str  # "fp32" or "bf16"
    note: str  # "precision: fp32 (auto: ...)", for the log
    device_type: str
    autocast: bool  # run the model under bf16 autocast (encoders, encoder-decoders, classifiers)

    def context(self) -> ContextManager:
        """Where the model runs: bf16 autocast, or nothing."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16) if self.autocast else nullcontext()


def use_precision(model: Any, precision: str = "auto") -> Precision:
    """Put `model` in `precision` ("auto" picks bf16 only where the device computes it natively) -> what was done.

    A GPT (or a model with `set_decode_precision`) decodes in it; other models get an autocast context. In fp32
    on CPU the model's Linear layers multiply on oneDNN where it beats the default BLAS (modules/products.py)."""
    device_type = next(model.parameters()).device.type
    chosen = resolve_precision(precision, device_type)
    decodes = getattr(model, "set_decode_precision", None)
    if decodes is not None:
        decodes(chosen)
    if chosen == "fp32" and device_type == "cpu":
        use_fast_products(model)
    return Precision(chosen, describe_precision(precision, device_type), device_type,
                     autocast=chosen == "bf16" and decodes is None)
