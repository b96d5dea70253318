"""Single-sentence classification data, one labelled text per row: NSMC-style TSV (header id / document / label),
CSV (quoted as Excel and pandas write it), JSON Lines or a JSON list of objects, by extension.

Not a tokenizer and not the task: rows become `TextExample`s with the line they came from, so an unknown
label found later (evaluate on a file with a label the model never saw) still names its file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taesan.textfiles import TEXT_COLUMNS, csv_rows, data_error, item_error, item_source, json_records, lines, tsv_rows

LABEL_COLUMN = "label"
TABLE_SUFFIXES = (".tsv", ".csv", ".json", ".jsonl")  # what `predict --file` reads as a table, not line by line


@dataclass
class TextExample:
    """One text and its label name (None when unlabelled); `source` is "FILE, line N" for error messages."""

    text: str
    label: str | None = None
    source: str = ""


def read_sentiment(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                   labelled: bool = True, keep_empty: bool = False) -> list[TextExample]:
    """Labelled texts from a TSV, .csv, .jsonl or .json file whose header (or objects) name a text column
    (`text_column`, else the first of document, text, sentence) and a label column (`label_column`, else label).

    TSV has no quoting (as NSMC is read: quoting=3). Rows with an empty text are skipped (NSMC has a few); an empty
    label, a missing column or a short row is an error naming the file and line. A JSON label may be a number.
    labelled=False (texts to predict): the label column may be missing or empty, and is not read; rows with an empty
    text are kept (as ""), so predictions line up one to one with the rows. keep_empty=True keeps them when labelled
    too, for a caller that counts what it leaves out.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        rows = _json_rows(path)
        header_no, names = (rows[0][0], list(rows[0][2])) if rows else (None, [])
    elif suffix == ".csv":
        header_no, names, table = csv_rows(path)
        rows = [(no, f"{path}, line {no}", row) for no, row in table]
    else:
        header_no, header = next(((no, line) for no, line in lines(path) if line.strip()), (None, None))
        if header is None:
            raise data_error(path, None, "the file is empty")
        names, rows = [c.strip() for c in header.split("\t")], None
    column = text_column or next((c for c in TEXT_COLUMNS if c in names), None)
    label = label_column or LABEL_COLUMN
    holder = "the first record's fields" if suffix in (".json", ".jsonl") else "the header"
    if column is None or column not in names:
        wanted = f"the column {column}" if column else f"one of {', '.join(TEXT_COLUMNS)}"
        raise data_error(path, header_no, f"no text column: {holder} needs {wanted} (found {names}); "
                                          f"--set text_column=NAME names another")
    if not labelled:
        label = None
    elif label not in names:
        raise data_error(path, header_no, f"missing column(s) {label} in {holder} {names}; --set label_column=NAME "
                                          f"names another")
    if rows is None:  # TSV: read now that the columns are known (a short row is an error naming its line)
        rows = [(no, f"{path}, line {no}", row) for no, row in tsv_rows(path, required=[c for c in (column, label) if c])]
    examples = []
    for no, source, row in rows:
        if column not in row or label is not None and label not in row:
            raise data_error(path, no, f"missing field {column if column not in row else label}")
        text = _text(path, no, row[column], column).strip()
        gold = _text(path, no, row[label], label).strip() if label is not None else None
        if gold == "":
            raise data_error(path, no, "empty label")
        if text or not labelled or keep_empty:
            examples.append(TextExample(text, gold, source))
    if not any(ex.text for ex in examples):
        raise data_error(path, None, f"no {'labelled ' if labelled else ''}rows after the header")
    return examples


def _json_rows(path: Path) -> list[tuple[int | None, str, dict[str, Any]]]:
    """(line, source, object) for each record of a JSON file; a record that is not an object names itself."""
    rows = []
    for i, (line, item) in enumerate(json_records(path)):
        if not isinstance(item, dict):
            raise item_error(path, line, i, "expected an object")
        rows.append((line, item_source(path, line, i), item))
    if not rows:
        raise data_error(path, None, "the file is empty")
    return rows


def _text(path: Path, line: int | None, value: Any, column: str) -> str:
    """A field as text: a string as is, a JSON number (a label such as 0 or 1) as it is written."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise data_error(path, line, f"field {column} is {type(value).__name__}, expected text or a number")
