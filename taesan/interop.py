"""HuggingFace <-> taesan checkpoints. Key-name tables live beside each model as data; one function reads them.

A table maps a taesan key to a HF key, or to a tuple of HF keys that are concatenated on dim 0 when
imported and split equally when exported (q, k, v -> one fused `qkv`). Placeholders such as `{i}`
stand for layer numbers. Keys in `transposed` are stored transposed by HF (GPT-2's Conv1D).
Not here: the configs' field mapping, which each model file owns (`from_hf_config`, `to_hf_config`).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import torch

from taesan.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict, read_config, save_state_dict
from taesan.config import write_json
from taesan.errors import TaesanError

# HF model_type -> the taesan module that converts it (it defines from_hf(directory, hf_config)).
HF_FAMILIES: dict[str, str] = {
    "gpt2": "taesan.models.gpt",
    "marian": "taesan.models.transformer_hf",
    "bart": "taesan.models.transformer_hf",
    "bert": "taesan.models.bert",
    "vit": "taesan.models.vit",
}

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


def from_hf(directory: str | Path):
    """Load a HuggingFace checkpoint directory into the matching taesan model (eval mode, CPU)."""
    directory = Path(directory)
    hf_config = read_config(directory)
    hf_type = hf_config.get("model_type")
    if hf_type not in HF_FAMILIES:
        raise TaesanError(
            f"{directory / CONFIG_NAME}: model_type {hf_type!r} is neither a taesan checkpoint nor a supported "
            f"HuggingFace family ({', '.join(sorted(HF_FAMILIES))})"
        )
    module = importlib.import_module(HF_FAMILIES[hf_type])
    return module.from_hf(directory, hf_config).eval()


def to_hf(model, directory: str | Path) -> Path:
    """Write `model` in the HuggingFace layout (config.json + model.safetensors) that transformers loads."""
    directory = Path(directory)
    module = importlib.import_module(type(model).__module__)
    if not hasattr(module, "to_hf"):
        raise TaesanError(f"model_type {model.model_type!r} has no HuggingFace export")
    hf_config, hf_state = module.to_hf(model)  # raises before anything is written when the model cannot be exported
    directory.mkdir(parents=True, exist_ok=True)
    save_state_dict(hf_state, directory / WEIGHTS_NAME)
    write_json(directory / CONFIG_NAME, hf_config)
    return directory


def _tokenizer_beside(directory: Path):
    """The checkpoint's tokenizer (tokenizer.json, vocab.txt or vocab.json + merges.txt), or None (a ViT has none)."""
    from taesan.tokenizers import load as load_tokenizer

    if any((directory / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return load_tokenizer(directory)
    return None


def convert(source: str | Path, out: str | Path, direction: str) -> Path:
    """The `taesan convert` command: --from-hf writes a taesan checkpoint, --to-hf a HF one."""
    from taesan.load import load

    model = load(source)
    tokenizer = _tokenizer_beside(Path(source))  # a checkpoint without its tokenizer cannot read text
    if direction == "from-hf":
        return model.save(out, tokenizer=tokenizer)
    if direction == "to-hf":
        directory = to_hf(model, out)
        if tokenizer is not None:  # taesan's tokenizer.json is HF's format: PreTrainedTokenizerFast reads it
            tokenizer.save(directory / "tokenizer.json")
            norm = getattr(tokenizer, "normalizer", None)
            if norm is not None:  # else AutoTokenizer's BERT default lowercases and strips accents (한 -> ㅎㅏㄴ)
                write_json(directory / "tokenizer_config.json",
                           {"do_lower_case": bool(norm.lowercase), "strip_accents": bool(norm.strip_accents)})
        return directory
    raise TaesanError(f"unknown direction {direction!r}; use from-hf or to-hf")


