"""(prompt, target) pairs for generation fine-tuning, from TSV, JSONL or plain text.

Not a tokenizer and not a prompt template: the texts come back exactly as written in the file.
The format follows the file name: `.tsv` (a header naming the prompt and target columns), `.jsonl`
(one object per line with those keys; a missing prompt is ""), `.json` (a list of such objects),
anything else plain text (each non-blank line a target with an empty prompt, as for unconditional
fine-tuning on a corpus).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from taesan.tasks.readers.common import data_error, lines, read_text, tsv_rows


@dataclass
class GenerationExample:
    prompt: str
    target: str


def read_generation(path: str | Path, prompt_column: str = "prompt", target_column: str = "target") -> list[GenerationExample]:
    """Examples from `path`; a bad line is one error naming the file and line.

    TSV "prompt<TAB>target" header, then "어제 카페<TAB>갔었어" -> [GenerationExample("어제 카페", "갔었어")]
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return [GenerationExample(row[prompt_column], row[target_column])
                for _, row in tsv_rows(path, [prompt_column, target_column])]
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path, prompt_column, target_column)
    if suffix == ".json":
        return _read_json_list(path, prompt_column, target_column)
    return [GenerationExample("", line.strip()) for _, line in lines(path) if line.strip()]


def _read_jsonl(path: str | Path, prompt_column: str, target_column: str) -> list[GenerationExample]:
    out = []
    for no, line in lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise data_error(path, no, f"not a JSON object ({e.msg})") from None
        out.append(_example(record, prompt_column, target_column, lambda m: data_error(path, no, m)))
    return out


def _read_json_list(path: str | Path, prompt_column: str, target_column: str) -> list[GenerationExample]:
    try:
        records = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise data_error(path, e.lineno, f"not valid JSON ({e.msg})") from None
    if not isinstance(records, list):
        raise data_error(path, None, f"expected a JSON list of {{{prompt_column!r}, {target_column!r}}} objects")
    return [_example(r, prompt_column, target_column, lambda m, i=i: data_error(path, None, f"item {i}: {m}"))
            for i, r in enumerate(records)]


def _example(record, prompt_column: str, target_column: str, error) -> GenerationExample:
    """One JSON record -> an example; `error(message)` builds the exception naming where it came from."""
    if not isinstance(record, dict):
        raise error(f"expected a JSON object, found {type(record).__name__}")
    if target_column not in record:
        raise error(f"missing key {target_column!r}")
    prompt, target = record.get(prompt_column, ""), record[target_column]
    for key, value in ((prompt_column, prompt), (target_column, target)):
        if not isinstance(value, str):
            raise error(f"{key!r} must be a string, found {type(value).__name__}")
    return GenerationExample(prompt, target)
