"""What every downstream task defines; the Trainer and the CLI know tasks only through this.

A task turns a labelled example (a small dataclass from `taesan.tasks.readers`) into one or more
features (plain dicts of ids and labels; QA windows make several), collates features into a batch,
puts its head on a backbone, owns the loss and metrics (as an `Objective`) and turns model outputs
into JSON-able predictions. Its settings (labels, lengths) are a dataclass saved as task.json beside
the fine-tuned weights, so `taesan predict` and `taesan serve` rebuild it from the checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from taesan.config import config_from_dict, config_to_dict, write_json
from taesan.errors import TaesanError
from taesan.objectives import Objective
from taesan.tasks import TASK_FILE
from taesan.textfiles import excerpt


@dataclass
class TaskConfig:
    max_length: int = 128  # tokens per feature, specials included
    labels: list[str] = field(default_factory=list)  # class / tag names; index = label id


def check_non_negative(config: TaskConfig, task: str, names: tuple[str, ...]) -> None:
    """Each named setting a finite number >= 0 (a weight such as rdrop or echo_penalty), else a one-line error
    naming it; NaN fails too."""
    for name in names:
        value = getattr(config, name)
        if not 0 <= value < math.inf:
            raise TaesanError(f"{task} setting {name} must be a number >= 0, got {value}")


class Task(Objective):
    """A downstream task. Subclasses set `name` (the TASKS key), `config_class` and override the hooks.

    Data:      read(path) -> examples; fit_labels(examples); encode(example) -> features; collate(features) -> batch
    Model:     build_model(model) -> the model with this task's head (a backbone, a head model or a preset)
    Training:  prepare / loss / metrics / summarize (the Objective seam; the batch holds "labels")
    Inference: predict(model, inputs) -> one JSON-able dict per input; describe(prediction) -> a line;
               evaluate(model, examples) -> scores
    """

    name: ClassVar[str] = "task"
    config_class: ClassVar[type] = TaskConfig
    default_batch_size: ClassVar[int | None] = 32  # inference rows per batch when the caller names none (None: as many as fit)
    progress: bool = True  # inference over many batches may draw a progress bar (the CLI's --no-progress: False)

    def __init__(self, config: Any = None, tokenizer: Any = None) -> None:
        self.config = config if config is not None else self.config_class()
        self.tokenizer = tokenizer
        self.skipped: dict[str, str] = {}  # per file read: what `read` left out and why (rows with no text, ...)

    # ---- settings --------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], tokenizer: Any = None, source: str = "task.json") -> "Task":
        fields = {k: v for k, v in data.items() if k != "task"}
        return cls(config_from_dict(cls.config_class, fields, source), tokenizer)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.name, **config_to_dict(self.config)}

    def save(self, directory: str | Path) -> None:
        """task.json in `directory` (atomically), so a checkpoint knows what it was fine-tuned for."""
        write_json(Path(directory) / TASK_FILE, self.to_dict())

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    def positions_needed(self) -> int:
        """The most positions one example takes in the model (checked against its n_positions)."""
        return getattr(self.config, "max_length", 0)

    # ---- the tokenizer ---------------------------------------------------------------------------------
    @property
    def tok(self):
        """The attached tokenizer, or a one-line error: a text task cannot run without the checkpoint's."""
        if self.tokenizer is None:
            raise TaesanError(f"the {self.name} task needs a tokenizer (tokenizer.json beside the model)")
        return self.tokenizer

    @property
    def eos_id(self) -> int:
        """The end-of-text id, for tasks that end a sequence (generation, translation)."""
        eos = self.tok.eos_id
        if eos is None:
            raise TaesanError(f"the {self.name} task needs an end-of-text token (<|endoftext|>, </s> or [SEP]) in the tokenizer")
        return eos

    @property
    def pad_id(self) -> int:
        """The padding id; end-of-text pads where the tokenizer has no pad token (GPT-2's)."""
        pad = self.tok.pad_id
        return pad if pad is not None else self.eos_id

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[Any]:
        """Labelled examples from a file in one of the formats this task reads (see taesan.tasks.readers)."""
        raise NotImplementedError

    def read_notes(self) -> list[str]:
        """One line per file read that had rows `read` left out, for the CLI to show (tasks never print): a count the
        user can check against the file, not a silent drop."""
        return [f"{path}: {note}" for path, note in self.skipped.items()]

    def input_texts(self, path: str | Path) -> list[str] | None:
        """The inputs a data file holds, as `predict` takes them (its labels, if any, ignored), or None where the
        task reads `predict --file` as plain text, one input per line."""
        return None

    def fit_labels(self, examples: Sequence[Any]) -> None:
        """Fix the label set from the training examples when the config names none (sorted, stable)."""

    def encode(self, example: Any) -> list[dict[str, Any]]:
        """One example -> its features (lists/ints; labels under "labels")."""
        raise NotImplementedError

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Features -> a batch of padded tensors, including "labels" (-100 where nothing is learned)."""
        raise NotImplementedError

    def prepare(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """The batch minus its labels is the model's keyword arguments."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return inputs, batch["labels"]

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module) -> nn.Module:
        """`model` (a pretrained backbone, another head model, or a fresh preset) with this task's head."""
        raise NotImplementedError

    # ---- inference -------------------------------------------------------------------------------------
    def parse_input(self, text: str) -> Any:
        """A command-line / HTTP string -> one `predict` input (a pair task splits it, say); empty text is an error
        (it got a confident-looking label for nothing)."""
        if not text.strip():
            raise TaesanError("the input text is empty")
        return text

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Sequence[Any], batch_size: int = 32) -> list[dict[str, Any]]:
        raise NotImplementedError

    def describe(self, prediction: dict[str, Any]) -> str:
        """One readable line for a prediction (`taesan predict`): "label (probability)" for classifiers,
        else the fields in order, long ones as compact JSON. Tasks with richer output word their own."""
        import json

        if "label" in prediction and "probability" in prediction:
            return f"{prediction['label']} ({prediction['probability']:.3f})"
        parts = []
        for key, value in prediction.items():
            if isinstance(value, float):
                shown = f"{value:.3f}"
            elif isinstance(value, (str, int)):
                shown = str(value)
            else:
                shown = json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}: {shown}")
        return "; ".join(parts)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Any], batch_size: int = 32) -> dict[str, float]:
        """Scores over labelled examples with full decoding (QA spans, generated text), as JSON numbers."""
        raise NotImplementedError


