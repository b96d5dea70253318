"""SQuAD v1.1 / KorQuAD 1.0 / KLUE-MRC JSON: data -> paragraphs -> qas -> answers (text + answer_start), as QA examples.

Not a decision about unanswerable questions (SQuAD 2.0's and KLUE-MRC's is_impossible, or no answers): they come back
with no answers and the task skips them. Each answer is checked to sit at its answer_start in the context, so a
shifted offset is caught here, not learned as a wrong span. Errors quote only the start of a long text (`excerpt`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taesan.textfiles import data_error, excerpt, parse_json, read_text


@dataclass
class Answer:
    text: str
    start: int  # character offset of `text` in the context

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class QAExample:
    question: str
    context: str
    answers: list[Answer] = field(default_factory=list)  # the first is the training target; all count in EM/F1
    id: str = ""


def read_squad(path: str | Path, labelled: bool = True) -> list[QAExample]:
    """Every question of a SQuAD-format file, in file order; a malformed file names the question (or JSON line).
    A question's id is its "id" (SQuAD, KorQuAD) or "guid" (KLUE-MRC); one marked is_impossible, or with no answers,
    comes back with answers []. labelled=False: answers are not read (the inputs of `predict --file`)."""
    data = parse_json(path, read_text(path), expected="; expected SQuAD/KorQuAD JSON")
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise data_error(path, None, 'expected a JSON object {"data": [articles with "paragraphs"]} (SQuAD/KorQuAD format)')
    examples: list[QAExample] = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where)):
                examples.append(_example(qa, context, path, f"{where}.qas[{q}]", labelled))
    return examples


def _example(qa: Any, context: str, path: str | Path, where: str, labelled: bool = True) -> QAExample:
    key = "guid" if isinstance(qa, dict) and "id" not in qa and "guid" in qa else "id"  # KLUE-MRC names it guid
    if isinstance(qa, dict) and key not in qa:
        raise data_error(path, None, f"{where}: missing 'id' (or KLUE-MRC's 'guid')")
    qid = str(_field(qa, key, (str, int), path, where))
    name = f"question {excerpt(qid)}"
    question = _field(qa, "question", str, path, name)
    if not question.strip():
        raise data_error(path, None, f"{name}: the question is empty")
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise data_error(path, None, f"{name}: 'is_impossible' should be true or false, found {type(impossible).__name__}")
    if not labelled or impossible:
        return QAExample(question, context, [], qid)
    answers = []
    for raw in _field(qa, "answers", list, path, name):
        text = _field(raw, "text", str, path, name + " answer")
        start = _field(raw, "answer_start", int, path, name + " answer")
        if isinstance(start, bool) or not 0 <= start <= len(context) - len(text) or context[start:start + len(text)] != text:
            found = context[max(start, 0):max(start, 0) + len(text)] if not isinstance(start, bool) else ""
            raise data_error(path, None, f"{name}: answer {excerpt(text)} is not at answer_start {start} (the context "
                                         f"there reads {excerpt(found)})")
        if not text.strip():
            raise data_error(path, None, f"{name}: an answer is empty")
        answers.append(Answer(text, start))
    return QAExample(question, context, answers, qid)


def _field(obj: Any, key: str, kind: type | tuple[type, ...], path: str | Path, where: str) -> Any:
    """obj[key], checked to be of `kind`, or an error naming where it is missing."""
    if not isinstance(obj, dict) or key not in obj:
        raise data_error(path, None, f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise data_error(path, None, f"{where}: {key!r} should be {names}, found {type(value).__name__}")
    return value
