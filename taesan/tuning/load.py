"""`taesan.load(dir)`: a taesan checkpoint, a HuggingFace checkpoint directory or a soft prompt on its base -> a model.

Not the tokenizer or the task beside the weights: pipeline/bundle.py gathers those.
"""
from __future__ import annotations

from pathlib import Path

from taesan.checkpoint import read_config, read_training
from taesan.models import load_model
from taesan.tuning.prompt import load_soft_prompt
from taesan.util import pick_device


def load(directory: str | Path, map_location: str = "cpu"):
    """Load a model from a checkpoint directory (config.json + model.safetensors).

    A directory written by HuggingFace transformers (no `taesan_version` in its config) is converted on the
    fly; a prompt-tuned one (model_type soft-prompt) loads its base checkpoint and puts the prompt before it.
    A language model pretrained before configs named their end-of-text gets it from training.json, so
    `taesan.generate` stops there as it does for newer checkpoints.
    """
    map_location = str(pick_device(map_location)) if isinstance(map_location, str) else map_location  # "auto" too
    if read_config(directory).get("model_type") == "soft-prompt":
        return load_soft_prompt(directory, map_location)
    model = load_model(directory, map_location)
    config = model.config
    if hasattr(config, "eos_token_id") and config.eos_token_id is None:
        trained = read_training(directory)
        if trained.get("objective") in ("causal", "backward") and trained.get("separator_id") is not None:
            config.eos_token_id = int(trained["separator_id"])
    return model
