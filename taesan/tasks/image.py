"""Image classification with ViT: pixels scaled to [0, 1], resized to the model's image size and channels,
normalised with mean/std 0.5 (as HF's ViT image processor), then [CLS] -> a fresh classifier.

Not an image library: images come from taesan.tasks.readers.images (digits, MNIST idx, pixel CSV) or,
for `predict`, a PNG/JPEG/.npy path or `digits:N` (the N-th bundled digit).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taesan.errors import TaesanError
from taesan.models.vit import ViT
from taesan.objectives import IGNORE_INDEX
from taesan.tasks.base import TaskConfig, check_labels, replace_config
from taesan.tasks.classification import SequenceClassification, order_labels
from taesan.tasks.readers.images import DIGITS, ImageExample, digits, read_images


@dataclass
class ImageConfig(TaskConfig):
    image_size: int = 0  # the model's input size (square); set by build_model
    channels: int = 0  # the model's input channels (1 grey, 3 RGB); set by build_model
    mean: float = 0.5  # pixels in [0, 1] become (x - mean) / std
    std: float = 0.5


def to_pixels(image: ImageExample, size: int, channels: int, mean: float, std: float) -> torch.Tensor:
    """Raw pixels (H, W) or (C, H, W) -> a normalised (channels, size, size) tensor.

    Grey images are repeated to 3 channels; colour images averaged to 1 channel; other sizes resized
    bilinearly with antialiasing (MNIST's 28×28 into an 8×8 model, say).
    """
    x = torch.as_tensor(np.asarray(image.pixels, dtype=np.float32)) / float(image.max_value)
    if x.dim() == 2:
        x = x[None]  # (1, H, W)
    if x.dim() != 3:
        raise TaesanError(f"{image.source or 'image'}: expected (H, W) or (C, H, W) pixels, got shape {tuple(x.shape)}")
    if x.shape[0] != channels:
        if x.shape[0] == 1:
            x = x.expand(channels, -1, -1)  # (channels, H, W)
        elif channels == 1:
            x = x.mean(0, keepdim=True)  # (1, H, W)
        else:
            raise TaesanError(f"{image.source or 'image'}: {x.shape[0]} channels cannot feed a {channels}-channel model")
    if tuple(x.shape[1:]) != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]  # (C, size, size)
    return (x - mean) / std


def load_image(text: str) -> ImageExample:
    """A `predict` argument: `digits:N`, a .npy array file, or an image file PIL reads (PNG, JPEG, ...)."""
    if text.startswith(DIGITS + ":"):
        images = digits()
        try:
            return images[int(text.split(":", 1)[1])]
        except (ValueError, IndexError):
            raise TaesanError(f"{text!r}: expected digits:N with N in 0..{len(images) - 1}") from None
    path = Path(text)
    if not path.is_file():
        raise TaesanError(f"{text}: no such image file (or use digits:N for a bundled digit)")
    if path.suffix.lower() == ".npy":
        try:
            return ImageExample(np.load(path, allow_pickle=False).astype(np.float32), None, 255.0, str(path))
        except ValueError as e:
            raise TaesanError(f"{path}: not a numeric .npy array ({e})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("L" if img.mode in ("1", "L", "LA", "P", "I;16") else "RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as e:
        raise TaesanError(f"{path}: not an image file PIL can read ({e})") from None
    if array.ndim == 3:
        array = array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return ImageExample(array, None, 255.0, str(path))


class ImageClassification(SequenceClassification):
    """An image -> one label, on a ViT whose classifier is reset to the training labels."""

    name = "image-classification"
    config_class = ImageConfig
    needs_tokenizer = False  # `taesan finetune` asks for no --tokenizer

    def read(self, path: str | Path) -> list[ImageExample]:
        return read_images(path)

    def fit_labels(self, examples: Sequence[Any]) -> None:
        if not self.config.labels:
            replace_config(self, labels=order_labels({ex.label for ex in examples}))

    def as_example(self, item: Any) -> ImageExample:
        if isinstance(item, ImageExample):
            return item
        if isinstance(item, str):
            return load_image(item)
        return ImageExample(np.asarray(item, dtype=np.float32), None, 255.0, "input")

    def parse_input(self, text: str) -> ImageExample:
        return load_image(text)

    def encode(self, example: ImageExample) -> list[dict[str, Any]]:
        c = self.config
        if not c.image_size:
            raise TaesanError("the image task does not know the model's image size yet (build_model first)")
        pixels = to_pixels(example, c.image_size, c.channels, c.mean, c.std)
        label = IGNORE_INDEX if example.label is None else check_labels(self.labels, example.label, example.source or "input")
        return [{"pixel_values": pixels, "labels": label}]

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.stack([f["pixel_values"] for f in features]),  # (B, C, H, W)
            "labels": torch.tensor([f["labels"] for f in features], dtype=torch.long),  # (B,)
        }

    def build_model(self, model: nn.Module) -> nn.Module:
        """A ViT with a fresh classifier for this task's labels (kept when it already has exactly them)."""
        if not isinstance(model, ViT):
            raise TaesanError(f"the {self.name} task needs a ViT model (vit-tiny, ...), got {type(model).__name__}")
        labels = self.labels
        if not labels:
            raise TaesanError(f"the {self.name} task has no labels yet (fit_labels on the training examples first)")
        if model.config.labels != labels or model.config.num_labels != len(labels):
            model.reset_classifier(len(labels), labels)
        replace_config(self, image_size=model.config.image_size, channels=model.config.channels)
        return model
