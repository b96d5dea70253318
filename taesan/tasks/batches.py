"""Fine-tuning and inference batches: an endless, resumable, shuffled stream of collated features whose batches hold
similar lengths (the Trainer's BatchSource), and every feature once for evaluation and prediction, longest first,
with the results put back in input order.

Not a collate function (each task pads its own features, to the batch's longest) and not a sampler of token windows
(taesan.data draws those for pretraining).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from taesan.data import ShuffledSampler
from taesan.errors import TaesanError

Collate = Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]
MEGA_BATCHES = 50  # batches per shuffled mega-batch that is sorted by length (1: plain shuffling)
# An automatic inference batch holds about this many tokens (rows × its longest): MiniLM on NSMC ran fastest at
# 1-2k tokens a batch on a 2-core Xeon (117-119 examples/s; 4k: 111-114, 8k: 92, 16k: 88), its caches' size.
INFERENCE_TOKENS = 2048
INFERENCE_ROWS = 256  # and at most this many rows
IMAGE_ROWS = 64  # rows of an automatic batch of features without tokens (images)


def feature_length(feature: dict[str, Any]) -> int:
    """Tokens a feature puts into a batch: its input ids plus its target ids (0 for an image)."""
    return len(feature.get("input_ids", ())) + len(feature.get("target_ids", ()))


class FeatureBatches:
    """Length-bucketed shuffling: the features are drawn in a seeded shuffle, `mega` batches at a time; each
    mega-batch is sorted by length and cut into batches, which come in a seeded random order. A batch then holds
    similar lengths, so padding to its longest wastes little, while every epoch still sees every feature once.

    The state is the sampler's step (mega-batches drawn) and how many batches of the current one were served:
    resuming redraws that mega-batch and skips them, so it is exact.
    """

    def __init__(
        self,
        features: Sequence[dict[str, Any]],
        collate: Collate,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mega: int = MEGA_BATCHES,
    ) -> None:
        if not features:
            raise TaesanError("no training examples: the training file yielded no features")
        self.features, self.collate, self.seed = features, collate, seed
        self.batch_size = min(batch_size, len(features))
        # at least 4 mega-batches per epoch, so the batches change from one epoch to the next (small sets: no sorting)
        self.mega = max(1, min(mega, len(features) // self.batch_size // 4))
        self.lengths = np.array([feature_length(f) for f in features], dtype=np.int64)
        self.sampler = ShuffledSampler(len(features), self.batch_size * self.mega, seed, rank, world_size)
        self.queue: list[np.ndarray] = []  # the current mega-batch's batches still to serve
        self.served = 0

    def _draw(self) -> None:
        items, _ = self.sampler.next_indices()  # (mega · batch,) shuffled
        order = np.argsort(self.lengths[items], kind="stable")
        batches = items[order].reshape(self.mega, self.batch_size)  # (mega, batch) each of similar lengths
        shuffle = np.random.default_rng([self.seed, self.sampler.rank, self.sampler.step]).permutation(self.mega)
        self.queue, self.served = list(batches[shuffle]), 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        if not self.queue:
            self._draw()
        items = self.queue.pop(0)
        self.served += 1
        return self.collate([self.features[i] for i in items])

    def state_dict(self) -> dict[str, Any]:
        return {**self.sampler.state_dict(), "served": self.served}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        served = int(state.get("served", 0))
        self.queue, self.served = [], 0
        if served:  # partway through a mega-batch: draw it again and skip what was served
            self.sampler.step -= 1
            self._draw()
            self.queue, self.served = self.queue[served:], served


def in_order(features: Sequence[dict[str, Any]], collate: Collate, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Every feature once, in order (held-out batches during training: the same ones at every evaluation)."""
    for start in range(0, len(features), batch_size):
        yield collate(features[start:start + batch_size])


def by_length(
    features: Sequence[dict[str, Any]], collate: Collate, batch_size: int | None = None
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Every feature once for inference, longest first, in batches of similar length -> (the batch's positions in
    `features`, the batch); `restore_order` puts the results back.

    batch_size: rows per batch; None: as many as fit about INFERENCE_TOKENS tokens (rows × the batch's longest,
    at most INFERENCE_ROWS; IMAGE_ROWS for features without tokens). Longest first, so the largest batch comes
    first and a memory limit shows at once.
    """
    lengths = [feature_length(f) for f in features]
    order = sorted(range(len(features)), key=lambda i: -lengths[i])  # stable: equal lengths keep input order
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        if batch_size is not None:
            rows = batch_size
        elif longest == 0:
            rows = IMAGE_ROWS
        else:
            rows = max(1, min(INFERENCE_ROWS, INFERENCE_TOKENS // longest))
        picked = order[start:start + rows]
        start += len(picked)
        yield picked, collate([features[i] for i in picked])


def restore_order(pieces: Sequence[tuple[list[int], torch.Tensor]]) -> torch.Tensor:
    """[(positions, rows (n, ...)), ...] from `by_length` -> all rows (N, ...) in input order.

    restore_order([([2, 0], tensor([[5], [7]])), ([1], tensor([[6]]))]) -> tensor([[7], [6], [5]])
    """
    positions = torch.tensor([i for p, _ in pieces for i in p], dtype=torch.long)
    rows = torch.cat([r for _, r in pieces])
    out = torch.empty_like(rows)
    out[positions] = rows
    return out
