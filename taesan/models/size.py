"""A checkpoint's size, known before anything is allocated: the config's layer counts against a cap, the model built
on the meta device (shapes, no memory) against the tensors the safetensors header lists, its parameter count against
a limit, and its bytes against the memory left.

Not the loading itself (registry.load_model, registry.from_hf): they call `check_checkpoint` / `check_hf` first.
"""
from __future__ import annotations

import contextlib
import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from taesan.checkpoint import check_shapes, shapes_only
from taesan.errors import TaesanError
from taesan.safetensors_header import Header, check_memory, read_header

MAX_LAYERS = 512  # per stack; the deepest published transformers have ~100-200. planning 512 on "meta" takes ~1 s
MAX_PARAMETERS = 10**11  # 400 GB in fp32: far past what taesan trains or serves
_LAYER_FIELD = re.compile(r"(^|_)layers?$")  # n_layers, n_encoder_layers, num_hidden_layers, n_layer, decoder_layers


def layer_counts(config: dict[str, Any]) -> dict[str, int]:
    """The config's layer-count fields: layer_counts({"n_layer": 12, "n_embd": 768}) -> {"n_layer": 12}."""
    return {k: v for k, v in config.items() if _LAYER_FIELD.search(k) and isinstance(v, int) and not isinstance(v, bool)}


def check_layers(config: dict[str, Any], source: str, header: Header | None = None) -> None:
    """Each layer count within MAX_LAYERS, and no more layers in all than the weights have tensors (a layer has some).

    Checked on the raw config dict, before a key table is expanded or a module built (both grow with the layers).
    """
    counts = layer_counts(config)
    for name, value in counts.items():
        if value > MAX_LAYERS:
            raise TaesanError(f"{source}: field {name!r}={value:,} is over taesan's limit of {MAX_LAYERS} layers")
    if header is not None and sum(counts.values()) > len(header.tensors):
        n = len(header.tensors)
        raise TaesanError(f"{source}: {sum(counts.values()):,} layers, but {header.path.name} holds only "
                          f"{n} tensor{'' if n == 1 else 's'}: the config and the weights disagree")


def plan(build: Callable[[], nn.Module], source: str) -> nn.Module:
    """`build()` on the meta device: the model's every shape, no memory. A config no model can be built from
    (sizes that overflow, a shape torch refuses) is a one-line TaesanError."""
    try:
        with torch.device("meta"), _ShapesOnly():
            return build()
    except TaesanError:
        raise
    except (RuntimeError, ValueError, OverflowError, TypeError, IndexError, MemoryError) as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        what = "a model too large to exist" if "overflow" in reason.lower() else "no model taesan can build"
        raise TaesanError(f"{source}: the config describes {what} ({reason})") from None


