"""Where a run stands on disk: its checkpoints, what a killed run left, whether an --out already holds a run, and
where a resume starts (the step, and the schedule settings that differ from the checkpoint's run).

Not the loading: the Trainer restores weights, optimizer, scheduler, data position and RNGs (state.py's files).
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from taesan.atomic import remove_leftovers
from taesan.checkpoint import WEIGHTS_NAME
from taesan.errors import TaesanError
from taesan.train.state import STATE_NAME, trainer_meta

CHECKPOINT_PREFIX = "checkpoint-"
SCHEDULE_FIELDS = ("max_steps", "warmup", "lr", "min_lr_ratio")  # what the learning rate of every step is made of
OPTIMIZER_FIELDS = ("betas", "eps", "weight_decay")  # AdamW's own; a loaded optimizer state would keep the old ones
GRADIENT_FIELDS = ("grad_clip", "accumulation")  # how each step's gradient is made: a change alters the steps after


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in `out_dir` (trainer_state.json is written last), or None."""
    found = [(int(d.name[len(CHECKPOINT_PREFIX):]), d) for d in _checkpoint_dirs(out_dir) if (d / STATE_NAME).is_file()]
    return max(found)[1] if found else None


def _checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """out_dir/checkpoint-<digits>/ directories, complete or not."""
    return [d for d in Path(out_dir).glob(f"{CHECKPOINT_PREFIX}*") if d.is_dir() and d.name[len(CHECKPOINT_PREFIX):].isdigit()]


def remove_interrupted(out_dir: str | Path, keep: Path | None = None) -> list[Path]:
    """What a killed run left in `out_dir`: temp files of writes cut short (.metrics.jsonl.*.tmp, .loss.png.*.tmp,
    checkpoint-N/.model.safetensors.*.tmp: up to the model's size each) and checkpoint directories without their
    trainer_state.json (written last). Removes them (never `keep`, the checkpoint being resumed) -> what went."""
    removed = remove_leftovers(out_dir)
    for d in _checkpoint_dirs(out_dir):
        if (d / STATE_NAME).is_file() or (keep is not None and d.resolve() == keep.resolve()):
            removed += remove_leftovers(d)
        else:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def refuse_existing_run(out_dir: str | Path, resumable: bool = False) -> None:
    """A new run into a directory holding another (a complete checkpoint, or a model) would mix with it: keep-last-K
    prunes by step number, so the old run's checkpoint-0000010 outlives the new run's checkpoint-0000005, and the old
    task.json or training.json sits beside the new weights. One line instead; an empty directory is fine.
    `resumable`: the command has --resume, so a checkpoint found is named as the way to continue."""
    out_dir = Path(out_dir)
    held = latest_checkpoint(out_dir)
    if held is None and (out_dir / WEIGHTS_NAME).is_file():
        held = out_dir / WEIGHTS_NAME
    if held is None:
        return
    way = ("pass --resume to continue it, or choose another --out" if resumable and held.name != WEIGHTS_NAME
           else "choose another --out, or remove it")
    raise TaesanError(f"{out_dir}: already holds a run ({held.name}); {way}")


@dataclass
class ResumePoint:
    """Where a resumed run starts: the checkpoint, its step, and the schedule settings this run changes
    (name -> (the checkpoint's run, this run)): with any, the learning rate is re-fitted from `step` on."""

    checkpoint: Path
    step: int
    changed: dict[str, tuple[Any, Any]]

    def notes(self) -> list[str]:
        """"resumed from OUT/checkpoint-0000060 (step 60)", and a warning line when the schedule is re-fitted,
        AdamW's settings or the gradient's clipping / accumulation change."""
        lines = [f"resumed from {self.checkpoint} (step {self.step})"]
        for fields, what in ((SCHEDULE_FIELDS, "the learning-rate schedule is re-fitted"),
                             (OPTIMIZER_FIELDS, "AdamW's settings change"),
                             (GRADIENT_FIELDS, "the gradient's clipping / accumulation change")):
            changed = {k: v for k, v in self.changed.items() if k in fields}
            if changed:
                was, now = (" ".join(f"--{name.replace('_', '-')} {_shown(pair[i])}" for name, pair in changed.items())
                            for i in (0, 1))
                lines.append(f"warning: {what} from step {self.step} to {now} (the checkpoint's run: {was}); to "
                             f"continue that run exactly, resume with its own command ({was})")
        return lines

    def changes(self, fields: tuple[str, ...]) -> bool:
        return any(k in fields for k in self.changed)


def _shown(value: Any) -> str:
    """1000000 -> "1000000" (not "1e+06"), 0.0005 -> "0.0005", [0.9, 0.98] -> "0.9,0.98": as typed after the flag."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def resume_point(checkpoint: str | Path, config: Any) -> ResumePoint:
    """Check a resume before anything is written: `config` (a TrainConfig) must train past the checkpoint's step.
    Extending a run (a larger max_steps) is legitimate; what it changes is recorded, to be said."""
    checkpoint = Path(checkpoint)
    meta = trainer_meta(checkpoint)
    step = int(meta["step"])
    if config.max_steps <= step:
        raise TaesanError(f"{checkpoint} is at step {step}; --max-steps {config.max_steps} leaves nothing to train "
                          f"(give more than {step} steps to continue it)")
    was, now = meta.get("config") or {}, asdict(config)
    changed = {k: (was[k], now[k]) for k in SCHEDULE_FIELDS + OPTIMIZER_FIELDS + GRADIENT_FIELDS  # betas: a list in JSON, a tuple here
               if k in was and _plain(was[k]) != _plain(now[k])}
    return ResumePoint(checkpoint, step, changed)
