"""Logits processors for decoding: repetition penalty, no-repeat n-gram, min-new-tokens, whole UTF-8 characters
(byte-level tokens), temperature, top-k, top-p.

Not a decoding loop (taesan.generate) and not a model: each function maps next-token scores (N, V) to scores.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
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


class Utf8Guard:
    """Byte-level tokens never break a character: while a UTF-8 character is pending (its lead byte chosen, its
    continuation bytes not yet), only tokens that go on with the right continuation bytes may be sampled, and
    no token may begin with a stray continuation byte or end the text (a special token) mid-character.

    token_bytes: each id's bytes (None: a special token, which only ends or separates whole characters).
    The state of a row is what it still owes (utf8_tables: 0-3 continuation bytes, or the narrowed next byte after
    E0, ED, F0, F4). With "어" = EC 96 B4 pending after EC, a token starting 96 B4 may follow; one starting 41 ("A")
    may not; after ED, one starting B1 may not (it would write a lone surrogate).
    """

    def __init__(self, token_bytes: Sequence[bytes | None], vocab_size: int, device: torch.device) -> None:
        allowed, after = utf8_tables(tuple(token_bytes), vocab_size)
        self.allowed, self.after = allowed.to(device), after.to(device)  # (STATES, V) bool, (STATES, V) long
        self.state: torch.Tensor | None = None  # (N,) each row's reader state

    def start(self, tokens: torch.Tensor, valid: torch.Tensor | None) -> None:
        """The state after each row's prompt (N, L); padding (valid False) is skipped."""
        after = self.after.tolist()
        owed = []
        for r, row in enumerate(tokens.tolist()):
            state = 0
            for c, token in enumerate(row):
                if valid is None or bool(valid[r, c]):
                    state = after[state][token] if token < len(after[0]) else 0
            owed.append(state)
        self.state = torch.tensor(owed, dtype=torch.long, device=tokens.device)

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """scores (N, V): -inf where a token cannot continue its row. A row left with no finite score keeps its own
        (another processor emptied it first)."""
        allowed = self.allowed[self.state]  # (N, V)
        masked = scores.masked_fill(~allowed[:, : scores.shape[-1]], NEG_INF)
        dead = torch.isneginf(masked).all(-1)  # (N,)
        return torch.where(dead[:, None], scores, masked)

    def update(self, next_tokens: torch.Tensor) -> None:
        self.state = self.after[self.state, next_tokens.clamp(max=self.after.shape[1] - 1)]


# A reader's states: 0-3 owe that many continuation bytes (80-BF); 4-7 owe 2, 2, 3, 3 after the lead bytes E0, ED,
# F0, F4, whose next byte UTF-8 narrows (no overlong form, no surrogate, nothing past U+10FFFF).
STATES = 8
_NEXT_LO = np.array([0x80] * 4 + [0xA0, 0x80, 0x90, 0x80])  # per state: the continuation bytes it takes
_NEXT_HI = np.array([0xBF] * 4 + [0xBF, 0x9F, 0xBF, 0x8F])
_PAID = np.array([0, 0, 1, 2, 1, 1, 2, 2])  # per state: the state after one continuation byte
_OPENS = np.zeros(256, dtype=np.int64)  # per lead byte: the state it opens (ASCII 0; C0, C1, F5-FF never occur)
_OPENS[0xC2:0xE0], _OPENS[0xE0:0xF0], _OPENS[0xF0:0xF5] = 1, 2, 3
_OPENS[[0xE0, 0xED, 0xF0, 0xF4]] = [4, 5, 6, 7]


