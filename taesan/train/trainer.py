"""One Trainer for pretraining and fine-tuning: AdamW with weight-decay groups, warmup + cosine,
clipping, accumulation, autocast, evaluation, checkpoints with keep-last-K and exact resume.

Not a task: what is learned comes from an `Objective` (taesan.objectives) — prepare / loss / metrics —
and batches from a data source with next_batch() / state_dict() / load_state_dict(). Fine-tuning
plugs in its own task and data through the same three methods; nothing here knows about text.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import shutil
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from taesan.atomic import atomic_write_text
from taesan.checkpoint import (
    WEIGHTS_NAME,
    check_and_load,
    load_state_dict,
    save_state_dict,
    write_config,
)
from taesan.errors import TaesanError
from taesan.figures import save_png
from taesan.modules import products
from taesan.objectives import Objective
from taesan.safetensors_header import format_bytes
from taesan.train import distributed
from taesan.train.resume import (
    CHECKPOINT_PREFIX,
    OPTIMIZER_FIELDS,
    SCHEDULE_FIELDS,
    ResumePoint,
    latest_checkpoint,
    remove_interrupted,
    resume_point,
)
from taesan.train.state import (
    STATE_NAME,
    load_trainer_state,
    restore_rng,
    rng_state,
    save_trainer_state,
)
from taesan.util import describe_precision, pick_device, resolve_precision


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimizer steps; the cosine schedule spans them
    max_minutes: float | None = None  # stop earlier on the clock (the schedule still spans max_steps)
    lr: float = 5e-4
    min_lr_ratio: float = 0.1  # the cosine ends at lr · min_lr_ratio
    warmup: int = 100  # linear warmup steps from 0 to lr
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    accumulation: int = 1  # micro-batches per optimizer step
    eval_every: int = 100  # steps; 0 = only at the end
    eval_batches: int = 20
    save_every: int = 500  # steps; 0 = only at the end
    keep_last: int = 2  # checkpoints kept in the out dir (older ones are deleted)
    log_every: int = 10
    seed: int = 0
    precision: str = "auto"  # auto (bf16 autocast where the device computes bf16 natively, else fp32), fp32, bf16
    progress: bool = True

    def __post_init__(self) -> None:
        """A bad value is a one-line error here, not a traceback from the optimizer or a silent default."""
        rules = [("max_steps", self.max_steps >= 1, ">= 1"), ("lr", self.lr > 0, "> 0"),
                 ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "> 0"),
                 ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"), ("warmup", self.warmup >= 0, ">= 0"),
                 ("weight_decay", self.weight_decay >= 0, ">= 0"), ("grad_clip", self.grad_clip >= 0, ">= 0"),
                 ("accumulation", self.accumulation >= 1, ">= 1"), ("eval_every", self.eval_every >= 0, ">= 0"),
                 ("eval_batches", self.eval_batches >= 1, ">= 1"), ("save_every", self.save_every >= 0, ">= 0")]
        for name, ok, rule in rules:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise TaesanError(f"{name} must be {rule}, got {getattr(self, name)}")


class BatchSource(Protocol):
    """Training batches: an endless, resumable stream (taesan.data.CausalWindows / PackedDocuments)."""

    def next_batch(self) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype: bf16 for "bf16", and under "auto" where the device computes it natively (a CPU with AMX
    or AVX512-BF16, CUDA with bf16; util.resolve_precision); None (fp32, no autocast) otherwise. Weights, optimizer
    state and the loss stay fp32 either way."""
    return torch.bfloat16 if resolve_precision(precision, device.type) == "bf16" else None


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """The multiplier of the peak lr before optimizer step `step` (0-based): linear warmup, then cosine.

    lr_factor(0, warmup=9, total=100, min_ratio=0.1) = 0.1 (1/10: the first step already learns);
    lr_factor(9, …) = 1.0 (the peak, once); lr_factor(100, …) = 0.1.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def no_decay_names(model: nn.Module) -> set[str]:
    """Parameters that get no weight decay: biases, norms (any 1-d parameter) and embedding tables."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {n for n, p in model.named_parameters() if p.ndim < 2 or id(p) in embeddings}


