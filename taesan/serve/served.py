"""The playground's model side: the checkpoints a server was started with (pipeline Bundles with a name), and the
inference behind every API call (tokenize, classify/ner/qa, generate as a stream, fill-mask, score, attention,
an image's label and attention rollout), as JSON-able dicts.

Not HTTP: no request or status code here (taesan.serve.app does that); functions take plain values, return
JSON-able dicts and raise TaesanError for anything the user can fix. Not inference of its own either: text,
scores and fills come from taesan.pipeline.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from taesan.data.embedded import korean_corpus
from taesan.errors import TaesanError
from taesan.pipeline import lm
from taesan.pipeline.bundle import Bundle, WrongTask
from taesan.pipeline.text import TextStream, sampling, stream
from taesan.tasks.readers.images import ImageExample, digits
from taesan.tokenizers import KINDS
from taesan.viz.attention import text_attention, token_labels
from taesan.viz.rollout import vit_attention_map

COMPARE_KINDS = ("word", "char", "bpe", "wordpiece")
__all__ = ["Served", "WrongTask", "load_served"]


class Served(Bundle):
    """One checkpoint being served: a Bundle, named on the command line, and the precision it runs in (set by
    create_app: a GPT decodes in it, other models run under its autocast)."""

    precision: Any = None  # taesan.pipeline.precision.Precision

    def describe(self) -> dict[str, Any]:
        task = self.task.name if self.task is not None else None
        labels = list(self.task.labels) if self.task is not None else []
        return {"name": self.name, "model_type": self.model_type, "task": task, "actions": self.actions, "labels": labels}


def load_served(name: str, directory: str | Path) -> Served:
    """A checkpoint directory -> Served (see Bundle.load). A backward LM is served for scores only: the generate
    tab streams text to the right of the prompt, which a right-to-left model does not write."""
    served = Served.load(directory, name)
    if served.objective == "backward" and "generate" in served.actions:
        served.actions.remove("generate")
    return served


# ---- tokenizers side by side ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def comparison_tokenizers(vocab_size: int = 1000, n_lines: int = 4000) -> tuple[tuple[str, Any], ...]:
    """word / char / BPE / WordPiece trained once (per process) on the embedded Korean corpus."""
    lines = korean_corpus(n_lines)
    return tuple((kind, KINDS[kind].train(lines, vocab_size=vocab_size)) for kind in COMPARE_KINDS)


def tokenize(text: str, tokenizers: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Each (label, tokenizer) cuts `text`: tokens as the text's own slices, ids, and how many are [UNK]."""
    out = []
    for label, tok in tokenizers:
        enc = tok.encode(text, add_special_tokens=False)
        unk = tok.unk_id
        out.append({"name": label, "tokens": token_labels(text, enc), "ids": enc.ids,
                    "unk": sum(1 for i in enc.ids if unk is not None and i == unk), "unk_id": unk,
                    "vocab_size": tok.vocab_size})
    return out


# ---- fine-tuned tasks --------------------------------------------------------------------------------------------


def run_task(served: Served, action: str, value: Any) -> dict[str, Any]:
    """classify / ner: `value` is the text (the task parses it); qa: {"question", "context"}."""
    served.need(action)
    task = served.task
    item = task.parse_input(value) if isinstance(value, str) else value
    return task.predict(served.model, [item])[0]


# ---- language models ---------------------------------------------------------------------------------------------


def generate_stream(served: Served, prompt: str, max_new_tokens: int, temperature: float | None, top_k: int | None,
                    top_p: float | None, seed: int | None, deadline: float | None = None) -> TextStream:
    """Continue `prompt` token by token (greedy without sampling options): iterate for each new piece of text;
    the stream's finish_reason ("stop" or "length") is set after the last. Settings are checked before the first
    piece; it stops at the model's end token or at `deadline` (time.monotonic(), TimeoutError). A GPT writes past
    its positions in a sliding window, as `taesan generate` does (it refused prompts the CLI continues)."""
    served.need("generate")
    return stream(served, prompt, deadline, sliding_window=True, max_new_tokens=max_new_tokens,
                  **sampling(temperature, top_k, top_p), seed=seed)


def fill_mask(served: Served, text: str, top_k: int = 5) -> dict[str, Any]:
    """Each [MASK] in the text -> its top_k candidates {"token", "text", "score"} from the masked LM."""
    served.need("fill-mask")
    out = lm.fill_mask(served, text, top_k)
    for mask in out["masks"]:
        for c in mask["candidates"]:
            c["score"] = round(c["score"], 4)
    return out


def score(served: Served, texts: list[str]) -> dict[str, Any]:
    """Sentence log-probabilities (natural log), highest first, with the objective that produced them."""
    served.need("score")
    out = lm.score(served, texts)
    for r in out["scores"]:
        r["log_prob"] = round(r["log_prob"], 4)
    return out


def attention(served: Served, text: str, target: str | None = None) -> dict[str, Any]:
    """Every layer's attention matrices as JSON: blocks of {"kind", "layer", "heads", "queries", "keys", "weights"}."""
    served.need("attention")
    if target is not None and not served.seq2seq:
        raise TaesanError(f"target is for encoder-decoder models; {served.model_type} has no decoder input")
    blocks = text_attention(served.model, served.tokenizer, text, target=target, max_tokens=64)
    return {"blocks": [b.to_json(3) for b in blocks]}


# ---- images (a fine-tuned ViT) -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def bundled_digits() -> tuple:
    """sklearn's 1,797 bundled 8×8 digits, read once per process (the reader `taesan finetune --train digits` uses)."""
    return tuple(digits())


def digit_image(n: int):
    """The n-th bundled digit as an ImageExample (values 0-16, its true label kept for the page)."""
    images = bundled_digits()
    if not 0 <= n < len(images):
        raise TaesanError(f"digit {n}: choose 0..{len(images) - 1}")
    return images[n]


def pixel_image(rows: list[list[float]]):
    """A grey (H, W) array with values 0-255 -> an ImageExample the image task scales and resizes like any other."""
    import numpy as np


    return ImageExample(np.asarray(rows, dtype=np.float32), None, 255.0, "pixels")


@torch.no_grad()
def classify_image(served: Served, image, top_k: int = 5) -> dict[str, Any]:
    """An ImageExample -> the predicted label, the top_k labels with probabilities, the image as the model read it
    (size × size, 0-1, channels averaged) and the [CLS] attention rollout over the patches (rows × cols, sums to 1).

    The pixels go through the task's own encode (scale, resize, normalise), as `taesan predict` does.
    """
    from dataclasses import replace


    served.need("image")
    task, model = served.task, served.model
    unlabelled = replace(image, label=None)  # a bundled digit's label need not be one of the model's labels
    prediction = task.predict(model, [unlabelled])[0]
    device = next(model.parameters()).device
    pixels = task.collate(task.encode(unlabelled))["pixel_values"].to(device)  # (1, C, S, S)
    rollout = vit_attention_map(model, pixels)[0]  # (rows, cols)
    seen = (pixels[0].float().mean(0) * task.config.std + task.config.mean).clamp(0, 1)  # (S, S)
    ranked = sorted(prediction["probabilities"].items(), key=lambda kv: -kv[1])[:top_k]
    return {"label": prediction["label"], "probability": round(prediction["probability"], 4),
            "top": [{"label": k, "probability": round(v, 4)} for k, v in ranked], "true_label": image.label,
            "image": [[round(v, 3) for v in row] for row in seen.tolist()],
            "attention": [[round(v, 4) for v in row] for row in rollout.float().tolist()]}
