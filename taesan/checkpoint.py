"""A checkpoint is a directory: config.json + model.safetensors (+ tokenizer files). No pickle anywhere.

Writes are atomic (temp file, then rename); every read error names the file and the field. A safetensors file's
header is checked (taesan.safetensors_header) before a tensor is read, and a dry run (`shapes_only`) reads only it.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from taesan.atomic import atomic_path
from taesan.config import read_json, write_json
from taesan.errors import TaesanError
from taesan.safetensors_header import check_memory, read_header

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write tensors to a safetensors file atomically. Tensors sharing memory are written once each (cloned)."""
    seen: set[int] = set()
    tensors = {}
    for k, t in state.items():
        t = t.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr()
        tensors[k] = t.clone().contiguous() if ptr in seen or not t.is_contiguous() else t
        seen.add(ptr)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata or {"format": "pt"})
        except SafetensorError as e:  # the disk filled up: an OSError like any other write's, for the caller to name
            if "No space left" in str(e) or "StorageFull" in str(e):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise


_SHAPES_ONLY = contextvars.ContextVar("shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """A dry run: inside it, `load_state_dict` returns the header's shapes as meta tensors and reads no data.

    With `torch.device("meta")` around a loader (a HuggingFace importer), the whole load — config, model, key
    table, shape checks — runs without allocating, so a hostile checkpoint is refused before it costs memory.
    """
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, corrupted or oversized file raises a one-line TaesanError.

    The header is checked first (caps, offsets inside the file), and the data must fit in the memory left.
    """
    path = Path(path)
    header = read_header(path)
    if _SHAPES_ONLY.get():
        return header.meta_state()
    check_memory(header.data_bytes, str(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TaesanError(f"{path}: not a readable safetensors file ({reason})") from None


def check_shapes(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, ignore: tuple[str, ...] = ()) -> None:
    """Name the first tensor `module` lacks in `state`, or has that it does not, or has in another shape.

    `state` may hold meta tensors (a safetensors header's shapes): checked before any data is read.
    `ignore` lists keys the module may lack in `state` (tied weights, buffers recomputed at init).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and k not in ignore]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise TaesanError(f"{source}: tensor {missing[0]!r} is missing ({len(missing)} missing in all)")
    if unexpected:
        raise TaesanError(f"{source}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} unexpected in all)")
    for k, t in state.items():
        if tuple(t.shape) != tuple(own[k].shape):
            raise TaesanError(f"{source}: tensor {k!r} has shape {tuple(t.shape)}, the config expects {tuple(own[k].shape)}")


def check_and_load(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, ignore: tuple[str, ...] = ()) -> None:
    """Load `state` into `module` strictly, naming the first missing, unexpected or mis-shaped tensor (see check_shapes)."""
    check_shapes(module, state, source, ignore)
    module.load_state_dict(state, strict=False)


def checkpoint_path(directory: Any) -> Path:
    """`directory` as a Path, or one line when it is not a path at all (Path(123) is a TypeError from pathlib)."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TaesanError(f"a checkpoint is a directory path, got {type(directory).__name__} {directory!r}")
    return Path(directory)


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = checkpoint_path(directory)
    if not directory.exists():
        raise TaesanError(f"{directory}: no such checkpoint directory")
    if not directory.is_dir():
        raise TaesanError(f"{directory}: a checkpoint is a directory with {CONFIG_NAME} and {WEIGHTS_NAME}")
    data = read_json(directory / CONFIG_NAME)
    if not isinstance(data, dict):
        raise TaesanError(f"{directory / CONFIG_NAME}: expected a JSON object")
    return data


def write_config(directory: str | Path, data: dict[str, Any]) -> None:
    write_json(Path(directory) / CONFIG_NAME, data)


# ---- what pretraining recorded beside the weights ---------------------------------------------------------

TRAINING_NAME = "training.json"  # beside config.json: how the model was pretrained (objective, separator_id, ...)
STOP_TOKENS = ("<|endoftext|>", "</s>", "[SEP]", "<eos>")  # a document separator the tokenizer may know (pipeline.Bundle)


def read_training(directory: str | Path) -> dict[str, Any]:
    """training.json of a pretrained checkpoint; {} for one without it (HuggingFace, fine-tuned, a preset)."""
    path = Path(directory) / TRAINING_NAME
    return read_json(path) if path.is_file() else {}


def separator_id(directory: str | Path, fallback: int | None) -> int | None:
    """The document separator the model was pretrained with (training.json), else `fallback` (a tokenizer's)."""
    sep = read_training(directory).get("separator_id")
    return int(sep) if sep is not None else fallback

