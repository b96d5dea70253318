"""Word2Vec word vectors: the config, the two embedding tables, similarity queries, evaluation, save/load.

Not the training loop (that is taesan.models.word2vec_train) and not a transformer: no TaesanModel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from taesan.atomic import atomic_path, atomic_write_text
from taesan.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_state_dict,
    read_config,
    save_state_dict,
    write_config,
)
from taesan.config import config_from_dict, config_to_dict
from taesan.encoding import not_utf8
from taesan.errors import TaesanError

VOCAB_NAME = "vocab.txt"
MODEL_TYPE = "word2vec"


@dataclass
class Word2VecConfig:
    """Skip-gram with negative sampling, with gensim's defaults where gensim has one.

    `sample` is the subsampling threshold t of word2vec.c (0 turns subsampling off); `batch_size`
    counts centre words per update step; the learning rate falls linearly from `lr_start` to `lr_end`.
    """

    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3
    epochs: int = 5
    lr_start: float = 0.025
    lr_end: float = 0.0001
    batch_size: int = 1024
    seed: int = 1
    ns_exponent: float = 0.75

    def __post_init__(self) -> None:
        for name in ("dim", "window", "negative", "min_count", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TaesanError(f"Word2VecConfig.{name} must be a positive integer, got {value!r}")
        if not 0 <= self.sample < 1:
            raise TaesanError(f"Word2VecConfig.sample must be in [0, 1), got {self.sample!r}")
        if not (0 < self.lr_start and 0 <= self.lr_end <= self.lr_start):
            raise TaesanError(f"Word2VecConfig: need 0 <= lr_end <= lr_start and lr_start > 0, got {self.lr_start!r}, {self.lr_end!r}")
        if not math.isfinite(self.ns_exponent):
            raise TaesanError(f"Word2VecConfig.ns_exponent must be finite, got {self.ns_exponent!r}")


class Word2Vec(nn.Module):
    """A vocabulary (words with corpus counts) and two tables: input vectors (the word vectors) and
    output vectors (what negative sampling scores contexts against). Queries use the input vectors.

    `model(ids)` returns the input vectors of `ids`: features, never a loss.
    """

    model_type = MODEL_TYPE

    def __init__(self, config: Word2VecConfig, words: Sequence[str], counts: Sequence[int]) -> None:
        super().__init__()
        if len(words) != len(counts):
            raise TaesanError(f"word2vec: {len(words)} words but {len(counts)} counts")
        self.config = config
        self.words = list(words)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise TaesanError("word2vec: the vocabulary lists a word twice")
        self.input_embeddings = nn.Parameter(torch.zeros(len(words), config.dim), requires_grad=False)
        self.output_embeddings = nn.Parameter(torch.zeros(len(words), config.dim), requires_grad=False)
        self._unit: torch.Tensor | None = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.input_embeddings[input_ids]  # (..., dim)

    # ---- lookups ----
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def word_id(self, word: str) -> int:
        i = self.index.get(word)
        if i is None:
            raise TaesanError(f"word {word!r} is not in the vocabulary ({len(self.words)} words, min_count={self.config.min_count})")
        return i

    def vector(self, word: str) -> torch.Tensor:
        return self.input_embeddings[self.word_id(word)]

    @property
    def vectors(self) -> torch.Tensor:
        return self.input_embeddings.data

    def unit_vectors(self) -> torch.Tensor:
        """Input vectors scaled to length 1 (cached; call `invalidate()` after changing the weights)."""
        if self._unit is None:
            v = self.input_embeddings.data
            self._unit = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return self._unit

    def invalidate(self) -> None:
        self._unit = None

    # ---- queries ----
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        u = self.unit_vectors()
        return float(u[self.word_id(a)] @ u[self.word_id(b)])

    def most_similar(self, query: str | torch.Tensor, topn: int = 10, exclude: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The `topn` words nearest (cosine) to a word or a vector; a word query excludes itself."""
        if isinstance(query, str):
            target = self.unit_vectors()[self.word_id(query)]
            exclude = (*exclude, query)
        else:
            target = torch.as_tensor(query, dtype=torch.float32).reshape(-1)
            if target.numel() != self.config.dim:
                raise TaesanError(f"most_similar: query vector has {target.numel()} values, the model has dim={self.config.dim}")
            target = target / target.norm().clamp_min(1e-12)
        return self._nearest(target, topn, {self.word_id(w) for w in exclude if w in self.index})

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list[tuple[str, float]]:
        """Words nearest to a − b + c (unit vectors, 3CosAdd as in word2vec.c), excluding a, b and c.

        analogy("왕", "남자", "여자") -> [("여왕", ...)] on a corpus that knows it.
        """
        u = self.unit_vectors()
        target = u[self.word_id(a)] - u[self.word_id(b)] + u[self.word_id(c)]
        target = target / target.norm().clamp_min(1e-12)
        return self._nearest(target, topn, {self.word_id(a), self.word_id(b), self.word_id(c)})

    def _nearest(self, target: torch.Tensor, topn: int, exclude: set[int]) -> list[tuple[str, float]]:
        if topn < 1:
            raise TaesanError(f"topn must be at least 1, got {topn}")
        scores = self.unit_vectors() @ target  # (V,)
        if exclude:
            scores = scores.clone()
            scores[list(exclude)] = -math.inf
        k = min(topn, len(self.words) - len(exclude))
        if k <= 0:
            return []
        values, ids = torch.topk(scores, k)
        return [(self.words[i], float(v)) for v, i in zip(values.tolist(), ids.tolist())]

    # ---- evaluation ----
    def evaluate_analogies(self, path: str | Path) -> dict:
        """Accuracy on a word2vec questions-words file (": section" lines, then "a b c d" lines).

        A question a b c d is right when the nearest word to b − a + c (excluding a, b, c) is d.
        Questions with a word outside the vocabulary are skipped and counted; words match exactly.
        """
        sections: list[dict] = []
        skipped = 0
        for lineno, line in _read_lines(path):
            if line.startswith(":"):
                sections.append({"section": line[1:].strip(), "correct": 0, "total": 0})
                continue
            parts = line.split()
            if len(parts) != 4:
                raise TaesanError(f"{path}:{lineno}: an analogy line needs 4 words, got {len(parts)}")
            if not sections:
                sections.append({"section": "", "correct": 0, "total": 0})
            a, b, c, d = parts
            if not all(w in self.index for w in parts):
                skipped += 1
                continue
            guess = self.analogy(b, a, c, topn=1)
            sections[-1]["total"] += 1
            sections[-1]["correct"] += int(bool(guess) and guess[0][0] == d)
        correct = sum(s["correct"] for s in sections)
        total = sum(s["total"] for s in sections)
        return {"accuracy": correct / total if total else float("nan"), "correct": correct, "total": total,
                "skipped_oov": skipped, "sections": sections}

    def evaluate_similarity(self, path: str | Path) -> dict:
        """Spearman correlation between cosine similarity and human scores (word1<TAB>word2<TAB>score).

        Lines starting with # are comments; pairs with a word outside the vocabulary are skipped and counted.
        """
        model_scores, gold, skipped = [], [], 0
        for lineno, line in _read_lines(path):
            if line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise TaesanError(f"{path}:{lineno}: expected word1<TAB>word2<TAB>score")
            try:
                score = float(parts[2])
            except ValueError:
                raise TaesanError(f"{path}:{lineno}: score {parts[2]!r} is not a number") from None
            a, b = parts[0].strip(), parts[1].strip()
            if a not in self.index or b not in self.index:
                skipped += 1
                continue
            model_scores.append(self.similarity(a, b))
            gold.append(score)
        rho = spearman(model_scores, gold) if len(gold) >= 2 else float("nan")
        return {"spearman": rho, "pairs": len(gold), "skipped_oov": skipped}

    # ---- files ----
    def save(self, directory: str | Path) -> Path:
        """config.json + model.safetensors (input and output vectors) + vocab.txt (word<TAB>count), each atomic."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_state_dict({"input_embeddings": self.input_embeddings.data, "output_embeddings": self.output_embeddings.data},
                        directory / WEIGHTS_NAME)
        atomic_write_text(directory / VOCAB_NAME, "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts.tolist())))
        write_config(directory, {"model_type": MODEL_TYPE, **config_to_dict(self.config)})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Word2Vec":
        directory = Path(directory)
        data = read_config(directory)
        if data.get("model_type") != MODEL_TYPE:
            raise TaesanError(f"{directory / CONFIG_NAME}: model_type is {data.get('model_type')!r}, expected {MODEL_TYPE!r}")
        config = config_from_dict(Word2VecConfig, data, str(directory / CONFIG_NAME))
        words, counts = read_vocab(directory / VOCAB_NAME)
        model = cls(config, words, counts)
        state = load_state_dict(directory / WEIGHTS_NAME)
        for key in ("input_embeddings", "output_embeddings"):
            if key not in state:
                raise TaesanError(f"{directory / WEIGHTS_NAME}: tensor {key!r} is missing")
            if tuple(state[key].shape) != (len(words), config.dim):
                raise TaesanError(f"{directory / WEIGHTS_NAME}: tensor {key!r} has shape {tuple(state[key].shape)}, "
                                  f"expected {(len(words), config.dim)} from {VOCAB_NAME} and {CONFIG_NAME}")
            getattr(model, key).data.copy_(state[key])
        return model

    def save_word2vec_format(self, path: str | Path, binary: bool = False) -> Path:
        """The word2vec.c format that gensim's KeyedVectors.load_word2vec_format reads: a "count dim" line,
        then one word per line with its input vector (text: decimal floats; binary: little-endian float32)."""
        for w in self.words:
            if not w or any(ch.isspace() for ch in w):
                raise TaesanError(f"word {w!r} contains whitespace; the word2vec format cannot hold it")
        vectors = self.input_embeddings.data.numpy().astype("<f4")
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(f"{len(self.words)} {self.config.dim}\n".encode())
            for w, v in zip(self.words, vectors):
                if binary:
                    f.write(w.encode("utf-8") + b" " + v.tobytes() + b"\n")
                else:
                    f.write((w + " " + " ".join(repr(float(x)) for x in v) + "\n").encode("utf-8"))
        return path


def read_vocab(path: Path) -> tuple[list[str], list[int]]:
    """vocab.txt: one "word<TAB>count" line per word, in id order."""
    words, counts = [], []
    for lineno, line in _read_lines(path, keep_blank=True):
        word, sep, count = line.rpartition("\t")
        if not sep or not count.isdigit():
            raise TaesanError(f"{path}:{lineno}: expected word<TAB>count, got {line[:40]!r}")
        words.append(word)
        counts.append(int(count))
    return words, counts


def _read_lines(path: str | Path, keep_blank: bool = False):
    path = Path(path)
    if not path.is_file():
        raise TaesanError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if line.strip() or keep_blank:
                    yield lineno, line
    except UnicodeDecodeError as e:
        raise not_utf8(path, e.reason) from None


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson correlation of the ranks (ties get their average rank)."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = np.arange(1, len(a) + 1)
    uniq, inverse = np.unique(a, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


__all__ = ["Word2VecConfig", "Word2Vec", "spearman", "read_vocab"]
