"""Which token attends to which: attention weights of a text model collected per layer and head, drawn as
heatmaps (one map, one layer's heads, or the whole layer × head grid), and a ViT's attention over its image.

Not the attention itself (taesan.modules.attention returns the weights with need_weights=True) and not a
printer: functions return data or write a PNG; the CLI and the web server decide what to show.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from taesan.decoding import generate, is_encoder_decoder
from taesan.errors import TaesanError
from taesan.figures import korean_font, korean_rc, save_png
from taesan.viz.rollout import attention_rollout

CELL = 2.4  # inches per heatmap in a grid
SINGLE = 6.0  # inches of one large heatmap
DPI = 100
MAX_LABELS = 40  # beyond this many tokens an axis shows no tick labels


@dataclass
class AttentionBlock:
    """One layer's attention of one kind for one example: weights (H, Q, K), rows = queries, columns = keys.

    kind: "self" (GPT, BERT), "encoder self", "decoder self" or "cross" (decoder queries over source keys).
    """

    kind: str
    layer: int
    weights: torch.Tensor  # (H, Q, K)
    queries: list[str]
    keys: list[str]

    @property
    def title(self) -> str:
        return f"{self.kind} L{self.layer}"

    def to_json(self, digits: int = 4) -> dict:
        return {
            "kind": self.kind, "layer": self.layer, "heads": int(self.weights.shape[0]),
            "queries": self.queries, "keys": self.keys,
            "weights": [[[round(float(w), digits) for w in row] for row in head] for head in self.weights.tolist()],
        }


# ---- collecting the weights ---------------------------------------------------------------------------------------


def token_labels(text: str, enc) -> list[str]:
    """What to write on an axis: the slice of `text` each token covers (readable for byte-level BPE too);
    special tokens by name; a piece that starts a later word gets a leading "▁".

    Byte-level BPE pieces of "카페" with offsets (2,4) (3,4) (4,5) (4,5) in "어제 카페" -> "▁카", "·", "페", "·".
    """
    labels, end = [], 0
    for token, (s, e), special in zip(enc.tokens, enc.offsets, enc.special_tokens_mask or [0] * len(enc.ids)):
        if special or e <= s:
            labels.append(token)
            continue
        if s < end:  # a byte-level piece inside a character an earlier token began: "·" + what it completes
            labels.append("·" + text[end:e].strip())
        else:
            piece = text[s:e]
            # the space before a word is marked once: on the word, unless an earlier token (a char tokenizer's " ") showed it
            space = piece[:1].isspace() or (s > 0 and text[s - 1].isspace() and bool(labels) and end < s)
            labels.append(("▁" if space else "") + piece.strip() if piece.strip() else "▁")  # a space token: ▁
        end = max(end, e)
    return labels


@torch.no_grad()
def text_attention(model, tokenizer, text: str, target: str | None = None, max_tokens: int = 128,
                   max_new_tokens: int = 20) -> list[AttentionBlock]:
    """A text model's attention on `text` -> one AttentionBlock per layer (and kind), in model order.

    GPT and BERT (and BERT head models): one "self" block per layer. An encoder-decoder: "encoder self" per
    encoder layer, then "decoder self" and "cross" per decoder layer over `target` (greedy decoding of the
    source when `target` is None). Put the model in eval mode first, or attention dropout changes the maps.
    """
    if not text.strip():
        raise TaesanError("the text is empty")
    if not hasattr(model, "forward_features"):
        raise TaesanError(f"{type(model).__name__} does not expose attention weights (no forward_features)")
    if getattr(model, "model_type", "") == "vit":
        raise TaesanError("a ViT reads images, not text: pass an image instead")
    seq2seq = is_encoder_decoder(model)
    enc = tokenizer.encode(text, add_special_tokens=True)
    if not enc.ids:
        raise TaesanError(f"{text!r} encodes to no tokens")
    limit = getattr(model.config, "n_positions", None)
    limit = min(max_tokens, limit) if limit else max_tokens
    if len(enc.ids) > limit:
        raise TaesanError(f"the text is {len(enc.ids)} tokens; at most {limit} can be shown")
    ids = torch.tensor([enc.ids], device=model.device)  # (1, T)
    labels = token_labels(text, enc)
    if not seq2seq:
        _, attentions = model.forward_features(ids, need_weights=True)
        return [AttentionBlock("self", i, a["self"][0].float().cpu(), labels, labels) for i, a in enumerate(attentions)]
    tgt_ids, tgt_labels = _target(model, tokenizer, ids, target, max_new_tokens)
    _, attentions = model.forward_features(ids, tgt_ids, need_weights=True)
    n_enc = model.config.n_encoder_layers
    blocks = [AttentionBlock("encoder self", i, a["self"][0].float().cpu(), labels, labels) for i, a in enumerate(attentions[:n_enc])]
    for i, a in enumerate(attentions[n_enc:]):
        blocks.append(AttentionBlock("decoder self", i, a["self"][0].float().cpu(), tgt_labels, tgt_labels))
        blocks.append(AttentionBlock("cross", i, a["cross"][0].float().cpu(), tgt_labels, labels))
    return blocks


def _target(model, tokenizer, src_ids: torch.Tensor, target: str | None, max_new_tokens: int):
    """Decoder inputs (1, T) and their labels: the start token, then `target`'s tokens (or greedy output)."""
    start = model.config.decoder_start_token_id
    start_label = tokenizer.id_to_token(start) if hasattr(tokenizer, "id_to_token") else str(start)
    if target is not None:
        if not target.strip():
            raise TaesanError("the target text is empty")
        enc = tokenizer.encode(target, add_special_tokens=False)
        ids, labels = [start] + enc.ids, [start_label] + token_labels(target, enc)
    else:
        ids = generate(model, src_ids, max_new_tokens=max_new_tokens)[0].tolist()
        eos = model.config.eos_token_id
        ids = ids[: ids.index(eos)] if eos in ids[1:] else ids  # feed the target up to (not incl.) its end
        labels = [start_label] + [tokenizer.decode([i], skip_special_tokens=False) or str(i) for i in ids[1:]]
    if len(ids) > model.config.n_positions:
        raise TaesanError(f"the target is {len(ids)} tokens; the model reads at most {model.config.n_positions}")
    return torch.tensor([ids], device=src_ids.device), labels


