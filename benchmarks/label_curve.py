"""How many labels pretraining is worth, on real Korean data: NSMC fine-tuned through `taesan finetune` on 250 to
20,000 labelled reviews from a pretrained start and from random init (transfer_real.py's inits: same tokenizer,
same settings), beside TF-IDF + logistic regression fitted on the same reviews; every run scored once on the test
split. The lessons' claim is that pretraining pays most where labels are few.

Not a test and not library code. The splits are `benchmarks/tasks_real.py prepare`'s (RUNS/data); the pretrained
starts are transfer_real.py's (RUNS/pre). A size below the whole file is a balanced draw of that many reviews with
text from nsmc_train.tsv (Random(draw); draw d also seeds the run), written to RUNS/curve/data; "all" is the file
itself, the draws only changing the seed. Fine-tuning takes the CLI's defaults (3 epochs of 16, the lr, warmup and
R-Drop it picks for the model) with --max-length 64, one thread; nothing was chosen on the test split.

Usage:
  python benchmarks/label_curve.py run [--sizes 250 500 1000 2000 5000 all] [--draws 0 1 2] [--init A B] [--runs DIR]
  python benchmarks/label_curve.py table [--runs DIR] [--figure benchmarks/figures/label_curve_nsmc.png]
Run two `run`s at a time with different --init at most: each times its own child processes.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine_info import cpu_kind  # noqa: E402
from benchmarks.tasks_real import _labelled, text_baselines  # noqa: E402
from benchmarks.transfer_real import INITS, cell, start_args, timed_run  # noqa: E402

SIZES = ["250", "500", "1000", "2000", "5000", "all"]
STARTS = ["w2v-rev32k-e20-r8", "scratch-morph32k-r8"]  # recipe D's NSMC start and its random init
NAMES = {  # short names for the table and the legend (transfer_real.py's own labels otherwise)
    "w2v-rev32k-e20-r8": "pretrained: word vectors in a fresh bert-tiny",
    "mlm-w2v32k": "pretrained: the masked LM on those vectors",
    "scratch-morph32k-r8": "random init, the same tokenizer",
}
ARGS = ["--max-length", "64"]


def subset(runs: Path, size: str, draw: int) -> Path:
    """The training file of one point: nsmc_train.tsv itself for "all", else a balanced draw written once."""
    train = runs / "data" / "nsmc_train.tsv"
    if size == "all":
        return train
    path = runs / "curve" / "data" / f"nsmc_{size}_d{draw}.tsv"
    if not path.is_file():
        header, *rows = train.read_text(encoding="utf-8").rstrip("\n").split("\n")
        rows = [r for r in rows if r.split("\t")[1].strip()]
        rng, n = random.Random(draw), int(size)
        by_label = {label: [r for r in rows if r.rsplit("\t", 1)[1] == label] for label in ("0", "1")}
        pick = rng.sample(by_label["0"], n // 2) + rng.sample(by_label["1"], n - n // 2)
        rng.shuffle(pick)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *pick]) + "\n", encoding="utf-8")
    return path


def out_dir(runs: Path, init: str, size: str, draw: int) -> Path:
    return runs / "curve" / "ft" / f"{init}-{size}-d{draw}"


def run(sizes: list[str], draws: list[int], inits: list[str], runs: Path) -> None:
    for size in sizes:
        for draw in draws:
            for init in inits:
                model, extra = start_args(init, runs)
                out = out_dir(runs, init, size, draw)
                cmd = ["finetune", "--task", "classification", *model, "--train", str(subset(runs, size, draw)),
                       "--valid", str(runs / "data" / "nsmc_test.tsv"), "--out", str(out), "--seed", str(draw),
                       "--threads", "1", "--no-progress", *ARGS, *extra]
                info = timed_run(cmd, out, runs / "curve" / "logs" / f"{out.name}.log", seed=draw, init=init, size=size)
                if info is None:
                    print(f"{out.name}: done already", flush=True)
                    continue
                res = out / "eval_results.json"
                acc = f"accuracy {100 * json.loads(res.read_text())['accuracy']:.2f}" if res.is_file() else "no eval_results.json"
                print(f"{out.name}: exit {info['exit']}, {info['cpu_s'] / 60:.2f} CPU min, {acc}", flush=True)


def baselines(runs: Path, sizes: list[str], draws: list[int]) -> dict[str, list[float]]:
    """TF-IDF char 1-3 + LR accuracy per size, one per draw (cached in RUNS/curve/baselines.json)."""
    path = runs / "curve" / "baselines.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    test = _labelled(runs / "data" / "nsmc_test.tsv", "document")
    for size in sizes:
        for draw in draws[:1] if size == "all" else draws:  # the whole file gives one baseline
            key = f"{size}-d{draw}"
            if key not in cache:
                cache[key] = text_baselines(*_labelled(subset(runs, size, draw), "document"), *test)
    path.write_text(json.dumps(cache, indent=1) + "\n")
    return {size: [100 * v["tfidf_char13"] for k, v in cache.items() if k.startswith(f"{size}-")] for size in sizes}


def points(runs: Path, init: str, sizes: list[str]) -> dict[str, tuple[list[float], list[float]]]:
    """Per size: the test accuracies and CPU minutes of the runs that finished."""
    found = {}
    for size in sizes:
        accs, cpu = [], []
        for d in sorted((runs / "curve" / "ft").glob(f"{init}-{size}-d*")):
            if (d / "eval_results.json").is_file() and (d / "run.json").is_file():
                accs.append(100 * json.loads((d / "eval_results.json").read_text())["accuracy"])
                cpu.append(json.loads((d / "run.json").read_text())["cpu_s"] / 60)
        if accs:
            found[size] = (accs, cpu)
    return found


def table(runs: Path, sizes: list[str], draws: list[int], inits: list[str], figure: Path | None) -> str:
    """The markdown table (one row per size) and, with `figure`, the plot of accuracy against labels."""
    tfidf = baselines(runs, sizes, draws)
    found = {init: points(runs, init, sizes) for init in inits}
    n_all = len(_labelled(runs / "data" / "nsmc_train.tsv", "document")[0])
    labels = {size: n_all if size == "all" else int(size) for size in sizes}
    head = " | ".join(NAMES.get(init, INITS[init][2]) for init in inits)
    lines = [f"Measured on {cpu_kind()}.", "",
             f"| labelled reviews | {head} | TF-IDF + LR, char 1-3 | CPU-min a run |",
             "|---:|" + "---:|" * len(inits) + "---:|---:|"]
    for size in sizes:
        cells = [cell(found[init][size][0]) if size in found[init] else "not run" for init in inits]
        cpu = [c for init in inits if size in found[init] for c in found[init][size][1]]
        lines.append(f"| {labels[size]:,} | " + " | ".join(cells) + f" | {cell(tfidf[size])} | "
                     + (f"{min(cpu):.2f} – {max(cpu):.2f}" if cpu else "") + " |")
    commands = sorted({json.loads((d / "run.json").read_text())["command"]
                       for d in (runs / "curve" / "ft").glob("*-500-d0") if (d / "run.json").is_file()})
    lines += ["", "Commands (500 labels, draw 0; other points change the --train file, --seed and --out):", "", "```",
              *commands, "```"]
    if figure is not None:
        plot(found, tfidf, labels, inits, figure)
        shown = f"figures/{figure.name}" if figure.parent.name == "figures" else figure  # as RESULTS.md links it
        lines += ["", f"![accuracy against labelled reviews]({shown})"]
    return "\n".join(lines) + "\n"


def plot(found: dict, tfidf: dict, labels: dict, inits: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taesan.figures import save_png

    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = [(NAMES.get(init, INITS[init][2]), found[init], "-o" if INITS[init][0] or "--embeddings" in INITS[init][1] else "-^")
              for init in inits]
    series.append(("TF-IDF + LR, char 1-3 grams", {s: (v, []) for s, v in tfidf.items() if v}, "--s"))
    for name, by_size, style in series:
        sizes = [s for s in labels if s in by_size]
        xs = [labels[s] for s in sizes]
        means = [statistics.mean(by_size[s][0]) for s in sizes]
        low = [m - min(by_size[s][0]) for m, s in zip(means, sizes)]
        high = [max(by_size[s][0]) - m for m, s in zip(means, sizes)]
        ax.errorbar(xs, means, yerr=[low, high], fmt=style, ms=4, capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(labels.values()), [f"{n:,}" for n in labels.values()])
    ax.minorticks_off()
    ax.set_xlabel("labelled reviews (log scale)")
    ax.set_ylabel("NSMC test accuracy (%)")
    ax.set_title("NSMC: accuracy against labels (mean over draws; bars: min to max)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["run", "table"])
    p.add_argument("--sizes", nargs="+", default=SIZES, help="labelled reviews per point, or 'all'")
    p.add_argument("--draws", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--init", nargs="+", default=STARTS, choices=list(INITS))
    p.add_argument("--runs", type=Path, default=Path("/work/scratch/transfer"))
    p.add_argument("--figure", type=Path, default=Path(__file__).resolve().parent / "figures" / "label_curve_nsmc.png")
    args = p.parse_args()
    bad = [s for s in args.sizes if s != "all" and not (s.isdigit() and int(s) >= 2)]
    if bad:
        sys.exit(f"--sizes takes numbers of reviews (at least 2) or 'all', not {bad[0]!r}")
    if args.action == "run":
        run(args.sizes, args.draws, args.init, args.runs)
    else:
        print(table(args.runs, args.sizes, args.draws, args.init, args.figure), end="")


if __name__ == "__main__":
    main()
