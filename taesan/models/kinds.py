"""What a model is, asked in one place: a masked LM (BERT's, RoBERTa's, ELECTRA's generator), a causal LM (GPT), an
encoder-decoder (the Transformer, BART/Marian, T5), a text encoder (the BERT-shaped families), an image model (ViT).

Not the task heads (taesan.tasks.heads says which head each family wears) and not a registry of names: the answers
come from the classes, so a new family that subclasses BERT's masked LM is a masked LM everywhere at once.
A soft prompt (taesan.tuning.prompt) wraps its model as `.inner`; every question here looks through it.
"""
from __future__ import annotations

from typing import Any

from taesan.models.bert import BERT
from taesan.models.bert_heads import BertForMaskedLM, BertHeadModel
from taesan.models.gpt import GPT
from taesan.models.registry import MODEL_TYPES
from taesan.models.t5 import T5
from taesan.models.transformer import Seq2SeqTransformer
from taesan.models.vit import ViT


def unwrap(model: Any) -> Any:
    """The model that computes: a soft prompt's wrapped model, else `model` itself."""
    return getattr(model, "inner", model)


def is_masked_lm(model: Any) -> bool:
    """Fills [MASK] / <mask>: BertForMaskedLM and every family's masked LM built on it (RoBERTa, ELECTRA generator)."""
    return isinstance(unwrap(model), BertForMaskedLM)


def is_causal_lm(model: Any) -> bool:
    """Writes left to right from its own LM head: a GPT (its classifier head is not one)."""
    return isinstance(unwrap(model), GPT)


def is_encoder_decoder(model: Any) -> bool:
    return isinstance(unwrap(model), (Seq2SeqTransformer, T5))


def is_text_encoder(model: Any) -> bool:
    """A BERT-shaped encoder (BERT, RoBERTa, ELECTRA), bare or with any head."""
    return isinstance(unwrap(model), (BERT, BertHeadModel))


def is_image_model(model: Any) -> bool:
    return isinstance(unwrap(model), ViT)


def is_text_model(model: Any) -> bool:
    """Reads token ids: every family but the image ones."""
    config = getattr(unwrap(model), "config", None)
    return not is_image_model(model) and any(hasattr(config, f) for f in ("vocab_size", "src_vocab_size"))


def lm_objective(model: Any) -> str | None:
    """The pretraining objective a language model scores with when nothing records one: causal for a GPT, masked
    for a masked LM, None for anything else."""
    if is_causal_lm(model):
        return "causal"
    return "masked" if is_masked_lm(model) else None


def family_name(model: Any) -> str:
    """What to call the model in a message: its model_type ("roberta-mlm", "vit", "t5")."""
    inner = unwrap(model)
    return getattr(inner, "model_type", type(inner).__name__)


def masked_lm_type(backbone_type: str) -> str | None:
    """The model_type of a backbone family's masked LM, from the registry's classes:
    masked_lm_type("roberta") -> "roberta-mlm";  masked_lm_type("electra") -> "electra-generator";  ("gpt") -> None."""
    return next((name for name, cls in MODEL_TYPES.items()
                 if issubclass(cls, BertForMaskedLM) and cls.backbone_class.model_type == backbone_type), None)
