"""The demo's transfer-learning check: the sentiment classifier fine-tuned with the same steps, seeds and data,
once from the demo's pretrained BERT / GPT and once from the very weights their pretraining started from (random
init, same shape), with few labelled reviews and with all of them, and held-out accuracy along the way. BERT has a
third start, the oldest transfer: random init with token embeddings from word2vec trained on the same corpus, cut
into the same pieces (`taesan finetune --embeddings`).

Not a new trainer: every run goes through taesan.tuning.finetune with the classification task and the settings
`taesan finetune` would choose (tuning.task_defaults: a BERT reads the mean, not its never-trained [CLS]; R-Drop
for a small classifier). The section says which start won, in numbers, including
where pretraining did not help.
"""
from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

import torch

import taesan
from taesan import tokenizers
from taesan.atomic import atomic_write_text
from taesan.data.embedded import BAD, GOOD
from taesan.demo.config import DemoConfig, StepResult, sentiment_split
from taesan.demo.report import Section, Table
from taesan.figures import save_png
from taesan.models.registry import PRESETS
from taesan.models.word2vec import Word2Vec, Word2VecConfig
from taesan.models.word2vec_train import train_word2vec
from taesan.tasks.classification import SequenceClassification
from taesan.tokenizers.corpus import iter_texts
from taesan.train import TrainConfig
from taesan.tuning.compare import majority_accuracy
from taesan.tuning.embeddings import piece_words, start_embeddings, token_tables
from taesan.tuning.finetune import finetune
from taesan.tuning.task_defaults import apply_task_defaults

STARTS = ("pretrained", "from scratch")
WORD2VEC = "word2vec embeddings"  # BERT's third start
PRESET_DIM = PRESETS["bert-tiny"][1]["d_model"]  # the printed commands fine-tune the bert-tiny preset
LR = 1e-3  # the demo's full fine-tuning rate (the one-task step's); a minutes-old tiny backbone wants ~1e-3


def scratch_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same class and config, initialised as the demo's pretraining began: seeded with the demo's seed, so
    these are the weights pretraining started from, before it saw a sentence."""
    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config))


def labelled(train: Sequence[Any], n: int) -> list[Any]:
    """The first n // 2 training reviews of each label (0: all of them), in their shuffled order."""
    if n <= 0:
        return list(train)
    taken: dict[str, int] = {}
    out = []
    for ex in train:
        if taken.get(ex.label, 0) < n // 2:
            taken[ex.label] = taken.get(ex.label, 0) + 1
            out.append(ex)
    return out


def eval_curve(out_dir: Path) -> list[tuple[int, float]]:
    """(step, held-out accuracy) from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["step"], r["eval_accuracy"]) for r in rows if "eval_accuracy" in r]


def piece_vectors(cfg: DemoConfig, directory: Path, corpus: Path, dim: int) -> Word2Vec:
    """Skip-gram vectors over the corpus cut into the checkpoint's own tokenizer pieces, `dim` (its d_model)
    dimensions: what `taesan word2vec train --tokenizer` writes."""
    config = Word2VecConfig(dim=dim, window=10, min_count=1, epochs=5, seed=cfg.seed)
    tokenize = piece_words(tokenizers.load(directory / "tokenizer.json"))
    return train_word2vec(iter_texts([corpus]), config, tokenize=tokenize)[0]


def twins_line(vectors: Word2Vec) -> str:
    """Why word vectors can start a sentiment model badly: words that fill the same slot get near vectors, and the
    demo's templates give every positive phrase a negative twin in the same slot (정말 재미있었다 / 정말 지루했다)."""
    pair = ("재미있었다", "지루했다")
    cosine = f" at cosine {vectors.similarity(*pair):.2f}" if all(w in vectors for w in pair) else ""
    return ("Why it lost here: word2vec knows a word by its neighbours, and in these templates every positive phrase "
            "has a negative twin in the same slot (이 영화 정말 재미있었다 / 이 영화 정말 지루했다), so it puts "
            f"{pair[0]} and {pair[1]} side by side{cosine}: the classifier must first pull such twins apart. Real "
            "reviews pair their words less tightly, and there the vectors helped.")


