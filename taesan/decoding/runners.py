"""The model side of decoding: prefill the prompt once, then one token per step through the model's KV cache.
A runner per model shape: DecoderOnly (GPT) and EncoderDecoder (the seq2seq Transformer).

Not the choice of tokens (generate.py, beam.py, sampling.py): a runner turns chosen tokens into next logits.
"""
from __future__ import annotations

import torch

from taesan.errors import TaesanError


class DecoderOnly:
    """A decoder-only LM (GPT) with a KV cache. Left padding: the mask grows by one column per step and each
    row's positions count its real tokens only, so a padded row decodes exactly as it would alone."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, max_new_tokens: int) -> None:
        self.model, self.ids = model, input_ids
        B, T = input_ids.shape
        self.cache = model.new_cache()
        reserve = getattr(self.cache, "reserve", None)
        if reserve is not None:
            reserve(T + max_new_tokens)
        self.padded = attention_mask is not None and not bool(attention_mask.bool().all())
        self.mask = self.positions = None
        if self.padded:
            self.mask = torch.ones(B, T + max_new_tokens, dtype=torch.long, device=input_ids.device)
            self.mask[:, :T] = attention_mask
            self.positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        self.length = T
        self.fast = getattr(model, "decode_step", None)  # a model's lean one-token path, when it has one

    def prefill(self) -> torch.Tensor:
        """The whole prompt through the model -> next-token logits (B, V)."""
        mask = self.mask[:, : self.length] if self.padded else None
        logits = self.model(self.ids, attention_mask=mask, position_ids=self.positions, cache=self.cache)
        check_width(self.model, logits)
        if self.padded:
            self.positions = self.positions[:, -1:] + 1  # (B, 1): the next token's position
        return logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1) just chosen -> logits (B, V) for the token after them."""
        self.length += 1
        fast = self.fast
        if not self.padded:
            return fast(tokens, self.cache) if fast else self.model(tokens, cache=self.cache)[:, -1]
        mask, positions = self.mask[:, : self.length], self.positions
        self.positions = positions + 1
        if fast:
            return fast(tokens, self.cache, mask, positions)
        return self.model(tokens, attention_mask=mask, position_ids=positions, cache=self.cache)[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)
        if self.padded:
            self.mask, self.positions = self.mask.index_select(0, index), self.positions.index_select(0, index)


class EncoderDecoder:
    """A seq2seq model (encode/decode/new_cache): the encoder runs once, the first decode stores every layer's
    cross-attention keys/values in the cache, later steps feed one target token each."""

    def __init__(self, model, src_ids: torch.Tensor, src_mask: torch.Tensor | None, start: torch.Tensor, copies: int) -> None:
        self.model, self.start = model, start
        memory, _ = model.encode(src_ids, src_mask)  # (B, S, C)
        self.memory = memory.repeat_interleave(copies, 0) if copies > 1 else memory  # (B·copies, S, C)
        padded = src_mask is not None and not bool(src_mask.bool().all())
        self.src_mask = src_mask.repeat_interleave(copies, 0) if padded else None
        self.cache = model.new_cache()

    def prefill(self) -> torch.Tensor:
        logits, _ = self.model.decode(self.start, self.memory, self.src_mask, cache=self.cache)
        check_width(self.model, logits)
        self.memory = None  # now in the cache as keys/values
        return logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model.decode(tokens, None, self.src_mask, cache=self.cache)
        return logits[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)
        if self.src_mask is not None:
            self.src_mask = self.src_mask.index_select(0, index)


def check_width(model, logits: torch.Tensor) -> None:
    """A one-line error unless the model scores its whole vocabulary: a bare backbone (lm_head=False) returns its
    hidden states, and an argmax over those picks feature numbers, not tokens."""
    config = getattr(model, "config", None)
    vocab = getattr(config, "tgt_vocab_size", None) or getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and logits.shape[-1] != vocab:
        raise TaesanError(f"the model outputs {logits.shape[-1]} values per token, not scores for its {vocab} tokens: "
                          f"a backbone without an output layer (lm_head=False) does not generate")


def is_encoder_decoder(model) -> bool:
    return hasattr(model, "encode") and hasattr(model, "decode")


def setup(model, s: dict, copies: int):
    """Expand rows to `copies` per prompt; -> (runner, token buffer (N, L0 + max_new), valid mask or None, L0)."""
    ids, mask, max_new = s["input_ids"], s["attention_mask"], s["max_new_tokens"]
    if is_encoder_decoder(model):
        N = ids.shape[0] * copies
        start = torch.full((N, 1), s["start_id"], dtype=torch.long, device=ids.device)
        runner = EncoderDecoder(model, ids, mask, start, copies)
        prompt, valid = start, None
    else:
        if copies > 1:
            ids = ids.repeat_interleave(copies, 0)
            mask = mask.repeat_interleave(copies, 0) if mask is not None else None
        runner = DecoderOnly(model, ids, mask, max_new)
        prompt = ids
        valid = None
        if runner.padded:
            valid = torch.ones(ids.shape[0], ids.shape[1] + max_new, dtype=torch.bool, device=ids.device)
            valid[:, : ids.shape[1]] = mask.bool()
    N, L0 = prompt.shape
    buffer = torch.full((N, L0 + max_new), s["pad_token_id"], dtype=torch.long, device=prompt.device)
    buffer[:, :L0] = prompt
    return runner, buffer, valid, L0
