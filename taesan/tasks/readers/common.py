"""Shared by the readers: open a UTF-8 file or say why not; TSV rows with their line numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from taesan.encoding import not_utf8
from taesan.errors import TaesanError


def data_error(path: str | Path, line: int | None, message: str) -> TaesanError:
    """'FILE, line N: message' (or 'FILE: message') as the one line the user sees."""
    where = f"{path}, line {line}" if line is not None else str(path)
    return TaesanError(f"{where}: {message}")


def read_text(path: str | Path) -> str:
    """The whole file as text (UTF-8, a BOM dropped, CRLF kept for the caller to strip)."""
    path = Path(path)
    if not path.is_file():
        raise data_error(path, None, "no such file" if not path.exists() else "not a file")
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
