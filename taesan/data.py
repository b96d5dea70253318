"""Pretraining data: a corpus tokenized once (in parallel) into a numpy memmap of ids with document
separators, then batches drawn from it by a seeded, resumable sampler without growing memory.

Not an objective: batches here are plain token ids (+ attention masks); objectives turn them into
model inputs and labels. Not a tokenizer: any object with `encode(text, add_special_tokens=False).ids`.
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
import torch

from taesan.atomic import atomic_path
from taesan.config import read_json, write_json
from taesan.errors import TaesanError
from taesan.tokenizers.corpus import iter_texts

CACHE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "valid")


# ---- the token cache on disk ----------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides the ids: the tokenizer's full JSON form (or its vocab)."""
    data = tokenizer.to_hf_json() if hasattr(tokenizer, "to_hf_json") else {"vocab": tokenizer.vocab}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def corpus_fingerprint(paths: Sequence[str | Path], tokenizer: Any, separator_id: int, valid_every: int) -> dict[str, Any]:
    """What the cache was built from: each file's path, size and mtime, the tokenizer and the split rule."""
    files = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise TaesanError(f"{p}: corpus file not found")
        st = p.stat()
        files.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
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
    """Tokenize `paths` (text lines or JSONL "text", one document per line) into `directory`, or reuse it.

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


# ---- sampling: which items each rank reads at each step -------------------------------------------------


class ShuffledSampler:
    """An endless stream of item indices in [0, n_items): a fresh seeded permutation per epoch.

    At step g, rank r of `world_size` takes stream positions (g·world + r)·batch_size … + batch_size,
    so ranks read disjoint shares and, together, every item once per epoch. The state is just the
    step counter: resuming regenerates the epoch's permutation from (seed, epoch). Memory is one
    permutation (n_items int64), whatever the number of steps.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if n_items < 1:
            raise TaesanError("nothing to sample from: the data has no complete item")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.step = 0
        self._epoch: int | None = None
        self._perm: np.ndarray | None = None

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch != epoch:
            self._perm, self._epoch = self.epoch_rng(epoch).permutation(self.n_items), epoch
        return self._perm

    def next_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (item indices (batch_size,), their epochs (batch_size,)); advances the step."""
        first = (self.step * self.world_size + self.rank) * self.batch_size
        positions = np.arange(first, first + self.batch_size)
        epochs = positions // self.n_items
        items = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            items[sel] = self._permutation(int(e))[positions[sel] % self.n_items]
        self.step += 1
        return items, epochs

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "seed": self.seed, "n_items": self.n_items, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("n_items") != self.n_items or state.get("seed") != self.seed:
            raise TaesanError(
                f"the saved data position (seed {state.get('seed')}, {state.get('n_items')} items) does not match "
                f"this data (seed {self.seed}, {self.n_items} items): the corpus or --block-size changed"
            )
        self.step = int(state["step"])


# ---- batches for each objective -------------------------------------------------------------------------


class CausalWindows:
    """Random windows of block_size + 1 ids from the memmap (for causal/backward LM), resumable.

    The split is cut into (n_tokens − 1) // block_size non-overlapping windows on a grid shifted by a
    random amount each epoch, so the windows change across epochs yet cover the data. A batch is
    {"input_ids": (B, block_size + 1)}; the objective shifts it into inputs and next-token labels.
    """

    def __init__(
        self, split: TokenSplit, block_size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if split.n_tokens < block_size + 1:
            raise TaesanError(
                f"the corpus has {split.n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}; lower --block-size"
            )
        self.tokens, self.block_size = split.tokens, block_size
        self.n_windows = (split.n_tokens - 1) // block_size
        self.slack = split.n_tokens - 1 - self.n_windows * block_size
        self.sampler = ShuffledSampler(self.n_windows, batch_size, seed, rank, world_size)

    def _shift(self, epoch: int) -> int:
        return int(np.random.default_rng([self.sampler.seed, epoch, 1]).integers(self.slack + 1))

    def next_batch(self) -> dict[str, torch.Tensor]:
        items, epochs = self.sampler.next_indices()
        starts = [int(i) * self.block_size + self._shift(int(e)) for i, e in zip(items, epochs)]
        rows = np.stack([self.tokens[s : s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
        return {"input_ids": torch.from_numpy(rows)}

    def eval_batches(self, n_batches: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """The same fixed windows every call: the first n_batches·batch_size grid windows, in order."""
        n = min(self.n_windows, n_batches * batch_size)
        for b in range(0, n, batch_size):
            starts = range(b * self.block_size, min(n, b + batch_size) * self.block_size, self.block_size)
            rows = np.stack([self.tokens[s : s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
            yield {"input_ids": torch.from_numpy(rows)}

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


SENTENCE_ENDS = (".", "?", "!", "。", "\n")


def sentence_end_ids(tokenizer: Any) -> np.ndarray:
    """A (vocab_size,) bool array: True for tokens that end a sentence ("다.", "?", "!", a newline).

    Used to cut documents longer than a row at a sentence boundary instead of mid-sentence.
    """
    ends = np.zeros(tokenizer.vocab_size, dtype=bool)
    for token, i in tokenizer.vocab.items():
        if token in tokenizer.special_tokens:
            continue
        text = tokenizer.decode([i], skip_special_tokens=False).rstrip(" ")
        ends[i] = text.endswith(SENTENCE_ENDS)
    return ends


def pack_documents(offsets: np.ndarray, block_size: int, n_special: int = 2, tokens: np.ndarray | None = None,
                   sentence_ends: np.ndarray | None = None) -> np.ndarray:
    """Greedy sentence-aware packing plan: rows of whole documents up to block_size.

    Returns (n_segments, 3) int64 rows (row, start, end): token spans (separators excluded) placed in
    each packed row in order. A row holds n_special + Σ(len + 1) ≤ block_size tokens ([CLS] s1 [SEP] s2 [SEP]).
    A document longer than a row is cut at its last sentence end that fits (given `tokens` and the
    `sentence_ends` id mask), else at the row's end; its first sentences may fill a row's free space.
    pack_documents([0, 3, 6, 20], block_size=8) -> [[0, 0, 2], [0, 3, 5], [1, 6, 12], [2, 12, 18], [3, 18, 19]]
    """
    room = block_size - n_special + 1  # each piece costs len + 1 ([SEP]); the row's first [SEP] is in the +1
    if room < 2:
        raise TaesanError(f"block_size={block_size} leaves no room for text between [CLS] and [SEP]")

    def sentence_cut(start: int, n: int) -> int:
        """Tokens up to and including the last sentence end within tokens[start : start + n] (0: none)."""
        if n <= 0 or tokens is None or sentence_ends is None:
            return 0
        hits = np.flatnonzero(sentence_ends[np.asarray(tokens[start : start + n], dtype=np.int64)])
        return int(hits[-1]) + 1 if hits.size else 0

    segments: list[tuple[int, int, int]] = []
    row, used = 0, 0
    for i in range(len(offsets) - 1):
        start, end = int(offsets[i]), int(offsets[i + 1]) - 1  # drop the stored separator
        while start < end:
            free, length = room - used - 1, end - start
            if length <= free:
                take = length
            elif used and (length <= room - 1 or sentence_cut(start, free) == 0):
                row, used = row + 1, 0  # starts a fresh row: whole if it fits one, else from its first sentence
                continue
            else:
                take = sentence_cut(start, free) or free
            segments.append((row, start, start + take))
            used += take + 1
            start += take
    return np.asarray(segments, dtype=np.int64).reshape(-1, 3)


class PackedDocuments:
    """Rows of whole documents packed up to block_size as [CLS] d1 [SEP] d2 [SEP] [PAD]… (masked LM).

    `sentence_ends` (see `sentence_end_ids`) lets long documents be cut between sentences.
    The packing plan is computed once (O(n_documents) memory); rows are drawn by a ShuffledSampler.
    A batch is {"input_ids", "attention_mask"} of (B, block_size).
    """

    def __init__(
        self, split: TokenSplit, block_size: int, batch_size: int, cls_id: int, sep_id: int, pad_id: int,
        seed: int = 0, rank: int = 0, world_size: int = 1, sentence_ends: np.ndarray | None = None,
    ) -> None:
        self.tokens, self.block_size = split.tokens, block_size
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        plan = pack_documents(split.offsets, block_size, tokens=split.tokens, sentence_ends=sentence_ends)
        self.segments = plan[:, 1:]
        self.row_starts = np.searchsorted(plan[:, 0], np.arange(int(plan[-1, 0]) + 2)) if len(plan) else np.zeros(1, np.int64)
        self.n_rows = len(self.row_starts) - 1
        self.sampler = ShuffledSampler(max(self.n_rows, 0), batch_size, seed, rank, world_size)

    def row(self, r: int) -> list[int]:
        ids = [self.cls_id]
        for start, end in self.segments[self.row_starts[r] : self.row_starts[r + 1]]:
            ids.extend(self.tokens[start:end].tolist())
            ids.append(self.sep_id)
        return ids

    def _batch(self, rows: Iterable[int]) -> dict[str, torch.Tensor]:
        return pad_batch([self.row(int(r)) for r in rows], self.pad_id, length=self.block_size)

    def next_batch(self) -> dict[str, torch.Tensor]:
        items, _ = self.sampler.next_indices()
        return self._batch(items)

    def eval_batches(self, n_batches: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        n = min(self.n_rows, n_batches * batch_size)
        for b in range(0, n, batch_size):
            yield self._batch(range(b, min(n, b + batch_size)))

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


# ---- a baseline to compare against ------------------------------------------------------------------------


def unigram_perplexity(train: TokenSplit, targets: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> float:
    """Perplexity of `targets` under the training split's unigram distribution (add-one smoothed).

    The floor a language model must beat: it knows token frequencies and nothing of context.
    Counting reads the memmap `chunk` tokens at a time, so memory stays flat on large corpora.
    """
    counts = np.ones(vocab_size, dtype=np.float64)
    for s in range(0, train.n_tokens, chunk):
        counts += np.bincount(np.asarray(train.tokens[s : s + chunk], dtype=np.int64), minlength=vocab_size)[:vocab_size]
    logp = np.log(counts / counts.sum())
    targets = np.asarray(targets, dtype=np.int64).ravel()
    return float(np.exp(-logp[targets].mean())) if targets.size else float("nan")


# ---- collating variable-length rows ---------------------------------------------------------------------


def pad_batch(
    rows: Sequence[Sequence[int]], pad_id: int, length: int | None = None, side: str = "right"
) -> dict[str, torch.Tensor]:
    """Rows of ids -> {"input_ids": (B, L), "attention_mask": (B, L)} padded with pad_id, mask 1 = real.

    pad_batch([[5, 6, 7], [8]], pad_id=0) -> input_ids [[5, 6, 7], [8, 0, 0]], attention_mask [[1, 1, 1], [1, 0, 0]]
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    L = max((len(r) for r in rows), default=0) if length is None else length
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        r = list(r)[:L]
        if not r:
            continue
        sl = slice(0, len(r)) if side == "right" else slice(L - len(r), L)
        ids[i, sl] = torch.as_tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    return {"input_ids": ids, "attention_mask": mask}
