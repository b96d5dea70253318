"""Classification scores: accuracy, per-class and macro precision / recall / F1 from true/false positive counts.

Not a loss and not tied to tensors: counts in, scores out, so evaluation can sum counts over many
batches first (`class_counts`) and divide once (`scores_from_counts`), as sklearn would over all rows.
"""
from __future__ import annotations

from typing import Sequence


def class_counts(predicted: Sequence[int], gold: Sequence[int], num_classes: int) -> dict[str, list[int]]:
    """Per-class true positives, false positives and false negatives.

    class_counts([0, 1, 1], [0, 0, 1], 2) -> {"tp": [1, 1], "fp": [0, 1], "fn": [1, 0]}
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} gold labels")
    tp, fp, fn = [0] * num_classes, [0] * num_classes, [0] * num_classes
    for p, g in zip(predicted, gold):
        if p == g:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    return {"tp": tp, "fp": fp, "fn": fn}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0  # sklearn's zero_division=0


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """One class: precision = tp / (tp + fp), recall = tp / (tp + fn), F1 their harmonic mean (0 when undefined).

    precision_recall_f1(2, 1, 1) -> (0.667, 0.667, 0.667)
    """
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return p, r, _ratio(2 * p * r, p + r)


def scores_from_counts(
    tp: Sequence[float], fp: Sequence[float], fn: Sequence[float], labels: Sequence[str] | None = None
) -> dict[str, float]:
    """accuracy, macro precision / recall / F1 and per-class F1 ("f1_<label>") from per-class counts.

    Macro = the unweighted mean over classes (sklearn's average="macro": every class counts, even one never
    seen in gold nor predicted, with score 0). Accuracy = Σ tp / number of examples (Σ tp + Σ fn).
    """
    n = len(tp)
    names = list(labels) if labels is not None else [str(i) for i in range(n)]
    per_class = [precision_recall_f1(tp[i], fp[i], fn[i]) for i in range(n)]
    total = sum(tp) + sum(fn)
    out = {
        "accuracy": _ratio(sum(tp), total),
        "macro_precision": sum(s[0] for s in per_class) / n if n else 0.0,
        "macro_recall": sum(s[1] for s in per_class) / n if n else 0.0,
        "macro_f1": sum(s[2] for s in per_class) / n if n else 0.0,
    }
    for name, (_, _, f1) in zip(names, per_class):
        out[f"f1_{name}"] = f1
    return out


def accuracy(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """The share of predictions equal to the gold label. accuracy([0, 1, 1], [0, 0, 1]) -> 0.667"""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} gold labels")
    return _ratio(sum(p == g for p, g in zip(predicted, gold)), len(gold))


def classification_scores(predicted: Sequence[int], gold: Sequence[int], labels: Sequence[str]) -> dict[str, float]:
    """All of `scores_from_counts` for two lists of class ids."""
    c = class_counts(predicted, gold, len(labels))
    return scores_from_counts(c["tp"], c["fp"], c["fn"], labels)


def confusion_matrix(predicted: Sequence[int], gold: Sequence[int], num_classes: int) -> list[list[int]]:
    """counts[g][p]: how many examples of gold class g were predicted as p (rows gold, columns predicted).

    confusion_matrix([0, 1, 1], [0, 0, 1], 2) -> [[1, 1], [0, 1]]
    """
    counts = [[0] * num_classes for _ in range(num_classes)]
    for p, g in zip(predicted, gold):
        counts[g][p] += 1
    return counts
