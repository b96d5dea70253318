"""Which task head each backbone family wears, in one table: BERT, RoBERTa and ELECTRA -> their own sequence
classification, token classification and QA heads; GPT -> its sequence classifier. The tasks ask here instead of
naming BERT's classes, so a checkpoint of any of these families fine-tunes for every task its family has a head for.

Also here, because they are the same question (what does this family take?): whether it reads segment ids
(RoBERTa has one segment: type_vocab_size 1), an encoder-decoder's output layer (a bare HF BartModel or T5Model gets
the tied one its *ForConditionalGeneration has) and its decoder's start token (T5's pad). Not the heads themselves
(models/) and not a loss.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from taesan.errors import TaesanError
from taesan.models.bert import BERT
from taesan.models.bert_heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertHeadModel,
)
from taesan.models.electra import (
    ELECTRA,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
)
from taesan.models.gpt import GPT
from taesan.models.gpt_heads import GPTForSequenceClassification
from taesan.models.kinds import family_name, is_encoder_decoder, is_image_model
from taesan.models.roberta import (
    RoBERTa,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)
from taesan.models.t5 import T5

HEAD_SHAPING = ("pooling",)  # config fields that change what a head reads: asking for another value builds a new head
KINDS = {"sequence": "sequence classification", "token": "token classification", "qa": "question answering"}


@dataclass(frozen=True)
class FamilyHeads:
    """One backbone family's task heads (None: the family has no such head)."""

    name: str
    backbone: type[nn.Module]
    sequence: type[nn.Module] | None
    token: type[nn.Module] | None
    qa: type[nn.Module] | None


FAMILIES = (
    FamilyHeads("BERT", BERT, BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering),
    FamilyHeads("RoBERTa", RoBERTa, RobertaForSequenceClassification, RobertaForTokenClassification,
                RobertaForQuestionAnswering),
    FamilyHeads("ELECTRA", ELECTRA, ElectraForSequenceClassification, ElectraForTokenClassification,
                ElectraForQuestionAnswering),
    FamilyHeads("GPT", GPT, GPTForSequenceClassification, None, None),
)


def backbone(model: nn.Module) -> nn.Module | None:
    """The bare backbone inside `model` (a BERT-shaped head's `.backbone`, a GPT classifier's `.gpt`), or None."""
    if isinstance(model, (BERT, GPT)):
        return model
    if isinstance(model, BertHeadModel):
        return model.backbone
    if isinstance(model, GPTForSequenceClassification):
        return model.gpt
    return None


def family(model: nn.Module) -> FamilyHeads | None:
    """The family of `model`'s backbone, matched by exact class (a RoBERTa is a BERT subclass with its own heads)."""
    inner = backbone(model)
    return next((f for f in FAMILIES if type(inner) is f.backbone), None)


def head_class(model: nn.Module, kind: str, task: str) -> type[nn.Module]:
    """The class of `model`'s family's `kind` head ("sequence", "token", "qa"), or one line saying which models have one.

    head_class(roberta, "token", "ner") -> RobertaForTokenClassification
    """
    found = family(model)
    cls = getattr(found, kind) if found is not None else None
    if cls is None:
        have = [f.name for f in FAMILIES if getattr(f, kind) is not None]
        have = " or ".join([", ".join(have[:-1]), have[-1]] if len(have) > 1 else have)
        what = f"a text model ({have})" if is_image_model(model) else f"a {have} model"
        raise TaesanError(f"the {task} task needs {what} with a {KINDS[kind]} head, got {family_name(model)!r}")
    return cls


def put_head(model: nn.Module, kind: str, task: str, labels: list[str] | None = None, **changes: Any) -> nn.Module:
    """`model` with its family's `kind` head: kept as it is when it already is that head with these labels (and
    `changes`), else a fresh head on a copy of its backbone (`changes`: more config fields, e.g. the GPT head's pad_token_id)."""
    cls = head_class(model, kind, task)
    if labels is None:  # QA: two outputs, start and end, and no names
        return model if type(model) is cls and _has(model, changes) else cls.from_backbone(model, **changes)
    if type(model) is cls and list(model.config.labels or []) == list(labels) and _has(model, changes):
        return model
    return cls.from_backbone(model, num_labels=len(labels), labels=list(labels), **changes)


def _has(model: nn.Module, changes: dict[str, Any]) -> bool:
    """Whether `model` already reads its input the way `changes` asks (its pooling; other fields, such as the GPT
    head's pad_token_id, never replace a trained head)."""
    return all(getattr(model.config, k, None) == v for k, v in changes.items() if k in HEAD_SHAPING)


def takes_segments(model: nn.Module) -> bool:
    """Whether token_type_ids may go in: a BERT-shaped encoder with a sentence-B row. RoBERTa's type_vocab_size is 1
    (its pairs are told apart by </s></s>), and a GPT has no segments; sending them is an index error."""
    inner = backbone(model)
    return isinstance(inner, BERT) and inner.config.type_vocab_size > 1


def with_lm_head(model: nn.Module) -> nn.Module:
    """An encoder-decoder that can write: a bare backbone (lm_head=False: built so in memory, or a taesan copy of a HF
    BartModel / T5Model made before those got their head at load) gets the output layer its
    *ForConditionalGeneration ties to the token embeddings (no new weights; BART's logit bias starts at zero).
    A model that has its head is returned as it is."""
    config = model.config
    if not is_encoder_decoder(model) or getattr(config, "lm_head", True):
        return model
    tied = getattr(config, "tie_output", getattr(config, "tie_word_embeddings", False))
    if not tied:
        raise TaesanError(f"the {family_name(model)!r} backbone has no output layer and ties none to its embeddings: "
                          f"load it with its *ForConditionalGeneration head")
    extra = {"final_logits_bias": True} if hasattr(config, "final_logits_bias") else {}
    writer = type(model)(dataclasses.replace(config, lm_head=True, **extra))
    missing, unexpected = writer.load_state_dict(model.state_dict(), strict=False)
    new = {"lm_head.weight", "final_logits_bias"}
    if unexpected or set(missing) - new:
        raise TaesanError(f"cannot add an output layer to {family_name(model)!r}: missing {sorted(set(missing) - new)}, "
                          f"unexpected {sorted(unexpected)}")
    if hasattr(model, "checkpoint_dir"):
        writer.checkpoint_dir = model.checkpoint_dir
    return writer.to(next(model.parameters()).device)


def decoder_start(model: nn.Module, tokenizer: Any, pad_id: int, eos_id: int) -> int:
    """The first decoder input an encoder-decoder trains and writes from: a loaded checkpoint's own
    decoder_start_token_id (KoBART's is </s>, as BART was trained; taesan writes the one it trained with), else for a
    model built here from a preset (its config holds only the class default) T5's pad token (HF's 0), else the
    tokenizer's <s> / [CLS], else its end-of-text."""
    own = getattr(model.config, "decoder_start_token_id", None)
    if own is not None and getattr(model, "checkpoint_dir", None) is not None:
        return own
    if isinstance(model, T5):
        return pad_id
    return tokenizer.cls_id if tokenizer.cls_id is not None else eos_id
