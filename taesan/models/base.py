"""What every taesan model shares: its config, save to a checkpoint directory, parameter counts.

Not a forward: each family wires its own blocks. Models return features or logits, never a loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from taesan.checkpoint import WEIGHTS_NAME, save_state_dict, write_config
from taesan.config import config_to_dict

TAESAN_FORMAT_VERSION = 1


class TaesanModel(nn.Module):
    """Base of all taesan models. Subclasses set `model_type` and `config_class`.

    `tied_keys`: state-dict keys that alias another parameter (a tied LM head) and are not saved.
    """

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    tied_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def save(self, directory: str | Path, tokenizer: Any = None) -> Path:
        """Write config.json + model.safetensors (+ the tokenizer) to `directory`, each file atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_keys}
        save_state_dict(state, directory / WEIGHTS_NAME)
        if tokenizer is not None:
            tokenizer.save(directory / "tokenizer.json")
        write_config(directory, self.config_dict())
        return directory

    def config_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "taesan_version": TAESAN_FORMAT_VERSION, **config_to_dict(self.config)}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
