"""Reading training text for tokenizers, word vectors and pretraining: files (plain text, JSONL, a JSON list, a data
table's text column) or an iterator of strings, and counting pre-tokenized words in parallel. Not a tokenizer itself."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from taesan.errors import TaesanError
from taesan.textfiles import (
    TEXT_COLUMNS,
    csv_rows,
    data_error,
    header_names,
    item_error,
    json_list,
    read_text,
    stream_lines,
    tsv_rows,
)

CORPUS_KINDS = (f"a corpus needs plain text (one text per line), JSON Lines with \"text\", or a table (.tsv, .csv) "
                f"with a {', '.join(TEXT_COLUMNS[:-1])} or {TEXT_COLUMNS[-1]} column")


def iter_texts(data: str | Path | Iterable[str | Path]) -> Iterator[str]:
    """Yield texts from a path, a list of paths, or an iterator of strings; a file is read as `corpus_format` says.

    A missing file, a non-UTF-8 file (named at the line that fails to decode), a JSONL line without "text" or a table
    without a text column raises a TaesanError naming the file and line.
    """
    if isinstance(data, (str, Path)):
        data = [data]
    for item in data:
        if isinstance(item, Path) or (isinstance(item, str) and _looks_like_path(item)):
            yield from _iter_file(Path(item))
        elif isinstance(item, str):
            yield item
        else:
            raise TaesanError(f"expected text or a file path, got {type(item).__name__}")


def _looks_like_path(s: str) -> bool:
    return "\n" not in s and len(s) < 4096 and os.path.isfile(s)


def corpus_format(path: str | Path) -> tuple[str, str | None]:
    """How a corpus file is read, from its suffix and header: ("jsonl", None) each object's "text"; ("json", None) a
    list of objects' "text"; ("table", COLUMN) a .tsv, a .csv, or a file whose first non-empty line is a tab-separated
    header naming a text column (NSMC's ratings_train.txt: id, document, label), read for that column only;
    ("text", None) one text per line.

    Why: read as lines, a table puts its ids, labels and header into the corpus (word2vec's neighbours of 영화 were
    review ids). A .tsv or .csv without a document, text or sentence column is an error, not lines.
    """
    path = _existing(Path(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return suffix[1:], None
    names = csv_rows(path)[1] if suffix == ".csv" else header_names(path)
    column = next((c for c in TEXT_COLUMNS if c in names), None)
    if suffix in (".tsv", ".csv") and column is None:
        raise data_error(path, None, f"no text column: a table corpus needs a header naming one of "
                                     f"{', '.join(TEXT_COLUMNS)} (found {names or 'an empty file'})")
    if column is not None and (suffix in (".tsv", ".csv") or len(names) > 1):
        return "table", column
    return "text", None


def describe(path: str | Path) -> str | None:
    """The line a command says once about a file not read as plain lines or JSONL, e.g. "corpus: ratings_train.txt is
    a table; reading its 'document' column (149,995 rows)"; None for those. Reads the file through (so a bad row is
    reported before any training)."""
    path = Path(path)
    kind, column = corpus_format(path)
    if kind == "table":
        return f"corpus: {path.name} is a table; reading its '{column}' column ({_count(path):,} rows)"
    if kind == "json":
        return f"corpus: {path.name} is a JSON list; reading each record's 'text' ({_count(path):,} records)"
    return None


def _count(path: Path) -> int:
    return sum(1 for _ in _iter_file(path))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise TaesanError(f"{path}: {'a directory, not a text file' if path.is_dir() else 'file not found'}")
    return path


def _iter_file(path: Path) -> Iterator[str]:
    kind, column = corpus_format(path)
    if kind == "json":
        yield from _json_texts(path)
    elif kind == "table":
        yield from _table_texts(path, column, path.suffix.lower() == ".csv")
    else:
        for lineno, line in stream_lines(path):
            line = line.rstrip("\r\n")
            if kind == "text":
                yield line
            elif line.strip():
                yield _jsonl_text(path, lineno, line)


def _table_texts(path: Path, column: str, comma: bool) -> Iterator[str]:
    """The non-empty values of a table's text column, read as the tasks' readers read tables (a row shorter than
    the header is an error naming its line)."""
    rows = csv_rows(path)[2] if comma else tsv_rows(path, required=[column])
    for _, row in rows:
        text = row[column].strip()
        if text:
            yield text


def _jsonl_text(path: Path, lineno: int, line: str) -> str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise TaesanError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise TaesanError(f"{path}:{lineno}: a JSONL line needs a string field 'text'")
    return obj["text"]


def _json_texts(path: Path) -> list[str]:
    """Each record's "text" of a JSON list of objects (or {"data": [...]}), checked whole before training starts: a
    dataset of another shape (KLUE-NLI's premise/hypothesis, SQuAD's paragraphs) is an error, not JSON syntax as text."""
    text = read_text(path)
    try:
        records = json_list(path, text)
    except TaesanError as e:
        raise TaesanError(f"{e}; {CORPUS_KINDS}") from None
    texts = []
    for i, (line, item) in enumerate(records):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            if i == 0:
                names = list(item) if isinstance(item, dict) else []
                shown = (f"fields {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}" if names
                         else f"a {type(item).__name__}")
                raise data_error(path, line, f'the records have no string field "text" (the first has {shown}); '
                                             f"{CORPUS_KINDS}")
            raise item_error(path, line, i, 'a record needs a string field "text", as the first has')
        texts.append(item["text"])
    if not texts:
        raise data_error(path, None, "the JSON list is empty")
    return texts


def _count_batch(args: tuple[Callable[[str], list[str]], list[str]]) -> Counter:
    pretokenize, texts = args
    counts: Counter = Counter()
    for t in texts:
        counts.update(pretokenize(t))
    return counts


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for t in texts:
        batch.append(t)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def count_words(
    data: str | Path | Iterable[str | Path],
    pretokenize: Callable[[str], list[str]],
    workers: int | None = None,
    batch_size: int = 2000,
) -> Counter:
    """Count the pre-tokenized words of a corpus: {word: frequency}, using `workers` processes.

    `pretokenize` must be a module-level function (it is sent to worker processes). Training then
    works on distinct words with their counts, never on the raw corpus again.
    """
    workers = workers or min(2, os.cpu_count() or 1)
    batches = _batches(iter_texts(data), batch_size)
    total: Counter = Counter()
    if workers <= 1:
        for b in batches:
            total.update(_count_batch((pretokenize, b)))
        return total
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(workers) as pool:
        for c in pool.imap_unordered(_count_batch, ((pretokenize, b) for b in batches)):
            total.update(c)
    return total
