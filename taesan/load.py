"""`taesan.load(dir)`: a taesan checkpoint or a HuggingFace checkpoint directory -> a taesan model."""
from __future__ import annotations

from pathlib import Path

from taesan.checkpoint import CONFIG_NAME, WEIGHTS_NAME, check_and_load, load_state_dict, read_config
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models import model_class


def load(directory: str | Path, map_location: str = "cpu"):
    """Load a model from a checkpoint directory (config.json + model.safetensors).

    A directory written by HuggingFace transformers (no `taesan_version` in its config) is converted
    on the fly through `taesan.interop`.
    """
    directory = Path(directory)
    data = read_config(directory)
    if "taesan_version" not in data:
        from taesan.interop import from_hf

        model = from_hf(directory)
        model.checkpoint_dir = str(directory.resolve())  # where it came from: a soft prompt names its base
        return model
    if data.get("model_type") == "soft-prompt":  # a prompt-tuned model: a small file on its base checkpoint
        from taesan.tuning.prompt import load_soft_prompt

        return load_soft_prompt(directory, map_location)
    source = str(directory / CONFIG_NAME)
    if "model_type" not in data:
        raise TaesanError(f"{source}: field 'model_type' is missing")
    cls = model_class(data["model_type"], source)
    config = config_from_dict(cls.config_class, data, source)
    model = cls(config)
    state = load_state_dict(directory / WEIGHTS_NAME)
    check_and_load(model, state, str(directory / WEIGHTS_NAME), ignore=model.tied_keys)  # per instance: an untied head is required
    model.checkpoint_dir = str(directory.resolve())
    return model.to(map_location).eval()


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
