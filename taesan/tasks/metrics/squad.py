"""SQuAD v1.1 and KorQuAD 1.0 answer scores: exact match and F1 after each official script's normalisation.

Not span decoding (taesan.tasks.qa does that): strings in, scores out. As in the official scripts, each
prediction takes its best score over the gold answers, and the corpus scores are percentages.
SQuAD's F1 counts shared words; KorQuAD's counts shared characters with whitespace removed, since a
Korean word carries its particles (세종대왕이 vs 세종대왕 share no word but most characters).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# KorQuAD's script turns these into spaces before the SQuAD steps (and keeps English articles)
_KORQUAD_SYMBOLS = re.compile("['\"《》<>〈〉()‘’]")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1: lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    normalize_answer("The  Denver Broncos!") -> "denver broncos"
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_korquad(text: str) -> str:
    """KorQuAD 1.0: quotes and brackets (《》〈〉‘’ too) become spaces, then lowercase, drop punctuation, collapse whitespace.

    normalize_korquad("《훈민정음》을") -> "훈민정음 을"
    """
    text = _KORQUAD_SYMBOLS.sub(" ", text).lower()
    return " ".join("".join(ch for ch in text if ch not in _PUNCTUATION).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the SQuAD-normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def korquad_exact_match(prediction: str, gold: str) -> float:
    return float(normalize_korquad(prediction) == normalize_korquad(gold))


def overlap_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """F1 of two bags of units (words or characters); 0 when nothing is shared (or either bag is empty).

    overlap_f1(["a", "b", "b"], ["b", "c"]) -> precision 1/3, recall 1/2 -> 0.4
    """
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, gold: str) -> float:
    """SQuAD's word-level F1 of the normalised strings."""
    return overlap_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def char_f1(prediction: str, gold: str) -> float:
    """KorQuAD's character-level F1: the normalised strings' characters, whitespace removed.

    char_f1("세종대왕이", "세종대왕") -> precision 4/5, recall 1 -> 0.888...
    """
    return overlap_f1(list("".join(normalize_korquad(prediction).split())), list("".join(normalize_korquad(gold).split())))


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Sequence[str]) -> float:
    """The official scripts' `metric_max_over_ground_truths`: a prediction scores its best match."""
    return max(metric(prediction, g) for g in golds)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus scores in percent: SQuAD v1.1 `exact_match`/`f1` and KorQuAD 1.0 `korquad_exact_match`/`korquad_f1`.

    squad_scores(["Denver Broncos"], [["Denver Broncos", "The Broncos"]]) -> exact_match 100.0, f1 100.0, ...
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions but {len(golds)} gold answer lists")
    if any(not g for g in golds):
        raise ValueError("every question needs at least one gold answer")
    n = max(len(predictions), 1)
    metrics = {"exact_match": exact_match, "f1": f1, "korquad_exact_match": korquad_exact_match, "korquad_f1": char_f1}
    return {name: 100.0 * sum(best_over_golds(fn, p, g) for p, g in zip(predictions, golds)) / n for name, fn in metrics.items()}
