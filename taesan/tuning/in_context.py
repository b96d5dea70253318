"""In-context learning: a frozen language model classifies by reading k labelled demonstrations in its prompt
and scoring each label's word (the verbalizer) as the continuation; nothing is trained.

Not a trainer or a tokenizer: prompts are built from examples (`.text`, `.label`), the LM scores ids.
The prompt for a query, with instruction I, demonstrations (x1, y1) ... and format "문장: {x}\\n정답: {y}":

    I\\n\\n문장: x1\\n정답: 긍정\\n\\n문장: x2\\n정답: 부정\\n\\n문장: query\\n정답:   + continuation " 긍정" | " 부정"
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from taesan.data import pad_batch
from taesan.errors import TaesanError

CONTENT_FREE = "N/A"  # Zhao et al. (2021): a content-free input shows the prompt's own bias toward each label


@dataclass
class PromptFormat:
    """How demonstrations and the query are written; a label is scored as " " + its verbalizer word."""

    instruction: str = ""
    input_prefix: str = "문장: "
    output_prefix: str = "\n정답:"
    separator: str = "\n\n"

    def answer(self, word: str) -> str:
        """How an answer follows the output prefix, in a demonstration and as the query's scored continuation."""
        return " " + word

    def demonstration(self, text: str, word: str) -> str:
        return f"{self.input_prefix}{text}{self.output_prefix}{self.answer(word)}"

    def context(self, demonstrations: Sequence[str], query: str) -> str:
        """The prompt up to the answer (the continuation is scored after it)."""
        parts = ([self.instruction] if self.instruction else []) + list(demonstrations)
        return self.separator.join(parts + [f"{self.input_prefix}{query}{self.output_prefix}"])


def check_causal_lm(model, source: str = "--model") -> None:
    """In-context learning reads next-token probabilities: a GPT (or a prompt-tuned GPT), not BERT or a classifier."""
    inner = getattr(model, "inner", model)
    if getattr(inner, "model_type", None) != "gpt":
        raise TaesanError(f"{source}: in-context learning needs a GPT language model, got model_type {getattr(inner, 'model_type', type(model).__name__)!r}")


def numbered_labels_note(spec: str | None, labels: Sequence[str]) -> str | None:
    """A one-line note where no --verbalizer was given and the labels are numbers (NSMC's 0 / 1): the LM would be
    asked whether " 0" or " 1" follows the text, which says nothing of what the labels mean. None otherwise."""
    if spec is not None or not all(label.strip().lstrip("-").isdigit() for label in labels):
        return None
    return (f"note: the answer words are the label names {', '.join(labels)}; --verbalizer "
            f"{','.join(f'{x}=WORD' for x in labels)} lets the LM read words the texts use for each label")


def parse_verbalizer(spec: str | None, labels: Sequence[str]) -> dict[str, str]:
    """"0=부정,1=긍정" -> {"0": "부정", "1": "긍정"}; None -> each label is its own word. Every label needs a word.

    parse_verbalizer("0=부정,1=긍정", ["0", "1"]) -> {"0": "부정", "1": "긍정"}
    """
    if spec is None:
        return {label: label for label in labels}
    words = {}
    for part in spec.split(","):
        label, sep, word = part.partition("=")
        if not sep or not label.strip() or not word.strip():
            raise TaesanError(f"--verbalizer {spec!r}: write LABEL=WORD pairs separated by commas, e.g. 0=부정,1=긍정")
        words[label.strip()] = word.strip()
    missing = [label for label in labels if label not in words]
    if missing:
        raise TaesanError(f"--verbalizer {spec!r} has no word for label {missing[0]!r} (labels: {', '.join(labels)})")
    return words


# ---- demonstrations ---------------------------------------------------------------------------------------------


class Demonstrations:
    """The demonstrations of one seed: a fixed draw order over the pool, and for each query its first k
    that are not the query itself (same text), so a query never sees its own answer.

    balanced: the order alternates labels (each label's examples shuffled, the label order too), so any k
    has as even a label mix as k allows. The k chosen are then shuffled into prompt order (seeded).
    """

    def __init__(self, pool: Sequence[Any], k: int, seed: int, balanced: bool = False) -> None:
        if k < 0:
            raise TaesanError(f"--shots must be >= 0, got {k}")
        if k > len(pool):
            raise TaesanError(f"--shots {k}: the training file has only {len(pool)} examples")
        self.pool, self.k, self.seed = list(pool), k, seed
        rng = random.Random(seed)
        if balanced:
            by_label: dict[str, list[int]] = {}
            for i, ex in enumerate(self.pool):
                by_label.setdefault(ex.label, []).append(i)
            queues = [rng.sample(v, len(v)) for _, v in sorted(by_label.items())]
            rng.shuffle(queues)
            self.order = [q[j] for j in range(max(map(len, queues))) for q in queues if j < len(q)]
        else:
            self.order = rng.sample(range(len(self.pool)), len(self.pool))

    def for_query(self, query: Any) -> list[Any]:
        """k demonstrations (oldest first in the prompt), none with the query's text."""
        chosen = []
        for i in self.order:
            if len(chosen) == self.k:
                break
            ex = self.pool[i]
            if ex is not query and ex.text != query.text:
                chosen.append(i)
        if len(chosen) < self.k:
            raise TaesanError(f"--shots {self.k}: not enough training examples that differ from the query")
        random.Random(f"{self.seed}:{sorted(chosen)}").shuffle(chosen)
        return [self.pool[i] for i in chosen]


