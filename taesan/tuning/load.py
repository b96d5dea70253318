"""`taesan.load(dir)`: a taesan checkpoint, a HuggingFace checkpoint directory or a soft prompt on its base -> a model.

Not the tokenizer or the task beside the weights: pipeline/bundle.py gathers those.
"""
from __future__ import annotations

from pathlib import Path

from taesan.checkpoint import read_config
from taesan.errors import TaesanError
from taesan.models import load_model
from taesan.tuning.prompt import load_soft_prompt


def load(directory: str | Path, map_location: str = "cpu"):
    """Load a model from a checkpoint directory (config.json + model.safetensors).

    A directory written by HuggingFace transformers (no `taesan_version` in its config) is converted on the
    fly; a prompt-tuned one (model_type soft-prompt) loads its base checkpoint and puts the prompt before it.
    """
    if read_config(directory).get("model_type") == "soft-prompt":
        return load_soft_prompt(directory, map_location)
    return load_model(directory, map_location)


def check_vocabulary(model, tokenizer, tokenizer_path: str | Path) -> None:
    """One error when the tokenizer has ids the model has no embedding for (the wrong tokenizer for this model).

    Not a full match test: a tokenizer smaller than the model's (padded) vocabulary is allowed, as elsewhere.
    """
    config = getattr(model, "config", None)
    sizes = [getattr(config, f, None) for f in ("vocab_size", "src_vocab_size", "tgt_vocab_size")]
    sizes = [s for s in sizes if isinstance(s, int)]
    if sizes and tokenizer.vocab_size > min(sizes):
        raise TaesanError(
            f"{tokenizer_path}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary has "
            f"{min(sizes)}: not this model's tokenizer"
        )
