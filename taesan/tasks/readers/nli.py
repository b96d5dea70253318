"""Sentence-pair data for natural language inference: KorNLI TSV (sentence1 / sentence2 / gold_label) and
KLUE-NLI JSON (a list of objects with premise / hypothesis / gold_label), told apart by extension or content.

Not the task: rows become `PairExample`s that remember their line, so any later label error names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taesan.tasks.readers.common import data_error, item_error, item_source, json_list, lines, read_text, tsv_rows

NLI_LABELS = ("entailment", "neutral", "contradiction")  # the conventional order, kept by the task
TSV_COLUMNS = (("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis", "gold_label"), ("premise", "hypothesis", "label"))
JSON_FIELDS = ("premise", "hypothesis", "gold_label")


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
        raise item_error(path, line, index, f"expected an object with {', '.join(JSON_FIELDS)}")
    fields = JSON_FIELDS if labelled else JSON_FIELDS[:2]
    missing = [f for f in fields if not isinstance(item.get(f), str) or not item[f].strip()]
    if missing:
        raise item_error(path, line, index, f"missing or empty field(s) {', '.join(missing)}")
    gold = item["gold_label"].strip() if labelled else None
    return PairExample(item["premise"].strip(), item["hypothesis"].strip(), gold, item_source(path, line, index))
