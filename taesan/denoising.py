"""Denoising pretraining for an encoder-decoder (BART's text infilling, Lewis et al. 2020): the encoder reads a text
with spans cut out, each span replaced by ONE <mask> token, and the decoder writes the whole original text back.

Why: a translation model is an encoder-decoder, and the causal / masked objectives train half of one (a decoder-only
LM, an encoder). Text infilling trains both halves and the cross-attention between them on monolingual text, in the
shape fine-tuning uses (source ids in, target ids out by teacher forcing). Because one <mask> may hide 0..n tokens,
the decoder must also learn how long a sentence is — BART found this the best of its noising functions.
The spans are laid out as in T5's `random_spans_noise_mask` (Raffel et al. 2020): `noise_density` (30%) of a row's
real tokens in spans of mean length `mean_span` (3), so every row carries the same amount of noise.

Not sentence permutation (BART's second noise: rows here are short windows, mostly one or two sentences) and not T5's
sentinel targets (the decoder writes the full text, as BART's, so it practises writing whole sentences).
Not in objectives.py: that module is at the floor below and holds the objectives every model family shares.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from taesan.data import pad_batch
from taesan.errors import TaesanError
from taesan.objectives import Objective, Seq2SeqLM, lm_outputs


def random_segmentation(n_items: int, n_segments: int, generator: torch.Generator | None = None) -> list[int]:
    """`n_items` split into `n_segments` random positive lengths that sum to it (T5's `_random_segmentation`).

    random_segmentation(7, 3) -> e.g. [2, 4, 1]
    """
    if not 1 <= n_segments <= n_items:
        raise ValueError(f"cannot split {n_items} items into {n_segments} non-empty segments")
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1] + 1  # distinct cut points in 1..n-1
    bounds = [0, *sorted(cuts.tolist()), n_items]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def noise_spans(length: int, noise_density: float = 0.3, mean_span: float = 3.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(length,) bool, True on the tokens to hide: round(length x noise_density) of them (at least 1, and at least
    one token kept), in round(that / mean_span) spans (at least 1) separated by kept tokens; a row may start with a span.

    noise_spans(10, 0.3, 3.0) -> e.g. [F, F, T, T, T, F, F, F, F, F]
    """
    if length < 2:
        return torch.zeros(length, dtype=torch.bool)
    n_noise = min(max(1, round(length * noise_density)), length - 1)
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, length - n_noise))
    noise = random_segmentation(n_noise, n_spans, generator)
    kept = random_segmentation(length - n_noise, n_spans, generator)
    first_noise = bool(torch.rand((), generator=generator) < 0.5)  # else every row would open with kept text
    mask, pos = torch.zeros(length, dtype=torch.bool), 0
    for n_len, k_len in zip(noise, kept):
        if first_noise:
            mask[pos: pos + n_len] = True
            pos += n_len + k_len
        else:
            mask[pos + k_len: pos + k_len + n_len] = True
            pos += k_len + n_len
    return mask


def infill(ids: Sequence[int], hidden: torch.Tensor, mask_id: int) -> list[int]:
    """The encoder's input: `ids` with each run of hidden positions replaced by one `mask_id`.

    infill([5, 6, 7, 8, 9], [F, T, T, F, T], mask_id=3) -> [5, 3, 8, 3]
    """
    out: list[int] = []
    for i, token in enumerate(ids):
        if not hidden[i]:
            out.append(int(token))
        elif i == 0 or not hidden[i - 1]:
            out.append(mask_id)
    return out


class Denoising(Objective):
    """BART text infilling: inputs = the row with 30% of its tokens hidden in spans (one <mask> per span), target =
    the row itself, trained by teacher forcing (Seq2SeqLM: the decoder reads [start] y1 … y_{n-1}, predicts y1 … yn).

    A batch holds "input_ids" (B, T) (+ optional "attention_mask"); padding is neither noised nor predicted. The model
    is an encoder-decoder taking src_ids, tgt_ids, src_mask, tgt_mask (taesan's Seq2SeqTransformer, T5). The loss is
    the fused fp32 cross-entropy of objectives.lm_outputs, as in translation fine-tuning.
    """

    name = "denoising"

    def __init__(self, mask_id: int, decoder_start_id: int, pad_id: int, noise_density: float = 0.3,
                 mean_span: float = 3.0) -> None:
        if not 0.0 < noise_density < 1.0:
            raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
        if mean_span < 1.0:
            raise ValueError(f"mean_span must be >= 1, got {mean_span}")
        self.mask_id, self.pad_id = mask_id, pad_id
        self.noise_density, self.mean_span = noise_density, mean_span
        self.teacher = Seq2SeqLM(decoder_start_id, pad_id)

    def corrupt(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """-> the Seq2SeqLM batch: "input_ids"/"attention_mask" (the infilled rows, right-padded) and
        "target_ids"/"target_mask" (the original rows)."""
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        sources = []
        for row, real in zip(ids.tolist(), mask.bool().tolist()):
            tokens = [t for t, r in zip(row, real) if r]
            hidden = noise_spans(len(tokens), self.noise_density, self.mean_span, generator)
            sources.append(infill(tokens, hidden, self.mask_id))
        src = pad_batch(sources, self.pad_id, length=max(1, max(len(s) for s in sources)))
        target = torch.where(mask.bool(), ids, torch.full_like(ids, self.pad_id))
        return {"input_ids": src["input_ids"].to(ids.device), "attention_mask": src["attention_mask"].to(ids.device),
                "target_ids": target, "target_mask": mask}

    def prepare(self, batch, generator=None):
        return self.teacher.prepare(self.corrupt(batch, generator), generator)

    def run_model(self, model: Any, inputs: dict[str, Any], labels: Any = None) -> Any:
        return lm_outputs(model, inputs)


def require_specials(tokenizer: Any) -> None:
    """The tokens the objective writes: <mask> (the infill, or [MASK]) and a padding token; a one-line error naming both."""
    if tokenizer.mask_id is None or tokenizer.pad_id is None:
        raise TaesanError("the denoising objective needs the tokenizer's <mask> and <pad> tokens: train it with "
                          "--special-tokens \"<pad>\" \"<s>\" \"</s>\" \"<mask>\"")


def denoising_for(tokenizer: Any, decoder_start_id: int, noise_density: float = 0.3, mean_span: float = 3.0) -> Denoising:
    """The objective for a tokenizer with a <mask> token (the infill) and a padding token (noise_density is checked
    by Denoising, and for the command line by pipeline.pretrain.Recipe)."""
    require_specials(tokenizer)
    return Denoising(tokenizer.mask_id, decoder_start_id, tokenizer.pad_id, noise_density, mean_span)