def select(blocks: list[AttentionBlock], layer: int | None = None, head: int | None = None) -> list[AttentionBlock]:
    """The blocks of one layer (all when None), each narrowed to one head (all when None); checks the numbers."""
    if not blocks:
        raise TaesanError("no attention weights to show")
    layers = sorted({b.layer for b in blocks})
    heads = int(blocks[0].weights.shape[0])
    if layer is not None and layer not in layers:
        raise TaesanError(f"--layer {layer}: the model has layers 0..{layers[-1]}")
    if head is not None and not 0 <= head < heads:
        raise TaesanError(f"--head {head}: the model has heads 0..{heads - 1}")
    chosen = [b for b in blocks if layer is None or b.layer == layer]
    if head is not None:
        chosen = [AttentionBlock(b.kind, b.layer, b.weights[head : head + 1], b.queries, b.keys) for b in chosen]
    return chosen


# ---- drawing ------------------------------------------------------------------------------------------------------


def _font_rc() -> dict:
    font = korean_font()
    if font is None:
        warnings.warn("no Nanum font found (apt-get install fonts-nanum): Korean labels may show as empty boxes", stacklevel=3)
        return {}
    return korean_rc(font)


def _heatmap(ax, weights: torch.Tensor, queries: list[str], keys: list[str], title: str, fontsize: float, labels: bool) -> object:
    """One (Q, K) map, query tokens down the side, key tokens along the top; returns the image (for a colorbar)."""
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=fontsize + 1)
    if labels and max(len(queries), len(keys)) <= MAX_LABELS:
        ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(len(queries)), queries, fontsize=fontsize)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def figure_size(n_rows: int, n_cols: int) -> tuple[float, float]:
    """Inches (width, height) of a PNG from `plot_attention`: one large map, or CELL inches per grid cell."""
    if n_rows == n_cols == 1:
        return SINGLE, SINGLE
    return CELL * n_cols, CELL * n_rows


