"""The header of a safetensors file from somewhere else, read and checked before any tensor is allocated.

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON naming each tensor's dtype,
shape and byte range, then the data. The header is read here with caps (its size, its entry count, each entry's
dtype, shape and offsets inside the file), so a hostile file is refused in milliseconds, naming the cap, instead
of after seconds and gigabytes. Not the reader of tensors: safetensors itself does that once the header passed.
"""
from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taesan.config import parse_json
from taesan.errors import TaesanError

MAX_HEADER_BYTES = 4 * 2**20  # a 1,000-tensor model's header is ~100 KB; safetensors itself allows 100 MB
MAX_TENSORS = 50_000  # a 512-layer model holds ~8,000 tensors, its optimizer state ~25,000
MAX_DIMS = 8
MAX_NAME_CHARS = 1024

# safetensors dtype name -> torch dtype (bytes per element from torch)
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # byte offsets inside the data section
    end: int


@dataclass(frozen=True)
class Header:
    """What a safetensors file says it holds: tensors by name, the free-form metadata, the data section's size."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_bytes: int

    def meta_state(self) -> dict[str, torch.Tensor]:
        """The tensors as shapes only (device "meta": no memory): a dry run loads these into a meta-built model."""
        return {k: torch.empty(t.shape, dtype=t.dtype, device="meta") for k, t in self.tensors.items()}


def read_header(path: str | Path) -> Header:
    """Read and check `path`'s header; a file that breaks the format or a cap raises one TaesanError line naming it."""
    path = Path(path)
    if not path.is_file():
        raise TaesanError(f"{path}: {'a directory, not a safetensors file' if path.is_dir() else 'file not found'}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TaesanError(f"{path}: not a safetensors file ({size} bytes: shorter than the 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER_BYTES:
            raise TaesanError(f"{path}: a safetensors header of {n:,} bytes, over the limit of {MAX_HEADER_BYTES:,}")
        if 8 + n > size:
            raise TaesanError(f"{path}: truncated (the header says {n:,} bytes, the file has {size - 8:,} after the length)")
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaesanError(f"{path}: not a safetensors file (its header is not UTF-8 at byte {8 + e.start})") from None
    if not text.startswith("{"):
        raise TaesanError(f"{path}: not a safetensors file (its header is not a JSON object)")
    data = parse_json(text, f"{path} (header)", MAX_HEADER_BYTES)
    if not isinstance(data, dict):
        raise TaesanError(f"{path}: not a safetensors file (its header is not a JSON object)")
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TaesanError(f"{path}: header field '__metadata__' must map names to strings")
    if len(data) > MAX_TENSORS:
        raise TaesanError(f"{path}: the header lists {len(data):,} tensors, over the limit of {MAX_TENSORS:,}")
    data_bytes = size - 8 - n
    tensors = {name: _entry(name, entry, path) for name, entry in data.items()}
    _check_layout(tensors, data_bytes, path)
    return Header(path, tensors, metadata, data_bytes)


def _entry(name: str, entry: Any, path: Path) -> TensorInfo:
    """One header entry {"dtype", "shape", "data_offsets"} -> TensorInfo, its byte range the size its shape needs."""
    if len(name) > MAX_NAME_CHARS:
        raise TaesanError(f"{path}: a tensor name of {len(name):,} characters, over the limit of {MAX_NAME_CHARS}")
    label = name if len(name) <= 80 else name[:77] + "..."
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise TaesanError(f"{path}: tensor {label!r} needs exactly the fields dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise TaesanError(f"{path}: tensor {label!r} has dtype {str(dtype)[:20]!r}; known: {', '.join(DTYPES)}")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_count(d) for d in shape)):
        raise TaesanError(f"{path}: tensor {label!r} has shape {str(shape)[:60]}; expected at most {MAX_DIMS} sizes >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(o) for o in offsets) and offsets[0] <= offsets[1]):
        raise TaesanError(f"{path}: tensor {label!r} has data_offsets {str(offsets)[:60]}; expected [begin, end]")
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise TaesanError(f"{path}: tensor {label!r} of shape {tuple(shape)} needs {nbytes:,} bytes, "
                          f"its data_offsets span {offsets[1] - offsets[0]:,}")
    return TensorInfo(DTYPES[dtype], tuple(shape), offsets[0], offsets[1])


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(tensors: dict[str, TensorInfo], data_bytes: int, path: Path) -> None:
    """The byte ranges tile the data section exactly, as safetensors requires: no gap, no overlap, nothing past the end."""
    end = 0
    for name, t in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if t.begin != end:
            what = "overlaps the previous one" if t.begin < end else f"leaves a gap of {t.begin - end:,} bytes"
            raise TaesanError(f"{path}: tensor {name[:80]!r} {what} (data_offsets must tile the data section)")
        end = t.end
    if end != data_bytes:
        raise TaesanError(f"{path}: the header's tensors need {end:,} bytes of data, the file holds {data_bytes:,}"
                          f"{' (truncated)' if end > data_bytes else ''}")


# ---- memory before allocation ----------------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes this process may still allocate: the system's available memory (+ free swap), and the address-space
    limit (ulimit -v) left over, whichever is smaller; None where neither is known (not Linux)."""
    limits = []
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        limits.append((int(info["MemAvailable"].split()[0]) + int(info.get("SwapFree", "0 kB").split()[0])) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            status = Path("/proc/self/status").read_text()
            used = int(next(line for line in status.splitlines() if line.startswith("VmSize:")).split()[1]) * 1024
            limits.append(max(0, soft - used))
        except (OSError, StopIteration, ValueError):
            limits.append(soft)
    return min(limits) if limits else None


def check_memory(needed: int, what: str) -> None:
    """Refuse before allocating `needed` bytes that this process cannot have (a one-line TaesanError naming both)."""
    available = available_memory()
    if available is not None and needed > available:
        raise TaesanError(f"{what}: needs {format_bytes(needed)} of memory, {format_bytes(available)} available")


def format_bytes(n: int) -> str:
    """format_bytes(3 * 2**30) -> '3.0 GB'; format_bytes(512) -> '512 bytes'"""
    if n < 1024:
        return f"{n} bytes"
    exponent = min(3, int(math.log(n, 1024)))
    return f"{n / 1024 ** exponent:.1f} {('KB', 'MB', 'GB')[exponent - 1]}"