def build_optimizer(model: nn.Module, config: TrainConfig, skip_decay: set[str], fused: bool = False) -> torch.optim.AdamW:
    """AdamW over two groups (decayed weights; biases, norms and embeddings without decay). fused: the one-kernel
    update (CPU and CUDA), the same arithmetic as the per-tensor loop in fewer passes over memory."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if name.removeprefix("module.") in skip_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps, fused=fused or None)


class Trainer:
    """Trains `model` on batches from `data` with `objective`; writes checkpoints and metrics to `out_dir`.

    The seam for fine-tuning: a task is any object with `prepare(batch, generator) -> (inputs, labels)`,
    `run_model(model, inputs, labels)` (the model's logits, or what the objective's loss reads instead),
    `loss(outputs, labels)` and `metrics(outputs, labels)` (see taesan.objectives.Objective); its data any
    object with `next_batch()`, `state_dict()`, `load_state_dict()`.

    `eval_data()` (optional) returns the held-out batches, the same ones at every evaluation.
    `save_extra(directory)` (optional) adds files to each checkpoint (the tokenizer, training.json).
    `resume_from`: a checkpoint directory (see `latest_checkpoint`) to continue exactly from; `self.resumed` says
    where, and which schedule settings differ from its run's (the lr is then re-fitted from its step on).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        data: BatchSource,
        config: TrainConfig,
        out_dir: str | Path,
        eval_data: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None,
        device: torch.device | str = "auto",
        dist: distributed.DistInfo | None = None,
        fsdp: bool = False,
        save_extra: Callable[[Path], None] | None = None,
        resume_from: str | Path | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.config, self.objective, self.data, self.eval_data = config, objective, data, eval_data
        self.out_dir = Path(out_dir)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dist = dist or distributed.DistInfo()
        self.fsdp, self.save_extra = fsdp, save_extra
        self.generator = generator or torch.Generator().manual_seed(config.seed + 1_000_003 * self.dist.rank)
        self.raw_model = model.to(self.device)
        self.step = 0
        self.history: list[float] = []  # the training loss of every optimizer step (rank 0's view is the mean)
        self.data_seconds = 0.0
        self.last_eval: dict[str, float] = {}  # the latest evaluation's scores
        self.interrupted = self._sigint = False  # Ctrl-C seen (see `fit`)
        self.amp_dtype = autocast_dtype(self.device, config.precision)
        self.precision = "bf16" if self.amp_dtype is not None else "fp32"
        self.precision_note = describe_precision(config.precision, self.device.type)  # what a command logs
        self.kernel: str | None = None  # fp32 products on CPU: "onednn" or "default", recorded and kept on resume
        if self.device.type == "cpu" and self.amp_dtype is None and not fsdp:  # fp32 products on the faster kernel
            products.use_fast_products(self.raw_model)
            self.kernel = "onednn" if products.onednn_faster(torch.get_num_threads()) else "default"
        skip = no_decay_names(self.raw_model)
        # checked before anything is touched: a max_steps at or below the checkpoint's step is an error
        self.resumed: ResumePoint | None = resume_point(resume_from, config) if resume_from is not None else None
        if self.dist.is_main and self.out_dir.is_dir():  # a killed run's half-written files and checkpoints
            self.cleaned = remove_interrupted(self.out_dir, keep=Path(resume_from) if resume_from is not None else None)
        if resume_from is not None:
            self._load_weights(Path(resume_from))
        self.model = distributed.wrap(self.raw_model, self.dist, fsdp)
        fused = not fsdp and self.device.type in ("cpu", "cuda")  # sharded (DTensor) parameters keep the plain loop
        self.optimizer = build_optimizer(self.model, config, skip, fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.warmup, config.max_steps, config.min_lr_ratio)
        )
        if resume_from is not None:
            self._load_state(Path(resume_from))
            if self.resumed.changes(SCHEDULE_FIELDS):
                self._refit_schedule()
            if self.resumed.changes(OPTIMIZER_FIELDS):
                self._reset_optimizer_settings()

    # ---- one optimizer step ---------------------------------------------------------------------------
    def autocast(self):
        """The precision the steps and evaluations run in (bf16 autocast, or nothing): a caller scoring the trained
        model afterwards uses it too, so its numbers are the run's."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> tuple[float, int]:
        """Accumulate `accumulation` micro-batches, clip, step. -> (mean loss, tokens read).

        `self.data_seconds` adds up the time spent waiting for batches (loader + prepare), so the
        metrics can show whether the loader ever starves the model.
        """
        self.model.train()
        total, tokens = 0.0, 0
        n = self.config.accumulation
        for i in range(n):
            waited = time.perf_counter()
            batch = self.data.next_batch()
            inputs, labels = self.objective.prepare(batch, self.generator)
            inputs, labels = _to(inputs, self.device), _to(labels, self.device)
            self.data_seconds += time.perf_counter() - waited
            sync = nullcontext() if i == n - 1 or not hasattr(self.model, "no_sync") else self.model.no_sync()
            with sync:
                with self.autocast():
                    outputs = self.objective.run_model(self.model, inputs, labels)
                loss = self.objective.loss(outputs, labels)  # fp32, outside autocast
                (loss / n).backward()
            total += float(loss.detach())
            mask = inputs.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else int(next(iter(inputs.values())).numel())
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total / n, tokens

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss, perplexity and token accuracy over `eval_data()` (masked-token accuracy for the masked LM)."""
        if self.eval_data is None:
            return {}
        self.model.eval()
        sums: dict[str, list[float]] = {}
        gen = torch.Generator().manual_seed(self.config.seed + 7)  # the same masks at every evaluation
        for batch in self.eval_data():
            inputs, labels = self.objective.prepare(batch, gen)
            inputs, labels = _to(inputs, self.device), _to(labels, self.device)
            with self.autocast():
                outputs = self.objective.run_model(self.model, inputs, labels)
            for name, (s, c) in self.objective.metrics(outputs, labels).items():
                acc = sums.setdefault(name, [0.0, 0])
                acc[0] += s
                acc[1] += c
        totals = {k: (s, c) for k, (s, c) in sums.items()}
        summarize = getattr(self.objective, "summarize", None)  # e.g. F1 from summed tp/fp/fn
        scores = summarize(totals) if summarize is not None else {k: s / c for k, (s, c) in totals.items() if c}
        out = {f"eval_{k}": v for k, v in scores.items()}
        if "eval_loss" in out:
            out["eval_perplexity"] = math.exp(min(out["eval_loss"], 50.0))
        return out

    # ---- the loop -------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> list[float]:
        """Train to `config.max_steps` (or `stop_at`, or `max_minutes`); returns the per-step losses of this call.

        The last step always evaluates and saves a checkpoint, so a stopped budget resumes exactly.
        Ctrl-C (SIGINT) finishes the current step, saves a checkpoint, stops and sets `self.interrupted`;
        a second Ctrl-C stops at once.
        """
        from tqdm.auto import tqdm

        cfg, main = self.config, self.dist.is_main
        end = min(cfg.max_steps, stop_at) if stop_at is not None else cfg.max_steps
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._trim_metrics()
        self.interrupted = self._sigint = False
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(total=end, initial=self.step, disable=not (main and cfg.progress), unit="step", dynamic_ncols=True)
        start, losses = time.perf_counter(), []
        window_loss, window_tokens, window_start, window_data = [], 0, time.perf_counter(), self.data_seconds
        try:
            while self.step < end:
                loss, tokens = self.train_step()
                late = main and cfg.max_minutes is not None and (time.perf_counter() - start) / 60 >= cfg.max_minutes
                # one all-reduce: the mean loss, rank 0's clock, and whether any rank was interrupted
                loss_sum, late_votes, interrupt_votes = distributed.sum_over_ranks(
                    [loss, float(late), float(self._sigint)], self.device
                )
                loss = loss_sum / self.dist.world_size
                self.interrupted = interrupt_votes > 0
                stop = late_votes > 0 or self.interrupted or self.step >= end
                losses.append(loss)
                self.history.append(loss)
                window_loss.append(loss)
                window_tokens += tokens * self.dist.world_size
                if self.step % max(cfg.log_every, 1) == 0 or stop:
                    seconds = max(time.perf_counter() - window_start, 1e-9)
                    record = {
                        "step": self.step, "loss": sum(window_loss) / len(window_loss), "lr": self.last_lr,
                        "tokens_per_s": window_tokens / seconds, "data_share": (self.data_seconds - window_data) / seconds,
                        "elapsed_s": time.perf_counter() - start,
                    }
                    self._log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
                    window_loss, window_tokens, window_start, window_data = [], 0, time.perf_counter(), self.data_seconds
                bar.update(1)
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or stop:
                    scores = self.evaluate()
                    if scores:
                        self.last_eval = scores
                        self._log({"step": self.step, **scores})
                if (cfg.save_every and self.step % cfg.save_every == 0) or stop:
                    self.save_checkpoint()
                if stop:
                    break
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return losses

    def _on_sigint(self, signum, frame) -> None:
        if self._sigint:  # the second Ctrl-C: do not wait for the step to end
            raise KeyboardInterrupt
        self._sigint = True

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        line = json.dumps(record) + "\n"
        with self._disk(self.out_dir, len(line.encode()), "metrics.jsonl"):
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                end = f.tell()
                try:
                    f.write(line)
                    f.flush()
                except OSError:
                    f.truncate(end)  # no half line for the next reader
                    raise

    @contextlib.contextmanager
    def _disk(self, directory: Path, needed: int, what: str):
        """A full disk while writing `what` into `directory` -> one line naming the directory, the bytes needed and
        free, and the checkpoint that is still whole (every file is written atomically: nothing older is touched)."""
        try:
            yield
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            free = shutil.disk_usage(next(d for d in (directory, *directory.parents) if d.exists())).free
            last = latest_checkpoint(self.out_dir)
            kept = f"the last checkpoint, {last.name}, is intact" if last is not None else "no checkpoint was written yet"
            raise TaesanError(f"{directory}: no space left on the device ({what}: about {format_bytes(needed)} "
                              f"needed, {format_bytes(free)} free); {kept}") from None

    def _trim_metrics(self) -> None:
        """On resume, drop metric lines the interrupted run wrote after the checkpoint it resumes from."""
        path = self.out_dir / "metrics.jsonl"
        if not path.is_file():
            return
        keep = [line for line, record in _records(path) if record["step"] <= self.step]
        with self._disk(self.out_dir, sum(len(line.encode()) + 1 for line in keep), "metrics.jsonl"):
            atomic_write_text(path, "".join(line + "\n" for line in keep))

    # ---- checkpoints ----------------------------------------------------------------------------------
    def save_model(self, directory: Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """config.json + model.safetensors (+ save_extra's files): a directory `taesan.load` reads (rank 0 only).
        `state`: a gathered full state dict (FSDP); None saves the model as it is."""
        if not self.dist.is_main:
            return
        raw = self.raw_model
        if state is None:
            raw.save(directory)
        else:
            tied = getattr(raw, "tied_keys", ())
            save_state_dict({k: v for k, v in state.items() if k not in tied}, directory / WEIGHTS_NAME)
            write_config(directory, raw.config_dict())
        if self.save_extra is not None:
            self.save_extra(directory)

    def save_checkpoint(self) -> Path:
        """out_dir/checkpoint-<step>/ (model + trainer state), the latest model in out_dir itself, loss.png;
        checkpoints beyond keep_last are removed. Every rank calls it (gathering is collective); rank 0 writes.
        A full disk is one TaesanError line; the half-written checkpoint is removed, the previous one stays whole."""
        directory = self.out_dir / f"{CHECKPOINT_PREFIX}{self.step:07d}"
        state = distributed.full_model_state(self.model) if self.fsdp else None
        optim_state = distributed.full_optimizer_state(self.model, self.optimizer)
        if self.dist.is_main:
            model_bytes = sum(t.numel() * t.element_size() for t in (state or self.raw_model.state_dict()).values())
            optim_bytes = sum(t.numel() * t.element_size() for t in _tensors(optim_state))
            try:
                with self._disk(directory, 2 * model_bytes + optim_bytes, "the checkpoint and the latest model"):
                    self.save_model(directory, state)
                    save_trainer_state(directory, {
                        "step": self.step, "config": asdict(self.config), "data": self.data.state_dict(),
                        "scheduler": self.scheduler.state_dict(), "world_size": self.dist.world_size,
                        "fp32_products": self.kernel,
                    }, optim_state, rng_state(self.generator))
                with self._disk(self.out_dir, model_bytes, "the latest model"):
                    self.save_model(self.out_dir, state)
            except TaesanError:
                if not (directory / STATE_NAME).is_file():
                    shutil.rmtree(directory, ignore_errors=True)
                raise
            self._prune()
            with self._disk(self.out_dir, 100_000, "loss.png"):
                plot_metrics(self.out_dir / "metrics.jsonl", self.out_dir / "loss.png")
        distributed.barrier()
        return directory

    def _prune(self) -> None:
        if self.config.keep_last <= 0:
            return
        steps = sorted(d for d in self.out_dir.glob(f"{CHECKPOINT_PREFIX}*") if d.is_dir())
        for d in steps[: -self.config.keep_last]:
            shutil.rmtree(d, ignore_errors=True)

    def _load_weights(self, directory: Path) -> None:
        raw = self.raw_model
        path = directory / WEIGHTS_NAME
        check_and_load(raw, load_state_dict(path), str(path), ignore=getattr(raw, "tied_keys", ()))

    def _load_state(self, directory: Path) -> None:
        meta, optim_state, rng = load_trainer_state(directory)
        recorded = meta.get("fp32_products")  # a checkpoint from before it was recorded: the probe decides
        if self.kernel is not None and recorded in ("onednn", "default") and recorded != self.kernel:
            # a new probe chose the other kernel (a busy machine, or a margin case): multiply as the run began
            self.kernel = "onednn" if products.pin_onednn(recorded == "onednn") else "default"
            products.use_fast_products(self.raw_model)
        distributed.load_optimizer_state(self.model, self.optimizer, optim_state)
        self.scheduler.load_state_dict(meta["scheduler"])
        self.data.load_state_dict(meta["data"])
        self.step = int(meta["step"])
        restore_rng(rng, self.generator)

    def _reset_optimizer_settings(self) -> None:
        """Resumed with other AdamW settings: the loaded state carries the checkpoint's betas, eps and weight decay
        (a new --weight-decay was ignored); from here on they are this config's (decay only where it decayed)."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["betas"], group["eps"] = tuple(cfg.betas), cfg.eps
        self.optimizer.param_groups[0]["weight_decay"] = cfg.weight_decay  # build_optimizer: the decayed group first

    def _refit_schedule(self) -> None:
        """Resumed with other schedule settings (ResumePoint.changed): the optimizer and scheduler states carry the
        checkpoint's peak lr and its lr for the next step; from here on both are this config's."""
        cfg = self.config
        self.scheduler.base_lrs = [cfg.lr for _ in self.optimizer.param_groups]
        factor = lr_factor(self.step, cfg.warmup, cfg.max_steps, cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = cfg.lr, cfg.lr * factor


def _tensors(x: Any):
    """Every tensor in nested dicts / lists (an optimizer's state)."""
    if torch.is_tensor(x):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


def _to(x: Any, device: torch.device) -> Any:
    """A tensor, or a dict of tensors (model inputs, multi-part labels), moved to `device`."""
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x.to(device) if torch.is_tensor(x) else x


def _records(jsonl: Path) -> list[tuple[str, dict[str, Any]]]:
    """metrics.jsonl's (line, record) pairs; a line cut short by a kill (or not a record) is skipped."""
    out = []
    for line in jsonl.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            out.append((line, record))
    return out


def plot_metrics(jsonl: Path, png: Path) -> None:
    """The loss curve (training loss per logged step, held-out loss where evaluated) as a PNG."""
    if not jsonl.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [record for _, record in _records(jsonl)]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    valid = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if valid:
        ax.plot(*zip(*valid), "o-", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()

    save_png(fig, png)
