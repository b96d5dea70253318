"""Three ways to adapt one pretrained model to one task, side by side: full fine-tuning (every weight),
prompt tuning (a soft prompt + a new head, or a soft prompt alone read through the LM head with the verbalizer's
words) and in-context learning (k demonstrations, nothing trained).

Not a new method: it runs taesan.tuning.finetune (modes full / prompt / prompt-lm) and taesan.tuning.in_context on
the same train / eval examples and writes what each cost and scored: a table (markdown + JSON) and a chart.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from taesan import tokenizers
from taesan.atomic import atomic_write_text
from taesan.checkpoint import separator_id
from taesan.errors import TaesanError
from taesan.figures import save_png
from taesan.tasks.classification import SequenceClassification, order_labels
from taesan.train import TrainConfig
from taesan.tuning.defaults import finetune_defaults
from taesan.tuning.finetune import finetune
from taesan.tuning.in_context import (
    PromptFormat,
    beats,
    check_causal_lm,
    fewshot,
    parse_verbalizer,
)
from taesan.tuning.load import load
from taesan.tuning.task_defaults import apply_task_defaults

TABLE_MD, TABLE_JSON, CHART = "comparison.md", "comparison.json", "comparison.png"


@dataclass
class CompareConfig:
    shots: list[int] = field(default_factory=lambda: [0, 1, 4])
    seeds: int = 3  # in-context: demonstration draws per k
    prompt_tokens: int = 20
    max_steps: int = 200  # per training mode
    max_minutes: float | None = None  # per training mode: stop earlier on the clock (the demo's time budget)
    # None: what `taesan finetune` picks for the model and mode (tuning.defaults.finetune_defaults: by its size)
    batch_size: int | None = None
    lr_full: float | None = None
    lr_prompt: float | None = None
    lr_prompt_lm: float | None = None
    warmup: int | None = None  # None: 6% of max_steps
    verbalizer: dict[str, str] | None = None  # label -> word for in-context learning and prompt-lm (None: the label names)
    pattern: str | None = None  # prompt-lm's text after the input (None: the family's, see tuning.verbalizer)
    fmt: PromptFormat = field(default_factory=PromptFormat)
    balanced: bool = True
    calibrate: bool = False
    device: str = "auto"
    seed: int = 0
    progress: bool = False


@dataclass
class ModeResult:
    """One row of the table."""

    mode: str  # "full fine-tuning", "prompt tuning (20 tokens)", "4-shot in-context"
    model: str  # "GPT" or "BERT"
    accuracy: float
    accuracy_std: float | None  # across in-context seeds
    trainable_parameters: int
    labelled_examples: int  # training examples the mode learned from (in-context: demonstrations per prompt)
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""  # why the mode could not run on this model (its accuracy is then NaN): shown, not drawn


MODE_NAMES = {"full": "full fine-tuning", "prompt": "prompt tuning ({n} tokens)",
              "prompt-lm": "prompt tuning via the LM head ({n} tokens)"}


def load_with_tokenizer(directory: str | Path):
    """(model, tokenizer) from a checkpoint directory that holds tokenizer.json."""
    directory = Path(directory)
    tok_path = directory / "tokenizer.json"
    if not tok_path.is_file():
        raise TaesanError(f"{tok_path}: no tokenizer beside the model")
    return load(directory), tokenizers.load(tok_path)


def train_mode(directory: str | Path, name: str, mode: str, train: Sequence[Any], eval_examples: Sequence[Any],
               out_dir: Path, config: CompareConfig) -> ModeResult:
    """Fine-tune (mode "full", "prompt" or "prompt-lm") a fresh copy of the checkpoint in `directory` on the
    classification task."""
    import torch

    model, tokenizer = load_with_tokenizer(directory)
    task = SequenceClassification(tokenizer=tokenizer)
    notes = apply_task_defaults(task, model, "classification", str(directory), mode)  # as `taesan finetune` sets them
    defaults = finetune_defaults(sum(p.numel() for p in model.parameters()), mode)
    given = {"full": config.lr_full, "prompt": config.lr_prompt, "prompt-lm": config.lr_prompt_lm}[mode]
    lr = given if given is not None else defaults.lr
    warmup = config.warmup if config.warmup is not None else defaults.warmup(config.max_steps)
    batch_size = config.batch_size or defaults.batch_size
    torch.manual_seed(config.seed)  # the new head's initialisation and dropout: the same run every time
    train_config = TrainConfig(max_steps=config.max_steps, max_minutes=config.max_minutes, lr=lr,
                               warmup=min(warmup, config.max_steps // 2),
                               eval_every=0, save_every=0, keep_last=1, seed=config.seed, progress=config.progress)
    if out_dir.is_dir():  # this comparison's own run directory from an earlier run: its checkpoints would mix in
        shutil.rmtree(out_dir)
    result = finetune(task, model, train, eval_examples, out_dir, train_config, batch_size=batch_size,
                      device=config.device, mode=mode, prompt_tokens=config.prompt_tokens,
                      verbalizer=config.verbalizer if mode == "prompt-lm" else None, pattern=config.pattern)
    extra = {"macro_f1": result.metrics.get("macro_f1"), "out": str(out_dir), "lr": lr, "batch_size": batch_size,
             "rdrop": task.config.rdrop, "pooling": task.config.pooling, "defaults": notes}
    if mode == "prompt-lm":
        extra["words"] = list(result.model.inner.config.words)
    return ModeResult(MODE_NAMES[mode].format(n=config.prompt_tokens), name,
                      float(result.metrics.get("accuracy", float("nan"))), None, result.trainable_parameters,
                      len(train), result.seconds, extra)


def in_context_modes(directory: str | Path, train: Sequence[Any], eval_examples: Sequence[Any], config: CompareConfig) -> list[ModeResult]:
    """0/1/few-shot rows: the frozen GPT with k demonstrations, mean (and spread) over `config.seeds` draws."""
    model, tokenizer = load_with_tokenizer(directory)
    check_causal_lm(model, str(directory))
    labels = order_labels({ex.label for ex in train})
    words = config.verbalizer or parse_verbalizer(None, labels)
    start = separator_id(directory, tokenizer.eos_id)
    rows = []
    for k in config.shots:
        began = time.perf_counter()
        r = fewshot(model, tokenizer, eval_examples, train, words, k, list(range(config.seeds)), fmt=config.fmt,
                    balanced=config.balanced, calibrate=config.calibrate, start_id=start, batch_size=config.batch_size or 16,
                    progress=config.progress)
        acc = r["accuracy"]
        extra = {"accuracy_norm": r["accuracy_norm"]["mean"], "demonstrations": r["demonstrations"], "per_seed": acc["per_seed"],
                 "guessing": r["guessing"]["mean"], "model_parameters": sum(p.numel() for p in model.parameters())}
        if "accuracy_calibrated" in r:
            extra["accuracy_calibrated"] = r["accuracy_calibrated"]["mean"]
            extra["guessing_calibrated"] = r["guessing_calibrated"]["mean"]
        rows.append(ModeResult(f"{k}-shot in-context", "GPT", acc["mean"], acc["std"], 0, k, time.perf_counter() - began, extra))
    return rows


def majority_accuracy(train: Sequence[Any], eval_examples: Sequence[Any]) -> float:
    """The floor every mode should beat: always answer the training set's most frequent label."""
    top = Counter(ex.label for ex in train).most_common(1)[0][0]
    return sum(ex.label == top for ex in eval_examples) / max(len(eval_examples), 1)


