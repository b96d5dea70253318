"""BIO-constrained decoding: the tag sequence of highest probability among the VALID ones (Viterbi over allowed
transitions), so a tagger never emits a stray I-X that starts nowhere or continues another type.

Not a CRF (no transition weights are learned: a transition is allowed or not) and not a metric. Per-token
argmax picks each tag alone and emits O I-PS I-PS, which seqeval's default mode counts as an entity and its
strict IOB2 mode drops; here the best valid path is B-PS I-PS or O O, whichever is more probable.
"""
from __future__ import annotations

from typing import Sequence

import torch

from taesan.tasks.metrics.entities import split_tag


def allowed_transitions(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(start (L,), transition (L, L)) bool: may a sentence start with tag j; may tag j follow tag i.

    I-X may only follow B-X or I-X, and may not start a sentence; every other tag may go anywhere.
    allowed_transitions(["O", "B-PS", "I-PS"]) -> start [T, T, F]; transition rows O [T, T, F], B-PS [T, T, T], I-PS [T, T, T]
    """
    parts = [split_tag(t) for t in labels]
    L = len(labels)
    start = torch.tensor([p != "I" for p, _ in parts])
    transition = torch.ones(L, L, dtype=torch.bool)
    for j, (pj, kj) in enumerate(parts):
        if pj == "I":
            for i, (pi, ki) in enumerate(parts):
                transition[i, j] = pi in ("B", "I") and ki == kj
    return start, transition


def viterbi(log_probs: torch.Tensor, start: torch.Tensor, transition: torch.Tensor) -> list[int]:
    """The valid tag path (n,) of highest summed log-probability for per-token scores (n, L).

    Labels O, B-PS, I-PS; token scores [[.6, .1, .3], [.2, .1, .7]]: argmax says O I-PS (invalid); the valid
    paths score O O = .12, B-PS I-PS = .07, O B-PS = .06, ... -> [0, 0] (O O).
    """
    n, L = log_probs.shape
    if n == 0:
        return []
    neg = torch.tensor(float("-inf"))
    lp = log_probs.float()
    trans = torch.where(transition, torch.tensor(0.0), neg)  # (L, L)
    score = torch.where(start, lp[0], neg)  # (L,)
    back = torch.zeros(n, L, dtype=torch.long)
    for t in range(1, n):
        total = score.unsqueeze(1) + trans  # (L_prev, L_next)
        score, back[t] = total.max(dim=0)
        score = score + lp[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]
