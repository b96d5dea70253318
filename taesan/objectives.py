"""The upstream objectives: causal LM (forward), backward LM, masked LM (BERT's 15% / 80-10-10) and
seq2seq teacher forcing — each turns a batch of ids into (model inputs, labels) and owns the loss.

Not a model (models return logits) and not a data loader. Labels of ignored positions are -100.
The Trainer speaks to an objective (or a fine-tuning task) only through `prepare`, `run_model`, `loss`, `metrics`.
In training, the language-model objectives ask the model for what its output layer reads (`pre_logits=True`) and
that layer (`output_layer()`), and compute the loss chunk by chunk (modules.lm_loss): the (N, vocab) logits, the
largest tensors of a small model's step, never exist. The loss is the same as on the logits (tests hold them equal).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from taesan.errors import TaesanError
from taesan.modules.lm_loss import linear_cross_entropy


IGNORE_INDEX = -100


@dataclass
class PreLogits:
    """What a language-model objective gets from the model in training instead of its logits: the hidden states
    the output layer reads and that layer, logits = hidden @ weight.T + bias.

    dtype: the precision the products run in (autocast's, when the model ran under it); the loss is fp32 anyway.
    """

    hidden: torch.Tensor  # (..., C)
    weight: torch.Tensor  # (V, C)
    bias: torch.Tensor | None  # (V,)
    dtype: torch.dtype | None = None

    def logits(self) -> torch.Tensor:
        """The logits (..., V) in fp32, for metrics."""
        with torch.autocast(self.hidden.device.type, enabled=False):
            logits = self.hidden.float() @ self.weight.float().t()
            return logits + self.bias.float() if self.bias is not None else logits


def _sharded(model: Any) -> bool:
    """An FSDP-sharded model's weights exist whole only inside its forward. Asked without importing FSDP (it pulls
    in sympy, seconds): a model cannot be sharded before the trainer imported it."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def lm_outputs(model: Any, inputs: dict[str, Any]) -> torch.Tensor | PreLogits:
    """A language model's outputs for its objective: PreLogits when the model lends its output layer and a gradient
    is wanted (training), else its logits. A DDP wrapper lends none (its reducer must see every parameter used in
    its own forward) and neither does an FSDP-sharded model; both give logits, as does evaluation."""
    layer = getattr(model, "output_layer", None) if not _sharded(model) else None
    parts = layer() if layer is not None and torch.is_grad_enabled() else None
    if parts is None:
        return model(**inputs)
    hidden = model(**inputs, pre_logits=True)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    return PreLogits(hidden, parts[0], parts[1], dtype)


