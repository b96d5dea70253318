"""`taesan convert`: a HuggingFace checkpoint directory -> a taesan one, and back, the tokenizer going along.

Not the weight tables (models/<family>_hf.py) and not the registry of families (models/registry.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taesan.checkpoint import CONFIG_NAME
from taesan.config import read_json, write_json
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.tasks import load_task
from taesan.tasks.fits import positions
from taesan.tasks.heads import takes_segments
from taesan.pipeline.bundle import read_tokenizer
from taesan.tokenizers import WordPieceTokenizer
from taesan.tokenizers.hf_json import template_to_hf
from taesan.tuning.load import load


def convert(source: str | Path, out: str | Path, direction: str) -> Path:
    """--from-hf writes a taesan checkpoint, --to-hf a HF one (`export_notes` says what HF will not do alike)."""
    if direction not in ("from-hf", "to-hf"):
        raise TaesanError(f"unknown direction {direction!r}; use from-hf or to-hf")
    model = load(source)
    tokenizer = read_tokenizer(Path(source))[0]  # None: a ViT has none
    if direction == "from-hf":
        return model.save(out, tokenizer=tokenizer)
    directory = to_hf(model, out)
    if tokenizer is not None:  # taesan's tokenizer.json is HF's format: PreTrainedTokenizerFast reads it
        write_json(directory / "tokenizer.json", tokenizer_json(tokenizer, load_task(source)))
        write_json(directory / "tokenizer_config.json", tokenizer_config(tokenizer, model))
        keep_special_ids(directory / CONFIG_NAME, tokenizer)
    return directory


def tokenizer_json(tokenizer, task) -> dict[str, Any]:
    """The tokenizer.json to export. A translation (or seq2seq generation) task's encoder read each source as its
    ids + end-of-text (the task's source_ids); HF's tokenizer adds only what the post-processor says, so it gets
    `$A </s>` in place of the tokenizer's own (none for KoBART and a T5 spiece.model; `<s> $A </s>` for BART's)."""
    data = tokenizer.to_hf_json()
    seq2seq = task is not None and (task.name == "translation" or task.name == "generation" and task.config.seq2seq)
    if seq2seq and tokenizer.eos_id is not None:
        eos = tokenizer.id_to_token(tokenizer.eos_id)
        data["post_processor"] = template_to_hf({"single": ["$A", eos], "pair": ["$A", eos, "$B", eos]},
                                                {eos: tokenizer.eos_id})
    return data


def tokenizer_config(tokenizer, model) -> dict[str, Any]:
    """The tokenizer_config.json AutoTokenizer needs to read the exported tokenizer.json as taesan cuts: the class
    (else it goes by the model's family: a RoBERTa checkpoint with KLUE's WordPiece would get a byte-level BPE), the
    casing of a WordPiece (else BERT's default lowercases and strips accents: 한 -> ㅎㅏㄴ), the special tokens,
    model_max_length (else HF feeds any length and fails past the model's positions) and, for a model without
    segment embeddings (RoBERTa's one row, GPT, the encoder-decoders), no token_type_ids (a pair's 1s overflow them)."""
    wordpiece = isinstance(tokenizer, WordPieceTokenizer)  # a pipeline tokenizer's normalizer has no BERT flags
    out: dict[str, Any] = {"tokenizer_class": "BertTokenizer" if wordpiece else "PreTrainedTokenizerFast"}
    if wordpiece:
        norm = tokenizer.normalizer
        out.update(do_lower_case=bool(norm.lowercase), strip_accents=bool(norm.strip_accents))
    named = {"unk": tokenizer.unk_id, "pad": tokenizer.pad_id, "cls": tokenizer.cls_id, "sep": tokenizer.sep_id,
             "mask": tokenizer.mask_id, "eos": tokenizer.eos_id, "bos": None if wordpiece else tokenizer.bos_id}
    out.update({f"{name}_token": tokenizer.id_to_token(i) for name, i in named.items() if i is not None})
    limit = getattr(tokenizer, "model_max_length", None) or positions(model)  # RoBERTa counts them after its pad rows
    if limit is not None:
        out["model_max_length"] = limit
    if not takes_segments(model):
        out["model_input_names"] = ["input_ids", "attention_mask"]
    return out


def keep_special_ids(path: Path, tokenizer) -> None:
    """A GPT's config keeps only its end-of-text, so the export would say bos = eos and no pad: the tokenizer's own
    <s> and <pad> go in instead (KoGPT2's bos 0 and pad 3 survive a round trip). Other families carry theirs."""
    hf_config = read_json(path)
    if hf_config.get("model_type") != "gpt2":
        return
    ids = {"bos_token_id": tokenizer.bos_id}
    if "pad_token_id" not in hf_config:  # a classifier writes its own (None: it reads each row's last token)
        ids["pad_token_id"] = tokenizer.pad_id
    kept = {k: v for k, v in ids.items() if v is not None}
    if kept:
        write_json(path, {**hf_config, **kept})


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