def masked_lm_twins(bert_dir: Path, seed: int) -> str | None:
    """Why the masked LM can start a sentiment model badly on these templates, measured: its token embeddings
    put the twins 재미있었다 / 지루했다 (one slot, opposite sentiment) close, against random init's; None where the
    tokenizer cuts either word into pieces."""
    tokenizer = tokenizers.load(bert_dir / "tokenizer.json")
    ids = [tokenizer.token_to_id(w) for w in ("재미있었다", "지루했다", "감동적이었다")]
    if any(i is None for i in ids):
        return None
    pretrained = taesan.load(bert_dir)

    def cosines(model: torch.nn.Module) -> tuple[float, float]:
        table = token_tables(model)[0].weight.detach()
        twin, same = (torch.nn.functional.cosine_similarity(table[ids[0]], table[j], dim=0) for j in ids[1:])
        return float(twin), float(same)

    (twin, same), (twin0, _) = cosines(pretrained), cosines(scratch_like(pretrained, seed))
    compared = (f"closer than 재미있었다 and 감동적이었다, which share the sentiment ({same:.2f})" if twin > same
                else f"against {same:.2f} for 재미있었다 and 감동적이었다, which share the sentiment")
    return ("Why pretraining lost with few labels here: the masked LM also learns a word from its neighbours, and "
            f"after pretraining BERT's token embeddings put 재미있었다 and 지루했다 at cosine {twin:.2f} (random init: "
            f"{twin0:.2f}), {compared}; fine-tuning must first pull such twins apart. On real reviews (NSMC), whose "
            "words pair less tightly, minutes of masked-LM pretraining did not beat random init either; the recipe "
            "that did changed the tokenizer and started from word vectors of a larger vocabulary "
            "(benchmarks/RESULTS.md, issue 17).")


def phrase_coverage(labelled_reviews: Sequence[Any], held: Sequence[Any]) -> tuple[int, list[Any]]:
    """(how many of the templates' sentiment phrases the labelled reviews show, the held-out reviews that hold a
    phrase they never show): those a classifier can place only through what pretraining taught."""
    shown = {p for p in GOOD + BAD if any(p in ex.text for ex in labelled_reviews)}
    return len(shown), [ex for ex in held if any(p in ex.text for p in GOOD + BAD if p not in shown)]


def unshown_scores(results: dict[tuple[str, int, str], dict], size: int) -> str:
    """Accuracy on the held-out reviews whose phrase the `size` labelled reviews never show, per start:
    "BERT pretrained 0.96 against 0.41 from scratch, GPT ..., word2vec start 1.00"."""
    pairs = [f"{name} pretrained {results[(name, size, 'pretrained')]['unshown']:.2f} against "
             f"{results[(name, size, 'from scratch')]['unshown']:.2f} from scratch" for name in ("BERT", "GPT")]
    return ", ".join(pairs) + f", BERT's word2vec start {results[('BERT', size, WORD2VEC)]['unshown']:.2f}"


