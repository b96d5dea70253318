"""User text files: open a UTF-8 file or say why not; TSV, CSV and JSON rows with their line numbers.

Not a dataset reader: the tasks' readers (labelled data) and corpus reading (tokenizers, word vectors,
pretraining) build on it, so both read a table or a JSON list the same way and name the same file and line."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from taesan.encoding import not_utf8
from taesan.errors import TaesanError

TEXT_COLUMNS = ("document", "text", "sentence")  # a table's text, by name: NSMC, a generic file, GLUE SST-2
EXCERPT = 60  # characters of a text (a question, a context, a whole line) an error message quotes


def data_error(path: str | Path, line: int | None, message: str) -> TaesanError:
    """'FILE, line N: message' (or 'FILE: message') as the one line the user sees."""
    where = f"{path}, line {line}" if line is not None else str(path)
    return TaesanError(f"{where}: {message}")


def _existing_file(path: str | Path) -> Path:
    """`path` as a Path, or "FILE: no such file" / "FILE: not a file" (a directory) as one line."""
    path = Path(path)
    if not path.is_file():
        raise data_error(path, None, "no such file" if not path.exists() else "not a file")
    return path


def read_text(path: str | Path) -> str:
    """The whole file as text (UTF-8, a BOM dropped, CRLF kept for the caller to strip)."""
    path = _existing_file(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise not_utf8(path, f"byte {e.start}", where=f"{path}, line {line}") from None


def lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending) for every line."""
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        yield i, line


def stream_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line with its ending) of a UTF-8 file read as it goes (a corpus may be large), a BOM dropped.
    A text-mode read decodes 8 KB ahead, so a CP949 file failed "near line 1" whatever its first line: the error
    names the first line that does not decode."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            yield from enumerate(f, 1)
        except UnicodeDecodeError as e:
            raise not_utf8(path, e.reason, where=f"{path}, line {_undecodable_line(path)}") from None


def _undecodable_line(path: str | Path) -> int:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return 1


def header_names(path: str | Path) -> list[str]:
    """The tab-separated names on the first non-empty line ([] for an empty file): how a file named .txt, such as
    NSMC's ratings_test.txt, is told to be a table. Reads only up to that line (a plain corpus may be large)."""
    path = _existing_file(path)
    return next(([c.strip() for c in line.rstrip("\r\n").split("\t")] for _, line in stream_lines(path) if line.strip()), [])


def tsv_rows(path: str | Path, required: Sequence[str], header: bool = True) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a tab-separated file with a header line, as {column: value}; no quoting (as NSMC is read).

    A missing required column, or a row with fewer fields than the header, is an error naming the line.
    Blank lines are skipped.
    """
    columns: list[str] | None = None if header else list(required)
    for no, line in lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if columns is None:
            columns = [c.strip() for c in fields]
            missing = [c for c in required if c not in columns]
            if missing:
                raise data_error(path, no, f"missing column(s) {', '.join(missing)} in the header {columns}")
            continue
        if len(fields) < len(columns):
            raise data_error(path, no, f"expected {len(columns)} tab-separated fields, found {len(fields)}")
        yield no, dict(zip(columns, fields))
    if columns is None and header:
        raise data_error(path, None, "the file is empty")


def csv_rows(path: str | Path) -> tuple[int | None, list[str], list[tuple[int, dict[str, str]]]]:
    """(header line, column names, rows as (line, {column: value})) of a comma-separated file with a header, quoted
    as Excel and pandas write it (a quoted field may hold commas, quotes and newlines). Blank lines are skipped;
    a row with fewer fields than the header is an error naming its line."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    header_no, names, rows = None, [], []
    try:
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if header_no is None:
                header_no, names = reader.line_num, [f.strip() for f in fields]
                continue
            if len(fields) < len(names):
                raise data_error(path, reader.line_num, f"expected {len(names)} comma-separated fields, found {len(fields)}")
            rows.append((reader.line_num, dict(zip(names, fields))))
    except csv.Error as e:
        raise data_error(path, reader.line_num, f"not valid CSV ({e})") from None
    if header_no is None:
        raise data_error(path, None, "the file is empty")
    return header_no, names, rows


def json_records(path: str | Path) -> list[tuple[int | None, Any]]:
    """(line, item) for each record of a JSON Lines file (one per line) or a JSON file holding a list (or
    {"data": [...]}, as KLUE and SQuAD-style files wrap theirs), by extension (.jsonl / .ndjson, else a list); the caller
    checks that each item is the object it needs (`item_source` names it)."""
    if Path(path).suffix.lower() not in (".jsonl", ".ndjson"):
        return json_list(path, read_text(path))
    return [(no, parse_json(path, line, no)) for no, line in lines(path) if line.strip()]


def parse_json(path: str | Path, text: str, line: int | None = None, expected: str = "") -> Any:
    """json.loads(text), or the one-line error naming the file and line: `line` where `text` is one line of the
    file (a JSON Lines record), else the decoder's own; `expected` is added to the message ("; expected ...")."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise data_error(path, line if line is not None else e.lineno, f"not valid JSON ({e.msg}){expected}") from None


def json_list(path: str | Path, text: str) -> list[tuple[int | None, Any]]:
    """(line, item) for each item of a JSON list, decoded one at a time so each keeps the line it starts on
    (json.loads would lose it); {"data": [...]} wrappers are decoded whole, their items without a line."""
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] == "{":
        data = parse_json(path, text)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise data_error(path, None, 'expected a JSON list of objects (or {"data": [...]})')
        return [(None, item) for item in items]
    if text[start:start + 1] != "[":
        raise data_error(path, 1, 'expected a JSON list of objects (or {"data": [...]})')
    decoder, out, pos = json.JSONDecoder(), [], start + 1
    line, counted = 1, 0  # the line at offset `counted`, moved forward only
    while True:
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == "]":
            return out
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise data_error(path, e.lineno, f"not valid JSON ({e.msg})") from None
        out.append((line, item))
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == ",":
            pos += 1
        elif text[pos:pos + 1] != "]":
            raise data_error(path, line + text.count("\n", counted, pos), "expected ',' or ']' after a list item")


def item_source(path: str | Path, line: int | None, index: int) -> str:
    """"FILE, line N" for an item whose line is known, else "FILE, item N" (1-based)."""
    return f"{path}, line {line}" if line is not None else f"{path}, item {index + 1}"


def item_error(path: str | Path, line: int | None, index: int, message: str) -> TaesanError:
    """"FILE, line N: message" (or "FILE, item N: message"): a JSON record's one-line error."""
    return TaesanError(f"{item_source(path, line, index)}: {message}")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """repr(text), cut after `limit` characters, so an error never echoes a whole document.

    excerpt("세종대왕은 훈민정음을", 4) -> "'세종대왕...'"
    """
    if len(text) <= limit:
        return repr(text)
    shown = repr(text[:limit])
    return shown[:-1] + "..." + shown[-1]
