"""Training Word2Vec skip-gram with negative sampling: vocabulary, subsampling, dynamic windows, noise words, SGD.

Not the model or its queries (taesan.models.word2vec) and not a tokenizer (whitespace words or your callable).

One step takes `batch_size` consecutive centre words. Following word2vec.c and gensim, the context
word's input vector predicts the centre word's output vector against `negative` noise words; the
noise words of one centre are shared by all its contexts (Ji et al. 2016, "Parallelizing Word2Vec in
Shared and Distributed Memory"), which turns each centre into one small matrix product. Every pair
still sees `negative` fresh draws from unigram^0.75, so the expected update is gensim's. Updates are
plain SGD written by hand (index_add_ into the tables), summed over the step like hogwild threads.
"""
from __future__ import annotations

import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from taesan.errors import TaesanError
from taesan.models.word2vec import Word2Vec, Word2VecConfig

Tokenize = Callable[[str], Sequence[str]]


@dataclass
class Corpus:
    """A corpus as word ids: the vocabulary (most frequent first), and every in-vocabulary token in order
    with the index of its sentence (a window never crosses sentences). Rare words are dropped before
    windows are drawn, as in word2vec.c and gensim."""

    words: list[str]
    counts: np.ndarray    # (V,) int64
    ids: np.ndarray       # (N,) int32
    sentence: np.ndarray  # (N,) int32


@dataclass
class TrainHistory:
    epoch_loss: list[float] = field(default_factory=list)     # mean negative-sampling loss per (centre, context) pair
    epoch_pairs: list[int] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (epochs done, mean loss since the last point)


def build_corpus(texts: Iterable[str | Sequence[str]], min_count: int = 5, tokenize: Tokenize | None = None) -> Corpus:
    """Tokenize once, count, keep words seen at least `min_count` times, number them by falling count.

    Items may be strings (split by `tokenize`, whitespace by default) or already lists of tokens.
    """
    tokenize = tokenize or str.split
    index: dict[str, int] = {}
    flat = array("i")
    lengths = array("q")
    for item in texts:
        tokens = tokenize(item) if isinstance(item, str) else item
        ids = [index.setdefault(w, len(index)) for w in tokens]
        flat.extend(ids)
        lengths.append(len(ids))
    first_ids = np.frombuffer(flat, dtype=np.int32) if len(flat) else np.zeros(0, np.int32)
    all_counts = np.bincount(first_ids, minlength=len(index)).astype(np.int64)
    order = np.argsort(-all_counts, kind="stable")
    order = order[all_counts[order] >= min_count]
    if len(order) == 0:
        raise TaesanError(f"no word occurs at least min_count={min_count} times in the corpus ({len(first_ids)} tokens)")
    words_by_first = list(index)
    words = [words_by_first[i] for i in order.tolist()]
    for w in words:
        if not w or any(ch.isspace() for ch in w):
            raise TaesanError(f"the tokenizer produced the token {w!r}; word vectors need non-empty tokens without whitespace")
    remap = np.full(len(index), -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    new_ids = remap[first_ids]
    sentence = np.repeat(np.arange(len(lengths), dtype=np.int32), np.frombuffer(lengths, dtype=np.int64))
    kept = new_ids >= 0
    return Corpus(words, all_counts[order], new_ids[kept], sentence[kept])


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep) of each word under word2vec.c's subsampling (the formula gensim uses too):

    keep(w) = min(1, (sqrt(c_w / (t·T)) + 1) · t·T / c_w), with c_w the word's count, T the total of
    the kept vocabulary's counts and t = `sample`. sample=0 keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def subsample(ids: torch.Tensor, keep: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Which tokens survive this epoch's subsampling: token i stays with probability keep[ids[i]] (a bool mask)."""
    return torch.rand(len(ids), generator=generator, dtype=torch.float64) < keep[ids]


def draw_windows(n: int, window: int, generator: torch.Generator) -> torch.Tensor:
    """Each centre's effective window, uniform in 1..window (word2vec.c and gensim draw the same way):
    near words fall inside more often, which weights context by distance."""
    return torch.randint(1, window + 1, (n,), generator=generator)


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """P(noise word w) ∝ count(w)^exponent (Mikolov et al. 2013: 0.75)."""
    p = np.asarray(counts, dtype=np.float64) ** exponent
    return p / p.sum()


class NoiseSampler:
    """Draws words from a distribution in O(1) each with Walker's alias method (Vose's construction).

    Every word w owns a slot: with probability prob[w] the slot gives w, otherwise alias[w]; a uniform
    slot then returns each word with exactly its probability (up to float64 rounding).
    """

    def __init__(self, probs: np.ndarray, generator: torch.Generator) -> None:
        n = len(probs)
        scaled = (np.asarray(probs, dtype=np.float64) * (n / np.sum(probs))).tolist()
        prob, alias = [1.0] * n, list(range(n))
        small = [i for i, x in enumerate(scaled) if x < 1.0]
        large = [i for i, x in enumerate(scaled) if x >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        self.prob = torch.tensor(prob, dtype=torch.float64)  # leftovers in either list keep prob 1 (rounding)
        self.alias = torch.tensor(alias, dtype=torch.int64)
        self.generator = generator

    def sample(self, n: int) -> torch.Tensor:
        slot = torch.randint(len(self.prob), (n,), generator=self.generator)
        u = torch.rand(n, generator=self.generator, dtype=torch.float64)
        return torch.where(u < self.prob[slot], slot, self.alias[slot])


def window_contexts(ids: torch.Tensor, sentence: torch.Tensor, centres: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2·radius context words around each centre position, and which of them exist in its sentence.

    ids [a b c | d e] (sentence [0 0 0 1 1]), centres [1], radius 1 -> contexts [[a, c]], mask [[True, True]];
    centres [2] -> contexts [[b, d]], mask [[True, False]] (d is in the next sentence).
    """
    offsets = torch.cat([torch.arange(-radius, 0), torch.arange(1, radius + 1)])
    pos = centres.unsqueeze(1) + offsets  # (n, 2r)
    inside = (pos >= 0) & (pos < len(ids))
    pos = pos.clamp_(0, len(ids) - 1)
    mask = inside & (sentence[pos] == sentence[centres].unsqueeze(1))  # (n, 2r)
    return ids[pos], mask


