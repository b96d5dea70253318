"""The machinery of HuggingFace <-> taesan weights: each family's key table (data, in <family>_hf.py) is read by
the functions here. Which HF family loads into which class is the registry's (models/registry.py).

A table maps a taesan key to a HF key, or to a tuple of HF keys that are concatenated on dim 0 when
imported and split equally when exported (q, k, v -> one fused `qkv`). Placeholders such as `{i}`
stand for layer numbers. Keys in `transposed` are stored transposed by HF (GPT-2's Conv1D).
Not here: the configs' field mapping, which each <family>_hf.py owns (`from_hf_config`, `to_hf_config`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from taesan.checkpoint import WEIGHTS_NAME, load_state_dict
from taesan.errors import TaesanError

Spec = str | tuple[str, ...]


def labels_from_hf(hf_config: Mapping[str, Any], source: str) -> tuple[int | None, list[str] | None]:
    """A HF classifier config's (num_labels, label names) from `id2label` (else `num_labels`, or None).

    HF's placeholder names LABEL_0, LABEL_1, ... carry nothing and come back as None.
    labels_from_hf({"id2label": {"1": "pos", "0": "neg"}}, "c") -> (2, ["neg", "pos"])
    """
    id2label = hf_config.get("id2label")
    if not (isinstance(id2label, dict) and id2label):
        return hf_config.get("num_labels"), None
    try:
        names = [id2label[k] for k in sorted(id2label, key=int)]
    except ValueError:
        raise TaesanError(f"{source}: field 'id2label' has a non-integer key") from None
    return len(names), None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def labels_to_hf(labels: list[str] | None, num_labels: int) -> dict[str, dict]:
    """HF's id2label / label2id for a classifier config (LABEL_i where there are no names)."""
    names = labels or [f"LABEL_{i}" for i in range(num_labels)]
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


def expand(table: Mapping[str, Spec], **counts: int) -> dict[str, Spec]:
    """Substitute layer placeholders: expand({"h.{i}.w": "x.{i}.w"}, i=2) -> {"h.0.w": "x.0.w", "h.1.w": "x.1.w"}."""
    out: dict[str, Spec] = {}
    for ours, theirs in table.items():
        names = [n for n in counts if "{" + n + "}" in ours]
        if not names:
            out[ours] = theirs
            continue
        name = names[0]  # one placeholder per key
        for idx in range(counts[name]):
            fill = {name: idx}
            out[ours.format(**fill)] = (
                tuple(t.format(**fill) for t in theirs) if isinstance(theirs, tuple) else theirs.format(**fill)
            )
    return out


def import_state(
    hf_state: Mapping[str, torch.Tensor], table: Mapping[str, Spec], transposed: set[str] = frozenset(), source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """HF tensors -> taesan tensors by an expanded table; a missing HF key raises a TaesanError naming it."""
    out = {}
    for ours, theirs in table.items():
        parts = theirs if isinstance(theirs, tuple) else (theirs,)
        for p in parts:
            if p not in hf_state:
                raise TaesanError(f"{source}: tensor {p!r} is missing (needed for {ours!r})")
        tensors = [hf_state[p].t() if ours in transposed else hf_state[p] for p in parts]
        out[ours] = torch.cat(tensors, 0).contiguous() if len(tensors) > 1 else tensors[0].contiguous()
    return out


def export_state(state: Mapping[str, torch.Tensor], table: Mapping[str, Spec], transposed: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """taesan tensors -> HF tensors: the inverse of `import_state`."""
    out = {}
    for ours, theirs in table.items():
        t = state[ours]
        parts = theirs if isinstance(theirs, tuple) else (theirs,)
        for name, chunk in zip(parts, t.chunk(len(parts), 0)):
            out[name] = (chunk.t() if ours in transposed else chunk).contiguous()
    return out


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or pytorch_model.bin read with weights_only=True (never an arbitrary unpickle)."""
    st = directory / WEIGHTS_NAME
    if st.is_file():
        return load_state_dict(st)
    binary = directory / "pytorch_model.bin"
    if binary.is_file():
        try:
            return torch.load(binary, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
            raise TaesanError(f"{binary}: cannot be read safely ({str(e).splitlines()[0]})") from None
    raise TaesanError(f"{directory}: no {WEIGHTS_NAME} (or pytorch_model.bin) in the checkpoint directory")