def compare_modes(gpt_dir: str | Path, train: Sequence[Any], eval_examples: Sequence[Any], out_dir: str | Path,
                  config: CompareConfig | None = None, bert_dir: str | Path | None = None) -> list[ModeResult]:
    """Every mode on the same data -> the rows; writes comparison.md / .json / .png into `out_dir`."""
    config = config or CompareConfig()
    if not train or not eval_examples:
        raise TaesanError("compare-modes needs training and evaluation examples")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot  # noqa: F401  (imported before the clocks start: the first mode's time would carry it)
    rows = []
    for name, directory in (("GPT", gpt_dir), ("BERT", bert_dir)):
        if directory is None:
            continue
        for mode in ("full", "prompt", "prompt-lm"):
            try:
                rows.append(train_mode(directory, name, mode, train, eval_examples, out_dir / f"{name.lower()}-{mode}", config))
            except TaesanError as e:
                if mode != "prompt-lm":
                    raise
                # a BERT without its masked-LM head, a word the tokenizer cannot spell: said in the table, not fatal
                rows.append(ModeResult(MODE_NAMES[mode].format(n=config.prompt_tokens), name, float("nan"), None, 0,
                                       0, 0.0, skipped=str(e)))
    rows += in_context_modes(gpt_dir, train, eval_examples, config)
    baseline = majority_accuracy(train, eval_examples)
    write_table(rows, out_dir, baseline, len(eval_examples), config)
    plot_comparison([r for r in rows if not r.skipped], out_dir / CHART, baseline)
    return rows


