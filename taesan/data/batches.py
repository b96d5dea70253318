"""Batches from the token cache: a seeded, resumable sampler, fixed windows for causal LMs, whole
documents packed for masked LMs, the unigram baseline, and padding of variable-length rows.

Not an objective: batches here are plain token ids (+ attention masks); objectives turn them into
model inputs and labels.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from taesan.data.cache import TokenSplit
from taesan.errors import TaesanError

# ---- sampling: which items each rank reads at each step -------------------------------------------------


class ShuffledSampler:
    """An endless stream of item indices in [0, n_items): a fresh seeded permutation per epoch.

    At step g, rank r of `world_size` takes stream positions (g·world + r)·batch_size … + batch_size,
    so ranks read disjoint shares and, together, every item once per epoch. The state is just the
    step counter: resuming regenerates the epoch's permutation from (seed, epoch). Memory is one
    permutation (n_items int64), whatever the number of steps.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if n_items < 1:
            raise TaesanError("nothing to sample from: the data has no complete item")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.step = 0
        self._epoch: int | None = None
        self._perm: np.ndarray | None = None

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch != epoch:
            self._perm, self._epoch = self.epoch_rng(epoch).permutation(self.n_items), epoch
        return self._perm

    def next_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (item indices (batch_size,), their epochs (batch_size,)); advances the step."""
        first = (self.step * self.world_size + self.rank) * self.batch_size
        positions = np.arange(first, first + self.batch_size)
        epochs = positions // self.n_items
        items = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            items[sel] = self._permutation(int(e))[positions[sel] % self.n_items]
        self.step += 1
        return items, epochs

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.seed, "n_items": self.n_items, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("n_items") != self.n_items or state.get("seed") != self.seed:
            raise TaesanError(
                f"the saved data position (seed {state.get('seed')}, {state.get('n_items')} items) does not match "
                f"this data (seed {self.seed}, {self.n_items} items): the corpus or --block-size changed"
            )
        self.step = int(state["step"])


# ---- batches for each objective -------------------------------------------------------------------------


class CausalWindows:
    """Random windows of block_size + 1 ids from the memmap (for causal/backward LM), resumable.

    The split is cut into (n_tokens − 1) // block_size non-overlapping windows on a grid shifted by a
    random amount each epoch, so the windows change across epochs yet cover the data. A batch is
    {"input_ids": (B, block_size + 1)}; the objective shifts it into inputs and next-token labels.
    """

    def __init__(
        self, split: TokenSplit, block_size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if split.n_tokens < block_size + 1:
            raise TaesanError(
                f"the corpus has {split.n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}; lower --block-size"
            )
        self.tokens, self.block_size = split.tokens, block_size
        self.n_windows = (split.n_tokens - 1) // block_size
        self.slack = split.n_tokens - 1 - self.n_windows * block_size
        self.sampler = ShuffledSampler(self.n_windows, batch_size, seed, rank, world_size)

    def _shift(self, epoch: int) -> int:
        return int(np.random.default_rng([self.sampler.seed, epoch, 1]).integers(self.slack + 1))

    def next_batch(self) -> dict[str, torch.Tensor]:
        items, epochs = self.sampler.next_indices()
        starts = [int(i) * self.block_size + self._shift(int(e)) for i, e in zip(items, epochs)]
        rows = np.stack([self.tokens[s : s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
        return {"input_ids": torch.from_numpy(rows)}

    def eval_batches(self, n_batches: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The same fixed windows every call: the first n_batches·batch_size grid windows, in order."""
        n = min(self.n_windows, n_batches * batch_size)
        for b in range(0, n, batch_size):
            starts = range(b * self.block_size, min(n, b + batch_size) * self.block_size, self.block_size)
            rows = np.stack([self.tokens[s : s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
            yield {"input_ids": torch.from_numpy(rows)}

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


SENTENCE_ENDS = (".", "?", "!", "。", "\n")


def sentence_end_ids(tokenizer: Any) -> np.ndarray:
    """A (vocab_size,) bool array: True for tokens that end a sentence ("다.", "?", "!", a newline).

    Used to cut documents longer than a row at a sentence boundary instead of mid-sentence.
    """
    ends = np.zeros(tokenizer.vocab_size, dtype=bool)
    for token, i in tokenizer.vocab.items():
        if token in tokenizer.special_tokens:
            continue
        text = tokenizer.decode([i], skip_special_tokens=False).rstrip(" ")
        ends[i] = text.endswith(SENTENCE_ENDS)
    return ends


def pack_documents(offsets: np.ndarray, block_size: int, n_special: int = 2, tokens: np.ndarray | None = None,
                   sentence_ends: np.ndarray | None = None) -> np.ndarray:
    """Greedy sentence-aware packing plan: rows of whole documents up to block_size.

    Returns (n_segments, 3) int64 rows (row, start, end): token spans (separators excluded) placed in
    each packed row in order. A row holds n_special + Σ(len + 1) ≤ block_size tokens ([CLS] s1 [SEP] s2 [SEP]).
    A document longer than a row is cut at its last sentence end that fits (given `tokens` and the
    `sentence_ends` id mask), else at the row's end; its first sentences may fill a row's free space.
    pack_documents([0, 3, 6, 20], block_size=8) -> [[0, 0, 2], [0, 3, 5], [1, 6, 12], [2, 12, 18], [3, 18, 19]]
    """
    room = block_size - n_special + 1  # each piece costs len + 1 ([SEP]); the row's first [SEP] is in the +1
    if room < 2:
        raise TaesanError(f"block_size={block_size} leaves no room for text between [CLS] and [SEP]")

    def sentence_cut(start: int, n: int) -> int:
        """Tokens up to and including the last sentence end within tokens[start : start + n] (0: none)."""
        if n <= 0 or tokens is None or sentence_ends is None:
            return 0
        hits = np.flatnonzero(sentence_ends[np.asarray(tokens[start : start + n], dtype=np.int64)])
        return int(hits[-1]) + 1 if hits.size else 0

    segments: list[tuple[int, int, int]] = []
    row, used = 0, 0
    for i in range(len(offsets) - 1):
        start, end = int(offsets[i]), int(offsets[i + 1]) - 1  # drop the stored separator
        while start < end:
            free, length = room - used - 1, end - start
            if length <= free:
                take = length
            elif used and (length <= room - 1 or sentence_cut(start, free) == 0):
                row, used = row + 1, 0  # starts a fresh row: whole if it fits one, else from its first sentence
                continue
            else:
                take = sentence_cut(start, free) or free
            segments.append((row, start, start + take))
            used += take + 1
            start += take
    return np.asarray(segments, dtype=np.int64).reshape(-1, 3)


class PackedDocuments:
    """Rows of whole documents packed up to block_size as [CLS] d1 [SEP] d2 [SEP] [PAD]… (masked LM).

    `sentence_ends` (see `sentence_end_ids`) lets long documents be cut between sentences.
    The packing plan is computed once (O(n_documents) memory); rows are drawn by a ShuffledSampler.
    A batch is {"input_ids", "attention_mask"} of (B, block_size).
    """

    def __init__(
        self, split: TokenSplit, block_size: int, batch_size: int, cls_id: int, sep_id: int, pad_id: int,
        seed: int = 0, rank: int = 0, world_size: int = 1, sentence_ends: np.ndarray | None = None,
    ) -> None:
        self.tokens, self.block_size = split.tokens, block_size
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        plan = pack_documents(split.offsets, block_size, tokens=split.tokens, sentence_ends=sentence_ends)
        self.segments = plan[:, 1:]
        self.row_starts = np.searchsorted(plan[:, 0], np.arange(int(plan[-1, 0]) + 2)) if len(plan) else np.zeros(1, np.int64)
        self.n_rows = len(self.row_starts) - 1
        self.sampler = ShuffledSampler(max(self.n_rows, 0), batch_size, seed, rank, world_size)

    def row(self, r: int) -> list[int]:
        ids = [self.cls_id]
        for start, end in self.segments[self.row_starts[r] : self.row_starts[r + 1]]:
            ids.extend(self.tokens[start:end].tolist())
            ids.append(self.sep_id)
        return ids

    def _batch(self, rows: Iterable[int]) -> dict[str, torch.Tensor]:
        return pad_batch([self.row(int(r)) for r in rows], self.pad_id, length=self.block_size)

    def next_batch(self) -> dict[str, torch.Tensor]:
        items, _ = self.sampler.next_indices()
        return self._batch(items)

    def eval_batches(self, n_batches: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        n = min(self.n_rows, n_batches * batch_size)
        for b in range(0, n, batch_size):
            yield self._batch(range(b, min(n, b + batch_size)))

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


# ---- a baseline to compare against ------------------------------------------------------------------------


def unigram_perplexity(train: TokenSplit, targets: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> float:
    """Perplexity of `targets` under the training split's unigram distribution (add-one smoothed).

    The floor a language model must beat: it knows token frequencies and nothing of context.
    Counting reads the memmap `chunk` tokens at a time, so memory stays flat on large corpora.
    """
    counts = np.ones(vocab_size, dtype=np.float64)
    for s in range(0, train.n_tokens, chunk):
        counts += np.bincount(np.asarray(train.tokens[s : s + chunk], dtype=np.int64), minlength=vocab_size)[:vocab_size]
    logp = np.log(counts / counts.sum())
    targets = np.asarray(targets, dtype=np.int64).ravel()
    return float(np.exp(-logp[targets].mean())) if targets.size else float("nan")


# ---- collating variable-length rows ---------------------------------------------------------------------


def pad_batch(
    rows: Sequence[Sequence[int]], pad_id: int, length: int | None = None, side: str = "right"
) -> dict[str, torch.Tensor]:
    """Rows of ids -> {"input_ids": (B, L), "attention_mask": (B, L)} padded with pad_id, mask 1 = real.

    pad_batch([[5, 6, 7], [8]], pad_id=0) -> input_ids [[5, 6, 7], [8, 0, 0]], attention_mask [[1, 1, 1], [1, 0, 0]]
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    L = max((len(r) for r in rows), default=0) if length is None else length
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        r = list(r)[:L]
        if not r:
            continue
        sl = slice(0, len(r)) if side == "right" else slice(L - len(r), L)
        ids[i, sl] = torch.as_tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return {"input_ids": ids, "attention_mask": mask}
