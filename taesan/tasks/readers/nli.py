"""Sentence-pair data for natural language inference: KorNLI TSV (sentence1 / sentence2 / gold_label) and
KLUE-NLI JSON (a list of objects with premise / hypothesis / gold_label), told apart by extension or content. The
JSON fields may take the TSV's names (sentence1 / sentence2, label), and a JSON label may be a number.

Not the task: rows become `PairExample`s that remember their line, so any later label error names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taesan.textfiles import data_error, item_error, item_source, json_list, lines, read_text, tsv_rows

NLI_LABELS = ("entailment", "neutral", "contradiction")  # the conventional order, kept by the task
TSV_COLUMNS = (("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis", "gold_label"), ("premise", "hypothesis", "label"))
JSON_TEXTS = (("premise", "hypothesis"), ("sentence1", "sentence2"))
JSON_LABELS = ("gold_label", "label")


@dataclass
class PairExample:
    """A premise, a hypothesis and the label name (None when unlabelled); `source` is "FILE, line N"."""

    premise: str
    hypothesis: str
    label: str | None = None
    source: str = ""


def read_nli(path: str | Path, labelled: bool = True) -> list[PairExample]:
    """KorNLI TSV or KLUE-NLI JSON: `.json` (or text starting with [ / {) is JSON, anything else TSV.
    labelled=False (pairs to predict): the label column or field may be missing, and is not read."""
    path = Path(path)
    text = read_text(path)
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        examples = _read_json(path, text, labelled)
    else:
        examples = _read_tsv(path, labelled)
    if not examples:
        raise data_error(path, None, f"no {'labelled ' if labelled else ''}pairs in the file")
    return examples


def _read_tsv(path: Path, labelled: bool) -> list[PairExample]:
    header_no, header = next(((no, line) for no, line in lines(path) if line.strip()), (None, None))
    if header is None:
        raise data_error(path, None, "the file is empty")
    names = [c.strip() for c in header.split("\t")]
    patterns = TSV_COLUMNS if labelled else [cols[:2] for cols in TSV_COLUMNS]
    columns = next((cols for cols in patterns if all(c in names for c in cols)), None)
    if columns is None:
        wanted = "sentence1, sentence2, gold_label" if labelled else "sentence1, sentence2 (or premise, hypothesis)"
        raise data_error(path, header_no, f"expected the columns {wanted} in the header, found {names}")
    first, second, label = (*columns, None)[:3]
    out = []
    for no, row in tsv_rows(path, required=columns):
        premise, hypothesis = row[first].strip(), row[second].strip()
        gold = row[label].strip() if label is not None else None
        if not (premise and hypothesis and gold != ""):
            raise data_error(path, no, f"empty {first if not premise else second if not hypothesis else label}")
        out.append(PairExample(premise, hypothesis, gold, f"{path}, line {no}"))
    return out


def _read_json(path: Path, text: str, labelled: bool) -> list[PairExample]:
    return [_pair(path, line, item, i, labelled) for i, (line, item) in enumerate(json_list(path, text))]


def _pair(path: Path, line: int | None, item: object, index: int, labelled: bool = True) -> PairExample:
    if not isinstance(item, dict):
        raise item_error(path, line, index, "expected an object with premise, hypothesis, gold_label (or sentence1, "
                                            "sentence2, label)")
    first, second = next((names for names in JSON_TEXTS if all(n in item for n in names)), JSON_TEXTS[0])
    label = next((n for n in JSON_LABELS if n in item), JSON_LABELS[0])
    missing = [f for f in (first, second) if not isinstance(item.get(f), str) or not item[f].strip()]
    if labelled and _label(item.get(label)) is None:
        missing.append(label if label in item else f"{label} (or {JSON_LABELS[1]})")
    if missing:
        found = f" (found {', '.join(map(str, item))})" if any(f not in item for f in (first, second)) else ""
        raise item_error(path, line, index, f"missing or empty field(s) {', '.join(missing)}{found}"
                                            + _score_hint(item.get(label) if label in item else item.get("labels")))
    gold = _label(item[label]) if labelled else None
    return PairExample(item[first].strip(), item[second].strip(), gold, item_source(path, line, index))


def _label(value: object) -> str | None:
    """A class label as text: a non-empty string, or a whole JSON number (0, 1, 2) as written; else None."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _score_hint(value: object) -> str:
    """Why a real-valued or nested label is refused: a similarity score (KLUE-STS, KorSTS) is regression."""
    if isinstance(value, float) or isinstance(value, dict):
        return ("; a score such as KLUE-STS's is regression, and pair-classification learns classes: give each pair a "
                "class label (KLUE-STS's binary-label, for one)")
    return ""
