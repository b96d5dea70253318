"""Sentence log-probabilities from a language model: the chain rule for forward and backward LMs,
the pseudo-log-likelihood (mask each token in turn) for a masked LM. Ids in, log-probs out, batched.

Not a tokenizer and not a printer: `score_texts` encodes with the tokenizer it is given; the CLI prints.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from taesan.data import pad_batch
from taesan.errors import TaesanError
from taesan.objectives import IGNORE_INDEX, shift_for_next_token

OBJECTIVES = ("causal", "backward", "masked")


def _max_positions(model: torch.nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "n_positions", None)


@torch.no_grad()
def _chain_rule(model, rows: list[list[int]], pad_id: int, batch_size: int, device) -> list[float]:
    """Σ_t log p(row[t] | row[:t]) for t ≥ 1 of each row (row[0] is the start token)."""
    out: list[float] = []
    for b in range(0, len(rows), batch_size):
        batch = pad_batch(rows[b : b + batch_size], pad_id)
        inputs, mask, labels = shift_for_next_token(batch["input_ids"], batch["attention_mask"])
        logp = torch.log_softmax(model(inputs.to(device), attention_mask=mask.to(device)).float(), -1)  # (B, T, V)
        real = labels != IGNORE_INDEX  # (B, T)
        picked = logp.gather(-1, labels.clamp(min=0).to(device)[..., None]).squeeze(-1).cpu()  # (B, T)
        out.extend((picked * real).sum(-1).tolist())
    return out


@torch.no_grad()
def _pseudo_log_likelihood(
    model, seqs: list[list[int]], cls_id: int, sep_id: int, mask_id: int, pad_id: int, batch_size: int, device
) -> list[float]:
    """Σ_i log p(x_i | x with x_i masked): one row per (sentence, position), all rows batched together."""
    rows, owner, position, target = [], [], [], []
    for s, ids in enumerate(seqs):
        for i, tok in enumerate(ids):
            masked = list(ids)
            masked[i] = mask_id
            rows.append([cls_id, *masked, sep_id])
            owner.append(s)
            position.append(i + 1)
            target.append(tok)
    totals = [0.0] * len(seqs)
    for b in range(0, len(rows), batch_size):
        batch = pad_batch(rows[b : b + batch_size], pad_id)
        logits = model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).float()  # (B, T, V)
        pos = torch.as_tensor(position[b : b + batch_size], device=device)
        tgt = torch.as_tensor(target[b : b + batch_size], device=device)
        at = logits[torch.arange(len(pos), device=device), pos]  # (B, V)
        logp = torch.log_softmax(at, -1).gather(-1, tgt[:, None]).squeeze(-1).cpu()  # (B,)
        for o, v in zip(owner[b : b + batch_size], logp.tolist()):
            totals[o] += v
    return totals


def sentence_log_probs(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    objective: str,
    start_id: int | None = None,
    cls_id: int | None = None,
    sep_id: int | None = None,
    mask_id: int | None = None,
    pad_id: int = 0,
    batch_size: int = 32,
) -> list[float]:
    """The log-probability (natural log) of each id sequence under `model`.

    causal: log P(w1…wn) = Σ log p(w_t | start, w_<t); backward: the same over the reversed sequence
    (the model was trained reading right to left); masked: the pseudo-log-likelihood Σ log p(w_i | rest),
    each token masked in turn inside [CLS] … [SEP]. Special tokens are not part of `sequences`.
    """
    if objective not in OBJECTIVES:
        raise TaesanError(f"unknown objective {objective!r}; choose {', '.join(OBJECTIVES)}")
    seqs = [list(map(int, s)) for s in sequences]
    limit = _max_positions(model)
    longest = max((len(s) for s in seqs), default=0) + (2 if objective == "masked" else 1)
    if limit is not None and longest > limit:
        raise TaesanError(f"a sentence needs {longest} positions, the model has {limit}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        if objective == "masked":
            if None in (cls_id, sep_id, mask_id):
                raise TaesanError("pseudo-log-likelihood needs the tokenizer's [CLS], [SEP] and [MASK] ids")
            return _pseudo_log_likelihood(model, seqs, cls_id, sep_id, mask_id, pad_id, batch_size, device)
        if start_id is None:
            raise TaesanError("the chain rule needs a start token id (the separator the model was trained with)")
        rows = [[start_id, *(s[::-1] if objective == "backward" else s)] for s in seqs]
        return _chain_rule(model, rows, pad_id, batch_size, device)
    finally:
        model.train(was_training)


def score_texts(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], objective: str,
                start_id: int | None = None, batch_size: int = 32) -> list[float]:
    """Texts -> log-probabilities: encode without special tokens, then `sentence_log_probs`."""
    seqs = [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    if start_id is None:
        start_id = tokenizer.eos_id if tokenizer.eos_id is not None else tokenizer.cls_id
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    return sentence_log_probs(
        model, seqs, objective, start_id=start_id, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
        mask_id=tokenizer.mask_id, pad_id=pad, batch_size=batch_size,
    )
