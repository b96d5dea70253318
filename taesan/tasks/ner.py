"""Named-entity recognition as token classification: BIO tags per character (KLUE) or per word (CoNLL),
aligned to subword tokens through character offsets, and predictions mapped back to those units.

Not the reader (taesan.tasks.readers.ner) and not the span metric (taesan.tasks.metrics.entities).
Alignment rule: a token learns the tag of the unit holding its first non-space character, and only the
first token of each unit learns (so in word mode later subwords get -100; in character mode a token is
the first of its first character, so every real token learns). Specials and padding get -100.
Long sentences are cut into windows of `max_length` tokens sharing `stride` tokens; at prediction a
token takes its scores from the window where it has the most context on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import regex
import torch
from torch import nn

from taesan.data import pad_batch
from taesan.errors import TaesanError
from taesan.objectives import IGNORE_INDEX
from taesan.tasks.base import Task, TaskConfig, check_labels, replace_config
from taesan.tasks.bio import allowed_transitions, viterbi
from taesan.tasks.batches import in_order
from taesan.tasks.fits import check_tokenizer
from taesan.tasks.heads import head_class, put_head
from taesan.tasks.metrics.entities import (
    bio_entities,
    entity_counts,
    prf,
    scores_from_counts,
    split_tag,
)
from taesan.tasks.readers.ner import TaggedText, ner_layout, read_ner

Span = tuple[int, int]
UNITS = ("char", "word")
LAYOUTS = {"char": ("per character", "KLUE-NER layout"), "word": ("per word", "CoNLL layout")}  # unit -> how it reads
DECODERS = ("viterbi", "argmax")


@dataclass
class NerConfig(TaskConfig):
    unit: str = "char"  # what a tag labels: "char" (KLUE) or "word" (CoNLL; whitespace-separated); from the training data
    stride: int = 32  # tokens consecutive windows of a long sentence share (at most half a window)
    decode: str = "viterbi"  # "viterbi": the most probable VALID BIO path (taesan.tasks.bio); "argmax": each token alone

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise TaesanError(f"unit {self.unit!r}: choose char or word")
        if self.decode not in DECODERS:
            raise TaesanError(f"decode {self.decode!r}: choose {' or '.join(DECODERS)}")
        if self.stride < 0:
            raise TaesanError(f"stride must be >= 0, got {self.stride}")


def bio_labels(tags: Sequence[str]) -> list[str]:
    """The tag set: O first, then B- and I- of every type seen, types sorted.

    bio_labels(["B-PS", "O", "I-LC"]) -> ["O", "B-LC", "I-LC", "B-PS", "I-PS"]
    """
    types = sorted({split_tag(t)[1] for t in tags} - {""})
    return ["O"] + [f"{p}-{t}" for t in types for p in "BI"]


def unit_owner(text: str, spans: Sequence[Span]) -> list[int]:
    """For each character of `text`, the unit whose span holds it (-1 for none: spaces between words)."""
    owner = [-1] * len(text)
    for u, (s, e) in enumerate(spans):
        for c in range(s, e):
            owner[c] = u
    return owner


def align(text: str, unit_spans: Sequence[Span], token_spans: Sequence[Span]) -> list[int | None]:
    """Per token (spans in text order), the unit whose tag it learns; None for specials ((0, 0) spans),
    tokens outside every unit and every token after the first of its unit.

    Characters of '어제 카페' with tokens 어제, 카, ##페 -> [0, 3, 4]; the words ['어제', '카페'] -> [0, 1, None].
    """
    owner = unit_owner(text, unit_spans)
    seen: set[int] = set()
    out: list[int | None] = []
    for s, e in token_spans:
        unit = _anchor(text, owner, s, e)
        out.append(None if unit is None or unit in seen else unit)
        if unit is not None:
            seen.add(unit)
    return out


def _anchor(text: str, owner: Sequence[int], start: int, end: int) -> int | None:
    """The unit of the token [start, end)'s first non-space character in a unit (else its first such character)."""
    inside = [c for c in range(max(start, 0), min(end, len(text))) if owner[c] >= 0]
    first = next((c for c in inside if not text[c].isspace()), inside[0] if inside else None)
    return owner[first] if first is not None else None