def plot_attention(blocks: list[AttentionBlock], path: str | Path, layer: int | None = None, head: int | None = None) -> Path:
    """Write a PNG of `blocks` narrowed by `layer`/`head`: a grid with one row per (kind, layer), one column per head.

    One layer and one head give one large labelled map (the causal triangle of a GPT, the source ↔ target
    alignment of cross-attention). The PNG is figure_size(rows, cols) × DPI pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = select(blocks, layer, head)
    n_rows, n_cols = len(chosen), int(chosen[0].weights.shape[0])
    single = n_rows == n_cols == 1
    with matplotlib.rc_context(_font_rc()):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=figure_size(n_rows, n_cols), dpi=DPI, squeeze=False, layout="constrained")
        image = None
        for r, block in enumerate(chosen):
            for h in range(n_cols):
                shown = h if head is None else head
                title = f"{block.title} H{shown}"
                image = _heatmap(axes[r, h], block.weights[h], block.queries, block.keys, title,
                                 fontsize=9 if single else 5, labels=single or len(block.keys) <= 16)
        if single:
            fig.colorbar(image, ax=axes[0, 0], shrink=0.8)
        return save_png(fig, path, dpi=DPI)


# ---- images (ViT) -------------------------------------------------------------------------------------------------


def load_image(path: str | Path, image_size: int, channels: int) -> torch.Tensor:
    """An image file (PNG/JPEG/..., or .npy of (H, W) / (C, H, W)) -> pixels (1, C, S, S) in [0, 1], resized."""
    import numpy as np
    import torch.nn.functional as F

    path = Path(path)
    if not path.is_file():
        raise TaesanError(f"{path}: image file not found")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False).astype("float32")
        except (ValueError, OSError) as e:
            raise TaesanError(f"{path}: not a numpy array file ({e})") from None
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise TaesanError(f"{path}: expected an (H, W) or (C, H, W) array, got shape {array.shape}")
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo) if hi > lo else array * 0
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                array = np.asarray(img, dtype="float32") / 255.0
        except (UnidentifiedImageError, OSError) as e:
            raise TaesanError(f"{path}: not an image file ({e.__class__.__name__})") from None
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (C, H, W)
    if array.shape[0] != channels:
        raise TaesanError(f"{path}: {array.shape[0]} channels, the model reads {channels}")
    pixels = torch.from_numpy(np.ascontiguousarray(array))[None]  # (1, C, H, W)
    return F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)


@torch.no_grad()
def image_attention(model, pixels: torch.Tensor) -> tuple[list[AttentionBlock], torch.Tensor]:
    """A ViT on pixels (1, C, H, W) -> ([CLS] row of each layer as blocks (H, 1, N) over the patches,
    the rolled-out [CLS] map (rows, cols))."""
    _, attentions = model.forward_features(pixels, need_weights=True)
    p = model.config.patch_size
    rows, cols = pixels.shape[-2] // p, pixels.shape[-1] // p
    patches = [f"p{i}" for i in range(rows * cols)]
    blocks = [AttentionBlock("[CLS] → patches", i, a["self"][0, :, :1, 1:].float().cpu(), ["[CLS]"], patches)
              for i, a in enumerate(attentions)]
    cls_map = attention_rollout(attentions)[0, 0, 1:]  # (N,)
    return blocks, (cls_map / cls_map.sum()).reshape(rows, cols).cpu()  # (rows, cols)


def plot_image_attention(pixels: torch.Tensor, blocks: list[AttentionBlock], rollout: torch.Tensor, path: str | Path,
                         layer: int | None = None, head: int | None = None) -> Path:
    """A PNG: the image and its rollout overlay on the first row, then each layer's heads' [CLS] maps on the image grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    chosen = select(blocks, layer, head)
    rows, cols = rollout.shape
    n_cols = max(2, int(chosen[0].weights.shape[0]))
    img = pixels[0].float().cpu()
    shown = (img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy()  # (H, W) or (H, W, C)
    cmap = "gray" if img.shape[0] == 1 else None
    H, W = img.shape[-2:]
    with matplotlib.rc_context(_font_rc()):
        fig, axes = plt.subplots(len(chosen) + 1, n_cols, figsize=figure_size(len(chosen) + 1, n_cols), dpi=DPI, squeeze=False,
                                 layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].imshow(shown, cmap=cmap)
        axes[0, 0].set_title("image", fontsize=7)
        up = F.interpolate(rollout[None, None], size=(H, W), mode="nearest")[0, 0]  # (H, W)
        axes[0, 1].imshow(shown, cmap=cmap)
        axes[0, 1].imshow(up.numpy(), cmap="inferno", alpha=0.6)
        axes[0, 1].set_title("rollout", fontsize=7)
        for r, block in enumerate(chosen, start=1):
            for h in range(block.weights.shape[0]):
                ax = axes[r, h]
                ax.imshow(block.weights[h, 0].reshape(rows, cols).numpy(), cmap="viridis", interpolation="nearest")
                ax.set_title(f"L{block.layer} H{h if head is None else head}", fontsize=7)
        return save_png(fig, path, dpi=DPI)