def markdown_table(rows: Sequence[ModeResult], baseline: float | None = None) -> str:
    """| mode | model | accuracy | trainable parameters | labelled examples | wall time (s) | notes |"""
    lines = ["| mode | model | accuracy | trainable parameters | labelled examples | wall time (s) | notes |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.mode} | {r.model} | - | - | - | - | not run: {r.skipped} |")
            continue
        acc = f"{r.accuracy:.3f}" + (f" ± {r.accuracy_std:.3f}" if r.accuracy_std is not None else "")
        shown = f"{r.labelled_examples} per prompt" if "in-context" in r.mode else f"{r.labelled_examples:,}"
        lines.append(f"| {r.mode} | {r.model} | {acc} | {r.trainable_parameters:,} | {shown} | {r.seconds:.1f} | {row_notes(r)} |")
    if baseline is not None:
        lines.append(f"| majority class | - | {baseline:.3f} | 0 | - | - | always the most frequent training label |")
    return "\n".join(lines) + "\n"


def in_context_verdict(rows: Sequence[ModeResult], baseline: float, n_eval: int) -> str:
    """One plain paragraph on the in-context rows: above the majority class and above guessing at the same label
    rates (calibrated too) by more than chance on `n_eval` examples, or not. "" without in-context rows.

    A few-million-parameter GPT is expected to stay at the majority class: in-context learning emerges with scale
    (Brown et al. 2020: it grows with model size up to GPT-3's 175B). Calibration (Zhao et al. 2021) spreads a
    one-label LM's answers over the labels; its accuracy is read against guessing at those rates, never against
    the majority class alone (on a set whose majority is under half, any even split beats that).
    """
    shots = [r for r in rows if "in-context" in r.mode and not r.skipped]
    if not shots:
        return ""
    size = max(r.extra.get("model_parameters", 0) for r in shots)
    size_shown = f"{size / 1e6:.1f}M" if size >= 10**6 else f"{size:,}"
    best = max(shots, key=lambda r: r.accuracy - max(baseline, r.extra.get("guessing", 0.0)))
    guess = best.extra.get("guessing", 0.0)
    blind = f"the majority class {baseline:.3f}; guessing at the rates it gives each label {guess:.3f}"
    if beats(best.accuracy, max(baseline, guess), n_eval):
        text = (f"In-context learning: {best.mode} scores {best.accuracy:.3f}, above answering without reading the "
                f"text ({blind}) by more than chance on {n_eval} examples.")
    else:
        scores = ", ".join(f"{r.accuracy:.3f}" for r in shots)
        text = (f"In-context learning ({', '.join(r.mode.split()[0] for r in shots)}): {scores}, no better within "
                f"chance on {n_eval} examples than answering without reading the text ({blind}). Expected: a "
                f"{size_shown}-parameter GPT does not learn from demonstrations; in-context learning emerges in far "
                f"larger models (GPT-3, 175B parameters).")
    calibrated = [r for r in shots if r.extra.get("accuracy_calibrated") is not None]
    if calibrated:
        top = max(calibrated, key=lambda r: r.extra["accuracy_calibrated"] - r.extra["guessing_calibrated"])
        acc, guess = top.extra["accuracy_calibrated"], top.extra["guessing_calibrated"]
        verdict = "above it by more than chance" if beats(acc, guess, n_eval) else "no better within chance"
        text += (f" Calibrated ({top.mode}): {acc:.3f}, against {guess:.3f} for guessing at the same label rates: "
                 f"{verdict}.")
    return text


