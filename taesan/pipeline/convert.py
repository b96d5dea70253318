"""`taesan convert`: a HuggingFace checkpoint directory -> a taesan one, and back, the tokenizer going along.

Not the weight tables (models/<family>_hf.py) and not the registry of families (models/registry.py).
"""
from __future__ import annotations

from pathlib import Path

from taesan.config import write_json
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.pipeline.bundle import tokenizer_beside
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.load import load


def convert(source: str | Path, out: str | Path, direction: str) -> Path:
    """--from-hf writes a taesan checkpoint, --to-hf a HF one."""
    if direction not in ("from-hf", "to-hf"):
        raise TaesanError(f"unknown direction {direction!r}; use from-hf or to-hf")
    model = load(source)
    beside = tokenizer_beside(Path(source))
    tokenizer = load_tokenizer(beside) if beside is not None else None  # a ViT has none
    if direction == "from-hf":
        return model.save(out, tokenizer=tokenizer)
    directory = to_hf(model, out)
    if tokenizer is not None:  # taesan's tokenizer.json is HF's format: PreTrainedTokenizerFast reads it
        tokenizer.save(directory / "tokenizer.json")
        norm = getattr(tokenizer, "normalizer", None)
        if norm is not None:  # else AutoTokenizer's BERT default lowercases and strips accents (한 -> ㅎㅏㄴ)
            write_json(directory / "tokenizer_config.json",
                       {"do_lower_case": bool(norm.lowercase), "strip_accents": bool(norm.strip_accents)})
    return directory
