"""`taesan convert`: a HuggingFace checkpoint directory -> a taesan one, and back, the tokenizer going along.

Not the weight tables (models/<family>_hf.py) and not the registry of families (models/registry.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taesan.config import write_json
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.tasks import load_task
from taesan.pipeline.bundle import tokenizer_beside
from taesan.tokenizers import WordPieceTokenizer
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.load import load


def convert(source: str | Path, out: str | Path, direction: str) -> Path:
    """--from-hf writes a taesan checkpoint, --to-hf a HF one (`export_notes` says what HF will not do alike)."""
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
        write_json(directory / "tokenizer_config.json", tokenizer_config(tokenizer))
    return directory


def tokenizer_config(tokenizer) -> dict[str, Any]:
    """The tokenizer_config.json AutoTokenizer needs to read the exported tokenizer.json as taesan cuts: the class
    (else it goes by the model's family: a RoBERTa checkpoint with KLUE's WordPiece would get a byte-level BPE), the
    casing of a WordPiece (else BERT's default lowercases and strips accents: 한 -> ㅎㅏㄴ), and the special tokens."""
    wordpiece = isinstance(tokenizer, WordPieceTokenizer)  # a pipeline tokenizer's normalizer has no BERT flags
    out: dict[str, Any] = {"tokenizer_class": "BertTokenizer" if wordpiece else "PreTrainedTokenizerFast"}
    if wordpiece:
        norm = tokenizer.normalizer
        out.update(do_lower_case=bool(norm.lowercase), strip_accents=bool(norm.strip_accents))
    named = {"unk": tokenizer.unk_id, "pad": tokenizer.pad_id, "cls": tokenizer.cls_id, "sep": tokenizer.sep_id,
             "mask": tokenizer.mask_id, "eos": tokenizer.eos_id}
    out.update({f"{name}_token": tokenizer.id_to_token(i) for name, i in named.items() if i is not None})
    return out


def export_notes(source: str | Path) -> list[str]:
    """What an exported checkpoint's HF users get differently from `taesan predict`, one line each: a QA reader
    fine-tuned with the lexical priors (tuning.defaults, a small reader's default) has them in its task.json, which
    HF's question-answering pipeline does not read, so it decodes the reader alone. The weights and logits are the
    same; only the choice of span can differ."""
    task = load_task(source)
    if task is None or task.name != "qa":
        return []
    priors = {name: getattr(task.config, name) for name in ("sentence_prior", "echo_penalty")}
    used = {name: value for name, value in priors.items() if value}
    if not used:
        return []
    shown = ", ".join(f"{name} {value:g}" for name, value in used.items())
    return [f"note: taesan decodes this reader's answers with {shown} (its task.json); HF's question-answering "
            f"pipeline reads the exported weights without them, so its spans can differ from taesan predict's "
            f"(fine-tune with --set {'=0 '.join(used)}=0 for a reader that answers alike in both)"]