PAIR_SEPARATOR = "|||"  # two texts typed as one string: "premise ||| hypothesis", "question ||| context"


def split_pair(text: str, first: str, second: str, task: str) -> tuple[str, str]:
    """"a ||| b" -> ("a", "b"), stripped; a missing separator or an empty side is a one-line error naming them.

    split_pair("비가 온다 ||| 날씨가 궂다", "premise", "hypothesis", "pair-classification") -> ("비가 온다", "날씨가 궂다")
    """
    if PAIR_SEPARATOR not in text:  # quoted in part: the text may be a whole context, or a whole file read as a line
        raise TaesanError(f'a {task} input is two texts: "{first} {PAIR_SEPARATOR} {second}" (got {excerpt(text)})')
    a, b = (part.strip() for part in text.split(PAIR_SEPARATOR, 1))
    if not a or not b:
        raise TaesanError(f"empty {first} or {second} in {excerpt(text)}")
    return a, b


def check_labels(labels: Sequence[str], value: str, source: str) -> int:
    """The id of `value` in `labels`, or a one-line error naming where the unknown label came from."""
    try:
        return list(labels).index(value)
    except ValueError:
        shown = ", ".join(map(str, labels[:10])) + (" ..." if len(labels) > 10 else "")
        raise TaesanError(f"{source}: unknown label {value!r} (known: {shown})") from None


def replace_config(task: Task, **changes: Any) -> None:
    task.config = dataclasses.replace(task.config, **changes)
