"""ViT training speed: a 6 × 192 ViT (32 × 32 RGB images, 4 × 4 patches, 10 classes, batch 64) through `taesan
finetune --task image-classification`'s path (its task, the Trainer) against a plain HuggingFace
ViTForImageClassification loop (sdpa, fused AdamW, clip 1.0) with the same weights and images, in one run.

Not a quality benchmark: seeded random images, images/s of optimizer steps. Usage:
python benchmarks/vit_train.py [--threads 1 --clock cpu] [--rounds 4 --steps 3] [--precisions fp32 bf16]
"""
from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks.machine_info

import torch  # noqa: E402

from benchmarks.machine_info import cpu_kind, load  # noqa: E402

SHAPE = dict(image_size=32, patch_size=4, channels=3, d_model=192, n_layers=6, n_heads=3, d_ff=768, num_labels=10)


def sides(args, precision: str, out_dir: str):
    from transformers import ViTForImageClassification

    import taesan
    from taesan.models.registry import to_hf
    from taesan.tasks.batches import FeatureBatches
    from taesan.tasks.image import ImageClassification, ImageConfig
    from taesan.train import TrainConfig, Trainer

    labels = [str(i) for i in range(10)]
    task = ImageClassification(ImageConfig(labels=labels))
    torch.manual_seed(0)
    ours = task.build_model(taesan.create("vit", **SHAPE, labels=labels))
    hf = ViTForImageClassification.from_pretrained(to_hf(ours, Path(out_dir) / "hf"), attn_implementation="sdpa")
    g = torch.Generator().manual_seed(0)
    features = [{"pixel_values": torch.randn(3, 32, 32, generator=g), "labels": int(i % 10)} for i in range(args.images)]
    train = TrainConfig(max_steps=10**6, lr=1e-3, warmup=0, weight_decay=0.05, eval_every=0, save_every=0,
                        progress=False, precision=precision)
    trainer = Trainer(ours, task, FeatureBatches(features, task.collate, args.batch), train, out_dir, device="cpu")
    hf.train()
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    rng, order = random.Random(0), []
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None

    def hf_step() -> None:
        if len(order) < args.batch:
            order.extend(rng.sample(range(len(features)), len(features)))
        batch = task.collate([features[order.pop()] for _ in range(args.batch)])
        with amp if amp is not None else torch.enable_grad():
            logits = hf(pixel_values=batch["pixel_values"]).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    probe = task.collate(features[:8])["pixel_values"]
    with torch.no_grad():
        diff = float((ours.eval()(probe) - hf.eval()(pixel_values=probe).logits).abs().max())
    ours.train(), hf.train()
    return {"HF ViTForImageClassification loop": hf_step, "taesan finetune's path": trainer.train_step}, diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_kind()}; date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, {args.clock} clock, "
          f"ViT 6 x 192, 32 px, patch 4, batch {args.batch}")
    print(f"load average before: {load()}", flush=True)
    for precision in args.precisions:
        with tempfile.TemporaryDirectory() as out_dir:
            steps, diff = sides(args, precision, out_dir)
            for step in steps.values():
                for _ in range(args.warmup):
                    step()
            names = list(steps)
            times: dict[str, list[float]] = {k: [] for k in names}
            for r in range(args.rounds):
                for k in (names if r % 2 == 0 else names[::-1]):
                    t0 = clock()
                    for _ in range(args.steps):
                        steps[k]()
                    times[k].append((clock() - t0) / args.steps)
        print(f"{precision}: the two models' logits differ by at most {diff:.1e} before training")
        for k in names:
            rates = sorted(args.batch / t for t in times[k])
            print(f"  {k:36s} images/s median {statistics.median(rates):7.1f}  range {rates[0]:.1f}-{rates[-1]:.1f}")
        ratio = [h / o for h, o in zip(times[names[0]], times[names[1]])]
        print(f"  taesan / HF: median {statistics.median(ratio):.2f}x, per round {min(ratio):.2f}-{max(ratio):.2f}x", flush=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