def unit_tags(
    text: str, unit_spans: Sequence[Span], token_spans: Sequence[Span], token_tags: Sequence[str]
) -> list[str]:
    """Tokens' predicted tags -> one tag per unit. A unit takes its first token's tag; a unit inside a token
    (the 페 of 카페) continues it (B-X/I-X -> I-X); a unit between tokens (a space) is I-X only when the
    units on both sides belong to one X entity, else O; a unit no token reached is O.
    """
    n = len(unit_spans)
    owners = align(text, unit_spans, token_spans)
    anchored: list[str | None] = [None] * n
    covered = [False] * n
    owner = unit_owner(text, unit_spans)
    for (s, e), u, tag in zip(token_spans, owners, token_tags):
        if u is not None:
            anchored[u] = tag
        first = _anchor(text, owner, s, e)
        for c in range(max(s, 0), min(e, len(text))):
            if first is not None and owner[c] > first:  # after the token's first unit: inside it
                covered[owner[c]] = True
    next_tag = ["O"] * (n + 1)  # the tag of the next anchored unit after u
    for u in range(n - 1, -1, -1):
        next_tag[u] = anchored[u + 1] if u + 1 < n and anchored[u + 1] is not None else next_tag[u + 1]
    tags: list[str] = []
    for u in range(n):
        prefix, kind = split_tag(tags[-1]) if tags else ("O", "")
        if anchored[u] is not None:
            tags.append(anchored[u])
        elif prefix == "O":
            tags.append("O")
        elif covered[u] or next_tag[u] == f"I-{kind}":
            tags.append(f"I-{kind}")
        else:
            tags.append("O")
    return tags


def word_spans(text: str) -> list[Span]:
    """Whitespace-separated words: 'EU rejects  German' -> [(0, 2), (3, 10), (12, 18)]."""
    return [m.span() for m in regex.finditer(r"\S+", text)]


