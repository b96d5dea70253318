"""Inference speed: a BERT classifier (the real MiniLM with a classification head) scoring NSMC reviews through
`taesan evaluate`'s path (the task encodes, batches longest first as large as fit, runs under inference_mode at the
precision `auto` picks, or --precision, and puts the results back in order) against HuggingFace
BertForSequenceClassification at batch 32 (sdpa, inference_mode, fast tokenizer, each batch padded to its longest;
fp32, and also under bf16 autocast where taesan runs bf16), in one run; then the `taesan evaluate` command itself,
timed as a process.

Not a quality benchmark (the head is untrained; both score the same examples, and the share of equal predicted
labels is printed). Usage: python benchmarks/inference_speed.py [--threads 1 --clock cpu] [--examples 2000]
[--rounds 3] [--precision auto|fp32|bf16]
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout: benchmarks.machine_info

import torch  # noqa: E402

from benchmarks.finetune_speed import minilm_dir  # noqa: E402
from benchmarks.machine_info import cpu_kind, load  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "sentiment" / "nsmc_raw_test.tsv"


def checkpoint(out: Path, data: Path, max_length: int) -> Path:
    """A fine-tuned-shaped checkpoint: MiniLM + a (seeded, untrained) classification head, task.json, tokenizer."""
    import taesan
    from taesan import tokenizers
    from taesan.tasks.classification import ClassificationConfig, SequenceClassification

    tok = tokenizers.load(minilm_dir())
    task = SequenceClassification(ClassificationConfig(max_length=max_length), tok)
    task.fit_labels(task.read(data))
    torch.manual_seed(0)
    model = task.build_model(taesan.load(minilm_dir()))
    model.save(out, tokenizer=tok)
    task.save(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--hf-batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="taesan's, as the commands take it")
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import transformers
    from transformers import AutoTokenizer, BertForSequenceClassification

    from taesan.pipeline.bundle import Bundle
    from taesan.pipeline.precision import use_precision

    transformers.logging.set_verbosity_error()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_kind()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, {args.clock} clock")
    print(f"load average before: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "nsmc.tsv"
        data.write_text("".join(DATA.read_text(encoding="utf-8").splitlines(keepends=True)[: args.examples + 1]), encoding="utf-8")
        ckpt = checkpoint(Path(tmp) / "cls", data, args.max_length)
        bundle = Bundle.load(ckpt)
        model, task = bundle.model, bundle.task
        precision = use_precision(model, args.precision)
        examples = task.read(data)
        texts = [ex.text for ex in examples]
        hf = BertForSequenceClassification.from_pretrained(ckpt_to_hf(model, Path(tmp) / "hf"), attn_implementation="sdpa").eval()
        tok = AutoTokenizer.from_pretrained(minilm_dir())

        def ours():
            with precision.context():
                return [p["label"] for p in task.predict(model, texts, task.default_batch_size)]

        def theirs(amp: bool = False):
            labels = []
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                for i in range(0, len(texts), args.hf_batch):
                    batch = tok(texts[i:i + args.hf_batch], padding=True, truncation=True, max_length=args.max_length,
                                return_tensors="pt")
                    labels += hf(**batch).logits.argmax(-1).tolist()
            return [task.labels[i] for i in labels]

        a, b = ours(), theirs(precision.chosen == "bf16")  # in bf16 an untrained head's near ties may round apart
        same = "all" if a == b else f"{sum(x == y for x, y in zip(a, b)) / len(a):.1%}"
        times = {"HF BertForSequenceClassification, batch 32": [], "taesan evaluate/predict's path": []}
        fns = dict(zip(times, (theirs, ours)))
        if precision.chosen == "bf16":  # HF at the same precision too (its default is fp32)
            times["HF, batch 32, bf16 autocast"] = []
            fns["HF, batch 32, bf16 autocast"] = lambda: theirs(True)
        for r in range(args.rounds):
            for k in (list(times) if r % 2 == 0 else list(times)[::-1]):
                t0 = clock()
                fns[k]()
                times[k].append(clock() - t0)
        print(f"{precision.note}; {len(texts)} NSMC test reviews, max length {args.max_length}; same predicted labels: {same}")
        names = list(times)
        for k in names:
            rates = sorted(len(texts) / t for t in times[k])
            print(f"  {k:44s} examples/s median {statistics.median(rates):7.1f}  range {rates[0]:.1f}-{rates[-1]:.1f}")
        for theirs_name in [names[0]] + names[2:]:
            ratio = [h / o for h, o in zip(times[theirs_name], times[names[1]])]
            print(f"  taesan / {theirs_name}: median {statistics.median(ratio):.2f}x, per round "
                  f"{min(ratio):.2f}-{max(ratio):.2f}x", flush=True)

        cmd = [sys.executable, "-m", "taesan", "evaluate", "--model", str(ckpt), "--data", str(data), "--threads",
               str(args.threads), "--precision", args.precision, "--no-progress"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"`taesan evaluate` as a process (start-up, imports, loading, {len(texts)} examples, metrics): "
              f"{wall:.1f} s wall, {cpu:.1f} s CPU, exit {done.returncode}; stderr: {done.stderr.strip().splitlines()[-1:]}")
    print(f"load average after: {load()}")


def ckpt_to_hf(model, out: Path) -> Path:
    """The same classifier as a HF checkpoint directory (taesan's export)."""
    from taesan.models.registry import to_hf

    return to_hf(model, out)


if __name__ == "__main__":
    main()
