"""Generation fine-tuning: a GPT learns to continue a prompt with its target, the loss on the target only; or an
encoder-decoder (T5, BART, the Transformer) learns to write the target from the prompt it reads (seq2seq).

Not pretraining (the prompt is given, never learned, and padding never counts: ratsnlp's generation
loss includes both) and not a decoder: prediction goes through taesan.generate. One example is
    prompt ids + target ids + <|endoftext|>
read with the next-token shift: position i predicts token i + 1, so the label of every position whose
next token is still prompt is -100, and the first label is the first target token (predicted from the
last prompt token). An empty prompt (plain-text training data) starts from <|endoftext|> alone.
An encoder-decoder reads prompt + <eos> and its decoder learns target + <eos> behind its start token, as translation
does (`encoder_decoder_writer` sets both tasks' special ids; T5 starts the decoder from its pad token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from taesan.data import pad_batch
from taesan.decoding import generate
from taesan.errors import TaesanError
from taesan.models import load_model
from taesan.models.gpt import GPT
from taesan.models.kinds import family_name, is_encoder_decoder
from taesan.models.registry import create_for
from taesan.objectives import IGNORE_INDEX, Seq2SeqLM, lm_outputs
from taesan.tasks.base import Task, TaskConfig, replace_config
from taesan.tasks.batches import in_order
from taesan.tasks.fits import check_tokenizer, tokenizer_rows
from taesan.tasks.heads import decoder_start, with_lm_head
from taesan.tasks.outputs import empty_share
from taesan.tasks.readers.generation import GenerationExample, read_generation

OUTPUT_SAMPLE = 32  # prompts evaluate writes from, to see whether the model writes anything


@dataclass
class GenerationConfig(TaskConfig):
    max_length: int = 128  # prompt + target + end-of-text tokens per example (the model reads one fewer)
    prompt_column: str = "prompt"  # TSV column / JSONL key
    target_column: str = "target"
    separator: str = " "  # put between a non-empty prompt and its target (learned with the target)
    max_new_tokens: int = 64  # decoding settings for predict (greedy by default)
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int | None = None
    seq2seq: bool = False  # set by build_model: an encoder-decoder reads the prompt, its decoder writes the target
    decoder_start_id: int | None = None  # an encoder-decoder's first decoder input (set by build_model)

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError(f"field 'max_length' must be >= 2 (a prompt token and a target token), got {self.max_length}")
        if self.max_new_tokens < 1:
            raise ValueError(f"field 'max_new_tokens' must be >= 1, got {self.max_new_tokens}")


class GenerationTask(Task):
    """(prompt, target) pairs -> a GPT that writes the target after the prompt and then stops, or an encoder-decoder
    that writes the target from the prompt (config.seq2seq)."""

    name = "generation"
    config_class = GenerationConfig

    def parse_input(self, text: str) -> str:
        """The prompt as typed; an empty one is allowed (the model writes from <|endoftext|> alone)."""
        return text

    # ---- tokens (tok, eos_id, pad_id: see Task) --------------------------------------------------------
    def prompt_ids(self, prompt: str) -> list[int]:
        """The prompt's ids (no template specials); an empty prompt is [<|endoftext|>], GPT-2's start of text."""
        ids = self.tok.encode(prompt, add_special_tokens=False).ids if prompt else []
        return ids or [self.eos_id]

    def target_ids(self, example: GenerationExample) -> list[int]:
        text = self.config.separator + example.target if example.prompt and self.config.separator else example.target
        return self.tok.encode(text, add_special_tokens=False).ids if text else []

    def source_ids(self, prompt: str) -> list[int]:
        """seq2seq: what the encoder reads, the prompt's ids + <eos> cut to max_length (an empty prompt: <eos>)."""
        return with_eos(self.tok.encode(prompt, add_special_tokens=False).ids if prompt else [], self.eos_id,
                        self.config.max_length)

    @property
    def start_id(self) -> int:
        """seq2seq: the decoder's first input (build_model fixes it for the model's family)."""
        start = self.config.decoder_start_id
        return start if start is not None else self.eos_id

    def positions_needed(self) -> int:
        return self.config.max_length if self.config.seq2seq else self.config.max_length - 1

    # ---- data ------------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list[GenerationExample]:
        return read_generation(path, self.config.prompt_column, self.config.target_column)

    def encode(self, example: GenerationExample) -> list[dict[str, Any]]:
        """-> [{"input_ids": ids[:-1], "labels": ids[1:] with the prompt's next tokens -100}].

        prompt [p1 p2], target [t1]: ids p1 p2 t1 eos; input_ids p1 p2 t1; labels -100 t1 eos.
        Too long for max_length: the prompt keeps its last tokens (at most half the length unless the target
        leaves more room), then the target is cut and gets no end-of-text (it did not end there).
        """
        n = self.config.max_length
        if self.config.seq2seq:
            target = self.tok.encode(example.target, add_special_tokens=False).ids
            return [{"input_ids": self.source_ids(example.prompt), "target_ids": with_eos(target, self.eos_id, n)}]
        prompt, target = self.prompt_ids(example.prompt), self.target_ids(example)
        prompt = prompt[-max(n - len(target) - 1, n // 2):]
        room = n - len(prompt)
        target = target + [self.eos_id] if len(target) < room else target[:room]
        ids = prompt + target
        labels = [IGNORE_INDEX] * (len(prompt) - 1) + target  # label i = ids[i + 1] where that is target
        return [{"input_ids": ids[:-1], "labels": labels}]

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right padding to the longest row: pad ids, attention_mask 0, labels -100 (seq2seq: per side, see
        `pad_pairs`)."""
        if self.config.seq2seq:
            return pad_pairs(features, self.pad_id)
        T = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), T), dtype=torch.long)
        labels = torch.full((len(features), T), IGNORE_INDEX, dtype=torch.long)
        for row, f in enumerate(features):
            L = len(f["input_ids"])
            ids[row, :L] = torch.as_tensor(f["input_ids"])
            mask[row, :L] = 1
            labels[row, :L] = torch.as_tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def prepare(self, batch: dict[str, Any], generator: torch.Generator | None = None):
        """A GPT reads the batch as it is; an encoder-decoder's decoder reads the target behind its start token."""
        if self.config.seq2seq:
            return Seq2SeqLM(self.start_id, self.pad_id).prepare(batch, generator)
        return super().prepare(batch, generator)
    def run_model(self, model: nn.Module, inputs: dict[str, Any], labels: Any = None) -> Any:
        """In training the LM loss runs chunk by chunk from the hidden states (objectives.lm_outputs)."""
        return lm_outputs(model, inputs)

    # ---- model -----------------------------------------------------------------------------------------
    def build_model(self, model: nn.Module | str) -> nn.Module:
        """The GPT itself (its LM head is the task head), or an encoder-decoder with its output layer and special ids
        (`encoder_decoder_writer`); a preset name or checkpoint directory is built/loaded."""
        model = resolve_model(model, tokenizer_rows(self.tok))
        if is_encoder_decoder(model):
            model, start = encoder_decoder_writer(model, self.tok, self.pad_id, self.eos_id)
            replace_config(self, seq2seq=True, decoder_start_id=start,
                           max_length=min(self.config.max_length, model.config.n_positions))
            return model
        if not isinstance(model, GPT):
            raise TaesanError(f"the generation task fine-tunes a GPT or an encoder-decoder (T5, BART, transformer-tiny), "
                              f"not {family_name(model)!r}")
        check_tokenizer(model, self.tok)
        if self.config.max_length - 1 > model.config.n_positions:
            replace_config(self, max_length=model.config.n_positions + 1)
        return model

    # ---- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """Prompts -> [{"text": the generated continuation}], decoded until end-of-text or max_new_tokens, as the
        text it adds after its prompt's ids (Tokenizer.decode_after: a WordPiece "##" piece shows no marker).

        Prompts are batched with left padding (taesan.generate decodes each row as it would alone). Prompt and
        continuation share the model's positions: a prompt keeps its last tokens, never fewer than half the
        positions (max_new_tokens 64 on a 64-position GPT read one token of the prompt), and the continuation
        gets what the batch's longest prompt leaves, up to max_new_tokens.
        """
        c, model = self.config, model.eval()
        if c.seq2seq:
            return self._write(model, list(inputs), batch_size)
        device = next(model.parameters()).device
        positions = model.config.n_positions
        keep = max(positions // 2, positions - c.max_new_tokens)
        out = []
        for start in range(0, len(inputs), batch_size):
            prompts = list(inputs[start:start + batch_size])
            rows = [self.prompt_ids(p)[-keep:] for p in prompts]
            T = max(len(r) for r in rows)
            max_new = min(c.max_new_tokens, positions - T)
            ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), T), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, T - len(r):] = torch.as_tensor(r)  # left padding: every row's last token is real
                mask[i, T - len(r):] = 1
            result = generate(
                model, ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new, do_sample=c.do_sample,
                temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, num_beams=c.num_beams,
                repetition_penalty=c.repetition_penalty, eos_token_id=self.eos_id, pad_token_id=self.pad_id, seed=c.seed,
            )
            for prompt, before, row in zip(prompts, rows, result[:, T:].tolist()):
                before = [i for i in before if i != self.eos_id]  # an empty prompt's start of text: no text before
                text = self.tok.decode_after(readable(self.tok, before), readable(self.tok, until(row, self.eos_id)))
                if prompt and c.separator and text.startswith(c.separator):
                    text = text[len(c.separator):]
                elif prompt and c.separator.isspace() and text[:1] == " ":  # a tokenizer that writes its own word space
                    text = text[1:]
                out.append({"text": text})
        return out

    def _write(self, model: nn.Module, prompts: list[str], batch_size: int) -> list[dict[str, Any]]:
        """seq2seq: each prompt through the encoder, the decoder writing from its start token until <eos>."""
        c, device = self.config, next(model.parameters()).device
        out = []
        for start in range(0, len(prompts), batch_size):
            batch = pad_batch([self.source_ids(p) for p in prompts[start:start + batch_size]], self.pad_id)
            result = generate(
                model, batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                max_new_tokens=min(c.max_new_tokens, model.config.n_positions), do_sample=c.do_sample,
                temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, num_beams=c.num_beams,
                repetition_penalty=c.repetition_penalty, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
                decoder_start_token_id=self.start_id, seed=c.seed,
            )
            out.extend({"text": self.tok.decode(readable(self.tok, until(row[1:], self.eos_id)))}  # row[0]: start
                       for row in result.tolist())
        return out

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[GenerationExample], batch_size: int = 32) -> dict[str, float]:
        """Target-token loss, perplexity = exp(loss) and next-token accuracy (teacher forcing); and, from the texts
        written for the first OUTPUT_SAMPLE prompts, the share that is empty or only whitespace (a model that ends at
        once scores a fine loss and writes nothing)."""
        scores = teacher_forced_scores(self, model, examples, batch_size)
        written = self.predict(model, [ex.prompt for ex in examples[:OUTPUT_SAMPLE]], batch_size)
        return {**scores, "empty_outputs": empty_share([w["text"] for w in written]), "outputs_checked": len(written)}


def with_eos(ids: list[int], eos: int, limit: int) -> list[int]:
    """ids + end-of-text, cut to `limit` (a cut text gets no end-of-text: it did not end there).

    with_eos([5, 6], eos=2, limit=4) -> [5, 6, 2];  with_eos([5, 6, 7, 8], eos=2, limit=3) -> [5, 6, 7]
    """
    return ids + [eos] if len(ids) < limit else ids[:limit]


def pad_pairs(features: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Source and target rows -> right-padded input_ids/attention_mask, target_ids/target_mask, labels (-100 on
    padding): the batch objectives.Seq2SeqLM prepares."""
    src, tgt = pad_batch([f["input_ids"] for f in features], pad_id), pad_batch([f["target_ids"] for f in features], pad_id)
    labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, IGNORE_INDEX)  # (B, T)
    return {"input_ids": src["input_ids"], "attention_mask": src["attention_mask"], "target_ids": tgt["input_ids"],
            "target_mask": tgt["attention_mask"], "labels": labels}


def encoder_decoder_writer(model: nn.Module, tokenizer: Any, pad_id: int, eos_id: int) -> tuple[nn.Module, int]:
    """An encoder-decoder set up to write with `tokenizer`: its output layer (a bare backbone gets the tied one), its
    pad / eos / decoder-start ids set to the tokenizer's (so generate's defaults and an HF export agree) -> (model,
    start id). The decoder starts from T5's pad token, else the tokenizer's <s>/[CLS], else its end-of-text."""
    model = with_lm_head(model)
    check_tokenizer(model, tokenizer)
    start = decoder_start(model, tokenizer, pad_id, eos_id)
    c = model.config
    c.pad_token_id, c.eos_token_id, c.decoder_start_token_id = pad_id, eos_id, start
    for embedding in (getattr(model, "src_emb", None), getattr(model, "tgt_emb", None)):
        if embedding is not None:  # no gradient to the pad row; none when pad is the real eos
            embedding.padding_idx = tokenizer.pad_id
    return model, start


def readable(tokenizer: Any, ids: list[int]) -> list[int]:
    """The ids the tokenizer has a token for: T5's embedding table is padded past its tokenizer (32128 rows for 32100
    tokens), and an id there writes nothing, as in HF's decode."""
    return [i for i in ids if tokenizer.id_to_token(i) is not None]


def until(ids: list[int], eos: int) -> list[int]:
    """The ids before the first `eos`: until([5, 6, 2, 0], eos=2) -> [5, 6]."""
    return ids[: ids.index(eos)] if eos in ids else ids


def teacher_forced_scores(task: Task, model: nn.Module, examples: Sequence[Any], batch_size: int) -> dict[str, float]:
    """The task's loss and token accuracy summed over every counted position of `examples`, then divided."""
    if not examples:
        raise TaesanError("no examples to evaluate")
    model = model.eval()
    device = next(model.parameters()).device
    features = [f for ex in examples for f in task.encode(ex)]
    loss = correct = count = 0.0
    for batch in in_order(features, task.collate, batch_size):
        inputs, labels = task.prepare(batch)
        logits = model(**{k: v.to(device) for k, v in inputs.items()})
        scores = task.metrics(logits, labels.to(device))
        loss, correct, count = loss + scores["loss"][0], correct + scores["accuracy"][0], count + scores["loss"][1]
    return {"loss": loss / count, "perplexity": math.exp(min(loss / count, 50.0)), "accuracy": correct / count, "tokens": int(count)}


def resolve_model(model: nn.Module | str, vocab_size: int, **overrides: Any) -> nn.Module:
    """A model, or a checkpoint directory (taesan.load), or a preset name sized to the tokenizer's `vocab_size`
    (models.registry.create_for) with `overrides`."""
    if not isinstance(model, str):
        return model
    if Path(model).is_dir():
        return load_model(model)
    return create_for(model, vocab_size, **overrides)
