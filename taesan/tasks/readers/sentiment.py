"""Single-sentence classification data: NSMC-style TSV (header id / document / label), one labelled text per row.

Not a tokenizer and not the task: rows become `TextExample`s with the line they came from, so an unknown
label found later (evaluate on a file with a label the model never saw) still names its file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taesan.tasks.readers.common import data_error, lines, tsv_rows

TEXT_COLUMNS = ("document", "text", "sentence")  # NSMC, a generic file, GLUE SST-2


@dataclass
class TextExample:
    """One text and its label name (None when unlabelled); `source` is "FILE, line N" for error messages."""

    text: str
    label: str | None = None
    source: str = ""


def read_sentiment(path: str | Path) -> list[TextExample]:
    """A TSV with a header naming a text column (document, text or sentence) and a label column.

    No quoting (as NSMC is read: quoting=3). Rows with an empty text are skipped (NSMC has a few);
    an empty label, a missing column or a short row is an error naming the file and line.
    """
    header_no, header = next(((no, line) for no, line in lines(path) if line.strip()), (None, None))
    if header is None:
        raise data_error(path, None, "the file is empty")
    names = [c.strip() for c in header.split("\t")]
    column = next((c for c in TEXT_COLUMNS if c in names), None)
    if column is None:
        raise data_error(path, header_no, f"no text column: the header needs one of {', '.join(TEXT_COLUMNS)} (found {names})")
    examples = []
    for no, row in tsv_rows(path, required=[column, "label"]):
        text, label = row[column].strip(), row["label"].strip()
        if not label:
            raise data_error(path, no, "empty label")
        if text:
            examples.append(TextExample(text, label, f"{path}, line {no}"))
    if not examples:
        raise data_error(path, None, "no labelled rows after the header")
    return examples
