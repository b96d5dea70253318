"""Downstream tasks: how labelled examples become features, which head the model gets, the loss,
the metrics and what a prediction looks like. A task is an `Objective` (taesan.objectives), so the one
Trainer fine-tunes every task; `taesan.tuning.finetune` runs it.

TASKS maps the CLI name to "module:Class"; each class registers here and is imported lazily.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from taesan.config import read_json
from taesan.errors import TaesanError

TASK_FILE = "task.json"

TASKS: dict[str, str] = {
    "classification": "taesan.tasks.classification:SequenceClassification",
    "pair-classification": "taesan.tasks.classification:PairClassification",
    "ner": "taesan.tasks.ner:TokenClassification",
    "qa": "taesan.tasks.qa:ExtractiveQA",
    "generation": "taesan.tasks.generation:GenerationTask",
    "translation": "taesan.tasks.translation:Translation",
    "image-classification": "taesan.tasks.image:ImageClassification",
}


def task_class(name: str, source: str = "--task") -> type:
    if name not in TASKS:
        raise TaesanError(f"{source}: unknown task {name!r}; known: {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_task(directory: str | Path, tokenizer: Any = None):
    """The task a fine-tuned checkpoint was trained for, from its task.json (None if it has none)."""
    path = Path(directory) / TASK_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict) or "task" not in data:
        raise TaesanError(f"{path}: expected a JSON object with a 'task' field")
    cls = task_class(data["task"], str(path))
    return cls.from_dict(data, tokenizer, str(path))
