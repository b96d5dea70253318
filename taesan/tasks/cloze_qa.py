"""Cloze questions from raw Korean text: data to pretrain an extractive-QA model on before its few labelled
questions (Dhingra et al. 2018; Lewis et al. 2019, "Unsupervised Question Answering by Cloze Translation").

Why: a masked LM never practises what extractive QA asks, reading a question against a paragraph and pointing at
a span. KorQuAD gives a few thousand labelled questions; a paragraph of Wikipedia gives several cloze questions
for free. One sentence of a paragraph becomes a question: a noun phrase holding a proper noun or a number is the
answer, replaced by a question word (무엇; 언제 for a date, 몇 for another number), and the words around it (a few
on each side) are lightly noised, one dropped now and then and shuffled within a short distance, so the model
learns to align the question with the paragraph rather than to find an exact copy of it. The paragraph, that
sentence included, is the context. Korean only: kiwipiepy splits the sentences and tags the morphemes.

Not a question generator that writes fluent questions, and not SQuAD 2.0's unanswerable questions.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

from taesan.atomic import atomic_write_text
from taesan.data.embedded import has_final_consonant
from taesan.errors import TaesanError
from taesan.tasks.readers.qa import Answer, QAExample
from taesan.tokenizers.corpus import iter_texts
from taesan.tokenizers.word import kiwi

NOUN_TAGS = frozenset({"NNP", "NNG", "NNB", "NR", "SN", "SL", "SH", "XPN", "XSN"})  # noun-phrase parts (Sejong tags)
DATE_UNITS = frozenset({"년", "월", "일"})
# particles that change with the preceding syllable (after a vowel / after a consonant): 무엇을, 언제를
PARTICLE_PAIRS = (("를", "을"), ("는", "은"), ("가", "이"), ("와", "과"), ("로", "으로"))
PARTICLES = sorted({p for pair in PARTICLE_PAIRS for p in pair}, key=len, reverse=True)
BOUNDARY = "()[]{}<>\"'‘’“”「」『』《》〈〉,.·:;"  # never the first or last character of an answer


@dataclass
class ClozeConfig:
    min_chars: int = 100  # paragraphs shorter than this are skipped (a title, a list item)
    max_chars: int = 2000  # and longer ones (a table dump)
    max_answer_chars: int = 30
    window: int = 4  # words kept on each side of the question word
    drop: float = 0.1  # probability that each word around the question word is dropped
    shuffle: float = 3.0  # words move at most this many places
    per_sentence: float = 0.5  # probability that a sentence with a candidate answer becomes a question

    def __post_init__(self) -> None:
        if not 1 <= self.min_chars <= self.max_chars:
            raise TaesanError(f"cloze min_chars {self.min_chars} / max_chars {self.max_chars}: need 1 <= min <= max")
        if not 0 <= self.drop < 1 or not 0 < self.per_sentence <= 1:
            raise TaesanError("cloze drop must be in [0, 1) and per_sentence in (0, 1]")


def paragraphs(texts: Iterable[str], config: ClozeConfig) -> Iterator[str]:
    """The paragraphs of each text (split at line breaks; a wiki article's title line is too short to count),
    stripped, within the configured length."""
    for text in texts:
        for paragraph in re.split(r"\n+", text):
            paragraph = paragraph.replace("\0", " ").strip()  # NUL marks the answer's place in cloze_question
            if config.min_chars <= len(paragraph) <= config.max_chars:
                yield paragraph


def answer_spans(tokens: Any, config: ClozeConfig) -> list[tuple[int, int, str]]:
    """(start, end, question word) of each candidate answer among one sentence's kiwipiepy tokens (character
    offsets into the analysed text). A run of noun-phrase morphemes (spaces between them allowed) is cut where a
    number starts: a number with its units (1953년, 2월, 30개) asks 언제 (a date) or 몇; the nouns from the
    first proper noun on (지미 카터, 빅히트 엔터테인먼트) ask 무엇.

    "지미 카터는 1953년 미국 해군에 ..." -> [(0, 5, "무엇"), (7, 12, "언제"), (13, 18, "무엇")]
    """
    segments: list[list[Any]] = []
    for t in tokens:
        last = segments[-1][-1] if segments and segments[-1] else None
        joined = last is not None and t.start - (last.start + last.len) <= 1
        number = bool(segments) and segments[-1] and segments[-1][0].tag == "SN"
        if t.tag not in NOUN_TAGS:
            segments.append([])
        elif t.tag == "SN" and not (joined and number and last.form in DATE_UNITS):
            segments.append([t])  # a number starts its own answer (1997년 2월 stays one date)
        elif joined and (not number or t.tag == "NNB" or t.tag == "SN"):
            segments[-1].append(t)
        else:
            segments.append([t])
    spans = []
    for seg in segments:
        if seg and seg[0].tag == "SN":
            word = "언제" if any(t.form in DATE_UNITS for t in seg[1:]) else "몇"
        else:
            seg = seg[next((i for i, t in enumerate(seg) if t.tag == "NNP"), len(seg)):]
            word = "무엇"
        if seg and seg[-1].start + seg[-1].len - seg[0].start <= config.max_answer_chars:
            spans.append((seg[0].start, seg[-1].start + seg[-1].len, word))
    return spans


def cloze_question(sentence: str, start: int, end: int, word: str, rng: random.Random, config: ClozeConfig) -> str:
    """`sentence` with [start, end) replaced by `word` (a particle after it stays attached: 카터는 -> 무엇은),
    cut to `window` words each side, noised, ending in "?"."""
    text = (sentence[:start] + "\0" + sentence[end:]).rstrip(" .!?。")  # the full stop would move with the shuffle
    words = text.split()
    at = next(i for i, w in enumerate(words) if "\0" in w)
    before, after = words[max(0, at - config.window):at], words[at + 1:at + 1 + config.window]
    kept = [w for w in before if rng.random() >= config.drop] + [words[at]] + [w for w in after if rng.random() >= config.drop]
    keys = [i + rng.uniform(0, config.shuffle) for i in range(len(kept))]
    shuffled = [w for _, w in sorted(zip(keys, kept), key=lambda kw: kw[0])]
    question = " ".join(re.sub("\0(" + "|".join(PARTICLES) + ")?", lambda m: agree(word, m.group(1)), w) for w in shuffled)
    return question + "?"


def agree(word: str, particle: str | None) -> str:
    """`word` + `particle` in the form its last syllable takes: ("무엇", "를") -> "무엇을", ("언제", "은") -> "언제는"."""
    if not particle:
        return word
    for vowel, consonant in PARTICLE_PAIRS:
        if particle in (vowel, consonant):
            return word + (consonant if has_final_consonant(word) else vowel)
    return word + particle


def trim_answer(paragraph: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without brackets, quotes or punctuation at either edge."""
    while start < end and (paragraph[start] in BOUNDARY or paragraph[start].isspace()):
        start += 1
    while end > start and (paragraph[end - 1] in BOUNDARY or paragraph[end - 1].isspace()):
        end -= 1
    return start, end