def one_run(cfg: DemoConfig, directory: Path, start: str, train, held, out_dir: Path, seed: int,
            vectors: Word2Vec | None = None, unshown: Sequence[Any] = ()) -> dict:
    """Fine-tune the checkpoint in `directory` (or its random-init twin, with `vectors` in its token embeddings for
    the word2vec start) on the sentiment task with `seed`; its accuracy on all of `held` and on the `unshown` part
    (held-out reviews with a phrase no training review shows)."""
    tokenizer = tokenizers.load(directory / "tokenizer.json")
    model = taesan.load(directory)
    if start != "pretrained":
        model = scratch_like(model, cfg.seed)
    if start == WORD2VEC:
        start_embeddings(model, tokenizer, vectors)
    torch.manual_seed(seed)  # the new head's initialisation and dropout: the same for both starts
    config = TrainConfig(max_steps=cfg.transfer_steps, max_minutes=cfg.transfer_minutes, lr=LR,
                         warmup=min(10, cfg.transfer_steps // 2), eval_every=max(1, cfg.transfer_steps // 10),
                         eval_batches=100, save_every=0, keep_last=1, seed=seed, progress=cfg.progress)
    task = SequenceClassification(tokenizer=tokenizer)
    # pooling and R-Drop as the printed commands get them: the pretrained start is the checkpoint on disk, the
    # others are weights made here, as a fresh preset is
    apply_task_defaults(task, model, "classification", str(directory) if start == "pretrained" else None)
    result = finetune(task, model, train, held, out_dir, config, batch_size=16)
    curve = eval_curve(out_dir)
    return {"accuracy": float(result.metrics["accuracy"]), "steps": result.steps, "seconds": result.seconds,
            "unshown": float(task.evaluate(result.model, unshown)["accuracy"]) if unshown else None,
            "curve": curve, "curve_mean": sum(a for _, a in curve) / max(len(curve), 1)}


def summarize(runs: list[dict]) -> dict:
    """Mean and spread (sample standard deviation; None for one run) over seeds, and the mean curve."""
    accs, means = [r["accuracy"] for r in runs], [r["curve_mean"] for r in runs]
    length = min(len(r["curve"]) for r in runs)
    curve = [(runs[0]["curve"][i][0], statistics.fmean(r["curve"][i][1] for r in runs)) for i in range(length)]
    unshown = [r["unshown"] for r in runs if r["unshown"] is not None]
    return {"accuracy": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else None,
            "unshown": statistics.fmean(unshown) if unshown else None,
            "curve_mean": statistics.fmean(means), "steps": min(r["steps"] for r in runs),
            "seconds": sum(r["seconds"] for r in runs), "curve": curve, "per_seed": accs}


def write_tsv(path: Path, examples) -> Path:
    """The reviews as `taesan finetune --train` reads them (a text and a label column), so the printed commands run."""
    atomic_write_text(path, "text\tlabel\n" + "".join(f"{ex.text}\t{ex.label}\n" for ex in examples))
    return path


def plot_curves(results: dict[tuple[str, int, str], dict], budgets: list[int], floor: float, path: Path) -> Path:
    """Held-out accuracy against fine-tuning step, one panel per label budget: one colour per model, solid
    pretrained, dashed from scratch (mean over seeds)."""
    import matplotlib  # the plotting extra, only when the demo draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 3.8), sharey=True, squeeze=False)
    colours = {"BERT": "tab:blue", "GPT": "tab:red"}
    styles = {"pretrained": "-o", "from scratch": "--s", WORD2VEC: ":^"}
    for ax, n in zip(axes[0], budgets):
        for (name, labels, start), r in results.items():
            if labels != n or not r["curve"]:
                continue
            steps, accs = zip(*r["curve"])
            ax.plot(steps, accs, styles[start], color=colours.get(name, "black"), ms=3,
                    label=f"{name} {start} (final {r['accuracy']:.3f})")
        ax.axhline(floor, ls=":", c="grey", label=f"majority class {floor:.3f}")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fine-tuning step")
        ax.set_title(f"{n} labelled reviews", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("held-out accuracy")
    fig.suptitle("sentiment fine-tuned from the pretrained model vs from random init (mean over seeds)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def verdict(name: str, n: int, pre: dict, scratch: dict, start: str = "pretrained") -> str:
    """One plain sentence on who won with `n` labels, by final accuracy and by the mean along the curve."""
    gap = pre["accuracy"] - scratch["accuracy"]
    spread = max(pre["std"] or 0.0, scratch["std"] or 0.0)
    numbers = (f"{name}, {n} labelled reviews: {start} {pre['accuracy']:.3f}, from scratch {scratch['accuracy']:.3f} "
               f"(mean along the curve {pre['curve_mean']:.3f} vs {scratch['curve_mean']:.3f})")
    if gap > 0:
        within = f", within the seeds' spread of {spread:.3f}" if gap <= spread else ""
        return f"{numbers}: pretraining wins by {gap:.3f}{within}."
    sooner = pre["curve_mean"] > scratch["curve_mean"]
    if gap == 0:
        return f"{numbers}: the same at the end" + (", but the pretrained run got there sooner." if sooner else ".")
    return (f"{numbers}: pretraining did not win on final accuracy (by {-gap:.3f})"
            + (", though it learned sooner." if sooner else ", nor along the way."))


def transfer_step(cfg: DemoConfig, gpt_dir: Path, bert_dir: Path) -> StepResult:
    """Each model fine-tuned from its pretrained checkpoint and from random init, per label budget and seed."""
    train, held = sentiment_split(cfg)
    floor = majority_accuracy(train, held)
    out = cfg.out / "transfer"
    budgets = [len(labelled(train, n)) for n in cfg.transfer_labels]
    seeds = [cfg.seed + k for k in range(cfg.transfer_seeds)]
    corpus = cfg.out / "corpus.txt"
    d_model = taesan.load(bert_dir).config.d_model
    vectors = piece_vectors(cfg, bert_dir, corpus, d_model)
    coverage = {size: phrase_coverage(labelled(train, n), held) for n, size in zip(cfg.transfer_labels, budgets)}
    results = {}
    for name, directory in (("BERT", bert_dir), ("GPT", gpt_dir)):
        for n, size in zip(cfg.transfer_labels, budgets):
            few = labelled(train, n)
            for start in STARTS + ((WORD2VEC,) if name == "BERT" else ()):
                runs = [one_run(cfg, directory, start, few, held, out / f"{name.lower()}-{size}-{start.split()[-1]}-seed{s}",
                                s, vectors, coverage[size][1]) for s in seeds]
                results[(name, size, start)] = summarize(runs)
    figure = plot_curves(results, budgets, floor, cfg.out / "figures" / "transfer.png")
    rows = [[name, size, start, (r["accuracy"], r["std"]) if r["std"] is not None else r["accuracy"], r["curve_mean"],
             r["steps"], r["seconds"]] for (name, size, start), r in results.items()]
    verdicts = [verdict(name, size, results[(name, size, "pretrained")], results[(name, size, "from scratch")])
                for name in ("BERT", "GPT") for size in budgets]
    by_vectors = [verdict("BERT", size, results[("BERT", size, WORD2VEC)], results[("BERT", size, "from scratch")], WORD2VEC)
                  for size in budgets]
    vectors_lost = all(results[("BERT", size, WORD2VEC)]["accuracy"] < results[("BERT", size, "from scratch")]["accuracy"]
                       for size in budgets)
    few = budgets[0]
    bert_lost = results[("BERT", few, "pretrained")]["accuracy"] < results[("BERT", few, "from scratch")]["accuracy"]
    twins = [line for line in (twins_line(vectors) if vectors_lost else None,
                               masked_lm_twins(bert_dir, cfg.seed) if bert_lost else None) if line]
    few_shown, unshown = coverage[few]
    scores = unshown_scores(results, few) if unshown else ""
    pairs = [(results[(name, size, "pretrained")], results[(name, size, "from scratch")]) for name in ("BERT", "GPT")
             for size in budgets]
    wins = sum(pre["accuracy"] > scratch["accuracy"] for pre, scratch in pairs)
    sooner = sum(pre["curve_mean"] > scratch["curve_mean"] for pre, scratch in pairs)
    summary = [f"{name:<4} {size:>4} labels  {start:<12} accuracy {r['accuracy']:.3f}"
               + (f" ± {r['std']:.3f}" if r["std"] is not None else "") + f"  mean along the curve {r['curve_mean']:.3f}"
               for (name, size, start), r in results.items()]
    level = sum(pre["accuracy"] == scratch["accuracy"] for pre, scratch in pairs)
    summary.append(f"pretraining won {wins} of {len(pairs)} on final accuracy" + (f" ({level} level)" if level else "")
                   + f", {sooner} of {len(pairs)} on the mean along the curve")
    if unshown:
        summary.append(f"{few} labels show {few_shown} of {len(GOOD + BAD)} sentiment phrases; on the {len(unshown)} held-out "
                       f"reviews with another: {scores}")
    train_tsv, valid_tsv = write_tsv(out / "train.tsv", train), write_tsv(out / "valid.tsv", held)
    seeds_shown = f"seeds {seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    section = Section(
        "Pretrained vs from scratch",
        [f"The point of pretraining: the same sentiment classifier fine-tuned from the pretrained BERT / GPT above and "
         "from the weights their pretraining started from (random init, same shape), with the same "
         f"{cfg.transfer_steps} steps, learning rate {LR:g}, data and fine-tuning {seeds_shown}; only the starting point "
         f"differs. Once with few labelled reviews ({budgets[0]}, half per label), once with all {len(train)}. "
         f"Accuracy on {len(held)} held-out reviews (mean ± spread over seeds; the majority class scores {floor:.3f}); "
         "“mean along the curve” averages the accuracy measured every tenth of the run: higher means it learned sooner.",
         *verdicts,
         f"Pretraining won {wins} of {len(verdicts)} comparisons here on final accuracy"
         + (f" ({level} level)" if level else "") + f" and {sooner} of {len(verdicts)} on the mean along the curve. "
         "What it can teach: the corpus' reviews put one to three phrases of one sentiment together (이 영화 연출이 "
         "뛰어나다 꼭 보세요), as real reviews repeat theirs, so unlabelled text says which phrases go together. "
         f"The {few} labelled reviews show {few_shown} of the {len(GOOD + BAD)} phrases, and {len(unshown)} of the "
         f"{len(held)} held-out reviews hold one they never show, which a model can place only through what "
         f"pretraining taught{'; on those, ' + scores if scores else ''}. All {len(train)} labelled reviews show "
         f"{coverage[budgets[-1]][0]}; with them random init reaches "
         f"{results[('BERT', budgets[-1], 'from scratch')]['accuracy']:.3f} (BERT) and "
         f"{results[('GPT', budgets[-1], 'from scratch')]['accuracy']:.3f} (GPT) on its own, and the mean along the "
         "curve says which start got there sooner.",
         f"A third start for BERT, the oldest transfer: its random init with the token embeddings taken from word2vec "
         f"(skip-gram, {d_model} dimensions) trained on the same corpus cut into BERT's own pieces, everything above "
         "them still random. On real Korean reviews (NSMC) it beat both random init and the masked LM "
         "(benchmarks/RESULTS.md); here:", *by_vectors, *twins],
        [Table(["model", "labelled reviews", "start", "accuracy", "mean along the curve", "steps", "seconds (all seeds)"],
               rows, "held-out sentiment accuracy", ["text", "count", "text", "fraction", "fraction", "count", "seconds"])],
        [figure],
        [f"taesan word2vec train --corpus {corpus} --tokenizer {bert_dir / 'tokenizer.json'} --dim {PRESET_DIM} --window 10 "
         f"--min-count 1 --out {out / 'word2vec'}"]
        + [f"taesan finetune --task classification --model {start} --train {train_tsv} --valid {valid_tsv} "
           f"--max-steps {cfg.transfer_steps} --lr {LR:g} --eval-every {max(1, cfg.transfer_steps // 10)} --out {out / name}"
           for start, name in ((bert_dir, "cli-pretrained"), (f"bert-tiny --tokenizer {bert_dir / 'tokenizer.json'}", "cli-scratch"),
                               (f"bert-tiny --tokenizer {bert_dir / 'tokenizer.json'} --embeddings {out / 'word2vec'}", "cli-word2vec"))],
    )
    return StepResult("transfer", summary, section,
                      data={"results": {f"{n} {size} {s}": r for (n, size, s), r in results.items()}, "majority": floor})
