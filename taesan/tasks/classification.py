"""Sequence classification: one sentence (sentiment: 긍정/부정) or a sentence pair (NLI: [CLS] premise [SEP]
hypothesis [SEP] with segment ids), on the head of the backbone's family (taesan.tasks.heads): BERT's pooled
[CLS], RoBERTa's and ELECTRA's first token (or, with the setting pooling="mean", the masked mean of their last hidden
states), GPT's last real token.

Not a model and not a trainer: this file says how examples become ids, which head goes on the backbone,
the cross-entropy loss, accuracy and macro-F1 (summed per-class counts) and what a prediction looks like.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taesan.errors import TaesanError
from taesan.figures import korean_font, korean_rc, save_png
from taesan.models.bert import POOLINGS
from taesan.models.gpt_heads import GPTForSequenceClassification
from taesan.objectives import IGNORE_INDEX
from taesan.tasks.base import Task, TaskConfig, check_labels, check_non_negative, replace_config, split_pair
from taesan.tasks.batches import by_length, restore_order
from taesan.tasks.fits import check_tokenizer
from taesan.tasks.heads import head_class, put_head, takes_segments
from taesan.tasks.metrics.classification import (
    class_counts,
    classification_scores,
    confusion_matrix,
    scores_from_counts,
)
from taesan.tasks.outputs import top_share
from taesan.tasks.readers.nli import NLI_LABELS, TSV_COLUMNS, PairExample, read_nli
from taesan.tasks.readers.sentiment import TABLE_SUFFIXES, TextExample, read_sentiment
from taesan.textfiles import TEXT_COLUMNS, header_names


@dataclass
class ClassificationConfig(TaskConfig):
    type_ids: bool = True  # pass token_type_ids (BERT's, ELECTRA's segments); RoBERTa (one segment) and GPT take none
    # BERT-shaped heads: "cls" ([CLS] / first token, as HF) or "mean" (masked mean of the last hidden states);
    # None: the model's own (a fresh head: "cls"). `taesan finetune` chooses by where the model comes from.
    pooling: str | None = None
    # training: R-Drop (Liang et al. 2021): each batch runs twice (dropout differs), loss = the mean cross-entropy of the
    # two + rdrop x their symmetric KL; 0: one pass. Twice the compute. `taesan finetune` sets 3 for a small model
    # (tuning.defaults: 5-fold CV, KorNLI 47.1 -> 48.7, NSMC 83.2 -> 83.4; issue 17)
    rdrop: float = 0.0
    # reading (classification files): the text and label columns of the header (a JSON file: its objects' fields);
    # None: the first of document / text / sentence, and label
    text_column: str | None = None
    label_column: str | None = None

    def __post_init__(self) -> None:
        if self.pooling not in (None, *POOLINGS):
            raise ValueError(f"field 'pooling' is {self.pooling!r}; choose one of {list(POOLINGS)}")
        check_non_negative(self, "classification", ("rdrop",))


def order_labels(names: set[str], preferred: Sequence[str] = ()) -> list[str]:
    """The label list: `preferred` whole when every name is in it, else numbers by value, else sorted.

    order_labels({"neutral", "entailment"}, NLI_LABELS) -> ["entailment", "neutral", "contradiction"];
    order_labels({"10", "2"}) -> ["2", "10"]
    """
    if preferred and names <= set(preferred):
        return list(preferred)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def plot_confusion(counts: list[list[int]], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A confusion-matrix PNG: each row (gold label) shaded by its share, the counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(korean_rc(korean_font())):  # Korean labels (긍정, IT과학) drawn, not boxes
        k = len(labels)
        shares = [[c / max(1, sum(row)) for c in row] for row in counts]
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k))
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for g in range(k):
            for p in range(k):
                ax.text(p, g, str(counts[g][p]), ha="center", va="center", color="white" if shares[g][p] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return save_png(fig, path)  # drawn inside the context: the font is looked up then


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class SequenceClassification(Task):
    """One text -> one label. Reads NSMC-style TSV (id / document / label), CSV, JSON Lines or a JSON list."""

    name = "classification"
    config_class = ClassificationConfig
    preferred_labels: tuple[str, ...] = ()
    default_batch_size = None  # inference batches as large as fit (tasks.batches.by_length)

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[TextExample]:
        """The labelled rows with a text; rows with an empty text (NSMC has a few) are left out and counted."""
        rows = read_sentiment(path, self.config.text_column, self.config.label_column, keep_empty=True)
        examples = [ex for ex in rows if ex.text]
        if len(examples) < len(rows):
            self.skipped[str(path)] = (f"skipped {len(rows) - len(examples)} of {len(rows)} rows with an empty text "
                                       f"(nothing to classify); read the other {len(examples)}")
        return examples

    def input_texts(self, path: str | Path) -> list[str] | None:
        """A table or JSON file (the formats `read` takes): its text column, a label column optional. A file with
        another suffix is a table when its first line names the text column (NSMC's ratings_test.txt: id / document
        / label); else None, one input per line."""
        wanted = [self.config.text_column] if self.config.text_column else TEXT_COLUMNS
        if Path(path).suffix.lower() not in TABLE_SUFFIXES and not set(wanted) & set(header_names(path)):
            return None
        return [ex.text for ex in read_sentiment(path, self.config.text_column, self.config.label_column, labelled=False)]

    def fit_labels(self, examples: Sequence[Any]) -> None:
        if not self.config.labels:
            replace_config(self, labels=order_labels({ex.label for ex in examples}, self.preferred_labels))

    def texts(self, example: Any) -> tuple[str, str | None]:
        """The text (and pair) an example is encoded from."""
        return example.text, None

    def as_example(self, item: Any) -> Any:
        """A `predict` input (a string, or an example) as an unlabelled example."""
        return item if isinstance(item, TextExample) else TextExample(str(item), None, "input")

    def encode(self, example: Any) -> list[dict[str, Any]]:
        tok = self.tok
        text, pair = self.texts(example)
        if pair is not None and tok.template is None and tok.eos_id is not None:
            ids, types = self._joined(text, pair)
        else:
            enc = tok.encode(text, pair=pair, truncation=True, max_length=self.config.max_length)
            ids, types = enc.ids, enc.type_ids
        if not ids:
            raise TaesanError(f"{example.source or 'input'}: the text encodes to no tokens")
        label = IGNORE_INDEX if example.label is None else check_labels(self.labels, example.label, example.source or "input")
        return [{"input_ids": ids, "token_type_ids": types, "labels": label}]

    def _joined(self, text: str, pair: str) -> tuple[list[int], list[int]]:
        """A pair for a tokenizer without a [CLS]/[SEP] template (GPT-2's): premise <eos> hypothesis, the longer
        side cut first, so the model still sees where one sentence ends."""
        a = self.tokenizer.encode(text, add_special_tokens=False).ids
        b = self.tokenizer.encode(pair, add_special_tokens=False).ids
        while len(a) + len(b) + 1 > self.config.max_length and (a or b):
            (b if len(b) >= len(a) else a).pop()
        return a + [self.tokenizer.eos_id] + b, [0] * (len(a) + 1) + [1] * len(b)

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded ids (B, T), attention_mask (B, T), segment ids when the model takes them, labels (B,)."""
        pad = self.tokenizer.pad_id if self.tokenizer is not None and self.tokenizer.pad_id is not None else 0
        T = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), T), pad, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(features), T, dtype=torch.long)  # (B, T)
        types = torch.zeros(len(features), T, dtype=torch.long)  # (B, T)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            types[i, :n] = torch.tensor(f["token_type_ids"])
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.config.type_ids:
            batch["token_type_ids"] = types
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)  # (B,)
        return batch

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module) -> nn.Module:
        """A backbone (or any head model) of a family with a sequence classifier -> that family's classifier
        (taesan.tasks.heads: BERT's pooled [CLS], RoBERTa's and ELECTRA's first-token head, GPT's last token).

        A model that already has this task's head with the same labels is kept as it is (fine-tuning further).
        Segment ids go in only where the family has a sentence-B row (not RoBERTa's one segment, not GPT).
        """
        labels = self.labels
        if not labels:
            raise TaesanError(f"the {self.name} task has no labels yet (fit_labels on the training examples first)")
        head = head_class(model, "sequence", self.name)
        check_tokenizer(model, self.tokenizer)
        extra = {}
        if head is GPTForSequenceClassification:  # it reads the last token that is not padding
            if self.config.pooling is not None:
                raise TaesanError(f"field 'pooling' is for BERT-shaped classifiers; a GPT classifier reads its last token")
            extra["pad_token_id"] = self.tokenizer.pad_id if self.tokenizer is not None else None
        elif self.config.pooling is not None:
            extra["pooling"] = self.config.pooling
        model = put_head(model, "sequence", self.name, labels, **extra)
        if head is not GPTForSequenceClassification:
            replace_config(self, pooling=model.config.pooling)  # task.json says what the classifier reads
        replace_config(self, type_ids=takes_segments(model), max_length=min(self.config.max_length, model.config.n_positions))
        return model

    # ---- training signal -------------------------------------------------------------------------------
    def run_model(self, model: nn.Module, inputs: dict[str, Any], labels: Any = None) -> torch.Tensor:
        """The logits (B, C); with rdrop while training, two passes' logits stacked (2, B, C)."""
        if getattr(self.config, "rdrop", 0.0) and model.training:  # an image task's config has no rdrop
            return torch.stack([model(**inputs), model(**inputs)])  # (2, B, C): two dropout masks
        return model(**inputs)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy; for R-Drop's two passes, their mean plus rdrop x the symmetric KL between them."""
        if logits.dim() == 2:
            return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        keep = labels != IGNORE_INDEX
        first, second = logits.float()[:, keep].unbind(0)  # (N, C) each
        ce = (F.cross_entropy(first, labels[keep]) + F.cross_entropy(second, labels[keep])) / 2
        p, q = first.log_softmax(-1), second.log_softmax(-1)
        kl = (F.kl_div(p, q, log_target=True, reduction="batchmean") + F.kl_div(q, p, log_target=True, reduction="batchmean")) / 2
        return ce + self.config.rdrop * kl  # two passes only come from run_model with rdrop set

    @torch.no_grad()
    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[float, int]]:
        """Loss and per-class tp/fp/fn sums ("tp_3": (count, n)); `summarize` turns them into accuracy and macro-F1."""
        keep = labels != IGNORE_INDEX
        logits, labels = logits[keep].float(), labels[keep]
        n = int(labels.numel())
        out = {"loss": (float(F.cross_entropy(logits, labels, reduction="sum")), n)}
        counts = class_counts(logits.argmax(-1).tolist(), labels.tolist(), logits.shape[-1])
        for kind, values in counts.items():
            for i, v in enumerate(values):
                out[f"{kind}_{i}"] = (v, n)
        return out

    def summarize(self, totals: dict[str, tuple[float, int]]) -> dict[str, float]:
        k = len(self.labels)
        tp, fp, fn = ([totals.get(f"{kind}_{i}", (0, 0))[0] for i in range(k)] for kind in ("tp", "fp", "fn"))
        scores = scores_from_counts(tp, fp, fn, self.labels)
        loss, n = totals.get("loss", (0.0, 0))
        return {"loss": loss / n if n else 0.0, **scores}

    # ---- inference -------------------------------------------------------------------------------------
    def _logits(self, model: nn.Module, examples: Sequence[Any], batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, num_labels) in fp32, labels (N,)) of every example, in input order: eval mode, inference mode,
        batches of similar lengths (longest first; batch_size None: as many rows as fit, see tasks.batches)."""
        model.eval()
        device = model_device(model)
        features = [f for ex in examples for f in self.encode(ex)]
        scores, gold = [], []
        with torch.inference_mode():
            for positions, batch in by_length(features, self.collate, batch_size):
                inputs, labels = self.prepare(batch)
                scores.append((positions, model(**{k: v.to(device) for k, v in inputs.items()}).float().cpu()))
                gold.append((positions, labels))
        if not features:
            return torch.zeros(0, len(self.labels)), torch.zeros(0, dtype=torch.long)
        return restore_order(scores), restore_order(gold)

    def predict(self, model: nn.Module, inputs: Sequence[Any], batch_size: int | None = None) -> list[dict[str, Any]]:
        """-> [{"label": best label, "probability": its p, "probabilities": {label: p}}] per input, in input order."""
        logits, _ = self._logits(model, [self.as_example(x) for x in inputs], batch_size)
        out = []
        for p in logits.softmax(-1).tolist():
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"label": self.labels[best], "probability": p[best], "probabilities": dict(zip(self.labels, p))})
        return out

    def _decisions(self, model: nn.Module, examples: Sequence[Any], batch_size: int | None) -> tuple[list[int], list[int], float]:
        """(predicted ids, gold ids, summed cross-entropy) over labelled examples."""
        logits, labels = self._logits(model, examples, batch_size)
        return logits.argmax(-1).tolist(), labels.tolist(), float(F.cross_entropy(logits, labels, reduction="sum"))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Any], batch_size: int | None = None) -> dict[str, float]:
        """accuracy, macro precision/recall/F1, per-class F1 ("f1_<label>"), mean loss, the example count, the share
        of examples given the most predicted label (1.0: one label for everything, whatever the text) and the share
        of the most common gold label (the accuracy of always answering it: the bar a model must clear)."""
        predicted, gold, loss = self._decisions(model, examples, batch_size)
        if not gold:
            return {}
        return {**classification_scores(predicted, gold, self.labels), "loss": loss / len(gold), "examples": len(gold),
                "most_predicted_share": top_share(predicted), "majority_share": top_share(gold)}

    @torch.no_grad()
    def save_confusion(self, model: nn.Module, examples: Sequence[Any], path: str | Path, batch_size: int | None = None) -> list[list[int]]:
        """Write the confusion matrix (rows gold, columns predicted) as a PNG heatmap; returns the counts."""
        predicted, gold, _ = self._decisions(model, examples, batch_size)
        counts = confusion_matrix(predicted, gold, len(self.labels))
        plot_confusion(counts, self.labels, path, f"{self.name}: {len(gold)} examples")
        return counts


class PairClassification(SequenceClassification):
    """(premise, hypothesis) -> one label: NLI (entailment / neutral / contradiction). Reads KorNLI TSV, KLUE-NLI JSON."""

    name = "pair-classification"
    preferred_labels = NLI_LABELS

    def read(self, path: str | Path) -> list[PairExample]:
        return self._read_nli(path, labelled=True)

    def input_texts(self, path: str | Path) -> list[str] | None:
        """A KorNLI TSV or KLUE-NLI JSON file: each pair as "premise ||| hypothesis", a label column optional; a
        file with another suffix when its first line names the pair's columns (KorNLI's .tsv saved as .txt)."""
        names = header_names(path)
        if Path(path).suffix.lower() not in (".tsv", ".json") and not any(all(c in names for c in cols[:2]) for cols in TSV_COLUMNS):
            return None
        return [f"{ex.premise} ||| {ex.hypothesis}" for ex in self._read_nli(path, labelled=False)]

    def _read_nli(self, path: str | Path, labelled: bool) -> list[PairExample]:
        given = [name for name in ("text_column", "label_column") if getattr(self.config, name) is not None]
        if given:  # one text column is a single-sentence file's; a pair file's columns are fixed
            raise TaesanError(f"setting {given[0]} is for classification files; pair-classification reads sentence1 / "
                              f"sentence2 / gold_label (or premise / hypothesis) columns, or KLUE-NLI JSON")
        return read_nli(path, labelled)

    def texts(self, example: Any) -> tuple[str, str | None]:
        return example.premise, example.hypothesis

    def as_example(self, item: Any) -> Any:
        if isinstance(item, PairExample):
            return item
        if isinstance(item, str):
            item = self.parse_input(item)
        premise, hypothesis = item
        return PairExample(premise, hypothesis, None, "input")

    def parse_input(self, text: str) -> tuple[str, str]:
        """"premise ||| hypothesis" -> (premise, hypothesis)."""
        return split_pair(text, "premise", "hypothesis", self.name)
