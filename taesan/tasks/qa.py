"""Extractive question answering (SQuAD, KorQuAD): point at the answer's first and last token in the context.

Not generative QA and not SQuAD 2.0's "no answer": every question is answered from its context, so reading a file for
training or scoring skips its unanswerable questions (KLUE-MRC's is_impossible) and `read_notes` says how many.
[CLS] question [SEP] context [SEP]; a context longer than max_length is cut into windows that share
doc_stride tokens, so an answer cut by one window's edge is whole in the next. A window that does not
hold the whole answer is taught to point at [CLS] (start = end = 0). Both softmaxes run over [CLS] and
the context only (never the question or padding), in training and decoding alike. Decoding keeps the
n_best starts and ends of each window, pairs them (start <= end, at most max_answer_length tokens),
takes the most probable span over all windows and maps it back to the context's characters by offsets.
With sentence_prior > 0, a span's rank adds that much (times its sentence's overlap with the question) to each of
its start and end log-probabilities; with echo_penalty > 0, the n-best spans are ranked again, less that much times
the share of their bigrams the question already holds. A small reader misses the answer's sentence more often than
the question's words do, and answers with the question's own words (taesan.tasks.question_overlap). Training is the
same either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taesan.data import pad_batch
from taesan.errors import TaesanError
from taesan.tasks.base import PAIR_SEPARATOR, Task, TaskConfig, check_non_negative, replace_config, split_pair
from taesan.tasks.batches import in_order
from taesan.tasks.fits import check_tokenizer
from taesan.tasks.heads import put_head, takes_segments
from taesan.tasks.metrics.squad import squad_scores
from taesan.tasks.readers.qa import QAExample, excerpt, read_squad
from taesan.tasks.question_overlap import bigrams, echo_share, sentence_weights, token_prior
from taesan.textfiles import data_error, read_text


@dataclass
class QAConfig(TaskConfig):
    max_length: int = 256  # tokens per window: [CLS] question [SEP] context part [SEP]
    doc_stride: int | None = None  # context tokens shared by consecutive windows (HF's doc_stride); None: max_length // 4
    max_question_length: int | None = None  # longer questions are cut to this many tokens; None: max_length // 4
    n_best: int = 20  # starts and ends considered per window
    max_answer_length: int = 30  # tokens in a predicted answer
    sentence_prior: float = 0.0  # decoding: added to a context token's start and end log-probabilities, times its
    # sentence's overlap with the question (0 .. 1, taesan.tasks.question_overlap); 0: the reader's scores alone (HF)
    echo_penalty: float = 0.0  # decoding: taken from a span's rank, times the share of its bigrams the question holds
    type_ids: bool = True  # pass token_type_ids (BERT's, ELECTRA's segments); RoBERTa has one segment and takes none

    def __post_init__(self) -> None:
        for name in ("max_length", "max_question_length", "n_best", "max_answer_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TaesanError(f"qa setting {name} must be at least 1, got {value}")
        check_non_negative(self, "qa", ("sentence_prior", "echo_penalty"))
        room = self.max_length - self.question_tokens - 3  # [CLS], [SEP], [SEP]
        if not 0 <= self.stride < room:
            raise TaesanError(f"qa setting doc_stride={self.stride} must be in [0, {room}): max_length {self.max_length} leaves "
                              f"{room} context tokens per window after a {self.question_tokens}-token question")

    @property
    def stride(self) -> int:
        return self.max_length // 4 if self.doc_stride is None else self.doc_stride

    @property
    def question_tokens(self) -> int:
        return max(1, self.max_length // 4) if self.max_question_length is None else self.max_question_length


def answer_tokens(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None], start: int, end: int) -> tuple[int, int]:
    """The first and last token of the answer's characters [start, end) in this window, or (0, 0) ([CLS])
    when the window's context does not hold all of them.

    Context "카페 갔었어" cut into characters, answer "갔었어" = chars [3, 6) -> the tokens of 갔 and 어.
    """
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return 0, 0
    first = next(i for i in context if offsets[i][1] > start)  # the token holding (or following) the first char
    last = next(i for i in reversed(context) if offsets[i][0] < end)  # the token holding (or preceding) the last char
    return (first, last) if first <= last else (0, 0)


def nbest_spans(start: torch.Tensor, end: torch.Tensor, context: torch.Tensor, n_best: int = 20,
                max_answer_length: int = 30) -> list[tuple[float, int, int]]:
    """The best (score, start, end) spans of one window, best first: the top `n_best` starts × top `n_best` ends,
    both on context tokens, start <= end, at most `max_answer_length` tokens. score = start[s] + end[e].

    start [0, 5, 1, 4], end [0, 1, 3, 2], context [F, T, T, T], n_best 2 -> starts {1, 3}, ends {2, 3};
    pairs (1, 2) = 8, (1, 3) = 7, (3, 3) = 6 ((3, 2) ends before it starts); the best 2: [(8, 1, 2), (7, 1, 3)].
    """
    k = min(n_best, int(context.sum()))
    if k == 0:
        return []
    start = start.float().masked_fill(~context, float("-inf"))  # (T,)
    end = end.float().masked_fill(~context, float("-inf"))  # (T,)
    starts, ends = start.topk(k).indices.tolist(), end.topk(k).indices.tolist()
    spans = [(float(start[s] + end[e]), s, e) for s in starts for e in ends if s <= e < s + max_answer_length]
    return best_first(spans)[:n_best]


def best_first(spans: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """(score, start, end) spans by score, highest first; a tie goes to the earlier span."""
    return sorted(spans, key=lambda x: (-x[0], x[1], x[2]))


class ExtractiveQA(Task):
    """Answer span extraction with a QA head (BERT, RoBERTa, ELECTRA): logits (B, T, 2) = start and end scores per token."""

    name = "qa"
    config_class = QAConfig

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[QAExample]:
        """The file's answerable questions; the unanswerable ones (is_impossible, no answers) are counted in
        `skipped`, as this reader always answers. A file of only unanswerable questions is an error."""
        examples = read_squad(path)
        if not examples:  # {"data": []}: "no training examples" later did not say which file
            raise data_error(path, None, "no questions in the file (data -> paragraphs -> qas)")
        answerable = [ex for ex in examples if ex.answers]
        if len(answerable) < len(examples):
            if not answerable:
                raise data_error(path, None, f"all {len(examples)} questions are unanswerable (is_impossible or no "
                                             f"answers); the qa task answers every question from its context")
            n, total = len(examples) - len(answerable), len(examples)
            self.skipped[str(path)] = (f"skipped {n} of {total} questions as unanswerable (is_impossible or no answers); "
                                       f"the qa task always answers, so it trains on and scores the other {total - n}")
        return answerable

    def input_texts(self, path: str | Path) -> list[str] | None:
        """A SQuAD / KorQuAD / KLUE-MRC JSON file (by its .json name or a leading '{'): each question as
        "question ||| context", answers ignored (unanswerable questions included); None for plain text."""
        if Path(path).suffix.lower() != ".json" and not read_text(path).lstrip().startswith("{"):
            return None
        return [f"{ex.question} {PAIR_SEPARATOR} {ex.context}" for ex in read_squad(path, labelled=False)]

    def windows(self, question: str, context: str) -> list[Any]:
        """The Encodings of [CLS] question [SEP] context-window [SEP], in context order."""
        tok = self.tok
        question = self._cut_question(question)
        c = self.config
        try:
            first = tok.encode(question, pair=context, truncation="only_second", max_length=c.max_length,
                               stride=c.stride, return_overflowing=True)
        except TaesanError as e:
            raise TaesanError(f"qa question {excerpt(question, 40)}: {e}") from None
        encodings = [first] + first.overflowing
        if first.sequence_ids[0] is not None:
            raise TaesanError("the qa task needs a tokenizer that starts a pair with a special token ([CLS] q [SEP] c [SEP])")
        return encodings

    def _cut_question(self, question: str) -> str:
        pieces = self.tokenizer.pieces(question)
        n = self.config.question_tokens
        return question if len(pieces) <= n else question[: pieces[n - 1].end]

    def encode(self, example: QAExample) -> list[dict[str, Any]]:
        """One feature per window: ids, segments, the [CLS]+context mask, offsets and labels [start, end]."""
        answer = example.answers[0] if example.answers else None
        features = []
        for enc in self.windows(example.question, example.context):
            labels = answer_tokens(enc.offsets, enc.sequence_ids, answer.start, answer.end) if answer else (0, 0)
            answer_mask = [i == 0 or s == 1 for i, s in enumerate(enc.sequence_ids)]
            features.append({"input_ids": enc.ids, "token_type_ids": enc.type_ids, "answer_mask": answer_mask,
                             "offsets": enc.offsets, "labels": list(labels)})
        return features

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pad = self.tokenizer.pad_id if self.tokenizer is not None and self.tokenizer.pad_id is not None else 0
        batch = pad_batch([f["input_ids"] for f in features], pad)
        T = batch["input_ids"].shape[1]
        batch["token_type_ids"] = torch.tensor([f["token_type_ids"] + [0] * (T - len(f["token_type_ids"])) for f in features])  # (B, T)
        batch["answer_mask"] = torch.tensor([f["answer_mask"] + [False] * (T - len(f["answer_mask"])) for f in features])  # (B, T)
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)  # (B, 2) start, end
        return batch

    def prepare(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        keys = ("input_ids", "attention_mask", "token_type_ids") if self.config.type_ids else ("input_ids", "attention_mask")
        inputs = {k: batch[k] for k in keys}
        return inputs, {"positions": batch["labels"], "answer_mask": batch["answer_mask"]}

    # ---- loss and training metrics -----------------------------------------------------------------------
    @staticmethod
    def _masked(logits: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 2) -> start and end scores (B, T) with everything but [CLS] and the context at the float minimum."""
        logits = logits.float().masked_fill(~answer_mask.bool().unsqueeze(-1), torch.finfo(torch.float32).min)
        start, end = logits.unbind(-1)  # (B, T) each
        return start, end

    def loss(self, logits: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the start and end cross-entropies (each over the window's [CLS] and context tokens)."""
        start, end = self._masked(logits, labels["answer_mask"])
        positions = labels["positions"]
        return (F.cross_entropy(start, positions[:, 0]) + F.cross_entropy(end, positions[:, 1])) / 2

    @torch.no_grad()
    def metrics(self, logits: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, tuple[float, int]]:
        """Per window: loss, start and end token accuracy, and both right at once (span accuracy)."""
        start, end = self._masked(logits, labels["answer_mask"])
        positions = labels["positions"]
        n = positions.shape[0]
        losses = (F.cross_entropy(start, positions[:, 0], reduction="none") + F.cross_entropy(end, positions[:, 1], reduction="none")) / 2
        hit_start, hit_end = start.argmax(-1) == positions[:, 0], end.argmax(-1) == positions[:, 1]
        return {"loss": (float(losses.sum()), n), "start_accuracy": (int(hit_start.sum()), n),
                "end_accuracy": (int(hit_end.sum()), n), "span_accuracy": (int((hit_start & hit_end).sum()), n)}

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module) -> nn.Module:
        """`model`'s family's QA head (BERT, RoBERTa, ELECTRA: taesan.tasks.heads) on its weights (a QA model is
        kept as is). Segment ids go in only where the family has a sentence-B row (not RoBERTa's one segment).
        Windows longer than the model's positions are cut to them (a longer context is read in more windows)."""
        qa = put_head(model, "qa", self.name)
        if self.config.max_length > qa.config.n_positions:  # a default window cut to the model, as NER's is (a length
            replace_config(self, max_length=qa.config.n_positions)  # asked for on the command line was refused before)
        check_tokenizer(qa, self.tokenizer)
        replace_config(self, type_ids=takes_segments(qa))
        return qa

    # ---- inference -------------------------------------------------------------------------------------
    def parse_input(self, text: str) -> dict[str, str]:
        """"question ||| context" -> {"question", "context"}."""
        question, context = split_pair(text, "question", "context", self.name)
        return {"question": question, "context": context}

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Sequence[Any], batch_size: int = 32) -> list[dict[str, Any]]:
        """{"question", "context"} dicts (or "q ||| c" strings, or QAExamples) -> {"answer", "start", "end", "score"}.

        start/end are character offsets into the context (context[start:end] == answer); score is the
        span's probability p(start) · p(end) within its window.
        """
        pairs = [self._pair(x) for x in inputs]
        return self._decode(model, pairs, batch_size)

    def describe(self, prediction: dict[str, Any]) -> str:
        """One line for `taesan predict`: the answer, its probability and where it is in the context."""
        return f"{prediction['answer']} ({prediction['score']:.3f}; characters {prediction['start']}-{prediction['end']})"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[QAExample], batch_size: int = 32) -> dict[str, float]:
        """SQuAD v1.1 exact_match / f1 and KorQuAD 1.0 korquad_exact_match / korquad_f1 (percent)."""
        found = self._decode(model, [(ex.question, ex.context) for ex in examples], batch_size)
        return squad_scores([p["answer"] for p in found], [[a.text for a in ex.answers] for ex in examples])

    def decoding_line(self) -> str | None:
        """What `taesan evaluate` says when more than the reader ranked the spans (None when it alone did)."""
        c = self.config
        if not (c.sentence_prior or c.echo_penalty):
            return None
        return (f"qa decoding: sentence_prior {c.sentence_prior:g}, echo_penalty {c.echo_penalty:g} (task.json); "
                f"--set sentence_prior=0 echo_penalty=0 scores the reader alone")

    def _pair(self, x: Any) -> tuple[str, str]:
        if isinstance(x, str):
            x = self.parse_input(x)
        if isinstance(x, QAExample):
            return x.question, x.context
        if isinstance(x, dict):  # as "question ||| context" refuses an empty side: '' scored 0 was the answer
            if not all(isinstance(x.get(k), str) and x[k].strip() for k in ("question", "context")):
                raise TaesanError("a qa input needs a non-empty question and context (question=..., context=..., or "
                                  '"question ||| context")')
            return x["question"], x["context"]
        raise TaesanError('a qa input is {"question": ..., "context": ...} or "question ||| context"')

    def _decode(self, model: nn.Module, pairs: Sequence[tuple[str, str]], batch_size: int) -> list[dict[str, Any]]:
        """The best span of each (question, context) over all its windows."""
        from tqdm.auto import tqdm


        features, owner = [], []
        for i, (question, context) in enumerate(pairs):
            for f in self.encode(QAExample(question, context)):
                features.append(f)
                owner.append(i)
        best: list[dict[str, Any]] = [{"answer": "", "start": 0, "end": 0, "score": 0.0} for _ in pairs]
        best_rank = [float("-inf")] * len(pairs)  # the best span's rank so far (log p(start) + log p(end), the priors)
        lexical_of, lexical = -1, ([], set())  # the pair whose (sentence weights, question bigrams) these are
        limit = getattr(getattr(model, "config", None), "n_positions", None)  # a soft prompt's config leaves its own slots out
        if limit is not None and self.config.max_length > limit:
            raise TaesanError(f"qa max_length {self.config.max_length} exceeds the model's {limit} positions; "
                              f"pass --set max_length={limit} (a longer context is read in windows)")
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            row = 0
            batches = in_order(features, self.collate, batch_size)
            n_batches = -(-len(features) // batch_size)
            for batch in tqdm(batches, total=n_batches, disable=not self.progress or n_batches < 20, desc="qa windows", unit="batch", leave=False):
                inputs, labels = self.prepare(batch)
                logits = model(**{k: v.to(device) for k, v in inputs.items()}).cpu()
                start, end = self._masked(logits, labels["answer_mask"])
                start, end = start.log_softmax(-1), end.log_softmax(-1)  # (B, T) over [CLS] + context
                for b in range(start.shape[0]):
                    f, i = features[row], owner[row]
                    row += 1
                    n = len(f["answer_mask"])
                    if (self.config.sentence_prior or self.config.echo_penalty) and lexical_of != i:  # windows come together
                        weights = sentence_weights(*pairs[i]) if self.config.sentence_prior else []
                        lexical_of, lexical = i, (weights, bigrams(pairs[i][0]))
                    spans = self._window_spans(f, pairs[i][1], lexical, start[b, :n], end[b, :n])
                    if spans and spans[0][0] > best_rank[i]:
                        best_rank[i], s, e = spans[0]
                        lo, hi = f["offsets"][s][0], f["offsets"][e][1]
                        best[i] = {"answer": pairs[i][1][lo:hi], "start": lo, "end": hi,
                                   "score": math.exp(float(start[b, s] + end[b, e]))}
        finally:
            model.train(was_training)
        return best

    def _window_spans(self, f: dict[str, Any], context_text: str, lexical: tuple[list, set],
                      start: torch.Tensor, end: torch.Tensor) -> list[tuple[float, int, int]]:
        """One window's n-best (rank, start, end), best first: the reader's log p(start) + log p(end) (T,), plus the
        sentence prior, less the echo penalty. `lexical`: the pair's (sentence_weights, question bigrams)."""
        c = self.config
        context = torch.tensor(f["answer_mask"], dtype=torch.bool)
        context[0] = False  # [CLS] says "not in this window"; it is never an answer
        if c.sentence_prior:
            bonus = c.sentence_prior * torch.tensor(token_prior(f["offsets"], context.tolist(), lexical[0]))  # (T,)
            start, end = start + bonus, end + bonus
        spans = nbest_spans(start, end, context, c.n_best, c.max_answer_length)
        if c.echo_penalty:
            offsets = f["offsets"]
            spans = best_first([(r - c.echo_penalty * echo_share(context_text[offsets[s][0]:offsets[e][1]], lexical[1]), s, e)
                                for r, s, e in spans])
        return spans