def row_notes(r: ModeResult) -> str:
    """Macro-F1 for the trained modes (it exposes a one-label classifier), the other scorings for in-context."""
    e = r.extra
    if "accuracy_norm" in e:
        parts = [f"length-normalised {e['accuracy_norm']:.3f}"]
        if e.get("guessing") is not None:
            parts.append(f"guessing at its label rates {e['guessing']:.3f}")
        if e.get("accuracy_calibrated") is not None:
            parts.append(f"calibrated {e['accuracy_calibrated']:.3f} (guessing at its label rates "
                         f"{e['guessing_calibrated']:.3f})")
        if e.get("demonstrations", 0) + 1e-9 < r.labelled_examples:
            parts.append(f"{e['demonstrations']:.1f} demonstrations fit")
        return ", ".join(parts)
    parts = [f"macro-F1 {e['macro_f1']:.3f}"] if e.get("macro_f1") is not None else []
    if e.get("words"):
        parts.append(f"words {' / '.join(e['words'])}")
    if e.get("lr") is not None:  # what the run trained with (chosen as taesan finetune chooses, unless given)
        parts.append(f"lr {e['lr']:g}, batch {e['batch_size']}" + (f", pooling {e['pooling']}" if e.get("pooling") else "")
                     + (f", R-Drop {e['rdrop']:g}" if e.get("rdrop") else ""))
    return ", ".join(parts)


def write_table(rows: Sequence[ModeResult], out_dir: Path, baseline: float, n_eval: int, config: CompareConfig) -> None:
    settings = {k: v for k, v in asdict(config).items() if k != "fmt"}
    settings["format"] = asdict(config.fmt)
    verdict = in_context_verdict(rows, baseline, n_eval)
    atomic_write_text(out_dir / TABLE_MD, markdown_table(rows, baseline) + (f"\n{verdict}\n" if verdict else ""))
    data = {"rows": [asdict(r) for r in rows], "majority_accuracy": baseline, "eval_examples": n_eval,
            "in_context": verdict, "settings": settings}
    atomic_write_text(out_dir / TABLE_JSON, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def plot_comparison(rows: Sequence[ModeResult], path: Path, baseline: float | None = None) -> Path:
    """Three panels, one bar per mode: accuracy (± spread over seeds, majority class dashed), trainable
    parameters (log scale) and wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r.mode}\n({r.model})" for r in rows]
    colours = ["tab:blue" if "full" in r.mode else "tab:purple" if "LM head" in r.mode else "tab:orange" if "prompt" in r.mode
               else "tab:green" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.6 * len(rows) + 2.2), sharey=True)
    y = list(range(len(rows)))
    axes[0].barh(y, [r.accuracy for r in rows], xerr=[r.accuracy_std or 0.0 for r in rows], color=colours)
    if baseline is not None:
        axes[0].axvline(baseline, ls="--", c="grey", label=f"majority class {baseline:.2f}")
        axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel("accuracy")
    axes[1].barh(y, [r.trainable_parameters or float("nan") for r in rows], color=colours)  # none: no bar at 10^0
    axes[1].set_xscale("log")
    axes[1].set_xlabel("trainable parameters (log; in-context: none)")
    axes[2].barh(y, [r.seconds for r in rows], color=colours)
    axes[2].set_xlabel("wall time (s)")
    for r, i in zip(rows, y):
        inside = r.accuracy > 0.85  # the label inside the bar's end, not over the panel's edge
        axes[0].text(r.accuracy - 0.02 if inside else r.accuracy + 0.02, i, f"{r.accuracy:.2f}", va="center", fontsize=8,
                     ha="right" if inside else "left", color="white" if inside else "black")
        axes[1].text(r.trainable_parameters or axes[1].get_xlim()[0], i, f" {r.trainable_parameters:,}"
                     if r.trainable_parameters else " 0: nothing trained (no bar on a log axis)", va="center", fontsize=8)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("one task, three ways to adapt: fine-tuning, prompt tuning, in-context learning", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