# in-place fills whose values mean nothing on "meta": skipped, like the whole random init
_FILLS = {"normal_", "uniform_", "trunc_normal_", "fill_", "zero_", "zeros_", "ones_", "constant_", "copy_",
          "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "__setitem__"}
# arithmetic whose result's shape is the broadcast of its tensor arguments
_ELEMENTWISE = {"__mul__", "__rmul__", "mul", "__add__", "__radd__", "add", "__sub__", "__rsub__", "sub", "__truediv__",
                "__rtruediv__", "div", "__neg__", "neg", "__pow__", "__rpow__", "pow", "exp", "log", "sin", "cos", "sqrt"}


class _ShapesOnly(TorchFunctionMode):
    """Shapes without the arithmetic, while a model is built on "meta".

    torch computes most meta results through Python reference code whose first call imports torch._dynamo (~3 s):
    a sinusoidal position table or one random init would make every load that slow. Here random inits and fills
    are skipped, elementwise arithmetic returns an empty tensor of the broadcast shape, `cat` and a float `arange`
    are sized by hand; anything else runs as torch would (correct, only slower the first time).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        first = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if name in _FILLS and isinstance(first, torch.Tensor) and first.is_meta:
            return None if name == "__setitem__" else first
        if name in _ELEMENTWISE and tensors and all(t.is_meta for t in tensors):
            dtype = tensors[0].dtype
            for a in (*args, *kwargs.values()):
                if isinstance(a, (torch.Tensor, int, float)) and not isinstance(a, bool):
                    dtype = torch.promote_types(dtype, torch.result_type(tensors[0], a))
            if name in ("exp", "log", "sin", "cos", "sqrt") and not dtype.is_floating_point:
                dtype = torch.get_default_dtype()
            return torch.empty(_broadcast(*(t.shape for t in tensors)), dtype=dtype, device="meta")
        if func is torch.cat and args and all(isinstance(t, torch.Tensor) and t.is_meta for t in args[0]):
            parts, dim = list(args[0]), args[1] if len(args) > 1 else kwargs.get("dim", 0)
            shape = list(parts[0].shape)
            shape[dim] = sum(t.shape[dim] for t in parts)  # (the importers join q, k, v on dim 0)
            return torch.empty(shape, dtype=parts[0].dtype, device="meta")
        if func is torch.arange and kwargs.get("dtype") is not None and kwargs["dtype"].is_floating_point:
            start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
            return torch.empty(max(0, math.ceil((end - start) / step)), dtype=kwargs["dtype"], device="meta")
        return func(*args, **kwargs)


def check_parameters(model: nn.Module, source: str) -> None:
    """The planned model's parameters within MAX_PARAMETERS."""
    tensors = dict(model.named_parameters())
    count = sum(t.numel() for t in tensors.values())
    if count > MAX_PARAMETERS:
        name, t = max(tensors.items(), key=lambda kv: kv[1].numel())
        raise TaesanError(f"{source}: the config describes {count:,} parameters ({name!r} alone has shape "
                          f"{tuple(t.shape)}), over taesan's limit of {MAX_PARAMETERS:,}")


def check_model_memory(model: nn.Module, source: str, extra_bytes: int = 0) -> None:
    """The planned model's bytes (+ `extra_bytes`, the weights read beside it) within the memory left."""
    nbytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    check_memory(nbytes + extra_bytes, f"{source}: the model")


def check_checkpoint(build: Callable[[], nn.Module], config: dict[str, Any], weights: Path, source: str,
                     families: dict[str, type[nn.Module]]) -> None:
    """A taesan checkpoint, checked without allocating: layer caps, header caps, the parameter limit, the model's
    tensors against the header's (names and shapes), then memory. `families`: model_type -> class, to name the
    family the weights belong to when they are another family's."""
    check_layers(config, source)
    header = read_header(weights)
    check_layers(config, source, header)
    planned = plan(build, source)
    check_parameters(planned, source)
    try:
        check_shapes(planned, header.meta_state(), str(weights), ignore=tuple(getattr(planned, "tied_keys", ())))
    except TaesanError:
        _name_family(planned, header, weights, source, families)  # raises when the weights are not this family's
        raise
    check_model_memory(planned, source, header.data_bytes)


def check_hf(load: Callable[[], nn.Module], config: dict[str, Any], directory: Path, source: str) -> None:
    """A HuggingFace checkpoint, checked by a dry run of its importer on the meta device (`load` reads only the
    safetensors header there; a legacy pytorch_model.bin is read whole), after the layer caps; then the parameter
    limit and memory."""
    weights = directory / "model.safetensors"
    header = read_header(weights) if weights.is_file() else None
    check_layers(config, source, header)
    with shapes_only(), warnings.catch_warnings():
        # a pytorch_model.bin is read for real (no header to read instead): loading it into meta is a no-op, as meant
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
        planned = plan(load, source)  # the importer compares the model with the header's tensors
    check_parameters(planned, source)
    check_model_memory(planned, source, header.data_bytes if header is not None else 0)


@contextlib.contextmanager
def allocating(source: str) -> Iterator[None]:
    """Around the real build and load: running out of memory anyway (another process took it) is one line too."""
    try:
        yield
    except MemoryError:
        raise TaesanError(f"{source}: out of memory while loading the model") from None
    except RuntimeError as e:
        if "alloc" not in str(e):
            raise
        raise TaesanError(f"{source}: out of memory while loading the model ({str(e).splitlines()[0][:120]})") from None


def _broadcast(*shapes: torch.Size) -> tuple[int, ...]:
    """Broadcasting's result shape (torch.broadcast_shapes imports sympy): _broadcast((3, 1), (4,)) -> (3, 4)."""
    out: list[int] = []
    for sizes in zip(*(((1,) * (max(map(len, shapes)) - len(s))) + tuple(s) for s in shapes)):
        other = {n for n in sizes if n != 1}
        if len(other) > 1:
            raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(other.pop() if other else 1)
    return tuple(out)


# ---- weights of another family ---------------------------------------------------------------------------------


def _pattern(keys) -> set[str]:
    """Tensor names with layer numbers folded: {"blocks.0.attn.qkv.weight", "blocks.1..."} -> {"blocks.#.attn.qkv.weight"}."""
    return {re.sub(r"\.\d+\.", ".#.", k) for k in keys}


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def _name_family(planned: nn.Module, header: Header, weights: Path, source: str,
                 families: dict[str, type[nn.Module]]) -> None:
    """The weights did not fit the configured model: when another family's tensor names fit them better, or none
    of the configured model's do, say so instead of "tensor 'tok_emb.weight' is missing (52 missing in all)".
    Returns (and the caller's exact message stands) when they are this family's with other sizes."""
    have = _pattern(header.tensors)
    mine = _overlap(have, _pattern(_saved_keys(planned)))
    configured = getattr(planned, "model_type", type(planned).__name__)
    scores = {}
    for model_type, cls in families.items():
        if model_type != configured:
            try:
                scores[model_type] = _overlap(have, _pattern(_saved_keys(plan(lambda cls=cls: cls(cls.config_class()), ""))))
            except TaesanError:
                continue
    best = max(scores, key=scores.get, default=None)
    foreign = sorted(set(header.tensors) - set(_saved_keys(planned))) or sorted(header.tensors)
    examples = ", ".join(repr(k) for k in foreign[:2]) + ", ..." if foreign else "none"
    if best is not None and scores[best] > mine:
        raise TaesanError(f"{source}: model_type {configured!r}, but {weights.name} holds a {best!r} model's tensors "
                          f"({examples}): the config and the weights are from different models")
    if mine < 0.5:
        raise TaesanError(f"{source}: model_type {configured!r}, but {weights.name} holds other tensors "
                          f"({examples}): the config and the weights are from different models")


def _saved_keys(model: nn.Module) -> list[str]:
    tied = set(getattr(model, "tied_keys", ()))
    return [k for k in model.state_dict() if k not in tied]
