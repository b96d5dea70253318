"""The token cache: a corpus tokenized once (in parallel) into a numpy memmap of ids with document
separators, reused while the corpus, tokenizer and split are unchanged.

Not batches (data/batches.py draws them) and not a tokenizer: any object with
`encode(text, add_special_tokens=False).ids`.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from taesan.atomic import atomic_path
from taesan.config import read_json, write_json
from taesan.errors import TaesanError
from taesan.tokenizers.corpus import corpus_format, iter_texts

CACHE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "valid")


# ---- the token cache on disk ----------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides the ids: the tokenizer's full JSON form (or its vocab)."""
    data = tokenizer.to_hf_json() if hasattr(tokenizer, "to_hf_json") else {"vocab": tokenizer.vocab}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def corpus_fingerprint(paths: Sequence[str | Path], tokenizer: Any, separator_id: int, valid_every: int) -> dict[str, Any]:
    """What the cache was built from: each file's path, size, mtime and how it is read (`corpus_format`: a table's text
    column, not its lines), the tokenizer and the split rule. A cache from before tables were read by column has no
    "read_as" and is rebuilt, so ratings_train.txt's ids and labels tokenized then are never reused."""
    files = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise TaesanError(f"{p}: corpus file not found")
        st = p.stat()
        kind, column = corpus_format(p)
        files.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "read_as": f"{kind}:{column}" if column else kind})
    return {
        "format": CACHE_FORMAT, "files": files, "tokenizer": tokenizer_fingerprint(tokenizer),
        "separator_id": int(separator_id), "valid_every": int(valid_every),
    }


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (vocab ≤ 65,536), else uint32: half the disk and page cache for most vocabs."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass
class TokenSplit:
    """One split of the cache: `tokens` (memmap of ids, each document followed by the separator) and
    `offsets` (n_docs + 1,) where document i is tokens[offsets[i] : offsets[i+1]] (separator included)."""

    tokens: np.ndarray
    offsets: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_docs(self) -> int:
        return int(self.offsets.shape[0]) - 1


@dataclass
class TokenCache:
    directory: Path
    manifest: dict[str, Any]
    train: TokenSplit
    valid: TokenSplit | None  # None when the corpus is too small to hold documents out
    reused: bool  # True when an existing cache matched the corpus and nothing was tokenized


_WORKER_TOKENIZER: Any = None


