"""Fine-tuning a task: its head on a backbone, trained by the one Trainer, every parameter (mode "full"), only a
soft prompt and the head (mode "prompt"), or only a soft prompt with the label read through the frozen LM head
(mode "prompt-lm"), then evaluated with the task's own decoding. The output directory is a checkpoint (config.json,
model.safetensors, tokenizer.json, task.json, eval_results.json) that `load_finetuned` reads back."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from taesan import tokenizers
from taesan.atomic import atomic_write_text
from taesan.errors import TaesanError
from taesan.tasks import TASK_FILE, load_task
from taesan.tasks.base import Task, replace_config
from taesan.tasks.batches import FeatureBatches, in_order
from taesan.tasks.classification import SequenceClassification
from taesan.tasks.fits import check_finetuned, check_tokenizer
from taesan.tasks.heads import takes_segments
from taesan.train import TrainConfig, Trainer
from taesan.tuning.load import load
from taesan.tuning.prompt import SoftPrompt, add_soft_prompt
from taesan.tuning.verbalizer import verbalized_lm

RESULTS_FILE = "eval_results.json"
MODES = ("full", "prompt", "prompt-lm")  # every weight; a soft prompt + the task head; a soft prompt read by the LM head


@dataclass
class FinetuneResult:
    model: nn.Module
    metrics: dict[str, float] = field(default_factory=dict)  # task.evaluate on the validation examples
    seconds: float = 0.0
    trainable_parameters: int = 0
    train_examples: int = 0
    steps: int = 0  # optimizer steps taken (fewer than planned when interrupted)
    interrupted: bool = False  # Ctrl-C: the model of the last step was saved and evaluated


def encode_all(task: Task, examples: Sequence[Any]) -> list[dict[str, Any]]:
    return [f for ex in examples for f in task.encode(ex)]


def finetune(
    task: Task,
    model: nn.Module,
    train_examples: Sequence[Any],
    valid_examples: Sequence[Any],
    out_dir: str | Path,
    config: TrainConfig,
    batch_size: int = 16,
    device: str = "auto",
    eval_batch_size: int = 64,
    mode: str = "full",
    prompt_tokens: int = 20,
    prompt_init: str | None = None,
    on_start: Callable[[], None] | None = None,
    verbalizer: dict[str, str] | None = None,
    pattern: str | None = None,
) -> FinetuneResult:
    """Fit `task` on `train_examples` starting from `model`; evaluate on `valid_examples`; save to `out_dir`.

    `model` may be a bare backbone or a preset-built model: `task.build_model` adds the head.
    mode "full" trains every parameter; "prompt" freezes the backbone and trains a soft prompt of
    `prompt_tokens` virtual tokens (initialised from the text `prompt_init`, or sampled vocabulary
    embeddings when None) and the task head (see taesan.tuning.prompt); "prompt-lm" trains only the soft prompt,
    and a classifier's label is its `verbalizer` word's score from the frozen LM head after `pattern` (a GPT, or a
    masked LM at its [MASK]; taesan.tuning.verbalizer). verbalizer None: each label is its own word.
    `on_start()` runs once the model and data are ready, before the first step (the CLI says what it chose).
    The task's settings and `config` are used as given: what `taesan finetune` chooses when nothing is named is
    tuning.task_defaults.apply_task_defaults (pooling, R-Drop, QA priors) and tuning.defaults.finetune_defaults
    (lr, warmup, batch), for a caller to apply first.
    """
    if not train_examples:
        raise TaesanError("no training examples")
    if mode not in MODES:
        raise TaesanError(f"--mode {mode!r}: choose {', '.join(MODES)}")
    start = time.perf_counter()
    task.fit_labels(train_examples)
    base = getattr(model, "checkpoint_dir", None)  # set by taesan.load: the checkpoint a soft prompt loads onto
    if mode == "prompt-lm":
        model = prompt_through_lm(task, model, verbalizer, pattern, prompt_tokens, prompt_init, config.seed, base)
    else:
        model = task.build_model(model)
    if mode == "prompt":
        model = add_soft_prompt(model, prompt_tokens, prompt_init, task.tokenizer, seed=config.seed, base=base)
    if mode != "full" and hasattr(task.config, "max_length") and hasattr(model.config, "n_positions"):
        replace_config(task, max_length=min(task.config.max_length, model.config.n_positions))  # the prompt takes N
    train_features = encode_all(task, train_examples)
    valid_features = encode_all(task, valid_examples)
    data = FeatureBatches(train_features, task.collate, batch_size, seed=config.seed)
    eval_data = (lambda: in_order(valid_features, task.collate, eval_batch_size)) if valid_features else None

    def save_extra(directory: Path) -> None:
        if task.tokenizer is not None:
            task.tokenizer.save(directory / "tokenizer.json")
        task.save(directory)

    trainer = Trainer(model, task, data, config, out_dir, eval_data=eval_data, device=device, save_extra=save_extra)
    if on_start is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)  # an --out that cannot be made fails before anything is said
        on_start()
    trainer.fit()
    model = trainer.raw_model.eval()
    with trainer.autocast():  # the precision the run said and `taesan evaluate` uses: the same numbers (fp32 here
        metrics = task.evaluate(model, valid_examples, eval_batch_size) if valid_examples else {}  # differed by bf16's)
    seconds = time.perf_counter() - start
    result = FinetuneResult(model, metrics, seconds, sum(p.numel() for p in model.parameters() if p.requires_grad),
                            len(train_examples), trainer.step, trainer.interrupted)
    atomic_write_text(Path(out_dir) / RESULTS_FILE, json.dumps({**metrics, "train_seconds": seconds}, indent=1) + "\n")
    return result


def prompt_through_lm(task: Task, model: nn.Module, verbalizer: dict[str, str] | None, pattern: str | None,
                      prompt_tokens: int, prompt_init: str | None, seed: int, base: Any) -> SoftPrompt:
    """--mode prompt-lm: the LM read through `verbalizer` (a classifier's labels -> words), behind a soft prompt that is
    all that learns (after [CLS] for a masked LM, first for a GPT)."""
    if not isinstance(task, SequenceClassification) or task.name == "image-classification":
        raise TaesanError(f"--mode prompt-lm reads a label word: it fits classification and pair-classification, "
                          f"not {task.name}")
    check_tokenizer(model, task.tokenizer)
    words = verbalizer if verbalizer is not None else {label: label for label in task.labels}
    lm = verbalized_lm(model, task.tokenizer, task.labels, words, pattern)
    replace_config(task, type_ids=lm.masked and takes_segments(model))
    return add_soft_prompt(lm, prompt_tokens, prompt_init, task.tokenizer, seed=seed, base=base,
                           insert_at=1 if lm.masked else 0)


def load_finetuned(directory: str | Path, device: str = "cpu", tokenizer: Any = None) -> tuple[nn.Module, Task]:
    """A fine-tuned checkpoint -> (model in eval mode, its task with the tokenizer attached: `tokenizer`, else the
    tokenizer.json beside the weights)."""
    directory = Path(directory)
    model = load(directory, map_location=device)
    tok_path = directory / "tokenizer.json"
    if tokenizer is None and tok_path.is_file():
        tokenizer = tokenizers.load(tok_path)
    task = load_task(directory, tokenizer)
    if task is None:
        raise TaesanError(f"{directory}: no {TASK_FILE}: this checkpoint was not fine-tuned for a task (try taesan generate / score)")
    check_finetuned(task, model, tokenizer, directory / TASK_FILE, tok_path if tok_path.is_file() else None)
    return model.eval(), task
