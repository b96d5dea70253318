"""Lines of every text file in ../shared/data for tokenizer parity tests: an even sample of each file (its
first line, then every k-th), plus every empty and whitespace-only line any file has. JSONL files give the
lines of their "text" fields, JSON files (SQuAD, KorQuAD, KLUE-NLI) the lines of every string in them."""
from __future__ import annotations

import json
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".tsv", ".jsonl", ".json", ".ko", ".en"}


def text_files(shared_data: Path) -> list[Path]:
    return sorted(p for p in shared_data.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    return [s for x in obj for s in _strings(x)] if isinstance(obj, list) else []


def file_lines(path: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [line for row in raw.splitlines() if row.strip() for line in json.loads(row).get("text", "").split("\n")]
    if path.suffix == ".json":
        return [line for s in _strings(json.loads(raw)) for line in s.split("\n")]
    return raw.split("\n")  # "\r" stays at the end of CRLF lines: a character the tokenizers must handle too


def sample_lines(shared_data: Path, per_file: int) -> list[str]:
    """About `per_file` lines of each file, and all its blank ones (each distinct line once)."""
    out: dict[str, None] = {}
    for path in text_files(shared_data):
        lines = file_lines(path)
        step = max(1, len(lines) // per_file)
        for line in lines[::step][:per_file]:
            out.setdefault(line, None)
        for line in lines:
            if not line.strip():
                out.setdefault(line, None)
    return list(out)
