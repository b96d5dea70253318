"""The demo's transfer-learning check: the sentiment classifier fine-tuned twice with the same steps, seed and data,
once from the demo's pretrained BERT / GPT and once from the very weights their pretraining started from (random
init, same shape), with held-out accuracy along the way (a learning curve).

Not a new trainer: both runs go through taesan.tuning.finetune with the classification task, as `taesan finetune`
does. The section says which start won, in numbers, including when pretraining did not help.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

import taesan
from taesan import tokenizers
from taesan.atomic import atomic_write_text
from taesan.demo.config import DemoConfig, StepResult, sentiment_split
from taesan.demo.report import Section, Table
from taesan.figures import save_png
from taesan.tasks.classification import SequenceClassification
from taesan.train import TrainConfig
from taesan.tuning.compare import majority_accuracy
from taesan.tuning.finetune import finetune

STARTS = ("pretrained", "from scratch")
LR = 1e-3  # the demo's full fine-tuning rate (the one-task step's); a minutes-old tiny backbone wants ~1e-3


def scratch_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same class and config, initialised as the demo's pretraining began: seeded with the demo's seed, so
    these are the weights pretraining started from, before it saw a sentence."""
    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config))


def eval_curve(out_dir: Path) -> list[tuple[int, float]]:
    """(step, held-out accuracy) from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["step"], r["eval_accuracy"]) for r in rows if "eval_accuracy" in r]


def one_run(cfg: DemoConfig, directory: Path, start: str, train, held, out_dir: Path) -> dict:
    """Fine-tune the checkpoint in `directory` (or its random-init twin) on the sentiment task."""
    tokenizer = tokenizers.load(directory / "tokenizer.json")
    model = taesan.load(directory)
    if start == "from scratch":
        model = scratch_like(model, cfg.seed)
    torch.manual_seed(cfg.seed)  # the new head's initialisation and dropout: identical in both runs
    config = TrainConfig(max_steps=cfg.transfer_steps, max_minutes=cfg.transfer_minutes, lr=LR,
                         warmup=min(10, cfg.transfer_steps // 2), eval_every=max(1, cfg.transfer_steps // 10),
                         eval_batches=100, save_every=0, keep_last=1, seed=cfg.seed, progress=cfg.progress)
    result = finetune(SequenceClassification(tokenizer=tokenizer), model, train, held, out_dir, config, batch_size=16)
    curve = eval_curve(out_dir)
    return {"accuracy": float(result.metrics["accuracy"]), "macro_f1": result.metrics.get("macro_f1"), "steps": result.steps,
            "seconds": result.seconds, "curve": curve, "curve_mean": sum(a for _, a in curve) / max(len(curve), 1)}


def write_tsv(path: Path, examples) -> Path:
    """The reviews as `taesan finetune --train` reads them (a text and a label column), so the printed commands run."""
    atomic_write_text(path, "text\tlabel\n" + "".join(f"{ex.text}\t{ex.label}\n" for ex in examples))
    return path


def plot_curves(runs: dict[tuple[str, str], dict], floor: float, path: Path) -> Path:
    """Held-out accuracy against fine-tuning step: one colour per model, solid pretrained, dashed from scratch."""
    import matplotlib  # the plotting extra, only when the demo draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = {"BERT": "tab:blue", "GPT": "tab:red"}
    for (name, start), run in runs.items():
        steps, accs = zip(*run["curve"]) if run["curve"] else ((), ())
        ax.plot(steps, accs, "-o" if start == "pretrained" else "--s", color=colours.get(name, "black"), ms=3,
                label=f"{name} {start} (final {run['accuracy']:.3f})")
    ax.axhline(floor, ls=":", c="grey", label=f"majority class {floor:.3f}")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("sentiment: fine-tuned from the pretrained model vs from random init", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def verdict(name: str, pre: dict, scratch: dict) -> str:
    """One plain sentence on who won, by final accuracy and by the mean along the curve (how fast it learned)."""
    gap, gap_curve = pre["accuracy"] - scratch["accuracy"], pre["curve_mean"] - scratch["curve_mean"]
    numbers = (f"{name}: pretrained {pre['accuracy']:.3f}, from scratch {scratch['accuracy']:.3f} after "
               f"{pre['steps']} steps (mean along the curve {pre['curve_mean']:.3f} vs {scratch['curve_mean']:.3f})")
    if gap > 0:
        return f"{numbers}: pretraining wins by {gap:.3f}."
    if gap == 0 and gap_curve > 0:
        return f"{numbers}: the same at the end, but the pretrained run got there sooner."
    return (f"{numbers}: pretraining did not win here. On this small template data a random-init model learns the "
            f"task on its own within these steps; the gap that pretraining buys shows on harder data (issue 17's NSMC runs).")


def transfer_step(cfg: DemoConfig, gpt_dir: Path, bert_dir: Path) -> StepResult:
    """Each model fine-tuned from its pretrained checkpoint and from random init; the table, the curves, the verdict."""
    train, held = sentiment_split(cfg)
    floor = majority_accuracy(train, held)
    out = cfg.out / "transfer"
    train_tsv, valid_tsv = write_tsv(out / "train.tsv", train), write_tsv(out / "valid.tsv", held)
    runs = {}
    for name, directory in (("BERT", bert_dir), ("GPT", gpt_dir)):
        for start in STARTS:
            runs[(name, start)] = one_run(cfg, directory, start, train, held, out / f"{name.lower()}-{start.split()[-1]}")
    figure = plot_curves(runs, floor, cfg.out / "figures" / "transfer.png")
    rows = [[name, start, r["accuracy"], r["macro_f1"], r["curve_mean"], r["steps"], r["seconds"]]
            for (name, start), r in runs.items()]
    verdicts = [verdict(name, runs[(name, "pretrained")], runs[(name, "from scratch")]) for name in ("BERT", "GPT")]
    summary = [f"{name:<4} {start:<12} accuracy {r['accuracy']:.3f}  mean along the curve {r['curve_mean']:.3f}  "
               f"{r['steps']} steps  {r['seconds']:4.1f} s" for (name, start), r in runs.items()]
    section = Section(
        "Pretrained vs from scratch",
        [f"The point of pretraining: the same sentiment classifier fine-tuned twice, with the same {cfg.transfer_steps} "
         f"steps, learning rate {LR:g}, seed and {len(train)} reviews, once from the pretrained BERT / GPT above and once "
         "from the weights their pretraining started from (random init, same shape). Only the starting point differs. "
         f"Held-out accuracy on {len(held)} reviews; the majority class scores {floor:.3f}. “Mean along the curve” "
         "averages the held-out accuracy measured every tenth of the run: higher means it learned sooner.", *verdicts],
        [Table(["model", "start", "accuracy", "macro-F1", "mean along the curve", "steps", "seconds"], rows,
               "held-out sentiment accuracy", ["text", "text", "fraction", "fraction", "fraction", "count", "seconds"])],
        [figure],
        [f"taesan finetune --task classification --model {start} --train {train_tsv} --valid {valid_tsv} "
         f"--max-steps {cfg.transfer_steps} --lr {LR:g} --eval-every {max(1, cfg.transfer_steps // 10)} --out {out / name}"
         for start, name in ((bert_dir, "cli-pretrained"), (f"bert-tiny --tokenizer {bert_dir / 'tokenizer.json'}", "cli-scratch"))],
    )
    return StepResult("transfer", summary, section,
                      data={"runs": {f"{n} {s}": r for (n, s), r in runs.items()}, "majority": floor})