def cloze_examples(texts: Iterable[str], max_questions: int, seed: int = 0,
                   config: ClozeConfig | None = None, progress: bool = False) -> list[QAExample]:
    """Up to `max_questions` cloze questions from `texts`, in text order, the same for the same seed (a progress bar
    counts the questions when `progress`)."""
    config = config or ClozeConfig()
    if max_questions < 1:
        raise TaesanError(f"cloze max_questions must be at least 1, got {max_questions}")
    analyser, rng, examples = kiwi(), random.Random(seed), []
    with tqdm(total=max_questions, desc="cloze questions", unit="question", disable=not progress, leave=False) as bar:
        for paragraph in paragraphs(texts, config):
            for sentence in analyser.split_into_sents(paragraph, return_tokens=True):
                spans = answer_spans(sentence.tokens, config)
                if not spans or rng.random() >= config.per_sentence:
                    continue
                start, end, word = rng.choice(spans)
                start, end = trim_answer(paragraph, start, end)  # kiwipiepy's offsets count from the paragraph's start
                if start >= end:
                    continue
                local = paragraph[sentence.start:sentence.end]
                question = cloze_question(local, start - sentence.start, end - sentence.start, word, rng, config)
                examples.append(QAExample(question, paragraph, [Answer(paragraph[start:end], start)], f"cloze-{len(examples)}"))
                bar.update()
                if len(examples) >= max_questions:
                    return examples
    return examples


def to_squad(examples: list[QAExample]) -> dict[str, Any]:
    """SQuAD v1.1 JSON, one paragraph entry per context (consecutive questions on one context share it)."""
    data: list[dict[str, Any]] = []
    for ex in examples:
        qa = {"id": ex.id, "question": ex.question,
              "answers": [{"text": a.text, "answer_start": a.start} for a in ex.answers]}
        if data and data[-1]["paragraphs"][0]["context"] == ex.context:
            data[-1]["paragraphs"][0]["qas"].append(qa)
        else:
            data.append({"title": "", "paragraphs": [{"context": ex.context, "qas": [qa]}]})
    return {"version": "taesan-cloze", "data": data}


def write_cloze(corpus: list[str | Path], out: str | Path, max_questions: int, seed: int = 0,
                config: ClozeConfig | None = None, progress: bool = False) -> list[QAExample]:
    """Cloze questions from the corpus files (plain text: a paragraph per line; .jsonl: each "text") to `out` as
    SQuAD JSON (written whole or not at all). A corpus that yields no question is an error, not an empty file."""
    config = config or ClozeConfig()
    texts = iter_texts([Path(p) for p in corpus])  # Paths: a missing file is an error, never text
    examples = cloze_examples(texts, max_questions, seed, config, progress)
    if not examples:
        raise TaesanError(f"no cloze question could be made from {', '.join(map(str, corpus))}: it needs Korean paragraphs "
                          f"of {config.min_chars}-{config.max_chars} characters whose sentences name a proper noun or a number")
    atomic_write_text(out, json.dumps(to_squad(examples), ensure_ascii=False))
    return examples
