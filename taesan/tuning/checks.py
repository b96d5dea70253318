"""Warnings after an evaluation, one line each: a model that learned nothing usable (one label for everything, an
accuracy no better than always answering the most common label, empty texts, translations still in the source
language) and a file read the wrong way round (a translation file whose columns are in the other order than the one
the model was trained on).

Not errors: the numbers stand and the run succeeds; these say in words what the numbers hide (accuracy 0.50 on a
balanced set looks like a model until one sees it answers 부정 every time). The diagnostics themselves are the tasks'
(`most_predicted_share`, `majority_share`, `empty_outputs`, `outputs_in_source_script`; taesan.tasks.outputs); the
CLI prints these.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from taesan.tasks.outputs import dominant_script

ONE_LABEL_SHARE = 0.95  # a classifier giving one label to at least this share of the set has not learned the task
EMPTY_SHARE = 0.5  # more than this share of written texts empty: "most inputs"
SOURCE_SCRIPT_SHARE = 0.5  # translations in the source's script for at least this share: it copies, not translates
CHANCE_SPREADS = 2  # accuracy less than this many binomial standard errors above the majority class: not above it


def evaluation_warnings(task: Any, metrics: dict[str, Any]) -> list[str]:
    """The warnings `metrics` (task.evaluate's) call for, one line each ([] for a model that looks sane)."""
    out = []
    n = metrics.get("examples")
    share = metrics.get("most_predicted_share")
    if share is not None and share >= ONE_LABEL_SHARE and len(task.labels) > 1:
        of = f" of the {n:,} examples" if isinstance(n, int) else ""
        out.append(f"warning: the classifier gives one label to {share:.0%}{of} ({len(task.labels)} labels): it has "
                   f"not learned the task (a larger learning rate or more steps; see taesan finetune's defaults line)")
    elif (bar := _clear_of_chance(metrics)) is not None and metrics["accuracy"] < bar:
        out.append(f"warning: accuracy {metrics['accuracy']:.1%} on {n:,} examples is no better than always answering "
                   f"the most common label ({metrics['majority_share']:.1%}; at this size a real gain needs {bar:.1%} "
                   f"or more): the classifier has not learned the task beyond it (fine-tune with more passes, --epochs 10: "
                   f"a small model on KLUE-NLI was still at chance after 3; or more labelled examples)")
    empty = metrics.get("empty_outputs")
    if empty is not None and empty > EMPTY_SHARE:
        checked = metrics.get("outputs_checked")
        of = f" of the {checked} checked" if isinstance(checked, int) else ""
        out.append(f"warning: {empty:.0%}{of} outputs are empty or only whitespace: the model ends (or pads) at once "
                   f"instead of writing (train longer, or check the end-of-text token)")
    copied = metrics.get("outputs_in_source_script")
    config = getattr(task, "config", None)
    if copied is not None and copied >= SOURCE_SCRIPT_SHARE:
        out.append(f"warning: {copied:.0%} of the translations are written in {config.source_script}, the source's "
                   f"script, not in {config.target_script} as the training targets were: the model copies instead of "
                   f"translating")
    return out


def _clear_of_chance(metrics: dict[str, Any]) -> float | None:
    """The accuracy a classifier must reach to be clearly above always answering the majority label: that share plus
    CHANCE_SPREADS standard errors of a binomial share at it over n examples (420 examples at 1/3: 33.3% + 4.6
    points; 4,200: + 1.5). None when the metrics do not say (not a classifier, or one gold label only)."""
    n, majority = metrics.get("examples"), metrics.get("majority_share")
    if not isinstance(n, int) or n < 1 or metrics.get("accuracy") is None or majority is None or majority >= 1:
        return None
    return majority + CHANCE_SPREADS * math.sqrt(majority * (1 - majority) / n)


def column_warnings(task: Any, examples: Sequence[Any], path: str | Path) -> list[str]:
    """A translation file whose source column reads in the script of the training targets (or not in the training
    sources'): the columns are likely swapped against what task.json records. [] when the scripts agree or are
    unknown (a checkpoint from before scripts were recorded). `path` is the file as given (two aligned files as
    "SRC,TGT")."""
    c = getattr(task, "config", None)
    trained_from, trained_to = getattr(c, "source_script", ""), getattr(c, "target_script", "")
    if not examples or not trained_from or not trained_to or trained_from == trained_to:
        return []
    reads_from = dominant_script([ex.source for ex in examples])
    reads_to = dominant_script([ex.target for ex in examples])
    if reads_from == trained_from:
        return []
    aligned = "," in str(path) and not Path(path).exists()  # two files, read in the order given
    if aligned:
        columns = f"the source file reads {reads_from or 'no'} text and the target file {reads_to or 'none'}"
        fix = "give the two files in the other order"
    else:
        columns = (f"column {c.source_column} (source) reads {reads_from or 'no'} text and column {c.target_column} "
                   f"(target) {reads_to or 'none'}")
        fix = f"pass --set source_column={c.target_column} target_column={c.source_column}"
    trained = f"the model was trained from {trained_from} to {trained_to}"
    if reads_from == trained_to and reads_to == trained_from:
        return [f"warning: {path}: {columns}, but {trained}: the {'files' if aligned else 'columns'} look swapped; {fix}"]
    return [f"warning: {path}: {columns}, but {trained}: is this the language pair it learned?"]