class TokenClassification(Task):
    """NER: a BIO tag per character or word, learned per subword token by a token-classification head (BERT,
    RoBERTa, ELECTRA)."""

    name = "ner"
    config_class = NerConfig

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[TaggedText]:
        return read_ner(path)

    def input_texts(self, path: str | Path) -> list[str] | None:
        """A KLUE-NER or CoNLL file: one input per sentence, its text as typed (a CoNLL sentence's words joined by
        spaces, which word mode splits again); None for plain text (one input per line)."""
        if ner_layout(path) is None:
            return None
        return [ex.text for ex in read_ner(path)]

    def check_examples(self, examples: Sequence[TaggedText]) -> None:
        """Labelled examples tagged as this model tags: in its unit and with its tags, else a one-line error naming
        the file (and the line of the first unknown tag). A word-level file on a character-level model otherwise
        scores f1 0 without a word."""
        known = set(self.labels)
        for ex in examples:
            self.check_unit(ex)
            for i, tag in enumerate(ex.tags):
                if tag not in known:
                    check_labels(self.labels, tag, ex.where(i))

    def check_unit(self, example: TaggedText) -> None:
        """A one-line error when the example is tagged in another unit than the model's (characters vs words)."""
        if example.unit != self.config.unit:
            (theirs, layout), (ours, own) = LAYOUTS[example.unit], LAYOUTS[self.config.unit]
            raise TaesanError(f"{example.path or '<examples>'}: the file is tagged {theirs} ({layout}) but the model "
                              f"{ours} ({own}, task.json unit {self.config.unit!r}); give it a file tagged {ours}")

    def fit_labels(self, examples: Sequence[TaggedText]) -> None:
        """O, then B-/I- of each type in the training tags; the unit (char/word) of the training file."""
        if not examples:
            return
        changes: dict[str, Any] = {"unit": examples[0].unit}
        if not self.config.labels:
            changes["labels"] = bio_labels([t for ex in examples for t in ex.tags])
        replace_config(self, **changes)

    def windows(self, text: str) -> list[Any]:
        """The text's Encodings: one, or several overlapping ones when it exceeds max_length tokens."""
        tok = self.tok
        room = self.config.max_length - tok.num_special_tokens(False)
        if room < 1:
            raise TaesanError(f"max_length={self.config.max_length} leaves no room for text after the special tokens")
        stride = min(self.config.stride, room // 2)
        enc = tok.encode(text, truncation="only_first", max_length=self.config.max_length, stride=stride,
                         return_overflowing=True)
        return [enc] + enc.overflowing

    def encode(self, example: TaggedText) -> list[dict[str, Any]]:
        """Windows of ids with a label per token: the tag id where `align` says it learns, else -100."""
        self.check_unit(example)
        ids = [check_labels(self.labels, t, example.where(i)) for i, t in enumerate(example.tags)]
        windows = self.windows(example.text)
        spans = sorted({(s, e) for w in windows for s, e in w.offsets if e > s})
        learns = dict(zip(spans, align(example.text, example.spans, spans)))
        features = []
        for w in windows:
            labels = [IGNORE_INDEX if special or learns.get((s, e)) is None else ids[learns[(s, e)]]
                      for (s, e), special in zip(w.offsets, w.special_tokens_mask)]
            features.append({"input_ids": list(w.ids), "labels": labels})
        return features

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad = self.tok.pad_id
        batch = pad_batch([f["input_ids"] for f in features], 0 if pad is None else pad)  # (B, T) ids and mask
        if features and "labels" in features[0]:
            labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)  # (B, T)
            for i, f in enumerate(features):
                labels[i, : len(f["labels"])] = torch.as_tensor(f["labels"], dtype=torch.long)
            batch["labels"] = labels
        return batch

    # ---- training metrics ------------------------------------------------------------------------------
    @torch.no_grad()
    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[float, int]]:
        """Loss and token accuracy over labelled tokens, plus entity counts over each row's labelled tokens
        (a quick entity F1 while training; `evaluate` scores the original characters or words)."""
        out = super().metrics(logits, labels)
        names = self.labels
        pred = logits.argmax(-1)  # (B, T)
        golds, preds = [], []
        for row_pred, row_gold in zip(pred.tolist(), labels.tolist()):
            keep = [(p, g) for p, g in zip(row_pred, row_gold) if g != IGNORE_INDEX]
            golds.append([names[g] for _, g in keep])
            preds.append([names[p] for p, _ in keep])
        counts = entity_counts(golds, preds)
        for key in ("tp", "pred", "gold"):
            out[f"entity_{key}"] = (float(sum(counts[key].values())), 1)
        return out

    def summarize(self, totals: dict[str, tuple[float, int]]) -> dict[str, float]:
        out = {k: s / c for k, (s, c) in totals.items() if c and not k.startswith("entity_")}
        if "entity_tp" in totals:
            p, r, f = prf(*(int(totals[f"entity_{k}"][0]) for k in ("tp", "pred", "gold")))
            out.update(entity_precision=p, entity_recall=r, entity_f1=f)
        return out

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module) -> nn.Module:
        """The token-classification head of `model`'s family (BERT, RoBERTa, ELECTRA: taesan.tasks.heads), one output
        per tag, on its backbone; a model that already is that head with these tags is kept."""
        head_class(model, "token", self.name)
        if not self.labels:
            raise TaesanError("ner: no labels (fit the task on training examples first)")
        check_tokenizer(model, self.tokenizer)
        if self.config.max_length > model.config.n_positions:
            replace_config(self, max_length=model.config.n_positions)
        return put_head(model, "token", self.name, self.labels)

    # ---- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def token_scores(self, model: nn.Module, texts: Sequence[str], batch_size: int = 32) -> list[tuple[list[Span], torch.Tensor]]:
        """Per text: its distinct token spans in order and their tag probabilities (n_tokens, n_labels),
        each token's taken from the window where it sits furthest from a window edge."""
        windows = [(i, w) for i, text in enumerate(texts) for w in self.windows(text)]
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        probs: list[torch.Tensor] = []
        for batch in in_order([{"input_ids": w.ids} for _, w in windows], self.collate, batch_size):
            logits = model(**{k: v.to(device) for k, v in batch.items()})  # (B, T, L)
            probs.extend(logits.float().softmax(-1).cpu())
        model.train(was_training)
        best: list[dict[Span, tuple[int, torch.Tensor]]] = [{} for _ in texts]
        for (i, w), p in zip(windows, probs):
            real = [j for j, (s, e) in enumerate(w.offsets) if e > s and not w.special_tokens_mask[j]]
            for rank, j in enumerate(real):
                context = min(rank, len(real) - 1 - rank)
                span = (w.offsets[j][0], w.offsets[j][1])
                if span not in best[i] or context > best[i][span][0]:
                    best[i][span] = (context, p[j])
        out = []
        for b in best:
            spans = sorted(b)
            out.append((spans, torch.stack([b[s][1] for s in spans]) if spans else torch.zeros(0, len(self.labels))))
        return out

    def tag_units(self, model: nn.Module, texts: Sequence[str], unit_spans: Sequence[Sequence[Span]],
                  batch_size: int = 32) -> list[tuple[list[str], list[float | None]]]:
        """Predicted tags per unit, with the probability of the tag for units a token anchors (else None)."""
        out = []
        for text, units, (spans, probs) in zip(texts, unit_spans, self.token_scores(model, texts, batch_size)):
            conf, ids = probs.max(-1) if len(spans) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
            owners = align(text, units, spans)
            anchors = [k for k, u in enumerate(owners) if u is not None]
            if self.config.decode == "viterbi" and anchors:  # over the tokens that carry a unit's tag (trained ones)
                path = viterbi(probs[anchors].clamp(min=1e-12).log(), *self._transitions())
                ids = ids.clone()
                ids[anchors] = torch.tensor(path)
                conf = probs.gather(1, ids.unsqueeze(1)).squeeze(1)
            tags = unit_tags(text, units, spans, [self.labels[i] for i in ids.tolist()])
            scores: list[float | None] = [None] * len(units)
            for u, c in zip(owners, conf.tolist()):
                if u is not None:
                    scores[u] = c
            out.append((tags, scores))
        return out

    def _transitions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The allowed start tags and transitions of this task's labels (computed once per label set)."""
        key = tuple(self.labels)
        if getattr(self, "_allowed", (None,))[0] != key:
            self._allowed = (key, allowed_transitions(self.labels))
        return self._allowed[1]

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """{"entities": [{"text", "label", "start", "end", "score"}]} per text; start/end are character
        offsets into the text; score is the mean probability of the tags that start its units."""
        texts = list(inputs)
        units = [word_spans(t) if self.config.unit == "word" else [(i, i + 1) for i in range(len(t))] for t in texts]
        results = []
        for text, spans, (tags, scores) in zip(texts, units, self.tag_units(model, texts, units, batch_size)):
            entities = []
            for kind, a, b in bio_entities(tags):
                start, end = spans[a][0], spans[b - 1][1]
                known = [s for s in scores[a:b] if s is not None]
                entities.append({"text": text[start:end], "label": kind, "start": start, "end": end,
                                 "score": round(sum(known) / len(known), 4) if known else 0.0})
            results.append({"entities": entities})
        return results

    def describe(self, prediction: dict[str, Any]) -> str:
        """One readable line for `taesan predict`: '민수 PS (0.912), 강남역 카페 LC (0.874)' or 'no entities'."""
        shown = [f"{e['text']} {e['label']} ({e['score']:.3f})" for e in prediction["entities"]]
        return ", ".join(shown) if shown else "no entities"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[TaggedText], batch_size: int = 32) -> dict[str, float]:
        """Entity precision/recall/F1 (micro) and F1 per type on the examples' own units (characters or
        words), as seqeval's default mode scores them, strict_precision/recall/f1 as its strict IOB2 mode does
        (they agree when the tags are valid BIO, as Viterbi decoding makes them); plus tag accuracy."""
        if not examples:
            return {}
        self.check_examples(examples)
        predicted = self.tag_units(model, [ex.text for ex in examples], [ex.spans for ex in examples], batch_size)
        golds = [ex.tags for ex in examples]
        preds = [tags for tags, _ in predicted]
        out = scores_from_counts(entity_counts(golds, preds))
        strict = scores_from_counts(entity_counts(golds, preds, strict=True))
        out.update({f"strict_{k}": strict[k] for k in ("precision", "recall", "f1")})
        total = sum(len(g) for g in golds)
        out["tag_accuracy"] = sum(a == b for g, p in zip(golds, preds) for a, b in zip(g, p)) / max(total, 1)
        return {**out, "examples": len(examples), "units": total}