def sgd_step(w_in: torch.Tensor, w_out: torch.Tensor, centres: torch.Tensor, contexts: torch.Tensor,
             mask: torch.Tensor, noise: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One hand-written SGD step of skip-gram with negative sampling; returns (loss sum, pair count).

    As in word2vec.c and gensim, a context word's input vector u_c predicts the centre's output vector
    v_w against noise words: loss per pair = −log σ(u_c·v_w) − Σ_j log σ(−u_c·v_nj). The k noise words
    of a centre serve all its contexts (one (2r, 1+k) score matrix per centre); a noise word equal to
    the centre is skipped, as in word2vec.c. Gradients use the weights before the step.
    """
    n, width = contexts.shape
    dim = w_in.shape[1]
    targets = torch.cat([centres.unsqueeze(1), noise], 1)  # (n, 1+k)
    u = w_in.index_select(0, contexts.reshape(-1)).view(n, width, dim)  # (n, 2r, D)
    v = w_out.index_select(0, targets.reshape(-1)).view(n, -1, dim)  # (n, 1+k, D)
    scores = torch.bmm(u, v.transpose(1, 2))  # (n, 2r, 1+k)
    valid = torch.cat([torch.ones_like(mask[:, :1]), noise != centres.unsqueeze(1)], 1)  # (n, 1+k)
    weight = (mask.unsqueeze(2) & valid.unsqueeze(1)).to(scores.dtype)  # (n, 2r, 1+k)
    sign = torch.ones(targets.shape[1], dtype=scores.dtype)
    sign[1:] = -1
    loss = -(F.logsigmoid(scores * sign) * weight).sum()
    grad = ((sign > 0).to(scores.dtype) - torch.sigmoid(scores)).mul_(weight).mul_(lr)  # (n, 2r, 1+k): ascent direction
    grad_u = torch.bmm(grad, v)  # (n, 2r, D)
    grad_v = torch.bmm(grad.transpose(1, 2), u)  # (n, 1+k, D)
    w_in.index_add_(0, contexts.reshape(-1), grad_u.view(-1, dim))
    w_out.index_add_(0, targets.reshape(-1), grad_v.view(-1, dim))
    return loss, mask.sum()


def train_block(w_in: torch.Tensor, w_out: torch.Tensor, ids: torch.Tensor, sentence: torch.Tensor, windows: torch.Tensor,
                start: int, size: int, negative: int, sampler: NoiseSampler, lr: float) -> tuple[float, int]:
    """One step over the centre words ids[start:start+size]: one sgd_step per window size (equal shapes
    batch together). Returns (loss sum, pair count)."""
    block = windows[start:start + size]
    noise = sampler.sample(len(block) * negative).view(-1, negative)  # (block, k)
    loss_sum, pairs = 0.0, 0
    for r in torch.unique(block).tolist():
        local = (block == r).nonzero().squeeze(1)
        centres = local + start
        contexts, mask = window_contexts(ids, sentence, centres, r)
        loss, count = sgd_step(w_in, w_out, ids[centres], contexts, mask, noise[local], lr)
        loss_sum += float(loss)
        pairs += int(count)
    return loss_sum, pairs


@dataclass
class EpochData:
    """One epoch's stream of centre words after subsampling, with each centre's window radius."""

    ids: torch.Tensor  # (n,) word ids
    sentence: torch.Tensor  # (n,) sentence number of each word: windows never cross sentences
    windows: torch.Tensor  # (n,) effective window radius per centre word


def epoch_data(ids: torch.Tensor, sentence: torch.Tensor, keep_p: torch.Tensor, config: Word2VecConfig,
               gen: torch.Generator) -> EpochData:
    """Subsample frequent words (when config.sample > 0), then draw every centre's window radius."""
    if config.sample > 0:
        keep = subsample(ids, keep_p, gen)
        ids, sentence = ids[keep], sentence[keep]
    return EpochData(ids, sentence, draw_windows(len(ids), config.window, gen))


def run_epoch(w_in: torch.Tensor, w_out: torch.Tensor, data: EpochData, epoch: int, config: Word2VecConfig,
              samplers: list[NoiseSampler], on_words: Callable[[float], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Every block of centre words through `train_block`, by one worker or several (hogwild threads that take the
    next block from one queue); -> (loss sum, pair count) per block. The learning rate decays linearly over all
    epochs, as in word2vec.c."""
    n, step = len(data.ids), config.batch_size
    n_chunks = (n + step - 1) // step
    chunk_loss = np.zeros(n_chunks)
    chunk_pairs = np.zeros(n_chunks, dtype=np.int64)
    queue = iter(range(n_chunks))
    lock = threading.Lock()

    def work(sampler: NoiseSampler) -> None:
        torch.set_flush_denormal(True)  # tiny early updates are denormal floats, 10x slower on x86 (per thread)
        try:
            while True:
                with lock:
                    c = next(queue, None)
                if c is None:
                    return
                start = c * step
                lr = config.lr_start - (config.lr_start - config.lr_end) * (epoch + start / n) / config.epochs
                chunk_loss[c], chunk_pairs[c] = train_block(w_in, w_out, data.ids, data.sentence, data.windows, start, step,
                                                            config.negative, sampler, lr)
                if on_words is not None:
                    with lock:
                        on_words(min(step, n - start) / n)
        finally:
            torch.set_flush_denormal(False)

    if len(samplers) == 1:
        work(samplers[0])
        return chunk_loss, chunk_pairs
    errors: list[BaseException] = []

    def guarded(sampler: NoiseSampler) -> None:
        try:
            work(sampler)
        except BaseException as e:  # handed to the caller below, not lost with the thread
            errors.append(e)

    pool = [threading.Thread(target=guarded, args=(s,), daemon=True) for s in samplers]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return chunk_loss, chunk_pairs


def record_epoch(history: TrainHistory, epoch: int, chunk_loss: np.ndarray, chunk_pairs: np.ndarray, seconds: float,
                 curve_points: int) -> float:
    """The epoch's mean loss per pair, and up to `curve_points` points of the loss curve, into `history`."""
    mean = float(chunk_loss.sum()) / max(int(chunk_pairs.sum()), 1)
    n_chunks = len(chunk_loss)
    for part in np.array_split(np.arange(n_chunks), min(curve_points, n_chunks)) if n_chunks else []:
        if chunk_pairs[part].sum() > 0:  # (epochs done at the part's end, its mean loss per pair)
            history.curve.append((epoch + (part[-1] + 1) / n_chunks, float(chunk_loss[part].sum() / chunk_pairs[part].sum())))
    history.epoch_loss.append(mean)
    history.epoch_pairs.append(int(chunk_pairs.sum()))
    history.epoch_seconds.append(seconds)
    return mean


def train_word2vec(
    data: Corpus | Iterable[str | Sequence[str]],
    config: Word2VecConfig | None = None,
    tokenize: Tokenize | None = None,
    workers: int = 1,
    progress: bool = False,
    on_epoch: Callable[[int, float, TrainHistory], None] | None = None,
    curve_points: int = 50,
) -> tuple[Word2Vec, TrainHistory]:
    """Train skip-gram vectors on texts (or token lists, or a built Corpus); returns the model and its history.

    workers=1 is reproducible: one torch.Generator seeded with config.seed drives the initial vectors,
    subsampling, windows and noise words, so the same seed and data give identical vectors on CPU.
    workers>1 trains like gensim's threads: each worker takes the next block of centre words and
    updates the shared tables without locks (hogwild); faster, not bit-reproducible. Each worker runs
    its ops on one core (torch's thread count is set to 1 while training and restored after).
    `on_epoch(epoch, mean_loss, history)` runs after each epoch.
    """
    config = config or Word2VecConfig()
    if not isinstance(workers, int) or workers < 1:
        raise TaesanError(f"workers must be a positive integer, got {workers!r}")
    corpus = data if isinstance(data, Corpus) else build_corpus(data, config.min_count, tokenize)
    model = Word2Vec(config, corpus.words, corpus.counts)
    history = TrainHistory()
    gen = torch.Generator().manual_seed(config.seed)
    w_in, w_out = model.input_embeddings.data, model.output_embeddings.data
    dim = config.dim
    w_in.copy_((torch.rand(len(corpus.words), dim, generator=gen) * 2 - 1) / dim)  # gensim 4's U(-1/dim, 1/dim); output vectors start at 0
    probs = noise_distribution(corpus.counts, config.ns_exponent)
    samplers = [NoiseSampler(probs, gen)] if workers == 1 else [
        NoiseSampler(probs, torch.Generator().manual_seed(config.seed * 1009 + i + 1)) for i in range(workers)]
    ids = torch.from_numpy(corpus.ids.astype(np.int64))
    sentence = torch.from_numpy(corpus.sentence)
    keep_p = torch.from_numpy(keep_probabilities(corpus.counts, config.sample))
    bar = None
    if progress:
        from tqdm.auto import tqdm  # here: only a run that shows progress needs it

        bar = tqdm(total=config.epochs * len(ids), unit="word", unit_scale=True, desc="word2vec", leave=False)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel across workers, not inside ops: small ops, and no thread barriers on a busy machine
    try:
        for epoch in range(config.epochs):
            start_time = time.perf_counter()
            data_e = epoch_data(ids, sentence, keep_p, config, gen)
            on_words = (lambda share: bar.update(share * len(ids))) if bar is not None else None
            chunk_loss, chunk_pairs = run_epoch(w_in, w_out, data_e, epoch, config, samplers, on_words)
            mean = record_epoch(history, epoch, chunk_loss, chunk_pairs, time.perf_counter() - start_time, curve_points)
            if on_epoch is not None:
                on_epoch(epoch, mean, history)
    finally:
        torch.set_num_threads(threads_before)
        if bar is not None:
            bar.close()
    model.invalidate()
    return model, history
