"""The upstream objectives: causal LM (forward), backward LM, masked LM (BERT's 15% / 80-10-10) and
seq2seq teacher forcing — each turns a batch of ids into (model inputs, labels) and owns the loss.

Not a model (models return logits) and not a data loader. Labels of ignored positions are -100.
The Trainer speaks to an objective (or a fine-tuning task) only through `prepare`, `run_model`, `loss`, `metrics`.
In training, the language-model objectives ask the model for what its output layer reads (`pre_logits=True`) and
that layer (`output_layer()`), and compute the loss chunk by chunk (modules.lm_loss): the (N, vocab) logits, the
largest tensors of a small model's step, never exist. The loss is the same as on the logits (tests hold them equal).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from taesan.errors import TaesanError
from taesan.modules.lm_loss import linear_cross_entropy


IGNORE_INDEX = -100


@dataclass
class PreLogits:
    """What a language-model objective gets from the model in training instead of its logits: the hidden states
    the output layer reads and that layer, logits = hidden @ weight.T + bias.

    dtype: the precision the products run in (autocast's, when the model ran under it); the loss is fp32 anyway.
    """

    hidden: torch.Tensor  # (..., C)
    weight: torch.Tensor  # (V, C)
    bias: torch.Tensor | None  # (V,)
    dtype: torch.dtype | None = None

    def logits(self) -> torch.Tensor:
        """The logits (..., V) in fp32, for metrics."""
        with torch.autocast(self.hidden.device.type, enabled=False):
            logits = self.hidden.float() @ self.weight.float().t()
            return logits + self.bias.float() if self.bias is not None else logits


def _sharded(model: Any) -> bool:
    """An FSDP-sharded model's weights exist whole only inside its forward. Asked without importing FSDP (it pulls
    in sympy, seconds): a model cannot be sharded before the trainer imported it."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def lm_outputs(model: Any, inputs: dict[str, Any]) -> torch.Tensor | PreLogits:
    """A language model's outputs for its objective: PreLogits when the model lends its output layer and a gradient
    is wanted (training), else its logits. A DDP wrapper lends none (its reducer must see every parameter used in
    its own forward) and neither does an FSDP-sharded model; both give logits, as does evaluation."""
    layer = getattr(model, "output_layer", None) if not _sharded(model) else None
    parts = layer() if layer is not None and torch.is_grad_enabled() else None
    if parts is None:
        return model(**inputs)
    hidden = model(**inputs, pre_logits=True)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    return PreLogits(hidden, parts[0], parts[1], dtype)