# ---- ids: the join between context and continuation, the window -------------------------------------------------


def join_ids(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokenize the context and the continuation separately, the context's trailing spaces moved onto the
    continuation: ("정답: ", "긍정") is scored as "정답:" + " 긍정", so a BPE that merges a leading space
    into the word still gives the continuation its own token(s), never an empty one."""
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    ctx = tokenizer.encode(stripped, add_special_tokens=False).ids
    cont = tokenizer.encode(continuation, add_special_tokens=False).ids
    if not cont:
        raise TaesanError(f"the label word {continuation.strip()!r} encodes to no tokens")
    return ctx, cont


@dataclass
class Shown:
    """A demonstration as the prompt shows it: the text and its label's word."""

    text: str
    word: str


@dataclass
class Query:
    """One query's rows: the context ids (start token included) and each label's continuation ids."""

    context: list[int]
    continuations: list[list[int]]
    demonstrations: int  # how many demonstrations fit in the window


def build_query(tokenizer: Any, fmt: PromptFormat, demos: Sequence[Any], text: str, words: Sequence[str],
                limit: int | None, start_id: int | None = None) -> Query:
    """The prompt for `text` with `demos`, dropping the oldest demonstration while context + the longest
    label word exceeds `limit` positions; with none left, the context keeps its last tokens."""
    demos = list(demos)
    while True:
        shown = [fmt.demonstration(d.text, d.word) for d in demos]
        pairs = [join_ids(tokenizer, fmt.context(shown, text), w) for w in words]
        context = ([start_id] if start_id is not None else []) + pairs[0][0]
        conts = [c for _, c in pairs]
        need = len(context) + max(map(len, conts))
        if limit is None or need <= limit:
            return Query(context, conts, len(demos))
        if not demos:
            keep = limit - max(map(len, conts))
            if keep < 1:
                raise TaesanError(f"a label word needs {max(map(len, conts))} tokens, the model has {limit} positions")
            return Query(context[-keep:], conts, 0)
        demos.pop(0)


# ---- scoring ------------------------------------------------------------------------------------------------------


@torch.no_grad()
def continuation_log_probs(model, rows: Sequence[tuple[list[int], list[int]]], pad_id: int = 0, batch_size: int = 16,
                           progress: bool = False) -> list[float]:
    """Σ log p(continuation | context) for each (context ids, continuation ids) under a causal LM."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    head = getattr(model, "lm_head", None) if hasattr(model, "forward_features") else None
    out = []
    for b in tqdm(range(0, len(rows), batch_size), disable=not progress, unit="batch", desc="scoring", leave=False):
        chunk = rows[b:b + batch_size]
        batch = pad_batch([ctx + cont for ctx, cont in chunk], pad_id)
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        # a GPT: the vocabulary projection (the costliest matmul of a small LM) only where a continuation token is predicted
        states = model.forward_features(ids, mask)[0] if head is not None else model(ids, attention_mask=mask)  # (B, T, C|V)
        for i, (ctx, cont) in enumerate(chunk):
            at = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=device)  # positions predicting cont
            logits = head(states[i, at]) if head is not None else states[i, at]  # (len(cont), V)
            logp = torch.log_softmax(logits.float(), -1)
            out.append(float(logp.gather(-1, torch.as_tensor(cont, device=device)[:, None]).sum()))
    return out


def calibrated_choice(scores: Sequence[float], content_free: Sequence[float]) -> int:
    """Zhao et al.'s contextual calibration: p(label | x) / p(label | "N/A"), each normalised over the labels.

    calibrated_choice([-1.0, -2.0], [-0.1, -3.0]) -> 1: the prompt alone favours label 0 by e^2.9, x by only e^1
    """
    def log_norm(v: Sequence[float]) -> list[float]:
        top = max(v)
        z = top + math.log(sum(math.exp(s - top) for s in v))
        return [s - z for s in v]

    adjusted = [a - b for a, b in zip(log_norm(scores), log_norm(content_free))]
    return max(range(len(adjusted)), key=adjusted.__getitem__)


def guessing_accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """What a guesser that never reads the text scores, answering each label as often as `predicted` does:
    Σ_label share predicted × share gold. The honest floor for a reshuffled classifier (calibration splits a
    one-label LM's answers across the labels, and on a set whose majority is under half that alone beats the
    majority class). guessing_accuracy(["a", "a", "b", "b"], ["a", "b", "b", "b"]) -> 0.5·0.25 + 0.5·0.75 = 0.5
    """
    n = max(len(predicted), 1)
    return sum((predicted.count(label) / n) * (list(gold).count(label) / n) for label in set(predicted))


def beats(accuracy: float, floor: float, n: int) -> bool:
    """Whether `accuracy` over `n` examples is above `floor` by more than two binomial standard errors of the floor
    (a chance difference on 500 examples at 0.5 is up to ±0.045)."""
    return n > 0 and accuracy - floor > 2 * math.sqrt(max(floor * (1 - floor), 1e-12) / n)


@dataclass
class FewShotResult:
    """One seed's scores over the evaluated examples."""

    accuracy: float
    accuracy_norm: float  # each label word's log-likelihood divided by its length in characters
    accuracy_calibrated: float | None = None
    examples: int = 0
    demonstrations: float = 0.0  # mean demonstrations per prompt (fewer than k when the window is short)
    predictions: list[str] = field(default_factory=list)
    guessing: float = 0.0  # `guessing_accuracy` of the predictions: what the same label rates score without reading
    guessing_calibrated: float | None = None  # the same for the calibrated predictions


def classify(model, tokenizer, queries: Sequence[Any], pool: Sequence[Any], words: dict[str, str], shots: int,
             seed: int = 0, fmt: PromptFormat | None = None, balanced: bool = False, calibrate: bool = False,
             start_id: int | None = None, batch_size: int = 16, progress: bool = False) -> FewShotResult:
    """Label each query by the verbalizer word the LM finds most likely after a `shots`-shot prompt."""
    fmt = fmt or PromptFormat()
    labels = list(words)
    for q in queries:
        if q.label not in words:
            raise TaesanError(f"{q.source or 'input'}: label {q.label!r} has no verbalizer word (labels: {', '.join(labels)})")
    demos = Demonstrations(pool, shots, seed, balanced)
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    vocab = [fmt.answer(words[label]) for label in labels]  # scored as the demonstrations write them
    was_training = model.training
    model.eval()
    try:
        built, keys, cf_built, rows = [], [], {}, []
        for q in queries:
            chosen = [Shown(d.text, words[d.label]) for d in demos.for_query(q)]
            query = build_query(tokenizer, fmt, chosen, q.text, vocab, limit, start_id)
            built.append(query)
            rows += [(query.context, c) for c in query.continuations]
            key = tuple((d.text, d.word) for d in chosen)
            keys.append(key)
            if calibrate and key not in cf_built:
                cf_built[key] = build_query(tokenizer, fmt, chosen, CONTENT_FREE, vocab, limit, start_id)
        cf_keys = list(cf_built)
        for key in cf_keys:
            rows += [(cf_built[key].context, c) for c in cf_built[key].continuations]
        scores = continuation_log_probs(model, rows, pad, batch_size, progress)
    finally:
        model.train(was_training)
    L = len(labels)
    cf_scores = {key: scores[len(queries) * L + j * L:len(queries) * L + (j + 1) * L] for j, key in enumerate(cf_keys)}
    right = right_norm = right_cal = 0
    predictions, calibrated = [], []
    for n, q in enumerate(queries):
        s = scores[n * L:(n + 1) * L]
        best = max(range(L), key=s.__getitem__)
        best_norm = max(range(L), key=lambda j: s[j] / len(vocab[j]))
        predictions.append(labels[best])
        right += labels[best] == q.label
        right_norm += labels[best_norm] == q.label
        if calibrate:
            calibrated.append(labels[calibrated_choice(s, cf_scores[keys[n]])])
            right_cal += calibrated[-1] == q.label
    total = max(len(queries), 1)
    gold = [q.label for q in queries]
    return FewShotResult(
        right / total, right_norm / total, right_cal / total if calibrate else None, len(queries),
        sum(b.demonstrations for b in built) / total, predictions, guessing_accuracy(predictions, gold),
        guessing_accuracy(calibrated, gold) if calibrate else None,
    )


def fewshot(model, tokenizer, queries: Sequence[Any], pool: Sequence[Any], words: dict[str, str], shots: int,
            seeds: Sequence[int], **kwargs: Any) -> dict[str, Any]:
    """`classify` once per seed -> {"shots", "seeds", per-seed results, and mean/std/min/max of each accuracy and of
    what guessing at the same label rates scores ("guessing", "guessing_calibrated": the floor to read them against).

    At 0 shots the prompt does not depend on the seed: one run stands for all seeds (std 0).
    """
    runs: list[FewShotResult] = []
    for i, seed in enumerate(seeds):
        runs.append(runs[0] if shots == 0 and i else classify(model, tokenizer, queries, pool, words, shots, seed, **kwargs))
    out: dict[str, Any] = {"shots": shots, "seeds": list(seeds), "examples": len(queries),
                           "demonstrations": statistics.fmean(r.demonstrations for r in runs)}
    for name in ("accuracy", "accuracy_norm", "accuracy_calibrated", "guessing", "guessing_calibrated"):
        values = [getattr(r, name) for r in runs]
        if values[0] is None:
            continue
        out[name] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "min": min(values), "max": max(values), "per_seed": values}
    return out
