"""Fine-tuning batches: an endless, resumable, shuffled stream of collated features (the Trainer's
BatchSource), and the held-out features in fixed order for evaluation."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

from taesan.data import ShuffledSampler
from taesan.errors import TaesanError


class FeatureBatches:
    """Shuffles `features` each epoch (seeded); the state is the sampler's step, so resume is exact."""

    def __init__(
        self,
        features: Sequence[dict[str, Any]],
        collate: Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not features:
            raise TaesanError("no training examples: the training file yielded no features")
        self.features, self.collate = features, collate
        self.sampler = ShuffledSampler(len(features), min(batch_size, len(features)), seed, rank, world_size)

    def next_batch(self) -> dict[str, torch.Tensor]:
        items, _ = self.sampler.next_indices()
        return self.collate([self.features[i] for i in items])

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def in_order(
    features: Sequence[dict[str, Any]], collate: Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]], batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Every feature once, in order (evaluation and prediction)."""
    for start in range(0, len(features), batch_size):
        yield collate(features[start:start + batch_size])
