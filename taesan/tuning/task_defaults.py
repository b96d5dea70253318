"""The task settings a fine-tuning run gets when nobody names them: which sentence vector a BERT-shaped classifier
reads (pooling.py), R-Drop for a small classifier and the lexical priors of a small QA reader (defaults.py), each
chosen from what the model is and where it comes from, each said in one line.

Why one place: `taesan finetune`, `taesan compare-modes` and the demo fine-tune the same way, so a row in one reads
like a run of another. Before, compare-modes and the demo's pretrained-vs-scratch step classified from a masked
LM's never-trained [CLS] without R-Drop, while `taesan finetune` read the mean with R-Drop 3 (issue 17's recipe).
Not the run's learning rate, warmup and batch (defaults.finetune_defaults): those depend on the run's length.
"""
from __future__ import annotations

from typing import Collection

from torch import nn

from taesan.tasks.base import Task, replace_config
from taesan.tuning.defaults import CLASSIFICATION_TASKS, classification_rdrop, has_dropout, qa_lexical_priors
from taesan.tuning.pooling import default_pooling, mark_untrained_cls, pooling_line, untrained_cls


def apply_task_defaults(task: Task, model: nn.Module, task_name: str, directory: str | None, mode: str = "full",
                        given: Collection[str] = ()) -> list[str]:
    """Set on `task` (and, for NER / QA, the model's config) what `given` (the --set fields) leaves open -> one note
    per choice, e.g. "defaults: pooling mean -- a fresh preset: ...". `directory`: the checkpoint the model was
    loaded from (None: a fresh preset, or weights made in this process)."""
    notes = []
    choice = default_pooling(model, task_name, directory) if mode != "prompt-lm" else None
    if choice is not None and "pooling" not in given:
        replace_config(task, pooling=choice[0])
        notes.append(pooling_line(*choice, given=False))
    elif choice is None and mode != "prompt-lm":
        mark_untrained_cls(model, task_name, directory)

    parameters = sum(p.numel() for p in model.parameters())
    if task_name == "qa":
        minutes_old = untrained_cls(model, directory) is not None  # a preset, or taesan's own
        priors, why = qa_lexical_priors(parameters, minutes_old)
        chosen = {name: value for name, value in priors.items() if name not in given}
        if chosen:
            replace_config(task, **chosen)
            notes.append(f"defaults: {', '.join(f'{k} {v:g}' for k, v in chosen.items())} -- {why}; "
                         f"--set {'=N '.join(chosen)}=N overrides (0: the reader alone)")

    if task_name in CLASSIFICATION_TASKS and "rdrop" not in given:
        rdrop, why = classification_rdrop(parameters, has_dropout(model), mode)
        if rdrop:
            replace_config(task, rdrop=rdrop)
            notes.append(f"defaults: rdrop {rdrop:g} -- {why}; --set rdrop=0 turns it off")
    return notes
