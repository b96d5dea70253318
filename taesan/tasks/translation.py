"""Translation with an encoder-decoder (the Transformer, BART/Marian, T5): teacher forcing to train, greedy or beam
decoding to translate.

Not a tokenizer pair: one shared tokenizer (and, by default, one shared embedding matrix) covers both
languages, as in the paper's joint BPE. A source is its ids + end-of-text; the decoder reads
[start] y1 … yn and predicts y1 … yn [end] (taesan.objectives.Seq2SeqLM). The start token is T5's pad token,
else the tokenizer's <s>/[CLS] when it has one, else the end-of-text token (as BART); padding never counts.
Data: a TSV with source_column/target_column (Tatoeba kor-eng ko→en: source_column=1, target_column=0)
or two aligned files given as "train.ko,train.en" (see taesan.tasks.readers.parallel).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from taesan.decoding import generate
from taesan.errors import TaesanError
from taesan.models.bert import BERT
from taesan.models.bert_heads import BertHeadModel
from taesan.models.kinds import family_name, is_encoder_decoder
from taesan.objectives import IGNORE_INDEX, Seq2SeqLM, lm_outputs
from taesan.tasks.base import Task, TaskConfig, replace_config
from taesan.tasks.fits import tokenizer_rows
from taesan.tasks.generation import (
    encoder_decoder_writer,
    readable,
    resolve_model,
    teacher_forced_scores,
    until,
    with_eos,
)
from taesan.tasks.metrics.bleu import check_tokenize, corpus_bleu
from taesan.tasks.outputs import dominant_script, empty_share, share_in_script
from taesan.tasks.warm_start import warm_start_seq2seq
from taesan.tasks.readers.parallel import ParallelExample, read_parallel


@dataclass
class TranslationConfig(TaskConfig):
    max_length: int = 128  # source tokens, end-of-text included
    max_target_length: int = 128  # target tokens, end-of-text included; also the decoding limit
    source_column: int = 0  # TSV columns (0-based); two aligned files are read in the order given
    target_column: int = 1
    num_beams: int = 1  # 1: greedy decoding
    length_penalty: float = 1.0  # beam search: log-probability / length ** length_penalty
    bleu_tokenize: str = "13a"  # sacrebleu tokenizer for the target language ("char" or "ko-mecab" for Korean)
    decoder_start_id: int | None = None  # the decoder's first input; set by build_model (None: <s>/[CLS], else eos)
    source_script: str = ""  # the training sources' and targets' writing system ("hangul", "latin"; see tasks.outputs),
    target_script: str = ""  # set from the training examples: swapped columns and untranslated outputs are then seen

    def __post_init__(self) -> None:
        for name in ("max_length", "max_target_length", "num_beams"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be >= 1, got {getattr(self, name)}")
        check_tokenize(self.bleu_tokenize)


class Translation(Task):
    """Source sentence -> target sentence, scored by teacher-forced loss and corpus BLEU of the decoded output."""

    name = "translation"
    config_class = TranslationConfig

    # ---- tokens (tok, eos_id, pad_id: see Task) --------------------------------------------------------
    @property
    def start_id(self) -> int:
        if self.config.decoder_start_id is not None:
            return self.config.decoder_start_id
        start = self.tok.cls_id
        return start if start is not None else self.eos_id

    def ids(self, text: str, limit: int) -> list[int]:
        """Text -> ids + end-of-text, cut to `limit` (a cut sentence gets no end-of-text: it did not end there)."""
        return with_eos(self.tok.encode(text, add_special_tokens=False).ids, self.eos_id, limit)

    def source_ids(self, text: str) -> list[int]:
        """What the encoder reads for `text`."""
        return self.ids(text, self.config.max_length)

    def positions_needed(self) -> int:
        return max(self.config.max_length, self.config.max_target_length)

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[ParallelExample]:
        return read_parallel(path, self.config.source_column, self.config.target_column)

    def fit_labels(self, examples: Sequence[ParallelExample]) -> None:
        """Record the script the training sources and targets are written in (when the config names none)."""
        if not self.config.source_script and not self.config.target_script:
            replace_config(self, source_script=dominant_script([ex.source for ex in examples]) or "",
                           target_script=dominant_script([ex.target for ex in examples]) or "")

    def encode(self, example: ParallelExample) -> list[dict[str, Any]]:
        """-> [{"input_ids": source ids + eos, "target_ids": target ids + eos}]."""
        return [{"input_ids": self.ids(example.source, self.config.max_length),
                 "target_ids": self.ids(example.target, self.config.max_target_length)}]

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right padding per side: input_ids/attention_mask, target_ids/target_mask, labels (-100 on padding)."""
        src, src_mask = _pad([f["input_ids"] for f in features], self.pad_id)
        tgt, tgt_mask = _pad([f["target_ids"] for f in features], self.pad_id)
        labels = tgt.masked_fill(tgt_mask == 0, IGNORE_INDEX)
        return {"input_ids": src, "attention_mask": src_mask, "target_ids": tgt, "target_mask": tgt_mask, "labels": labels}

    def prepare(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """Teacher forcing: the decoder reads the target shifted right behind the start token."""
        return Seq2SeqLM(self.start_id, self.pad_id).prepare(batch, generator)

    def run_model(self, model: nn.Module, inputs: dict[str, Any], labels: Any = None) -> Any:
        """In training the LM loss runs chunk by chunk from the decoder's hidden states (objectives.lm_outputs)."""
        return lm_outputs(model, inputs)

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module | str) -> nn.Module:
        """An encoder-decoder (the Transformer, BART/Marian, T5) with its output layer and its special ids set to the
        tokenizer's (so generate's defaults agree): see generation.encoder_decoder_writer.

        A pretrained BERT (or BERT head model) becomes an encoder-decoder warm-started from it (BERT2BERT:
        taesan.tasks.warm_start), so the tokenizer must be the BERT's and cover both languages.
        """
        ids = {"pad_token_id": self.pad_id, "eos_token_id": self.eos_id, "decoder_start_token_id": self.start_id}
        model = resolve_model(model, tokenizer_rows(self.tok), **ids)
        if isinstance(model, (BERT, BertHeadModel)):
            model = warm_start_seq2seq(model, bos_token_id=None, **ids)
        if not is_encoder_decoder(model):
            raise TaesanError(f"the translation task needs an encoder-decoder (transformer-tiny, T5, BART, Marian), "
                              f"not {family_name(model)!r}")
        model, start = encoder_decoder_writer(model, self.tok, self.pad_id, self.eos_id)
        limit = model.config.n_positions  # the longest source and target the model has positions for
        replace_config(self, decoder_start_id=start, max_length=min(self.config.max_length, limit),
                       max_target_length=min(self.config.max_target_length, limit))
        return model

    # ---- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, model: nn.Module, sources: Sequence[str], batch_size: int = 32) -> list[str]:
        """Sources -> decoded translations (greedy, or beam search with num_beams > 1), through taesan.generate."""
        c, model = self.config, model.eval()
        device = next(model.parameters()).device
        out: list[str] = []
        for start in range(0, len(sources), batch_size):
            src, mask = _pad([self.ids(s, c.max_length) for s in sources[start:start + batch_size]], self.pad_id)
            result = generate(
                model, src.to(device), attention_mask=mask.to(device), max_new_tokens=c.max_target_length,
                num_beams=c.num_beams, length_penalty=c.length_penalty, eos_token_id=self.eos_id,
                pad_token_id=self.pad_id, decoder_start_token_id=self.start_id,
            )
            out.extend(self.tok.decode(readable(self.tok, until(row[1:], self.eos_id))) for row in result.tolist())  # row[0]: start
        return out

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """Sentences -> [{"translation": text}]."""
        return [{"translation": t} for t in self.translate(model, list(inputs), batch_size)]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[ParallelExample], batch_size: int = 32) -> dict[str, float]:
        """Teacher-forced loss / perplexity / token accuracy, corpus BLEU of the decoded translations, the share of
        them that is empty, and (when training recorded two different scripts) the share written in the source's."""
        scores = teacher_forced_scores(self, model, examples, batch_size)
        hypotheses = self.translate(model, [ex.source for ex in examples], batch_size)
        scores["bleu"] = corpus_bleu(hypotheses, [ex.target for ex in examples], tokenize=self.config.bleu_tokenize)
        scores["empty_outputs"] = empty_share(hypotheses)
        c = self.config
        if c.source_script and c.target_script and c.source_script != c.target_script:
            scores["outputs_in_source_script"] = share_in_script(hypotheses, c.source_script)
        return scores


def _pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids -> (ids (B, T) right-padded with pad_id, mask (B, T) 1 = real)."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask
