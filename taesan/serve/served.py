"""The playground's model side: the checkpoints a server was started with, what each can do, and the
inference behind every API call (tokenize, classify/ner/qa, generate as a stream, fill-mask, score, attention,
an image's label and attention rollout).

Not HTTP: no request or status code here (taesan.serve does that); functions take plain values, return
JSON-able dicts and raise TaesanError for anything the user can fix.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from taesan.checkpoint import read_training, stop_id
from taesan.data.embedded import korean_corpus
from taesan.decoding import generate
from taesan.errors import TaesanError
from taesan.scoring import score_texts
from taesan.tasks import TASK_FILE
from taesan.tasks.readers.images import ImageExample, digits
from taesan.tokenizers import KINDS
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.finetune import load_finetuned
from taesan.tuning.load import load
from taesan.viz.attention import text_attention, token_labels
from taesan.viz.rollout import vit_attention_map

TASK_ACTIONS = {"classification": "classify", "pair-classification": "classify", "ner": "ner", "qa": "qa",
                "image-classification": "image"}
GENERATING_TASKS = ("generation", "translation")  # fine-tuned for text out: the generate tab streams them
COMPARE_KINDS = ("word", "char", "bpe", "wordpiece")


@dataclass
class Served:
    """One checkpoint being served: its model (eval mode), tokenizer, task (fine-tuned ones) and actions."""

    name: str
    directory: Path
    model: Any
    tokenizer: Any
    task: Any = None
    actions: list[str] = field(default_factory=list)
    objective: str | None = None  # what score uses: causal / backward / masked
    stop_id: int | None = None  # a GPT's document separator (generation stops there)

    @property
    def model_type(self) -> str:
        return getattr(self.model, "model_type", type(self.model).__name__)

    def describe(self) -> dict[str, Any]:
        task = self.task.name if self.task is not None else None
        labels = list(self.task.labels) if self.task is not None else []
        return {"name": self.name, "model_type": self.model_type, "task": task, "actions": self.actions, "labels": labels}

    def need(self, action: str) -> None:
        if action not in self.actions:
            can = ", ".join(self.actions) or "nothing here"
            raise WrongTask(f"model {self.name!r} ({self.model_type}) cannot {action} (it can: {can})")


class WrongTask(TaesanError):
    """A served model asked for something it was not built for (HTTP 400)."""


def load_served(name: str, directory: str | Path) -> Served:
    """A checkpoint directory -> Served: fine-tuned ones (task.json) through load_finetuned, others through taesan.load."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TaesanError(f"{directory}: no such checkpoint directory")
    task = None
    if (directory / TASK_FILE).is_file():
        model, task = load_finetuned(directory)
        tokenizer = task.tokenizer
    else:
        model = load(directory).eval()
        tok_path = directory / "tokenizer.json"
        tokenizer = load_tokenizer(tok_path) if tok_path.is_file() else None
    served = Served(name, directory, model.eval(), tokenizer, task)
    kind = served.model_type
    if task is not None and task.name in TASK_ACTIONS:
        served.actions.append(TASK_ACTIONS[task.name])
    if tokenizer is not None and kind != "vit":
        served.actions.append("tokenize")
        seq2seq = hasattr(model, "encode") and hasattr(model, "decode")
        if task is not None and task.name in GENERATING_TASKS:
            served.actions.append("generate")
        backward = task is None and _objective(directory, kind) == "backward"  # it writes leftwards: score only
        if task is None and (kind == "gpt" or seq2seq) and not backward:
            served.actions.append("generate")
            served.stop_id = None if seq2seq else stop_id(directory, tokenizer)
        if task is None and kind == "bert-mlm" and tokenizer.mask_id is not None:
            served.actions.append("fill-mask")
        served.objective = _objective(directory, kind) if task is None else None
        if served.objective is not None:
            served.actions.append("score")
        if hasattr(model, "forward_features"):
            served.actions.append("attention")
    return served


def _objective(directory: Path, kind: str) -> str | None:
    return read_training(directory).get("objective") or {"gpt": "causal", "bert-mlm": "masked"}.get(kind)


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


def _positions(served: Served) -> int | None:
    return getattr(getattr(served.model, "config", None), "n_positions", None)


