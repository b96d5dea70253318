"""Labelled images: MNIST idx files (.gz or not; the labels file found beside the images file), a CSV of
flattened pixels with the label last (sklearn's digits.csv.gz), and sklearn's bundled digits (`digits`).

Not an image pipeline: pixels stay raw (with the value of a full-white pixel); the task scales and resizes.
"""
from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taesan.encoding import not_utf8
from taesan.textfiles import data_error

DIGITS = "digits"  # --train digits: sklearn's 1,797 8×8 digits, embedded in scikit-learn (no download)
IDX_IMAGES, IDX_LABELS = 2051, 2049  # idx magic numbers: unsigned bytes, 3 and 1 dimensions


@dataclass
class ImageExample:
    """pixels (H, W) or (C, H, W) with values in [0, max_value]; label name (None when unlabelled)."""

    pixels: np.ndarray
    label: str | None = None
    max_value: float = 255.0
    source: str = ""


def read_images(path: str | Path) -> list[ImageExample]:
    """`digits`, an idx images file (labels beside it) or a pixels+label CSV (optionally .gz)."""
    if str(path) == DIGITS:
        return digits()
    path = Path(path)
    if not path.is_file():
        raise data_error(path, None, "no such file" if not path.exists() else "not a file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return read_pixel_csv(path)
    return read_idx(path)


def digits() -> list[ImageExample]:
    """sklearn's bundled 8×8 digits (values 0-16), labels "0"-"9"."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return [ImageExample(img.astype(np.float32), str(int(y)), 16.0, f"digits, image {i}") for i, (img, y) in enumerate(zip(data.images, data.target))]


def _open_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise data_error(path, None, f"a broken gzip file ({e})") from None
    return raw


def labels_path(images: Path) -> Path:
    """train-images-idx3-ubyte(.gz) -> train-labels-idx1-ubyte(.gz) in the same folder (either compression)."""
    name = images.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            base = name.replace(a, b).removesuffix(".gz")
            for candidate in (base, base + ".gz"):
                if (images.parent / candidate).is_file():
                    return images.parent / candidate
            raise data_error(images, None, f"no labels file {base}(.gz) beside the images file")
    raise data_error(images, None, "not an idx images file name (expected ...-images-idx3-ubyte[.gz]) nor a .csv")


def _idx(path: Path, magic: int, dims: int) -> np.ndarray:
    raw = _open_bytes(path)
    header = 4 + 4 * dims
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise data_error(path, None, f"not an idx file with {dims} dimension(s) (magic number {magic} expected)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    if len(raw) - header != math.prod(shape):
        raise data_error(path, None, f"the header says {shape} bytes of data, the file holds {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> list[ImageExample]:
    """MNIST's idx3 images (N, H, W) and idx1 labels (N,), as uint8 (max 255)."""
    images = _idx(path, IDX_IMAGES, 3)
    lpath = labels_path(path)
    labels = _idx(lpath, IDX_LABELS, 1)
    if len(labels) != len(images):
        raise data_error(lpath, None, f"{len(labels)} labels for {len(images)} images in {path.name}")
    return [ImageExample(img.astype(np.float32), str(int(y)), 255.0, f"{path}, image {i}") for i, (img, y) in enumerate(zip(images, labels))]


def read_pixel_csv(path: Path) -> list[ImageExample]:
    """One image per line: H·W comma-separated pixel values, then the label (a square image; max from the data)."""
    try:
        text = _open_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    rows, width = [], None
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if width is None:
            width = len(fields)
            side = math.isqrt(width - 1)
            if width < 2 or side * side != width - 1:
                raise data_error(path, no, f"{width} fields: expected a square number of pixels and a label")
        if len(fields) != width:
            raise data_error(path, no, f"expected {width} comma-separated fields, found {len(fields)}")
        try:
            pixels = [float(v) for v in fields[:-1]]
        except ValueError:
            raise data_error(path, no, "a pixel value is not a number") from None
        label = fields[-1].strip()
        if label.endswith(".0") and label[:-2].isdigit():
            label = label[:-2]  # "3.0" -> "3"
        if not label:
            raise data_error(path, no, "empty label")
        rows.append((pixels, label, no))
    if not rows:
        raise data_error(path, None, "no images in the file")
    side = math.isqrt(width - 1)
    top = max(max(p) for p, _, _ in rows)
    max_value = 16.0 if top <= 16 else 255.0 if top <= 255 else top
    return [ImageExample(np.asarray(p, np.float32).reshape(side, side), y, max_value, f"{path}, line {no}") for p, y, no in rows]
