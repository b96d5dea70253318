"""How much of a QA context the question's own words cover: per sentence (where the answer likely is) and per
candidate answer (what it likely is not). The lexical priors a small extractive reader adds to its span scores.

Not a retriever over documents and not a tokenizer: text in, character spans and weights in [0, 1] out.

Why: a KorQuAD question is mostly written from the sentence that holds its answer, in other words than the answer.
A 2 x 128 reader pretrained for minutes starts its span within 50 characters of the answer for only 29% of the
questions; the sentence sharing the most character bigrams with the question (each bigram weighted by how rare it
is among the context's sentences) holds the answer for 82%. And the reader often answers with the question's own
entity, where gold answers share 6% of their bigrams with the question on average (issue 17; benchmarks/RESULTS.md).
Choosing the sentence before reading is the classical remedy (DrQA's retriever; Min et al. 2018, "Efficient and
robust question answering from minimal context"). Character bigrams, not words: Korean glues particles to words
(카터는 / 카터가), and bigrams need no morpheme analyser.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

SENTENCE_BREAK = re.compile(r"(?<=[.!?。])\s+|\n+")  # after . ! ? followed by space (not inside 3.5), or a line break


def sentences(text: str) -> list[tuple[int, int]]:
    """The character spans [start, end) of `text`'s sentences, covering it end to end (each keeps its trailing space).

    sentences("카터는 1953년에 입대했다. 그는 3.5년 복무했다.") -> [(0, 17), (17, 30)]
    """
    spans, start = [], 0
    for m in SENTENCE_BREAK.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text) or not spans:
        spans.append((start, len(text)))
    return spans


def bigrams(text: str) -> set[str]:
    """The character bigrams of `text` with whitespace removed, lowercased: bigrams("미국 해군") -> {"미국", "국해", "해군"}."""
    s = re.sub(r"\s+", "", text.lower())
    return {s[i:i + 2] for i in range(len(s) - 1)}


def sentence_weights(question: str, context: str) -> list[tuple[int, int, float]]:
    """(start, end, weight) for each sentence of `context`: the IDF-weighted count of the question's character bigrams
    it contains, divided by the best sentence's, so the best is 1.0; all 0.0 when no sentence shares any.

    IDF over the context's own sentences, log(1 + n / df): a bigram in every sentence (이다, 했다) counts least.
    sentence_weights("카터는 언제 입대했나?", "카터는 1953년에 입대했다. 그는 해군이었다.") -> [(0, 17, 1.0), (17, 26, 0.0)]
    """
    spans = sentences(context)
    grams = [bigrams(context[a:b]) for a, b in spans]
    df = Counter(g for sentence in grams for g in sentence)
    asked = bigrams(question)
    scores = [sum(math.log(1 + len(spans) / df[g]) for g in sentence & asked) for sentence in grams]
    best = max(scores)
    return [(a, b, s / best if best > 0 else 0.0) for (a, b), s in zip(spans, scores)]


def token_prior(offsets: Sequence[tuple[int, int]], in_context: Sequence[bool],
                weights: Sequence[tuple[int, int, float]]) -> list[float]:
    """Each token's prior: the weight of the context sentence holding its first character; 0.0 for tokens outside
    the context ([CLS], the question, [SEP], padding: `in_context` False).

    offsets [(0,0), (0,3), (0,3), (5,7)], in_context [F, F, T, T], weights [(0, 4, 1.0), (4, 9, 0.5)] -> [0, 0, 1.0, 0.5]
    """
    out, j = [], 0
    for (start, _), inside in zip(offsets, in_context):
        if not inside:
            out.append(0.0)
            continue
        j = 0 if start < weights[j][0] else j  # offsets rise within a window; restart if one does not
        while j + 1 < len(weights) and start >= weights[j][1]:
            j += 1
        out.append(weights[j][2])
    return out


def echo_share(answer: str, asked: set[str]) -> float:
    """The share of `answer`'s character bigrams that the question's bigrams `asked` hold (0 for a one-character answer).

    echo_share("뉘르부르크링", bigrams("뉘르부르크링은 어느 나라에 있나?")) -> 1.0;  echo_share("독일", ...) -> 0.0
    """
    grams = bigrams(answer)
    return len(grams & asked) / len(grams) if grams else 0.0
