"""Parallel text for translation: one TSV file, or two line-aligned files named as one "SRC,TGT" path.

Not a sentence aligner: line i of the source file pairs with line i of the target file, and a TSV
row pairs two of its columns. Examples:
  "korean-english-park.test.ko,korean-english-park.test.en"  -> Korean source, English target
  "tatoeba_kor-eng.shared.tsv" (English<TAB>Korean<TAB>attribution, no header) with source_column=1,
  target_column=0 -> Korean to English; extra columns (the attribution) are ignored.
Unequal line counts, a short row or one side empty is one error naming the file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taesan.textfiles import data_error, read_text


@dataclass
class ParallelExample:
    source: str
    target: str


def read_parallel(path: str | Path, source_column: int = 0, target_column: int = 1) -> list[ParallelExample]:
    """Pairs from a TSV file or a "SRC,TGT" pair of aligned files (see the module docstring)."""
    text = str(path)
    if "," in text and not Path(text).exists():
        source, target = text.split(",", 1)
        return read_aligned(source.strip(), target.strip())
    return read_tsv_pairs(path, source_column, target_column)


def read_tsv_pairs(path: str | Path, source_column: int = 0, target_column: int = 1) -> list[ParallelExample]:
    """Rows "a<TAB>b<TAB>..." -> ParallelExample(row[source_column], row[target_column]); no header, blank lines skipped."""
    if source_column < 0 or target_column < 0 or source_column == target_column:
        raise data_error(path, None, f"source_column={source_column} and target_column={target_column} must be two different columns >= 0")
    need = max(source_column, target_column) + 1
    out = []
    for no, line in enumerate(_newline_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < need:
            raise data_error(path, no, f"expected at least {need} tab-separated fields (columns {source_column} and {target_column}), found {len(fields)}")
        src, tgt = fields[source_column].strip(), fields[target_column].strip()
        if not src or not tgt:
            raise data_error(path, no, f"empty {'source' if not src else 'target'} column")
        out.append(ParallelExample(src, tgt))
    if not out:
        raise data_error(path, None, "no sentence pairs in the file")
    return out


def read_aligned(source_path: str | Path, target_path: str | Path) -> list[ParallelExample]:
    """Line i of `source_path` with line i of `target_path`; lines blank on both sides are skipped."""
    src_lines, tgt_lines = _newline_lines(source_path), _newline_lines(target_path)
    if len(src_lines) != len(tgt_lines):
        shorter, longer = (source_path, target_path) if len(src_lines) < len(tgt_lines) else (target_path, source_path)
        n = min(len(src_lines), len(tgt_lines))
        raise data_error(longer, n + 1, f"{shorter} ends at line {n}: the files are not aligned "
                                        f"({len(src_lines)} source vs {len(tgt_lines)} target lines)")
    out = []
    for no, (src, tgt) in enumerate(zip(src_lines, tgt_lines), start=1):
        src, tgt = src.strip(), tgt.strip()
        if not src and not tgt:
            continue
        if not src or not tgt:
            empty = source_path if not src else target_path
            raise data_error(empty, no, "empty line where the other file has a sentence")
        out.append(ParallelExample(src, tgt))
    if not out:
        raise data_error(source_path, None, "no sentence pairs in the files")
    return out


def _newline_lines(path: str | Path) -> list[str]:
    """Lines split at "\n" only (CR dropped): str.splitlines would also split at U+2028 or \x1c inside a
    sentence and shift every later pair out of alignment."""
    text = read_text(path)
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return [p.rstrip("\r") for p in parts]
