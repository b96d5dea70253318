"""`taesan convert`: a HuggingFace checkpoint directory -> a taesan one, and back, the tokenizer going along.

Not the weight tables (models/<family>_hf.py) and not the registry of families (models/registry.py).
"""
from __future__ import annotations

from pathlib import Path

from taesan.config import write_json
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.load import load


def _tokenizer_beside(directory: Path):
    """The checkpoint's tokenizer (tokenizer.json, vocab.txt or vocab.json + merges.txt), or None (a ViT has none)."""
    if any((directory / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return load_tokenizer(directory)
    return None


def convert(source: str | Path, out: str | Path, direction: str) -> Path:
    """--from-hf writes a taesan checkpoint, --to-hf a HF one."""
    if direction not in ("from-hf", "to-hf"):
        raise TaesanError(f"unknown direction {direction!r}; use from-hf or to-hf")
    model = load(source)
    tokenizer = _tokenizer_beside(Path(source))  # a checkpoint without its tokenizer cannot read text
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