def aligned(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (..., X), labels) -> flat (N, X) and (N,): scores of every position, or of the labelled positions
    only (a masked LM's head scores just the masked ones, in row-major order).

    aligned(scores (2, 3, V), labels (2, 3)) -> (6, V), (6,); aligned(scores (2, V), [[-100, 7, 9]]) -> (2, V), [7, 9]
    """
    X = logits.shape[-1]
    if tuple(logits.shape[:-1]) == tuple(labels.shape):
        return logits.reshape(-1, X), labels.reshape(-1)  # (N, X), (N,)
    kept = labels[labels != IGNORE_INDEX]  # (N,)
    if logits.dim() != 2 or logits.shape[0] != kept.shape[0]:
        raise ValueError(f"outputs of shape {tuple(logits.shape)} match neither the labels {tuple(labels.shape)} "
                         f"nor their {kept.shape[0]} labelled positions")
    return logits, kept


class Objective:
    """What the Trainer needs from a training signal (pretraining objective or fine-tuning task):

    - `prepare(batch, generator) -> (inputs, labels)`: `inputs` is the model's keyword arguments,
      `generator` a seeded torch.Generator for random choices (its state is saved with the trainer);
    - `run_model(model, inputs, labels) -> outputs`: the model's logits (the default: `model(**inputs)`), or what
      a language-model objective asks for instead (PreLogits); the Trainer calls it under its autocast;
    - `loss(outputs, labels) -> scalar`: the mean over counted positions, in fp32;
    - `metrics(outputs, labels) -> {name: (sum, count)}`: summed over a batch, so evaluation can
      aggregate many batches exactly before dividing;
    - optionally `summarize({name: (total sum, total count)}) -> {name: value}` when a score is not
      a plain ratio (F1 from summed tp/fp/fn); without it each metric is sum / count.
    `labels` may be a tensor or a dict of tensors (e.g. QA start and end); the Trainer moves both to the device.
    """

    name = "objective"

    def prepare(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def run_model(self, model: Any, inputs: dict[str, Any], labels: Any = None) -> Any:
        """What `loss` and `metrics` read: the model's logits."""
        return model(**inputs)

    def loss(self, logits: torch.Tensor | PreLogits, labels: torch.Tensor) -> torch.Tensor:
        """Token-level cross-entropy over positions whose label is not -100 (0 when there is none)."""
        if isinstance(logits, PreLogits):
            hidden, labels = aligned(logits.hidden, labels)  # (N, C), (N,)
            return linear_cross_entropy(hidden, logits.weight, labels, IGNORE_INDEX, bias=logits.bias, dtype=logits.dtype)
        flat, labels = aligned(logits.float(), labels)  # (N, V), (N,)
        total = F.cross_entropy(flat, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / (labels != IGNORE_INDEX).sum().clamp(min=1)

    @torch.no_grad()
    def metrics(self, logits: torch.Tensor | PreLogits, labels: torch.Tensor) -> dict[str, tuple[float, int]]:
        """{"loss": (Σ token losses, n tokens), "accuracy": (n correct, n tokens)}; perplexity = exp(loss)."""
        if isinstance(logits, PreLogits):
            logits = logits.logits()
        flat, labels = aligned(logits.float(), labels)  # (N, V), (N,)
        n = int((labels != IGNORE_INDEX).sum())
        total = float(F.cross_entropy(flat, labels, ignore_index=IGNORE_INDEX, reduction="sum"))
        correct = int(((flat.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum())
        return {"loss": (total, n), "accuracy": (correct, n)}


# ---- causal and backward language models ------------------------------------------------------------------


def shift_for_next_token(
    ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(B, T+1) ids -> inputs (B, T), their mask, labels (B, T) = the next token, -100 where it is padding.

    shift_for_next_token([[5, 6, 7]]) -> inputs [[5, 6]], labels [[6, 7]]
    """
    inputs, labels = ids[:, :-1], ids[:, 1:].clone()
    mask = None
    if attention_mask is not None:
        mask = attention_mask[:, :-1]
        labels[attention_mask[:, 1:] == 0] = IGNORE_INDEX
    return inputs, mask, labels


def reverse_real_tokens(ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse each row's real tokens in place of one another; padding stays where it is.

    reverse_real_tokens([[1, 2, 3, 0]], mask [[1, 1, 1, 0]]) -> [[3, 2, 1, 0]]; left padding likewise:
    [[0, 1, 2, 3]] with mask [[0, 1, 1, 1]] -> [[0, 3, 2, 1]].
    """
    if attention_mask is None:
        return ids.flip(-1)
    real = attention_mask.bool()
    order = torch.argsort((~real).to(torch.int8), dim=-1, stable=True)  # (B, T) real positions first, in order
    rank = real.long().cumsum(-1) - 1  # (B, T) k for the k-th real token
    length = real.sum(-1, keepdim=True)  # (B, 1)
    source = torch.gather(order, 1, (length - 1 - rank).clamp(min=0))  # (B, T) position of the mirrored token
    return torch.where(real, torch.gather(ids, 1, source), ids)


class CausalLM(Objective):
    """Next-word prediction (GPT: 티끌 모아 → 태산). A batch holds (B, T+1) ids (+ optional attention_mask)."""

    name = "causal"

    def prepare(self, batch, generator=None):
        inputs, mask, labels = shift_for_next_token(batch["input_ids"], batch.get("attention_mask"))
        return ({"input_ids": inputs} if mask is None else {"input_ids": inputs, "attention_mask": mask}), labels

    def run_model(self, model, inputs, labels=None):
        return lm_outputs(model, inputs)


class BackwardLM(CausalLM):
    """The same model reading right to left (ELMo's backward LM): each row's real tokens reversed, then causal."""

    name = "backward"

    def prepare(self, batch, generator=None):
        mask = batch.get("attention_mask")
        reversed_ids = reverse_real_tokens(batch["input_ids"], mask)
        return super().prepare({**batch, "input_ids": reversed_ids}, generator)


# ---- masked language model ---------------------------------------------------------------------------------


class MaskedLM(Objective):
    """Fill in the blank (BERT: 티끌 [MASK] 태산). Of the non-special real tokens, `mask_prob` (15%) are
    chosen; of those 80% become [MASK], 10% a random non-special token, 10% stay. Labels: the original
    token at chosen positions, -100 elsewhere. Special tokens are never chosen.

    `word_starts` (vocab_size,) bool, True for a token that begins a word (WordPiece: no "##"), turns on
    whole-word masking: a word is chosen as a unit (all its pieces), so the model cannot fill 카##페 from
    the half it sees. `score_masked_only` adds `masked_positions` to the inputs and keeps the labels of the
    chosen tokens only ((N,), row-major): a masked-LM head that accepts it (BertForMaskedLM) then skips the
    vocabulary projection of the ~85% unchosen rows, the costliest matmul of a small model's step.
    """

    name = "masked"

    def __init__(self, mask_id: int, vocab_size: int, special_ids: Sequence[int], mask_prob: float = 0.15,
                 replace_prob: float = 0.8, random_prob: float = 0.1, word_starts: torch.Tensor | None = None,
                 score_masked_only: bool = False) -> None:
        if not 0.0 < mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
        self.mask_id, self.vocab_size = mask_id, vocab_size
        self.mask_prob, self.replace_prob, self.random_prob = mask_prob, replace_prob, random_prob
        self.special = torch.zeros(vocab_size, dtype=torch.bool)
        self.special[torch.as_tensor(sorted(set(special_ids) | {mask_id}), dtype=torch.long)] = True
        self.ordinary = torch.nonzero(~self.special).squeeze(1)  # (V',) ids a random replacement may take
        if word_starts is not None and tuple(word_starts.shape) != (vocab_size,):
            raise ValueError(f"word_starts must have shape ({vocab_size},), got {tuple(word_starts.shape)}")
        self.word_starts = None if word_starts is None else word_starts.bool() | self.special
        self.score_masked_only = score_masked_only

    def choose(self, ids: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(B, T) bool: the positions to predict. One uniform per position; with whole words, each token
        takes its word's first token's draw, so a word is in or out as a whole.

        ids [[CLS] 카 ##페 에 [SEP]], word starts at 0, 1, 3, 4 -> 카 and ##페 share position 1's draw.
        """
        u = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)  # (B, T)
        if self.word_starts is not None:
            starts = self.word_starts.to(ids.device)[ids]  # (B, T)
            starts[:, 0] = True
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)  # (B, T)
            first = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values  # (B, T) word start
            u = torch.gather(u, 1, first)
        return candidates & (u < self.mask_prob)

    def prepare(self, batch, generator=None):
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        candidates = ~self.special.to(ids.device)[ids]  # (B, T)
        if mask is not None:
            candidates &= mask.bool()
        draw = lambda: torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)  # noqa: E731
        chosen = self.choose(ids, candidates, generator)
        action = draw()  # one uniform per position decides [MASK] / random / keep
        to_mask = chosen & (action < self.replace_prob)
        to_random = chosen & (action >= self.replace_prob) & (action < self.replace_prob + self.random_prob)
        picks = torch.randint(len(self.ordinary), ids.shape, generator=generator, device="cpu").to(ids.device)
        corrupted = torch.where(to_mask, torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(to_random, self.ordinary.to(ids.device)[picks], corrupted)
        inputs = {"input_ids": corrupted}
        if mask is not None:
            inputs["attention_mask"] = mask
        if self.score_masked_only:
            inputs["masked_positions"] = chosen
            return inputs, ids[chosen]  # (N,) row-major, as the head returns its (N, V) rows
        return inputs, torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))

    def run_model(self, model, inputs, labels=None):
        """Only the chosen positions reach the head: scores (N, vocab) or PreLogits (N, E), in row-major order
        (the positions come from `prepare` with score_masked_only, else from the (B, T) labels)."""
        if "masked_positions" not in inputs and labels is not None:
            inputs = {**inputs, "masked_positions": labels != IGNORE_INDEX}
        return lm_outputs(model, inputs)


# ---- replaced-token detection (ELECTRA) ------------------------------------------------------------------


class GeneratorDiscriminator(nn.Module):
    """ELECTRA's two networks wired for one training step; what is kept afterwards is `discriminator`.

    `generator(input_ids, attention_mask, masked_positions=...)` -> (N, V) masked-LM logits of the N masked
    positions (BertForMaskedLM; ElectraForMaskedLM). `discriminator(input_ids, attention_mask)` -> (B, T) or
    (B, T, 1) per-token logits, "was this token replaced?" (ElectraForPreTraining; a BERT token classifier with
    one output). The generator's samples fill the masked positions (no gradient flows through sampling);
    `sample_u` (N,) are the uniforms the objective drew, so sampling follows the trainer's seeded generator.
    Forward returns logits and the corrupted ids (the discriminator's labels depend on the samples).
    `share_embeddings` makes the generator read the discriminator's token/position/segment tables (the paper's
    tying; the two must have the same width).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, share_embeddings: bool = True,
                 forbidden_ids: Sequence[int] = ()) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        if share_embeddings:
            share_embedding_tables(generator, discriminator)
        self.register_buffer("forbidden", torch.as_tensor(sorted(forbidden_ids), dtype=torch.long), persistent=False)

    def forward(self, input_ids: torch.Tensor, original_ids: torch.Tensor, masked_positions: torch.Tensor,
                sample_u: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        gen_logits = self.generator(input_ids=input_ids, attention_mask=attention_mask, masked_positions=masked_positions)  # (N, V)
        with torch.no_grad():
            logits = gen_logits.detach().float()
            if self.forbidden.numel():
                logits[:, self.forbidden] = float("-inf")  # never sample [MASK], [PAD], ...
            cdf = logits.softmax(-1).cumsum(-1)  # (N, V)
            sampled = torch.searchsorted(cdf, (sample_u * cdf[:, -1]).unsqueeze(-1).contiguous()).squeeze(-1)  # (N,)
            sampled = sampled.clamp(max=logits.shape[-1] - 1)
            corrupted = original_ids.clone()
            corrupted[masked_positions.bool()] = sampled
        disc_logits = self.discriminator(input_ids=corrupted, attention_mask=attention_mask)
        if disc_logits.dim() == 3:
            disc_logits = disc_logits.squeeze(-1)  # (B, T)
        return {"generator": gen_logits, "discriminator": disc_logits, "corrupted": corrupted}


def share_embedding_tables(generator: nn.Module, discriminator: nn.Module) -> None:
    """Point the generator's token, position and segment embeddings at the discriminator's modules."""
    g = getattr(generator, "bert", generator)
    d = getattr(discriminator, "bert", discriminator)
    for name in ("tok_emb", "pos_emb", "seg_emb"):
        if hasattr(g, name) and hasattr(d, name):
            if getattr(g, name).weight.shape != getattr(d, name).weight.shape:
                raise ValueError(f"cannot share {name}: generator {tuple(getattr(g, name).weight.shape)} vs "
                                 f"discriminator {tuple(getattr(d, name).weight.shape)}")
            setattr(g, name, getattr(d, name))
    head = getattr(generator, "mlm", None)
    if head is not None and hasattr(g, "tok_emb"):
        head.decoder.weight = g.tok_emb.weight  # the generator's output stays tied to the (shared) table


class ReplacedTokenDetection(Objective):
    """ELECTRA (Clark et al. 2020): a small generator fills masked positions with plausible tokens and the
    discriminator, the model kept for fine-tuning, tells for EVERY real token whether it was replaced, so it
    learns from all tokens, not the 15% a masked LM scores. loss = generator MLM + `discriminator_weight` (50)
    x the discriminator's binary cross-entropy over real, non-special tokens. A sampled token that equals the
    original counts as original. The model is a `GeneratorDiscriminator`.
    """

    name = "replaced"

    def __init__(self, masker: MaskedLM, discriminator_weight: float = 50.0) -> None:
        self.masker = MaskedLM(masker.mask_id, masker.vocab_size, torch.nonzero(masker.special).squeeze(1).tolist(),
                               masker.mask_prob, masker.replace_prob, masker.random_prob, masker.word_starts,
                               score_masked_only=True)
        self.discriminator_weight = discriminator_weight

    def prepare(self, batch, generator=None):
        ids = batch["input_ids"]
        inputs, mlm_labels = self.masker.prepare(batch, generator)
        chosen = inputs["masked_positions"]
        u = torch.rand(int(chosen.sum()), generator=generator, device="cpu").to(ids.device)  # (N,)
        counted = ~self.masker.special.to(ids.device)[ids]  # (B, T) the discriminator's positions
        if batch.get("attention_mask") is not None:
            counted &= batch["attention_mask"].bool()
        inputs = {**inputs, "original_ids": ids, "sample_u": u}
        return inputs, {"mlm": mlm_labels, "original": ids, "counted": counted}

    def _parts(self, out: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]):
        replaced = (out["corrupted"] != labels["original"]).float()  # (B, T)
        counted = labels["counted"]
        gen = F.cross_entropy(out["generator"].float(), labels["mlm"], reduction="sum")
        disc = F.binary_cross_entropy_with_logits(out["discriminator"].float()[counted], replaced[counted], reduction="sum")
        return gen, disc, replaced, counted

    def loss(self, logits, labels):
        gen, disc, _, counted = self._parts(logits, labels)
        n_gen, n_disc = max(1, labels["mlm"].numel()), max(1, int(counted.sum()))
        return gen / n_gen + self.discriminator_weight * disc / n_disc

    @torch.no_grad()
    def metrics(self, logits, labels):
        """Generator loss/accuracy on masked tokens; discriminator loss, accuracy, and recall on replaced tokens."""
        gen, disc, replaced, counted = self._parts(logits, labels)
        n_gen, n_disc = labels["mlm"].numel(), int(counted.sum())
        said = logits["discriminator"].float() > 0
        truth = replaced.bool()
        hits = int(((said == truth) & counted).sum())
        n_replaced = int((truth & counted).sum())
        found = int((said & truth & counted).sum())
        return {"loss": (float(gen) + self.discriminator_weight * float(disc) * n_gen / max(1, n_disc), n_gen),
                "generator_loss": (float(gen), n_gen),
                "generator_accuracy": (int((logits["generator"].argmax(-1) == labels["mlm"]).sum()), n_gen),
                "discriminator_loss": (float(disc), n_disc), "discriminator_accuracy": (hits, n_disc),
                "replaced_recall": (found, n_replaced), "replaced_share": (n_replaced, n_disc)}


# ---- sequence to sequence ---------------------------------------------------------------------------------


def shift_right(
    target: torch.Tensor, decoder_start_id: int, pad_id: int, target_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher forcing's decoder input: the target moved one step right behind `decoder_start_id`.

    shift_right([[7, 8, 9]], decoder_start_id=1, pad_id=0) -> [[1, 7, 8]]
    """
    out = torch.full_like(target, pad_id)
    out[:, 0] = decoder_start_id
    out[:, 1:] = target[:, :-1]
    if target_mask is not None:
        out[:, 1:] = torch.where(target_mask[:, :-1].bool(), out[:, 1:], torch.full_like(out[:, 1:], pad_id))
    return out


class Seq2SeqLM(Objective):
    """Teacher forcing for an encoder-decoder: the decoder reads [start] y1 … y_{n-1} and predicts y1 … yn.

    A batch: "input_ids"/"attention_mask" (source) and "target_ids"/"target_mask" (target, ending in eos).
    Model inputs follow taesan's Seq2SeqTransformer: src_ids, tgt_ids, src_mask, tgt_mask.
    The loss counts real target tokens only.
    """

    name = "seq2seq"

    def __init__(self, decoder_start_id: int, pad_id: int) -> None:
        self.decoder_start_id, self.pad_id = decoder_start_id, pad_id

    def prepare(self, batch, generator=None):
        target = batch["target_ids"]
        target_mask = batch.get("target_mask")
        if target_mask is None:
            target_mask = torch.ones_like(target)
        decoder_input = shift_right(target, self.decoder_start_id, self.pad_id, target_mask)
        decoder_mask = torch.ones_like(target_mask)
        decoder_mask[:, 1:] = target_mask[:, :-1]  # the start token is real; then the target's own mask
        labels = torch.where(target_mask.bool(), target, torch.full_like(target, IGNORE_INDEX))
        inputs: dict[str, Any] = {"src_ids": batch["input_ids"], "tgt_ids": decoder_input, "tgt_mask": decoder_mask}
        if batch.get("attention_mask") is not None:
            inputs["src_mask"] = batch["attention_mask"]
        return inputs, labels

    def run_model(self, model, inputs, labels=None):
        return lm_outputs(model, inputs)


def word_start_ids(tokenizer: Any) -> torch.Tensor:
    """(vocab_size,) bool: True for tokens that begin a word. WordPiece marks continuations "##"; a byte-level
    BPE marks beginnings with "Ġ" (a space before); a vocabulary with neither has every token begin a word."""
    vocab = tokenizer.vocab
    starts = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    if any(t.startswith("##") for t in vocab):
        for token, i in vocab.items():
            starts[i] = not token.startswith("##")
    elif any(t.startswith("Ġ") for t in vocab):
        for token, i in vocab.items():
            starts[i] = token.startswith("Ġ") or token in tokenizer.special_tokens
    return starts


def objective_for(name: str, tokenizer: Any = None, vocab_size: int | None = None, whole_word: bool = False,
                  mask_prob: float = 0.15) -> Objective:
    """An objective by name ("causal", "backward", "masked", "replaced"); masked and replaced need the
    tokenizer's specials. The masked LM scores the chosen rows only (the model must accept `masked_positions`,
    as BertForMaskedLM does); `whole_word` masks whole words; `mask_prob` is the share of tokens chosen (BERT's
    15%; Wettig et al. 2023 found 40% better for BERT-large, and a tiny model on a small budget learns a fill sooner at 30%). "replaced" trains a GeneratorDiscriminator."""
    if name == "causal":
        return CausalLM()
    if name == "backward":
        return BackwardLM()
    if name in ("masked", "replaced"):
        if tokenizer is None or tokenizer.mask_id is None:
            raise TaesanError(f"the {name} objective needs a tokenizer with a [MASK] token (and [CLS], [SEP], [PAD])")
        specials = [tokenizer.vocab[t] for t in tokenizer.special_tokens]
        size = vocab_size or tokenizer.vocab_size
        starts = None
        if whole_word:
            starts = torch.ones(size, dtype=torch.bool)
            starts[: tokenizer.vocab_size] = word_start_ids(tokenizer)
        if not 0.0 < mask_prob <= 1.0:
            raise TaesanError(f"--mask-prob must be in (0, 1], got {mask_prob}")
        masker = MaskedLM(tokenizer.mask_id, size, specials, mask_prob=mask_prob, word_starts=starts, score_masked_only=True)
        return masker if name == "masked" else ReplacedTokenDetection(masker)
    raise TaesanError(f"unknown objective {name!r}; choose causal, backward, masked or replaced")
