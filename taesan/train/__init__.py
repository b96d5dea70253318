"""Training: one Trainer for pretraining and fine-tuning (trainer.py), its exactly resumable state on disk
(state.py), where a run stands in its --out (resume.py) and the distributed plumbing torchrun needs (distributed.py)."""
from taesan.train.resume import ResumePoint, refuse_existing_run, resume_point
from taesan.train.trainer import (
    CHECKPOINT_PREFIX,
    BatchSource,
    TrainConfig,
    Trainer,
    autocast_dtype,
    build_optimizer,
    latest_checkpoint,
    lr_factor,
    no_decay_names,
    plot_metrics,
)

__all__ = [
    "CHECKPOINT_PREFIX", "BatchSource", "TrainConfig", "Trainer", "autocast_dtype", "build_optimizer",
    "latest_checkpoint", "lr_factor", "no_decay_names", "plot_metrics", "ResumePoint", "refuse_existing_run",
    "resume_point",
]
