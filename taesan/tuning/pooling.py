"""Which sentence vector a BERT-shaped classifier reads when the command line names none: the [CLS] position
("cls", as HF) or the masked mean of the last hidden states ("mean"), chosen from where the model comes from.

Not the pooling itself (models.bert_heads, models.first_token_head) and not a search: one rule, said in one line.

Why: an encoder pretrained with the masked LM alone never has [CLS] as a prediction target and never trains a
pooler (taesan has no next-sentence objective). On NSMC its [CLS] carried less sentiment than random features
(a frozen probe: 58.8 vs 63.3) and fine-tuning from it sat at chance for the first ~100 steps; the masked mean
removed that deficit (+3 points; issue 17). A checkpoint from elsewhere (HuggingFace) keeps [CLS], as its recipes
expect and as HF's classifiers (the only ones `convert --to-hf` can write) read it. A QA or NER model fine-tuned
from such a start carries the fact on (pooling "mean" in its config), since those heads never train [CLS] either.
"""
from __future__ import annotations

from torch import nn

from taesan.checkpoint import read_training
from taesan.models.bert import BERT
from taesan.models.bert_heads import BertForSequenceClassification
from taesan.models.first_token_head import FirstTokenClassifier
from taesan.tasks.heads import backbone

UNTRAINED_POOLER_OBJECTIVES = ("masked", "replaced")  # taesan's encoder objectives: none trains [CLS] or a pooler
SEQUENCE_TASKS = ("classification", "pair-classification")


def default_pooling(model: nn.Module, task: str, directory: str | None) -> tuple[str, str] | None:
    """(pooling, why) for a sequence-classification `task` on a BERT-shaped `model`; None where pooling does not apply
    (another task, a GPT). `directory`: the checkpoint it was loaded from (None: a fresh preset).

    default_pooling(fresh bert-tiny, "classification", None) -> ("mean", "a fresh preset: ...")
    """
    inner = backbone(model)
    if task not in SEQUENCE_TASKS or not isinstance(inner, BERT):
        return None
    if isinstance(model, (BertForSequenceClassification, FirstTokenClassifier)):
        return model.config.pooling, "the checkpoint is a classifier already: fine-tuning further keeps its pooling"
    why = untrained_cls(model, directory)
    if why is not None:
        return "mean", why
    if type(inner) is BERT and inner.pooler is not None:
        return "cls", "the checkpoint carries pooler weights (HF's BERT classifies the pooled [CLS])"
    return "cls", (f"a {type(inner).__name__} checkpoint not pretrained by taesan: its classifier reads [CLS] / the first "
                   f"token as HF's does, so the result exports with convert --to-hf")


def untrained_cls(model: nn.Module, directory: str | None) -> str | None:
    """Why `model`'s [CLS] position and pooler never learned anything, or None when they may have: a fresh preset,
    a taesan masked-LM (or ELECTRA) checkpoint, or a QA / NER model fine-tuned by taesan from one (its config says
    pooling "mean", written by `mark_untrained_cls`; those heads never read [CLS] or the pooler either)."""
    if directory is None:
        return "a fresh preset: neither [CLS] nor a pooler has learned anything"
    objective = read_training(directory).get("objective")
    if objective in UNTRAINED_POOLER_OBJECTIVES:
        return f"pretrained by taesan with the {objective} objective alone: [CLS] and the pooler were never trained"
    if getattr(model.config, "pooling", "cls") == "mean":
        return "fine-tuned by taesan from a start whose [CLS] and pooler never learned (its config says pooling mean)"
    return None


def mark_untrained_cls(model: nn.Module, task: str, directory: str | None) -> None:
    """Before a token or span task (NER, QA) trains a BERT-shaped `model` whose [CLS] and pooler never learned, write
    pooling "mean" into its config, so a classifier fine-tuned later from the saved checkpoint reads the mean too
    (the head itself never reads [CLS])."""
    if task in SEQUENCE_TASKS or not isinstance(backbone(model), BERT) or not hasattr(model.config, "pooling"):
        return
    if untrained_cls(model, directory) is not None:
        model.config.pooling = "mean"


def pooling_line(pooling: str, why: str, given: bool) -> str:
    """"defaults: pooling mean -- a fresh preset: ...; --set pooling=cls|mean overrides" (or "(given)")."""
    if given:
        return f"pooling: {pooling} (given)"
    return f"defaults: pooling {pooling} -- {why}; --set pooling=cls|mean overrides"
