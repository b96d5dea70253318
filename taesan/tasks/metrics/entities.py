"""Entity-level scores for BIO tagging: tags -> entity spans -> micro and per-type precision, recall, F1.

Not token accuracy (an entity counts only when its type, start and end all match) and not a tagger:
tags in, numbers out. Two span rules, as seqeval has them: the default (conlleval's: a stray I-X starts an
entity) and strict IOB2 (`strict=True`: an entity is B-X followed by I-X only; a stray I-X is no entity).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

Entity = tuple[str, int, int]  # (type, start, end): units [start, end) of one sentence


def split_tag(tag: str) -> tuple[str, str]:
    """'B-PS' -> ('B', 'PS'); 'O' -> ('O', ''). Anything else is not BIO."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"{tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)")


def bio_entities(tags: Sequence[str], strict: bool = False) -> list[Entity]:
    """The entities in one sentence's tags. An I-X after O or after another type starts a new entity
    (seqeval's default), or, with `strict`, belongs to no entity (seqeval's mode="strict", scheme=IOB2).

    bio_entities(["B-PS", "I-PS", "O", "I-LC", "B-LC", "I-DT"]) -> [("PS", 0, 2), ("LC", 3, 4), ("LC", 4, 5), ("DT", 5, 6)]
    bio_entities(same, strict=True) -> [("PS", 0, 2), ("LC", 4, 5)]
    """
    out: list[Entity] = []
    kind, start = "", None
    for i, tag in enumerate(tags):
        prefix, t = split_tag(tag)
        continues = prefix == "I" and start is not None and t == kind
        if start is not None and not continues:
            out.append((kind, start, i))
            start = None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            kind, start = t, i
    if start is not None:
        out.append((kind, start, len(tags)))
    return out


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], strict: bool = False) -> dict[str, Counter]:
    """Per type: {"tp": .., "pred": .., "gold": ..} as Counters keyed by type (summable across batches)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if len(g) != len(p):
            raise ValueError(f"a sentence has {len(g)} gold tags but {len(p)} predicted")
        g_set, p_set = set(bio_entities(g, strict)), set(bio_entities(p, strict))
        n_gold.update(e[0] for e in g_set)
        n_pred.update(e[0] for e in p_set)
        tp.update(e[0] for e in g_set & p_set)
    return {"tp": tp, "pred": n_pred, "gold": n_gold}


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1; 0 where a denominator is 0 (seqeval's zero_division=0).

    prf(2, 3, 4) -> (0.667, 0.5, 0.571)
    """
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def scores_from_counts(counts: dict[str, Counter]) -> dict[str, float]:
    """{"precision", "recall", "f1"} (micro over all entities) plus "f1_<TYPE>" for each type seen."""
    tp, n_pred, n_gold = counts["tp"], counts["pred"], counts["gold"]
    p, r, f = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    out = {"precision": p, "recall": r, "f1": f}
    for kind in sorted(set(n_pred) | set(n_gold)):
        out[f"f1_{kind}"] = prf(tp[kind], n_pred[kind], n_gold[kind])[2]
    return out


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro P/R/F1 over entities and per-type F1 for sentences of gold and predicted BIO tags."""
    return scores_from_counts(entity_counts(gold, pred))
