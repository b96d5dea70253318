"""The held-out part `taesan finetune` carves from --train when no --valid is given: seeded, and by groups, so
examples that share a premise or a paragraph never sit on both sides.

Not a dataset splitter for files: it returns two lists of the examples the task read.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Any, Callable

from taesan.tasks.readers.nli import PairExample
from taesan.tasks.readers.qa import QAExample


def split_group(example: Any) -> Any:
    """What must stay on one side of the held-out split, or None for the example alone.

    A premise's hypotheses: KorNLI writes three per premise, one per label. Held out alone, a hypothesis meets its
    premise in training under the other two labels, and a model that remembers premises scored below chance
    (23-31% on the README's KorNLI recipe, issue 17). A paragraph's questions: their context was read in training.
    """
    if isinstance(example, PairExample):
        return ("premise", example.premise)
    if isinstance(example, QAExample):
        return ("context", example.context)
    return None


def split_off(examples: list, fraction: float, seed: int, group: Callable[[Any], Any] = split_group) -> tuple[list, list]:
    """(train, held out): a seeded random `fraction` of the examples held out (at least one when there are two),
    whole groups at a time (`split_group`) while there are two groups or more, so a group is never on both sides.

    A group is not held out when it holds the last training example of a label (an example's `label`, where it has
    one): a class seen once in --train must train, or the model would not know the label its own file uses.
    """
    keys = [("example", i) if k is None else k for i, k in enumerate(map(group, examples))]
    groups = list(dict.fromkeys(keys))
    if len(groups) < 2:  # one premise for everything: single examples, as without groups
        keys = [("example", i) for i in range(len(examples))]
        groups = list(keys)
    random.Random(seed).shuffle(groups)
    n = max(1, round(len(examples) * fraction)) if len(examples) >= 2 else 0
    members: dict[Any, Counter] = {g: Counter() for g in groups}
    for key, example in zip(keys, examples):
        members[key][getattr(example, "label", None)] += 1
    left = Counter(getattr(e, "label", None) for e in examples)  # what still trains, per label
    held_groups, count = set(), 0
    for g in groups[:-1]:  # the last group always trains
        if count >= n:
            break
        if any(left[label] <= k for label, k in members[g].items() if label is not None):
            continue
        held_groups.add(g)
        left -= members[g]
        count += sum(members[g].values())
    held = {i for i, k in enumerate(keys) if k in held_groups}
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]