def _init_worker(tokenizer: Any) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_chunk(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """texts -> (concatenated ids without separators (uint32), each text's length)."""
    ids: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        piece = _WORKER_TOKENIZER.encode(t, add_special_tokens=False).ids
        ids.extend(piece)
        lengths[i] = len(piece)
    return np.asarray(ids, dtype=np.uint32), lengths


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for t in texts:
        if t.strip():
            chunk.append(t)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _encoded_chunks(
    paths: Sequence[Path], tokenizer: Any, workers: int, chunk_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Encoded chunks in corpus order; `workers` > 1 tokenizes in a process pool."""
    chunks = _chunks(iter_texts(list(paths)), chunk_size)
    if workers <= 1:
        _init_worker(tokenizer)
        yield from map(_encode_chunk, chunks)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
        yield from pool.imap(_encode_chunk, chunks)


def build_token_cache(
    paths: Sequence[str | Path],
    tokenizer: Any,
    directory: str | Path,
    separator_id: int,
    valid_every: int = 50,
    workers: int | None = None,
    chunk_size: int = 512,
) -> TokenCache:
    """Tokenize `paths` (one document per line, JSONL or a JSON list's "text", a table's text column: `iter_texts`)
    into `directory`, or reuse it.

    Every `valid_every`-th document goes to the held-out "valid" split (0: no valid split). The
    manifest is written last, so a cache without a matching manifest is never trusted; each file
    is written atomically. Returns the opened cache; `reused` says whether tokenizing was skipped.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise TaesanError("no corpus files given")
    directory = Path(directory)
    fingerprint = corpus_fingerprint(paths, tokenizer, separator_id, valid_every)
    manifest_path = directory / MANIFEST_NAME
    if manifest_path.is_file():
        old = read_json(manifest_path)
        if isinstance(old, dict) and old.get("fingerprint") == fingerprint:
            try:
                return open_token_cache(directory, reused=True)
            except TaesanError:
                pass  # a damaged cache is rebuilt below
    if workers is None:
        total = sum(p.stat().st_size for p in paths)
        workers = 1 if total < 2_000_000 else min(4, os.cpu_count() or 1)
    dtype = token_dtype(len(tokenizer.vocab) if hasattr(tokenizer, "vocab") else tokenizer.vocab_size)
    directory.mkdir(parents=True, exist_ok=True)
    if manifest_path.exists():
        manifest_path.unlink()  # the old cache is invalid from here on
    counts = {s: 0 for s in SPLITS}
    lengths: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    doc_index = 0
    with atomic_path(directory / "train.bin") as train_tmp, atomic_path(directory / "valid.bin") as valid_tmp:
        with open(train_tmp, "wb") as f_train, open(valid_tmp, "wb") as f_valid:
            files = {"train": f_train, "valid": f_valid}
            for ids, lens in _encoded_chunks(paths, tokenizer, workers, chunk_size):
                if ids.size and int(ids.max()) > np.iinfo(dtype).max:
                    raise TaesanError(f"token id {int(ids.max())} does not fit the cache dtype {dtype}")
                ends = np.cumsum(lens)  # (n_docs,) where each document's ids end
                with_sep = np.insert(ids, ends, separator_id).astype(dtype)  # a separator after every document
                doc_lens = lens + 1
                number = doc_index + np.arange(len(lens))
                held = number % valid_every == valid_every - 1 if valid_every else np.zeros(len(lens), dtype=bool)
                token_held = np.repeat(held, doc_lens)  # (n_tokens,) which split each token goes to
                for split, mask in (("train", ~held), ("valid", held)):
                    part = with_sep[~token_held] if split == "train" else with_sep[token_held]
                    files[split].write(part.tobytes())
                    lengths[split].append(doc_lens[mask])
                    counts[split] += int(part.size)
                doc_index += len(lens)
        if counts["train"] == 0:
            raise TaesanError(f"{', '.join(map(str, paths))}: the corpus has no text (every line is empty)")
        for split in SPLITS:
            lens = np.concatenate(lengths[split]) if lengths[split] else np.zeros(0, dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            with atomic_path(directory / f"{split}.idx.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, offsets)
    manifest = {
        "fingerprint": fingerprint, "dtype": dtype.name, "vocab_size": int(getattr(tokenizer, "vocab_size", 0)),
        "documents": doc_index, "tokens": counts,
    }
    write_json(manifest_path, manifest)
    return open_token_cache(directory, reused=False)


def open_token_cache(directory: str | Path, reused: bool = True) -> TokenCache:
    """Open a cache written by `build_token_cache` (memmaps: nothing is read into memory)."""
    directory = Path(directory)
    manifest = read_json(directory / MANIFEST_NAME)
    splits: dict[str, TokenSplit | None] = {}
    for split in SPLITS:
        n = int(manifest["tokens"][split])
        bin_path, idx_path = directory / f"{split}.bin", directory / f"{split}.idx.npy"
        dtype = np.dtype(manifest["dtype"])
        if not bin_path.is_file() or bin_path.stat().st_size != n * dtype.itemsize:
            raise TaesanError(f"{bin_path}: missing or of the wrong size for its manifest")
        offsets = np.load(idx_path, allow_pickle=False)
        if n == 0:
            splits[split] = None
            continue
        splits[split] = TokenSplit(np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,)), offsets)
    return TokenCache(directory, manifest, splits["train"], splits["valid"], reused)