def aligned(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (..., X), labels) -> flat (N, X) and (N,): scores of every position, or of the labelled positions
    only (a masked LM's head scores just the masked ones, in row-major order).

    aligned(scores (2, 3, V), labels (2, 3)) -> (6, V), (6,); aligned(scores (2, V), [[-100, 7, 9]]) -> (2, V), [7, 9]
    """
    X = logits.shape[-1]
    if tuple(logits.shape[:-1]) == tuple(labels.shape):
        return logits.reshape(-1, X), labels.reshape(-1)  # (N, X), (N,)
    kept = labels[labels != IGNORE_INDEX]  # (N,)
    if logits.dim() != 2 or logits.shape[0] != kept.shape[0]:
        raise ValueError(f"outputs of shape {tuple(logits.shape)} match neither the labels {tuple(labels.shape)} "
                         f"nor their {kept.shape[0]} labelled positions")
    return logits, kept


class Objective:
    """What the Trainer needs from a training signal (pretraining objective or fine-tuning task):

    - `prepare(batch, generator) -> (inputs, labels)`: `inputs` is the model's keyword arguments,
      `generator` a seeded torch.Generator for random choices (its state is saved with the trainer);
    - `run_model(model, inputs, labels) -> outputs`: the model's logits (the default: `model(**inputs)`), or what
      a language-model objective asks for instead (PreLogits); the Trainer calls it under its autocast;
    - `loss(outputs, labels) -> scalar`: the mean over counted positions, in fp32;
    - `metrics(outputs, labels) -> {name: (sum, count)}`: summed over a batch, so evaluation can
      aggregate many batches exactly before dividing;
    - optionally `summarize({name: (total sum, total count)}) -> {name: value}` when a score is not
      a plain ratio (F1 from summed tp/fp/fn); without it each metric is sum / count.
    `labels` may be a tensor or a dict of tensors (e.g. QA start and end); the Trainer moves both to the device.
    """

    name = "objective"

    def prepare(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def run_model(self, model: Any, inputs: dict[str, Any], labels: Any = None) -> Any:
        """What `loss` and `metrics` read: the model's logits."""
        return model(**inputs)

    def loss(self, logits: torch.Tensor | PreLogits, labels: torch.Tensor) -> torch.Tensor:
        """Token-level cross-entropy over positions whose label is not -100 (0 when there is none)."""
        if isinstance(logits, PreLogits):
            hidden, labels = aligned(logits.hidden, labels)  # (N, C), (N,)
            return linear_cross_entropy(hidden, logits.weight, labels, IGNORE_INDEX, bias=logits.bias, dtype=logits.dtype)
        flat, labels = aligned(logits.float(), labels)  # (N, V), (N,)
        total = F.cross_entropy(flat, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / (labels != IGNORE_INDEX).sum().clamp(min=1)

    @torch.no_grad()
    def metrics(self, logits: torch.Tensor | PreLogits, labels: torch.Tensor) -> dict[str, tuple[float, int]]:
        """{"loss": (Σ token losses, n tokens), "accuracy": (n correct, n tokens)}; perplexity = exp(loss)."""
        if isinstance(logits, PreLogits):
            logits = logits.logits()
        flat, labels = aligned(logits.float(), labels)  # (N, V), (N,)
        n = int((labels != IGNORE_INDEX).sum())
        total = float(F.cross_entropy(flat, labels, ignore_index=IGNORE_INDEX, reduction="sum"))
        correct = int(((flat.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum())
        return {"loss": (total, n), "accuracy": (correct, n)}


# ---- causal and backward language models ------------------------------------------------------------------


def shift_for_next_token(
    ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(B, T+1) ids -> inputs (B, T), their mask, labels (B, T) = the next token, -100 where it is padding.

    shift_for_next_token([[5, 6, 7]]) -> inputs [[5, 6]], labels [[6, 7]]
    """
    inputs, labels = ids[:, :-1], ids[:, 1:].clone()
    mask = None
    if attention_mask is not None:
        mask = attention_mask[:, :-1]
        labels[attention_mask[:, 1:] == 0] = IGNORE_INDEX
    return inputs, mask, labels


def reverse_real_tokens(ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse each row's real tokens in place of one another; padding stays where it is.

    reverse_real_tokens([[1, 2, 3, 0]], mask [[1, 1, 1, 0]]) -> [[3, 2, 1, 0]]; left padding likewise:
    [[0, 1, 2, 3]] with mask [[0, 1, 1, 1]] -> [[0, 3, 2, 1]].
    """
    if attention_mask is None:
        return ids.flip(-1)
    real = attention_mask.bool()
    order = torch.argsort((~real).to(torch.int8), dim=-1, stable=True)  # (B, T) real positions first, in order
    rank = real.long().cumsum(-1) - 1  # (B, T) k for the k-th real token
    length = real.sum(-1, keepdim=True)  # (B, 1)
    source = torch.gather(order, 1, (length - 1 - rank).clamp(min=0))  # (B, T) position of the mirrored token
    return torch.where(real, torch.gather(ids, 1, source), ids)


class CausalLM(Objective):
    """Next-word prediction (GPT: 티끌 모아 → 태산). A batch holds (B, T+1) ids (+ optional attention_mask)."""

    name = "causal"

    def prepare(self, batch, generator=None):
        inputs, mask, labels = shift_for_next_token(batch["input_ids"], batch.get("attention_mask"))
        return ({"input_ids": inputs} if mask is None else {"input_ids": inputs, "attention_mask": mask}), labels

    def run_model(self, model, inputs, labels=None):
        return lm_outputs(model, inputs)


class BackwardLM(CausalLM):
    """The same model reading right to left (ELMo's backward LM): each row's real tokens reversed, then causal."""

    name = "backward"

    def prepare(self, batch, generator=None):
        mask = batch.get("attention_mask")
        reversed_ids = reverse_real_tokens(batch["input_ids"], mask)
        return super().prepare({**batch, "input_ids": reversed_ids}, generator)


# ---- masked language model ---------------------------------------------------------------------------------


class MaskedLM(Objective):
    """Fill in the blank (BERT: 티끌 [MASK] 태산). Of the non-special real tokens, `mask_prob` (15%) are
    chosen; of those 80% become [MASK], 10% a random non-special token, 10% stay. Labels: the original
    token at chosen positions, -100 elsewhere. Special tokens are never chosen.
    """

    name = "masked"

    def __init__(self, mask_id: int, vocab_size: int, special_ids: Sequence[int], mask_prob: float = 0.15,
                 replace_prob: float = 0.8, random_prob: float = 0.1) -> None:
        if not 0.0 < mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
        self.mask_id, self.vocab_size = mask_id, vocab_size
        self.mask_prob, self.replace_prob, self.random_prob = mask_prob, replace_prob, random_prob
        self.special = torch.zeros(vocab_size, dtype=torch.bool)
        self.special[torch.as_tensor(sorted(set(special_ids) | {mask_id}), dtype=torch.long)] = True
        self.ordinary = torch.nonzero(~self.special).squeeze(1)  # (V',) ids a random replacement may take

    def prepare(self, batch, generator=None):
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        candidates = ~self.special.to(ids.device)[ids]  # (B, T)
        if mask is not None:
            candidates &= mask.bool()
        draw = lambda: torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)  # noqa: E731
        chosen = candidates & (draw() < self.mask_prob)
        action = draw()  # one uniform per position decides [MASK] / random / keep
        to_mask = chosen & (action < self.replace_prob)
        to_random = chosen & (action >= self.replace_prob) & (action < self.replace_prob + self.random_prob)
        picks = torch.randint(len(self.ordinary), ids.shape, generator=generator, device="cpu").to(ids.device)
        corrupted = torch.where(to_mask, torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(to_random, self.ordinary.to(ids.device)[picks], corrupted)
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
        inputs = {"input_ids": corrupted}
        if mask is not None:
            inputs["attention_mask"] = mask
        return inputs, labels

    def run_model(self, model, inputs, labels=None):
        """Only the chosen positions reach the head: scores (N, vocab) or PreLogits (N, E), in row-major order."""
        if labels is None:
            return model(**inputs)
        return lm_outputs(model, {**inputs, "masked_positions": labels != IGNORE_INDEX})


# ---- sequence to sequence ---------------------------------------------------------------------------------


def shift_right(
    target: torch.Tensor, decoder_start_id: int, pad_id: int, target_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher forcing's decoder input: the target moved one step right behind `decoder_start_id`.

    shift_right([[7, 8, 9]], decoder_start_id=1, pad_id=0) -> [[1, 7, 8]]
    """
    out = torch.full_like(target, pad_id)
    out[:, 0] = decoder_start_id
    out[:, 1:] = target[:, :-1]
    if target_mask is not None:
        out[:, 1:] = torch.where(target_mask[:, :-1].bool(), out[:, 1:], torch.full_like(out[:, 1:], pad_id))
    return out


class Seq2SeqLM(Objective):
    """Teacher forcing for an encoder-decoder: the decoder reads [start] y1 … y_{n-1} and predicts y1 … yn.

    A batch: "input_ids"/"attention_mask" (source) and "target_ids"/"target_mask" (target, ending in eos).
    Model inputs follow taesan's Seq2SeqTransformer: src_ids, tgt_ids, src_mask, tgt_mask.
    The loss counts real target tokens only.
    """

    name = "seq2seq"

    def __init__(self, decoder_start_id: int, pad_id: int) -> None:
        self.decoder_start_id, self.pad_id = decoder_start_id, pad_id

    def prepare(self, batch, generator=None):
        target = batch["target_ids"]
        target_mask = batch.get("target_mask")
        if target_mask is None:
            target_mask = torch.ones_like(target)
        decoder_input = shift_right(target, self.decoder_start_id, self.pad_id, target_mask)
        decoder_mask = torch.ones_like(target_mask)
        decoder_mask[:, 1:] = target_mask[:, :-1]  # the start token is real; then the target's own mask
        labels = torch.where(target_mask.bool(), target, torch.full_like(target, IGNORE_INDEX))
        inputs: dict[str, Any] = {"src_ids": batch["input_ids"], "tgt_ids": decoder_input, "tgt_mask": decoder_mask}
        if batch.get("attention_mask") is not None:
            inputs["src_mask"] = batch["attention_mask"]
        return inputs, labels

    def run_model(self, model, inputs, labels=None):
        return lm_outputs(model, inputs)


def objective_for(name: str, tokenizer: Any = None, vocab_size: int | None = None) -> Objective:
    """An objective by name ("causal", "backward", "masked"); masked needs the tokenizer's specials."""
    if name == "causal":
        return CausalLM()
    if name == "backward":
        return BackwardLM()
    if name == "masked":
        if tokenizer is None or tokenizer.mask_id is None:
            raise TaesanError("the masked objective needs a tokenizer with a [MASK] token (and [CLS], [SEP], [PAD])")
        specials = [tokenizer.vocab[t] for t in tokenizer.special_tokens]
        return MaskedLM(tokenizer.mask_id, vocab_size or tokenizer.vocab_size, specials)
    raise TaesanError(f"unknown objective {name!r}; choose causal, backward or masked")
