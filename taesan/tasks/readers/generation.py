"""(prompt, target) pairs for generation fine-tuning, from TSV, JSONL or plain text.

Not a tokenizer and not a prompt template: the texts come back exactly as written in the file.
The format follows the file name: `.tsv` (a header naming the prompt and target columns), `.jsonl`
(or `.ndjson`: one object per line with those keys; a missing prompt is ""), `.json` (a list of such objects),
anything else plain text (each non-blank line a target with an empty prompt, as for unconditional
fine-tuning on a corpus).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taesan.textfiles import item_error, json_records, lines, tsv_rows


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
    if suffix in (".jsonl", ".ndjson", ".json"):
        return [_example(record, prompt_column, target_column, lambda m, line=line, i=i: item_error(path, line, i, m))
                for i, (line, record) in enumerate(json_records(path))]
    return [GenerationExample("", line.strip()) for _, line in lines(path) if line.strip()]


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
