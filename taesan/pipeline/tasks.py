"""`taesan.pipeline(dir)`: a checkpoint as one callable that answers as the command line does (in the spirit of
HuggingFace's `pipeline` and litgpt's `LLM`):

    p = taesan.pipeline("sentiment");  p("배우들 연기가 훌륭하다")   -> {"label": "긍정", "probability": ..., ...}
    taesan.pipeline("ner")("철수는 서울에 갔다")                      -> {"entities": [{"text", "label", "start", "end", ...}]}
    taesan.pipeline("qa")(question="어디에 갔어?", context="...")     -> {"answer", "start", "end", "score"}
    taesan.pipeline("gpt")("티끌 모아")                               -> {"text", "completion", "finish_reason"}
    taesan.pipeline("bert")("티끌 [MASK] 태산")                       -> {"tokens", "masks": [{"position", "candidates"}]}
    taesan.pipeline("gpt", task="score")(["난폭 운전", "무모 운전"])  -> {"objective", "scores"} highest first

A list of inputs gives a list of results (score ranks its list instead). Not the inference itself: tasks
predict, pipeline/text.py writes, pipeline/lm.py scores and fills.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.lm import fill_mask, score
from taesan.pipeline.precision import Precision, use_precision
from taesan.pipeline.text import complete

PREDICTING = {"classify", "ner", "qa", "image", "translate"}  # the fine-tuned task's own predict, as `taesan predict`
DEFAULTS = {"classification": "classify", "pair-classification": "classify", "ner": "ner", "qa": "qa",
            "image-classification": "image", "generation": "generate", "translation": "translate"}
TASK_DECODING = {  # a writing task decodes as its task.json says: generate's option <- the task config's field
    "generation": {name: name for name in ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "num_beams",
                                           "repetition_penalty", "seed")},
    "translation": {"max_new_tokens": "max_target_length", "num_beams": "num_beams", "length_penalty": "length_penalty"},
}


def pipeline(directory: str | Path, task: str | None = None, device: str = "cpu",
             precision: str = "auto") -> "Pipeline":
    """A checkpoint directory (taesan or HuggingFace) -> a callable for one of the things it can do: `task` picks
    one (classify, ner, qa, image, translate, generate, fill-mask, score, tokenize); by default a fine-tuned
    checkpoint does its task (a downloaded HF classifier, NER or QA model: the one its config.json's architectures
    name, said in `.notes`), a language model writes (a GPT, an encoder-decoder) or fills blanks (BERT).
    `precision` as the commands' --precision: auto runs bf16 where the device computes it natively, so the
    pipeline answers as `taesan predict` does on the same machine."""
    bundle = Bundle.load(directory, device=device)
    return Pipeline(bundle, task or _default(bundle), use_precision(bundle.model, precision))


class Pipeline:
    """One checkpoint's task as a callable: `p(input)` -> a dict, `p([inputs])` -> a list of dicts."""

    def __init__(self, bundle: Bundle, task: str, precision: Precision) -> None:
        can = capabilities(bundle)
        if task not in can:
            raise TaesanError(f"{bundle.directory}: a {bundle.model_type} checkpoint cannot {task} "
                              f"(it can: {', '.join(can) or 'nothing here'})")
        self.bundle, self.task = bundle, task
        self.precision = precision  # what `precision=` chose; the model runs under its context
        self.notes = list(bundle.notes)  # where a task without task.json came from (a HF head model's config.json)

    def __repr__(self) -> str:
        return f"Pipeline({self.task!r}, {str(self.bundle.directory)!r})"

    def __call__(self, inputs: Any = None, **options: Any) -> Any:
        """inputs: a text (a path or digits:N for an image; "question ||| context" or {"question", "context"} for QA,
        or question=..., context=... as keywords), or a list of them. options: generate's for generate
        (max_new_tokens, do_sample, top_p, seed, ...), top_k for fill-mask, batch_size for the others."""
        if self.task == "qa" and inputs is None and "question" in options:
            inputs = {"question": options.pop("question"), "context": options.pop("context", None)}
        if inputs is None:
            raise TaesanError(f"give the {self.task} pipeline an input")
        with self.precision.context():
            return self._run(inputs, options)

    def _run(self, inputs: Any, options: dict[str, Any]) -> Any:
        if self.task == "score":
            return score(self.bundle, [inputs] if isinstance(inputs, str) else list(inputs), **options)
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        if self.task in PREDICTING:
            results = self._predict(items, **options)
        else:
            results = [self._one(item, options) for item in items]
        return results if many else results[0]

    def _predict(self, items: list[Any], batch_size: int = 32) -> list[dict[str, Any]]:
        task = self.bundle.task
        parsed = [task.parse_input(x) if isinstance(x, str) else x for x in items]
        return task.predict(self.bundle.model, parsed, batch_size)

    def _one(self, text: str, options: dict[str, Any]) -> Any:
        if self.task == "generate":
            found = [{"text": c.shown, "completion": c.text, "finish_reason": c.finish_reason}
                     for c in complete(self.bundle, text, **{**self._task_decoding(), **options})]
            return found[0] if len(found) == 1 else found
        if self.task == "fill-mask":
            return fill_mask(self.bundle, text, **options)
        enc = self.bundle.need_tokenizer().encode(text)  # tokenize
        return {"tokens": enc.tokens, "ids": enc.ids, "offsets": [list(o) for o in enc.offsets]}

    def _task_decoding(self) -> dict[str, Any]:
        task = self.bundle.task
        fields = TASK_DECODING.get(task.name, {}) if task is not None else {}
        return {option: getattr(task.config, field) for option, field in fields.items()}


def capabilities(bundle: Bundle) -> list[str]:
    """What `task=` may name for this checkpoint: its actions (but attention, which draws), and translate."""
    can = [a for a in bundle.actions if a != "attention"]
    if bundle.task is not None and bundle.task.name == "translation":
        can.insert(0, "translate")
    return can


def _default(bundle: Bundle) -> str:
    if bundle.task is not None:
        return DEFAULTS.get(bundle.task.name, bundle.task.name)
    for task in ("generate", "fill-mask", "score"):
        if task in bundle.actions:
            return task
    raise TaesanError(f"{bundle.directory}: a {bundle.model_type} checkpoint has no task of its own; pass task= one of "
                      f"{', '.join(capabilities(bundle)) or 'nothing here'}")
