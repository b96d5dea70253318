"""A downloaded HuggingFace head model's task, read from its config.json as HF's `pipeline` reads it: a
`*ForSequenceClassification` classifies, a `*ForTokenClassification` tags entities (ner), a `*ForQuestionAnswering`
answers from a context (qa), with the label names of its id2label in id order (LABEL_0, ... kept as they are).

Not a fine-tuned taesan checkpoint's task (its task.json: taesan.tasks.load_task) and not the head (the model loads
with it: models/<family>_hf.py). What HF's pipelines do and a task.json would otherwise say is assumed here:
- classification: softmax over the labels (text-classification's default for a single-label head). A pair task
  (NLI) cannot be told from a single-text one, so one task takes both: "premise ||| hypothesis" is read as a pair
  ([CLS] a [SEP] b [SEP], as HF's {"text", "text_pair"}), any other text alone; a labelled file is a pair file when
  its header names a pair's columns (KorNLI's sentence1 / sentence2) or its JSON records a pair's fields
  (KLUE-NLI's premise / hypothesis), else a single-text one (NSMC's document).
- ner: the tags must be BIO (O, B-X, I-X). Each subword token's own most probable tag, grouped into entities as
  token-classification with aggregation_strategy="simple" groups them (decode "argmax", unit "char": an entity ends
  on token edges); a labelled file is scored in its own unit (KLUE's characters, CoNLL's words).
- qa: question-answering's defaults: windows of 384 tokens (or the model's positions) sharing 128, answers of at
  most 15 tokens, the span of highest p(start) * p(end) over [CLS] and the context.
Lengths default to the model's positions (HF's pipelines do not cut a text to 128 tokens).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from taesan.errors import TaesanError
from taesan.tasks.base import PAIR_SEPARATOR, replace_config, split_pair
from taesan.tasks.classification import ClassificationConfig, PairClassification, SequenceClassification
from taesan.tasks.fits import check_labels, check_length, positions
from taesan.tasks.heads import head_class, takes_segments
from taesan.tasks.metrics.entities import split_tag
from taesan.tasks.ner import NerConfig, TokenClassification
from taesan.tasks.qa import ExtractiveQA, QAConfig
from taesan.tasks.readers.nli import JSON_TEXTS, TSV_COLUMNS, PairExample
from taesan.textfiles import header_names, json_records

HEADS = {"ForSequenceClassification": "classification", "ForTokenClassification": "ner", "ForQuestionAnswering": "qa"}
KINDS = {"classification": "sequence", "ner": "token", "qa": "qa"}  # the task -> its head (taesan.tasks.heads)
QA_DEFAULTS = {"max_length": 384, "doc_stride": 128, "max_question_length": 64, "max_answer_length": 15}  # HF's


class HubClassification(SequenceClassification):
    """A downloaded classifier's task: one text, or a pair typed "premise ||| hypothesis" (or read from a pair file)."""

    def parse_input(self, text: str) -> Any:
        """"a ||| b" -> ("a", "b"); any other text -> itself."""
        if PAIR_SEPARATOR in text:
            return split_pair(text, "premise", "hypothesis", self.name)
        return super().parse_input(text)

    def as_example(self, item: Any) -> Any:
        """A text, a (premise, hypothesis) pair, HF's {"text", "text_pair"} or an example -> an example."""
        if isinstance(item, dict) and isinstance(item.get("text"), str) and isinstance(item.get("text_pair"), str):
            item = (item["text"], item["text_pair"])
        if isinstance(item, tuple):
            return PairExample(item[0], item[1], None, "input")
        return item if isinstance(item, PairExample) else super().as_example(item)

    def texts(self, example: Any) -> tuple[str, str | None]:
        return (example.premise, example.hypothesis) if isinstance(example, PairExample) else (example.text, None)

    def read(self, path: str | Path) -> list[Any]:
        """A pair file's or a single-text file's labelled rows; labels written as the head's ids (NSMC's 0 / 1, as
        HF's datasets write them) are read as the names id2label gives those ids."""
        if _pair_file(path):
            pairs = self._pairs()
            examples = pairs.read(path)
            self.skipped.update(pairs.skipped)
        else:
            examples = super().read(path)
        return by_id(examples, self.labels)

    def input_texts(self, path: str | Path) -> list[str] | None:
        return self._pairs().input_texts(path) if _pair_file(path) else super().input_texts(path)

    def _pairs(self) -> PairClassification:
        return PairClassification(self.config, self.tokenizer)


class HubTokenClassification(TokenClassification):
    """A downloaded NER model's task: no unit was recorded with it, so a labelled file is scored in its own."""

    def check_unit(self, example: Any) -> None:
        if example.unit != self.config.unit:
            replace_config(self, unit=example.unit)


