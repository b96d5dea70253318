"""The trainer's resumable state on disk: optimizer tensors and RNG states in safetensors, everything
else (step, schedule, data position, config) in JSON. No pickle.

Not the model: weights are saved by `model.save` beside these files in the same checkpoint directory.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taesan.checkpoint import load_state_dict, save_state_dict
from taesan.config import read_json, write_json
from taesan.errors import TaesanError

STATE_NAME = "trainer_state.json"  # written last: its presence marks a complete checkpoint
OPTIMIZER_NAME = "optimizer.safetensors"
RNG_NAME = "rng.safetensors"


def _split(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Nested dicts/lists with tensors -> the same structure with {"tensor": key}; tensors go to `tensors`."""
    if torch.is_tensor(value):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {"tensor": prefix}
    if isinstance(value, dict):
        return {str(k): _split(v, f"{prefix}/{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]}
    return value


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"tensor"}:
            return tensors[value["tensor"]]
        if set(value) == {"list"}:
            return [_join(v, tensors) for v in value["list"]]
        if set(value) == {"tuple"}:
            return tuple(_join(v, tensors) for v in value["tuple"])
        return {k: _join(v, tensors) for k, v in value.items()}
    return value


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random stream a training step may read: python, numpy, torch (CPU, CUDA) and the objective's generator."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def save_trainer_state(directory: str | Path, meta: dict[str, Any], optimizer: dict[str, Any], rng: dict[str, Any]) -> None:
    """Write optimizer.safetensors, rng.safetensors, then trainer_state.json (the completeness marker)."""
    directory = Path(directory)
    optim_tensors: dict[str, torch.Tensor] = {}
    rng_tensors: dict[str, torch.Tensor] = {}
    optim_meta = _split(optimizer, "optimizer", optim_tensors)
    rng_meta = _split(rng, "rng", rng_tensors)
    save_state_dict(optim_tensors, directory / OPTIMIZER_NAME)
    save_state_dict(rng_tensors, directory / RNG_NAME)
    write_json(directory / STATE_NAME, {**meta, "optimizer": optim_meta, "rng": rng_meta})


def trainer_meta(directory: str | Path) -> dict[str, Any]:
    """trainer_state.json alone (step, config, data, scheduler …; no tensors read): what a resume checks first."""
    path = Path(directory) / STATE_NAME
    meta = read_json(path)
    if not isinstance(meta, dict) or "optimizer" not in meta or "rng" not in meta or "step" not in meta:
        raise TaesanError(f"{path}: not a taesan trainer state (needs step, optimizer, rng)")
    return meta


def load_trainer_state(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """-> (meta: step, config, data, scheduler …; optimizer state; rng states), as saved."""
    directory = Path(directory)
    meta = trainer_meta(directory)
    optimizer = _join(meta.pop("optimizer"), load_state_dict(directory / OPTIMIZER_NAME))
    rng = _join(meta.pop("rng"), load_state_dict(directory / RNG_NAME))
    return meta, optimizer, rng
