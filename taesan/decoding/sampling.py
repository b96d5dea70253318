"""Logits processors for decoding: repetition penalty, no-repeat n-gram, min-new-tokens, temperature, top-k, top-p.

Not a decoding loop (taesan.generate) and not a model: each function maps next-token scores (N, V) to scores.
"""
from __future__ import annotations

import torch

NEG_INF = float("-inf")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T: T < 1 sharpens the distribution, T > 1 flattens it. [2, 0] at T=2 -> [1, 0]."""
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores (ties with the k-th are kept too), set the rest to -inf; k <= 0 keeps all.

    top_k_filter([3, 2, 1, 0], 2) -> [3, 2, -inf, -inf]
    """
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (N, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities sum to >= p.

    The most likely token always survives. softmax([3, 2, 1, 0]) = [.644, .237, .087, .032], so
    top_p_filter([3, 2, 1, 0], 0.7) keeps [3, 2] (.644 < .7 <= .881) and sets the others to -inf.
    """
    if p >= 1.0:
        return logits
    ascending, order = torch.sort(logits, dim=-1)  # (N, V), least likely first
    tail = ascending.softmax(-1).cumsum(-1)  # probability of this token and every less likely one
    drop = tail <= 1.0 - p  # these tokens together carry no more than 1 - p
    drop[..., -1] = False  # never drop the most likely token
    return logits.masked_fill(drop.scatter(-1, order, drop), NEG_INF)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019) on every token already in the row: positive scores / penalty,
    negative scores * penalty (both less likely for penalty > 1). seen: (N, V) bool.

    scores [2, -2, 1] with seen [T, T, F] and penalty 2 -> [1, -4, 1]
    """
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def ban_repeated_ngrams(logits: torch.Tensor, tokens: torch.Tensor, n: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Forbid any token that would complete an n-gram already present in the row (in place).

    tokens: (N, L) the sequence so far; valid: (N, L) bool, False at padding (windows touching it never match).
    With n=2 and tokens [5, 6, 5], token 6 is banned (the bigram "5 6" exists).
    """
    L = tokens.shape[1]
    if L < n:
        return logits
    prefix = tokens[:, L - n + 1 :]  # (N, n-1): the last n-1 tokens, which the next token would extend
    windows = tokens.unfold(1, n, 1)  # (N, W, n), every n-gram so far
    match = (windows[..., :-1] == prefix[:, None]).all(-1)  # (N, W)
    if valid is not None:
        match &= valid.unfold(1, n, 1).all(-1)
    rows, where = match.nonzero(as_tuple=True)
    logits[rows, windows[rows, where, -1]] = NEG_INF
    return logits


class LogitsProcessor:
    """The enabled processors, in HuggingFace's order: penalties (every strategy), then warpers (sampling only).

    Disabled ones cost nothing: the common greedy case runs no processor at all. Holds one piece of state,
    the set of tokens seen per row (for the repetition penalty), updated by `update` and reordered with beams.
    """

    def __init__(
        self,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        min_new_tokens: int = 0,
        eos_ids: list[int] = (),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
    ) -> None:
        self.repetition_penalty = repetition_penalty
        self.ngram = no_repeat_ngram_size
        self.min_new_tokens = min_new_tokens if eos_ids else 0
        self.eos = list(eos_ids)
        self.temperature = temperature if do_sample else 1.0
        self.top_k = top_k if do_sample else 0
        self.top_p = top_p if do_sample else 1.0
        self.seen: torch.Tensor | None = None  # (N, V) bool
        self.active = bool(
            repetition_penalty != 1.0 or self.ngram or self.min_new_tokens or self.temperature != 1.0 or self.top_k > 0 or self.top_p < 1.0
        )

    def start(self, tokens: torch.Tensor, valid: torch.Tensor | None, vocab_size: int) -> None:
        """Remember the prompt's tokens (N, L) (valid: False at padding) for the repetition penalty."""
        if self.repetition_penalty != 1.0:
            self.seen = torch.zeros(tokens.shape[0], vocab_size, dtype=torch.bool, device=tokens.device)
            if valid is None:
                self.seen.scatter_(1, tokens, True)
            else:  # padding is not a token the row has said
                rows, cols = valid.bool().nonzero(as_tuple=True)
                self.seen[rows, tokens[rows, cols]] = True

    def update(self, next_tokens: torch.Tensor) -> None:
        """Record the tokens (N,) just chosen."""
        if self.seen is not None:
            self.seen[torch.arange(len(next_tokens), device=next_tokens.device), next_tokens] = True

    def reorder(self, index: torch.Tensor) -> None:
        """Beam search: row i becomes old row index[i]."""
        if self.seen is not None:
            self.seen = self.seen.index_select(0, index)

    def __call__(self, scores: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor | None, new: int) -> torch.Tensor:
        """scores (N, V) for the next token, given the sequence so far tokens (N, L) and `new` tokens generated."""
        if not self.active:
            return scores
        if self.seen is not None:
            scores = apply_repetition_penalty(scores, self.seen, self.repetition_penalty)
        if self.ngram:
            scores = ban_repeated_ngrams(scores.clone(), tokens, self.ngram, valid)
        if new < self.min_new_tokens:
            scores = scores.clone()
            scores[:, self.eos] = NEG_INF
        if self.temperature != 1.0:
            scores = apply_temperature(scores, self.temperature)
        if self.top_k > 0:
            scores = top_k_filter(scores, self.top_k)
        if self.top_p < 1.0:
            scores = top_p_filter(scores, self.top_p)
        return scores


def processor_for(s: dict) -> LogitsProcessor:
    """The processors `generate`'s checked settings ask for."""
    return LogitsProcessor(
        s["repetition_penalty"], s["no_repeat_ngram_size"], s["min_new_tokens"], s["eos"],
        s["do_sample"], s["temperature"], s["top_k"], s["top_p"],
    )
