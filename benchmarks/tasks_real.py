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


def _tsv_split(src: Path, out: Path, name: str, n_test: int) -> None:
    """Header kept on both sides; rows shuffled with SEED; the first n_test rows are the test set."""
    header, *rows = src.read_text(encoding="utf-8").rstrip("\n").split("\n")
    random.Random(SEED).shuffle(rows)
    test, train = rows[:n_test], rows[n_test:]
    _write(out / f"{name}_train.tsv", "\n".join([header, *train]) + "\n")
    _write(out / f"{name}_test.tsv", "\n".join([header, *test]) + "\n")


def prepare(out: Path) -> None:
    # NSMC-style: the given train (20k) and test (5k) files, unchanged
    for name in ("train", "test"):
        _write(out / f"nsmc_{name}.tsv", (DATA / "sentiment" / f"nsmc_raw_{name}.tsv").read_text(encoding="utf-8"))
    _tsv_split(DATA / "nli" / "kornli_xnli.dev.ko.tsv", out, "kornli", n_test=490)
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

    # Tatoeba: by English sentence (one English sentence may have several Korean translations)
    rows = (DATA / "translation" / "tatoeba_kor-eng.shared.tsv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    english = sorted({r.split("\t")[0] for r in rows})
    random.Random(SEED).shuffle(english)
    test_en = set(english[:500])
    _write(out / "tatoeba_test.tsv", "\n".join(r for r in rows if r.split("\t")[0] in test_en) + "\n")
    _write(out / "tatoeba_train.tsv", "\n".join(r for r in rows if r.split("\t")[0] not in test_en) + "\n")

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


def baselines(data: Path, out: Path) -> dict:
    """Majority class and TF-IDF (char 1-3 grams, and words) + logistic regression on the text classification sets."""
    from collections import Counter

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    results = {}
    for name, col in (("nsmc", "document"), ("sst2", "sentence"), ("kornli", "sentence1")):
        xtr, ytr = _labelled(data / f"{name}_train.tsv", col)
        xte, yte = _labelled(data / f"{name}_test.tsv", col)
        if name == "kornli":  # the pair as one text: premise [SEP] hypothesis
            xtr = [" | ".join(r) for r in zip(xtr, _labelled(data / f"{name}_train.tsv", "sentence2")[0])]
            xte = [" | ".join(r) for r in zip(xte, _labelled(data / f"{name}_test.tsv", "sentence2")[0])]
        majority = Counter(ytr).most_common(1)[0][0]
        res = {"train": len(xtr), "test": len(xte), "majority": accuracy_score(yte, [majority] * len(yte))}
        for kind, vec in (("tfidf_char13", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True)),
                          ("tfidf_word12", TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True))):
            t0 = time.perf_counter()
            clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(xtr), ytr)
            res[kind] = accuracy_score(yte, clf.predict(vec.transform(xte)))
            res[kind + "_s"] = time.perf_counter() - t0
        results[name] = res
        print(name, json.dumps(res), flush=True)
    _write(out / "baselines.json", json.dumps(results, indent=1) + "\n")
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["prepare", "baselines"])
    p.add_argument("--runs", type=Path, default=Path("/work/runs"))
    args = p.parse_args()
    data = args.runs / "data"
    if args.action == "prepare":
        prepare(data)
    elif args.action == "baselines":
        baselines(data, args.runs / "tasks")


if __name__ == "__main__":
    main()
