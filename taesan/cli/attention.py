"""`taesan attention`: draw where a model's attention goes for one text (or one image, for a ViT) as a PNG.

Not the weights or the drawing (taesan.viz.attention); this module picks the input and names the file.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from taesan.cli import add_threads
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.tasks.image import ImageConfig, to_pixels
from taesan.tasks.image import load_image as task_image
from taesan.viz.attention import (
    image_attention,
    load_image,
    plot_attention,
    plot_image_attention,
    text_attention,
)

HELP = "heatmaps of a model's attention on a text (per layer and head, or a grid); ViT: over an image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint directory (GPT, BERT, encoder-decoder, ViT)")
    p.add_argument("text", nargs="?", default=None, help='the text, e.g. "어제 카페 갔었어 거기 사람 많더라" (not for a ViT)')
    p.add_argument("--layer", type=int, default=None, help="only this layer (0-based; default: every layer)")
    p.add_argument("--head", type=int, default=None, help="only this head (0-based; default: every head)")
    p.add_argument("--target", default=None, metavar="TEXT",
                   help="encoder-decoder: the target text for decoder and cross-attention (default: the model's greedy output)")
    p.add_argument("--image", default=None, metavar="FILE", help="ViT: an image (PNG/JPEG, or .npy of (H, W) / (C, H, W)), or digits:N (a bundled digit)")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="default: DIR/tokenizer.json")
    p.add_argument("--out", default="attention.png", metavar="PNG", help="where to write the PNG (default attention.png)")
    add_threads(p)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.model)
    if not directory.is_dir():
        raise TaesanError(f"{directory}: no such checkpoint directory")
    if not str(args.out).lower().endswith(".png"):
        raise TaesanError(f"--out {args.out}: the picture is a PNG; name it *.png")
    for name in ("layer", "head"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise TaesanError(f"--{name} {getattr(args, name)}: must be 0 or more")
    bundle = Bundle.load(directory, tokenizer=args.tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path = _image(bundle, args) if bundle.model_type == "vit" else _text(bundle, args)
    for w in caught:
        if "font" in str(w.message).lower():
            print(f"taesan attention: warning: {w.message}", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def _image(bundle: Bundle, args: argparse.Namespace) -> Path:
    """A ViT over one image: every layer's [CLS] attention and the rollout."""
    model = bundle.model
    if args.image is None:
        raise TaesanError("a ViT reads images: pass --image FILE")
    if args.text is not None:
        raise TaesanError("a ViT reads images, not text: drop the text and pass --image FILE")
    if bundle.task is not None or args.image.startswith("digits:"):  # the pixels the classifier was trained on
        cfg = bundle.task.config if bundle.task is not None else ImageConfig()
        pixels = to_pixels(task_image(args.image), model.config.image_size, model.config.channels, cfg.mean,
                           cfg.std)[None]  # (1, C, S, S), normalised as in finetune and predict
        shown = (pixels * cfg.std + cfg.mean).clamp(0, 1)  # (1, C, S, S) back in [0, 1] for the picture
    else:
        pixels = shown = load_image(args.image, model.config.image_size, model.config.channels)
    blocks, rollout = image_attention(model, pixels)
    return plot_image_attention(shown, blocks, rollout, args.out, args.layer, args.head)


def _text(bundle: Bundle, args: argparse.Namespace) -> Path:
    if args.text is None:
        raise TaesanError("give the text to look at, e.g. \"어제 카페 갔었어\"")
    if args.image is not None:
        raise TaesanError(f"--image: {bundle.model_type} reads text, not images")
    tokenizer = bundle.need_tokenizer()
    if args.target is not None and not bundle.seq2seq:
        raise TaesanError(f"--target is for encoder-decoder models; {bundle.model_type} has no decoder input")
    blocks = text_attention(bundle.model, tokenizer, args.text, target=args.target)
    return plot_attention(blocks, args.out, args.layer, args.head)
