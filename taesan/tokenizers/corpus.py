"""Reading training text for tokenizers: files (plain text or JSONL) or an iterator of strings,
and counting pre-tokenized words in parallel processes. Not a tokenizer itself."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from taesan.encoding import not_utf8
from taesan.errors import TaesanError


def iter_texts(data: str | Path | Iterable[str | Path]) -> Iterator[str]:
    """Yield texts from a path, a list of paths, or an iterator of strings.

    A `.jsonl` file yields each object's "text" field; any other file yields its lines (without the
    newline). A missing file, a non-UTF-8 file or a JSONL line without "text" raises a TaesanError
    naming the file and line.
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


def _iter_file(path: Path) -> Iterator[str]:
    if not path.is_file():
        raise TaesanError(f"{path}: {'a directory, not a text file' if path.is_dir() else 'file not found'}")
    with open(path, encoding="utf-8", newline="") as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if path.suffix == ".jsonl":
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise TaesanError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        raise TaesanError(f"{path}:{lineno}: a JSONL line needs a string field 'text'")
                    yield obj["text"]
                else:
                    yield line
        except UnicodeDecodeError as e:
            raise not_utf8(path, e.reason, where=f"{path}, near line {lineno + 1}") from None


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