def generate_stream(served: Served, prompt: str, max_new_tokens: int, temperature: float | None, top_k: int | None,
                    top_p: float | None, seed: int | None, deadline: float | None = None) -> Iterator[str]:
    """Continue `prompt` token by token; yields each new piece of text (greedy without sampling options).

    Settings are checked before the first yield, so errors surface before anything is streamed.
    Stops at the model's end token or at `deadline` (time.monotonic()).
    """
    served.need("generate")
    tok, model = served.tokenizer, served.model
    seq2seq = hasattr(model, "encode") and hasattr(model, "decode")
    ids, stop, strip = _prompt_ids(served, prompt, seq2seq)
    if not ids:
        raise TaesanError("the prompt encodes to no tokens")
    limit = _positions(served)
    if limit is not None and not seq2seq and len(ids) + max_new_tokens > limit:
        raise TaesanError(f"the prompt is {len(ids)} tokens; with max_new_tokens {max_new_tokens} that exceeds the model's {limit} positions")
    if limit is not None and seq2seq and (len(ids) > limit or max_new_tokens >= limit):
        raise TaesanError(f"the source is {len(ids)} tokens and max_new_tokens {max_new_tokens}; the model has {limit} positions for each")
    sample = any(v is not None for v in (temperature, top_k, top_p))
    settings = dict(max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature or 1.0, top_k=top_k or 0,
                    top_p=top_p if top_p is not None else 1.0, seed=seed)
    if stop is not None or not seq2seq:  # an encoder-decoder without a task stops at its config's eos
        settings["eos_token_id"] = [] if stop is None else stop
    steps = generate(model, torch.tensor([ids], device=model.device), stream=True, **settings)

    def decode(new: list[int]) -> str:
        text = tok.decode([i for i in new if i != stop])
        return text[len(strip):] if strip and text.startswith(strip) else text

    return _pieces(steps, decode, deadline, strip)


def _prompt_ids(served: Served, prompt: str, seq2seq: bool) -> tuple[list[int], int | None, str]:
    """(prompt ids, the end token, text the model puts before its answer) as the checkpoint was trained:
    a fine-tuned generation/translation task encodes as its task does; a pretrained GPT reads its prompt
    after the document separator; an encoder-decoder reads the source with its special tokens."""
    task, tok = served.task, served.tokenizer
    if task is not None and task.name == "generation":
        return task.prompt_ids(prompt), task.eos_id, task.config.separator
    if task is not None and task.name == "translation":
        return task.ids(prompt, task.config.max_length), task.eos_id, ""
    ids = tok.encode(prompt, add_special_tokens=seq2seq).ids
    stop = served.stop_id
    if not seq2seq and stop is not None and ids:
        ids = [stop] + ids  # the model saw documents after a separator
    return ids, stop, ""


def _pieces(steps, decode, deadline: float | None, strip: str = "") -> Iterator[str]:
    """Decode everything so far and yield what is new; a byte-level token ending inside a character waits,
    and so does a first piece that may still grow into the separator `strip`."""
    new: list[int] = []
    shown = 0
    for tokens in steps:
        new.append(int(tokens[0]))
        text = decode(new)
        if strip and shown == 0 and strip.startswith(text):
            continue
        if not text.endswith("\ufffd") and len(text) > shown:
            yield text[shown:]
            shown = len(text)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("generation ran out of time")
    text = decode(new)
    if len(text) > shown:
        yield text[shown:]


@torch.no_grad()
def fill_mask(served: Served, text: str, top_k: int = 5) -> dict[str, Any]:
    """Each [MASK] in `text` -> its top_k candidates {"token", "score"} from the masked LM."""
    served.need("fill-mask")
    tok, model = served.tokenizer, served.model
    mask_token = tok.id_to_token(tok.mask_id)
    enc = tok.encode(text)
    where = [i for i, t in enumerate(enc.ids) if t == tok.mask_id]
    if not where:
        raise TaesanError(f"put {mask_token} where a word is missing, e.g. \"티끌 {mask_token} 태산\"")
    limit = _positions(served)
    if limit is not None and len(enc.ids) > limit:
        raise TaesanError(f"the text is {len(enc.ids)} tokens; the model reads at most {limit}")
    logits = model(torch.tensor([enc.ids], device=model.device))[0]  # (T, V)
    probs = logits[where].float().softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    masks = []
    for pos, values, indices in zip(where, top.values.tolist(), top.indices.tolist()):
        candidates = [{"token": tok.id_to_token(i), "text": tok.decode([i]), "score": round(v, 4)} for v, i in zip(values, indices)]
        masks.append({"position": pos, "candidates": candidates})
    return {"tokens": enc.tokens, "masks": masks}


def score(served: Served, texts: list[str]) -> dict[str, Any]:
    """Sentence log-probabilities (natural log), highest first, with the objective that produced them."""
    served.need("score")
    start = served.stop_id if served.objective != "masked" else None
    values = score_texts(served.model, served.tokenizer, texts, served.objective, start_id=start)
    ranked = sorted(({"text": t, "log_prob": round(v, 4)} for t, v in zip(texts, values)), key=lambda r: -r["log_prob"])
    return {"objective": served.objective, "scores": ranked}


def attention(served: Served, text: str, target: str | None = None) -> dict[str, Any]:
    """Every layer's attention matrices as JSON: blocks of {"kind", "layer", "heads", "queries", "keys", "weights"}."""
    served.need("attention")
    seq2seq = hasattr(served.model, "encode") and hasattr(served.model, "decode")
    if target is not None and not seq2seq:
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