def by_id(examples: list[Any], labels: list[str]) -> list[Any]:
    """The examples as they are when their labels are names; labels that are all ids of `labels` become the names.

    by_id([TextExample("좋다", "1")], ["부정", "긍정"]) -> [TextExample("좋다", "긍정")]
    """
    given = {ex.label for ex in examples}
    if given & set(labels) or not all(isinstance(g, str) and g.isdigit() and int(g) < len(labels) for g in given):
        return examples
    return [dataclasses.replace(ex, label=labels[int(ex.label)]) for ex in examples]


def _pair_file(path: str | Path) -> bool:
    """A pair task's file: a table whose header names a pair's columns (KorNLI's sentence1 / sentence2), or JSON whose
    first record has a pair's fields (KLUE-NLI's premise / hypothesis)."""
    if Path(path).suffix.lower() in (".json", ".jsonl", ".ndjson"):
        records = json_records(path)
        first = records[0][1] if records else None
        return isinstance(first, dict) and any(all(k in first for k in pair) for pair in JSON_TEXTS)
    names = header_names(path)
    return any(all(c in names for c in columns[:2]) for columns in TSV_COLUMNS)


def head_task(architectures: Any) -> str | None:
    """The task of the first HF architecture (config.json's list of names) with a head taesan has a task for.

    head_task(["BertForSequenceClassification"]) -> "classification"; head_task(["BertForMaskedLM"]) -> None
    """
    if not isinstance(architectures, list) or not all(isinstance(name, str) for name in architectures):
        return None
    return next((task for name in architectures for head, task in HEADS.items() if name.endswith(head)), None)


def id2label(config: dict[str, Any], outputs: int) -> list[str]:
    """config.json's id2label in id order; LABEL_i for a head that names none.

    id2label({"id2label": {"1": "긍정", "0": "부정"}}, 2) -> ["부정", "긍정"]
    """
    names = config.get("id2label")
    if not isinstance(names, dict) or not names:
        return [f"LABEL_{i}" for i in range(outputs)]
    try:
        return [str(names[k]) for k in sorted(names, key=int)]
    except ValueError:
        raise TaesanError("config.json: field 'id2label' has a non-integer key") from None


def task_from_config(directory: Path, config: dict[str, Any], model: Any, tokenizer: Any) -> tuple[Any, str]:
    """(the task of a HF head model's config.json, a line saying so), or (None, why not) when its head is one taesan
    does not run as HF's pipelines do ((None, "") when it names no head at all)."""
    architectures = config.get("architectures")
    name = head_task(architectures)
    if name is None:
        return None, ""
    named = ", ".join(architectures)
    source = f"{directory / 'config.json'} ({named})"
    try:
        head = head_class(model, KINDS[name], name)
        why = "" if type(model) is head else f"it loads as {type(model).__name__}, not {head.__name__}"
    except TaesanError as e:
        why = str(e)
    task = None
    if not why:
        task, why = BUILDERS[name](config, positions(model) or 512, model, tokenizer)
    if task is None:
        return None, f"{source}: {why}"
    check_labels(task, model, source)
    check_length(task, model, source)
    return task, f"{directory.name}: the {name} task comes from config.json's architectures ({named}); no task.json"


def _classification(config: dict[str, Any], length: int, model: Any, tokenizer: Any) -> tuple[Any, str]:
    labels = id2label(config, model.config.num_labels)
    problem = config.get("problem_type")
    if problem in ("regression", "multi_label_classification") or len(labels) < 2:
        return None, (f"a {problem or 'one-output'} head; taesan's classification task picks one of two or more "
                      f"labels by softmax")
    settings = ClassificationConfig(max_length=length, labels=labels, type_ids=takes_segments(model))
    return HubClassification(settings, tokenizer), ""


def _ner(config: dict[str, Any], length: int, model: Any, tokenizer: Any) -> tuple[Any, str]:
    labels = id2label(config, model.config.num_labels)
    try:
        for label in labels:
            split_tag(label)
    except ValueError as e:
        return None, f"taesan's ner task reads BIO tags (O, B-TYPE, I-TYPE): {e}"
    settings = NerConfig(max_length=length, labels=labels, unit="char", decode="argmax")
    return HubTokenClassification(settings, tokenizer), ""


def _qa(config: dict[str, Any], length: int, model: Any, tokenizer: Any) -> tuple[Any, str]:
    limit = min(QA_DEFAULTS["max_length"], length)
    settings = QAConfig(max_length=limit, doc_stride=min(QA_DEFAULTS["doc_stride"], limit // 2),
                        max_question_length=min(QA_DEFAULTS["max_question_length"], limit // 4),
                        max_answer_length=QA_DEFAULTS["max_answer_length"], type_ids=takes_segments(model))
    return ExtractiveQA(settings, tokenizer), ""


BUILDERS = {"classification": _classification, "ner": _ner, "qa": _qa}  # (config, length, model, tokenizer) -> (task, why not)