@functools.lru_cache(maxsize=4)
def utf8_tables(token_bytes: tuple, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per reader state and token: may it follow (allowed, (STATES, V) bool), and the state after it ((STATES, V) long).

    A reader takes the token's bytes in turn: a continuation byte (80-BF) pays one owed byte if it is in the range
    the state takes (out of place when nothing is owed), any other byte is out of place while something is owed,
    then opens a character (_OPENS); C0, C1 and F5-FF never appear in UTF-8. With "어" = EC 96 B4: EC from state 0
    -> 2; 96 B4 from 2 -> 0; "A" from 2 is out of place. After ED only 80-9F may follow: ED A0 80 would be the
    lone surrogate U+D800, which no UTF-8 text holds. Ids beyond the table (a model vocabulary padded past the
    tokenizer's) act as special tokens.
    """
    V = max(vocab_size, len(token_bytes))
    width = max((len(raw) for raw in token_bytes if raw), default=1)
    grid = np.full((V, width), -1, dtype=np.int16)  # (V, width) each token's bytes, -1 after its end
    special = np.ones(V, dtype=bool)
    for token, raw in enumerate(token_bytes):
        if raw:
            grid[token, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            special[token] = False
    allowed, after = np.zeros((STATES, V), dtype=bool), np.zeros((STATES, V), dtype=np.int64)
    for start in range(STATES):
        state, ok = np.full(V, start, dtype=np.int64), np.ones(V, dtype=bool)
        for column in grid.T:  # (V,) the j-th byte of every token
            live = column >= 0
            continuation = live & (column >= 0x80) & (column <= 0xBF)
            ok &= ~(continuation & ((state == 0) | (column < _NEXT_LO[state]) | (column > _NEXT_HI[state])))
            state = np.where(continuation, _PAID[state], state)
            opens = live & ~continuation
            ok &= ~(opens & (state > 0))
            ok &= ~(opens & ((column == 0xC0) | (column == 0xC1) | (column >= 0xF5)))
            state = np.where(opens, _OPENS[np.clip(column, 0, 255)], state)
        allowed[start], after[start] = ok & ~special, np.where(special, 0, state)
    allowed[0, special] = True  # specials and unknown ids: only between whole characters
    return torch.from_numpy(allowed), torch.from_numpy(after)


class LogitsProcessor:
    """The enabled processors, in HuggingFace's order: penalties (every strategy), then warpers (sampling only).

    Disabled ones cost nothing: the common greedy case runs no processor at all. Holds the state that follows the
    chosen tokens, updated by `update` and reordered with beams: the set of tokens seen per row (for the repetition
    penalty) and, when sampling from a byte-level tokenizer, the UTF-8 character each row has pending.
    """

    def __init__(
        self,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        min_new_tokens: int = 0,
        eos_ids: Sequence[int] = (),
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        token_bytes: Sequence[bytes | None] | None = None,
    ) -> None:
        self.repetition_penalty = repetition_penalty
        self.ngram = no_repeat_ngram_size
        self.min_new_tokens = min_new_tokens if eos_ids else 0
        self.eos = list(eos_ids)
        self.temperature = temperature if do_sample else 1.0
        self.top_k = top_k if do_sample else 0
        self.top_p = top_p if do_sample else 1.0
        self.token_bytes = token_bytes if do_sample else None  # greedy decoding keeps the model's own choice
        self.seen: torch.Tensor | None = None  # (N, V) bool
        self.utf8: Utf8Guard | None = None
        self.active = bool(
            repetition_penalty != 1.0 or self.ngram or self.min_new_tokens or self.temperature != 1.0 or self.top_k > 0
            or self.top_p < 1.0 or self.token_bytes is not None
        )

    @property
    def follows_tokens(self) -> bool:
        """Does `update` need each step's tokens?"""
        return self.seen is not None or self.utf8 is not None

    def start(self, tokens: torch.Tensor, valid: torch.Tensor | None, vocab_size: int) -> None:
        """Remember the prompt's tokens (N, L) (valid: False at padding): for the repetition penalty, and where
        each row stands in its last character."""
        if self.repetition_penalty != 1.0:
            self.seen = torch.zeros(tokens.shape[0], vocab_size, dtype=torch.bool, device=tokens.device)
            if valid is None:
                self.seen.scatter_(1, tokens, True)
            else:  # padding is not a token the row has said
                rows, cols = valid.bool().nonzero(as_tuple=True)
                self.seen[rows, tokens[rows, cols]] = True
        if self.token_bytes is not None:
            self.utf8 = Utf8Guard(self.token_bytes, vocab_size, tokens.device)
            self.utf8.start(tokens, valid)

    def update(self, next_tokens: torch.Tensor) -> None:
        """Record the tokens (N,) just chosen."""
        if self.seen is not None:
            self.seen[torch.arange(len(next_tokens), device=next_tokens.device), next_tokens] = True
        if self.utf8 is not None:
            self.utf8.update(next_tokens)

    def reorder(self, index: torch.Tensor) -> None:
        """Beam search: row i becomes old row index[i]."""
        if self.seen is not None:
            self.seen = self.seen.index_select(0, index)
        if self.utf8 is not None:
            self.utf8.state = self.utf8.state.index_select(0, index)

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
        if self.utf8 is not None:  # before the warpers: the nucleus is drawn from tokens that may follow
            scores = self.utf8(scores)
        if self.temperature != 1.0:
            scores = apply_temperature(scores, self.temperature)
        if self.top_k > 0:
            scores = top_k_filter(scores, self.top_k)
        if self.top_p < 1.0:
            scores = top_p_filter(scores, self.top_p)
        return scores


def processor_for(s) -> LogitsProcessor:
    """The processors `generate`'s checked settings (decoding.settings.Settings) ask for."""
    return LogitsProcessor(s.repetition_penalty, s.no_repeat_ngram_size, s.min_new_tokens, s.eos, s.do_sample,
                           s.temperature, s.top_k, s.top_p, s.token_bytes)
