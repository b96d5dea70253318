"""Training: one Trainer for pretraining and fine-tuning (trainer.py), its exactly resumable state on disk
(state.py) and the distributed plumbing torchrun needs (distributed.py)."""
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
    "latest_checkpoint", "lr_factor", "no_decay_names", "plot_metrics",
]
