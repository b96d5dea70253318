"""What one `generate` call decodes with: the caller's options checked (one-line TaesanErrors) and completed
from the model (its end token, padding, decoder start), frozen, so no loop can change them on the way.

Not the decoding loops (generate.py, beam.py) and not the logits processors (sampling.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from pathlib import PurePath
from typing import Callable, Sequence

import torch

from taesan.decoding.runners import is_encoder_decoder
from taesan.errors import TaesanError


@dataclass(frozen=True)
class Settings:
    """generate's arguments after checking. `eos` is the tuple of stop ids (empty: none), `generator` the
    seeded torch.Generator (or None), `start_id` an encoder-decoder's first target token."""

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor | None  # (B, T) 1/0
    max_new_tokens: int
    min_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    eos: tuple[int, ...]
    pad_token_id: int
    stop_strings: tuple[str, ...]
    decode: Callable[[list[int]], str] | None
    num_return_sequences: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    generator: torch.Generator | None
    start_id: int | None
    token_bytes: Sequence[bytes | None] | None  # each token's bytes (byte-level tokenizers): see sampling.Utf8Guard

    def __getitem__(self, name: str):
        """runners.setup reads its few settings by key; the loops here use attributes."""
        return getattr(self, name)


def as_ids(input_ids) -> torch.Tensor:
    """A (B, T) tensor, a (T,) tensor, a list of ids or a list of rows -> a (B, T) long tensor, or a one-line error
    (text instead of ids, rows of different lengths, ids that are not whole numbers)."""
    ids = input_ids
    if isinstance(ids, str):
        raise TaesanError("input_ids must be token ids, not text: encode it first (tokenizer.encode(text).ids)")
    if not isinstance(ids, torch.Tensor):
        rows = [list(r) for r in ids] if len(ids) and not isinstance(ids[0], Integral) else [list(ids)]
        if len({len(r) for r in rows}) > 1:
            raise TaesanError(f"input_ids rows have different lengths ({sorted({len(r) for r in rows})}): pad them on "
                              f"the left and pass attention_mask")
        if any(isinstance(i, bool) or not isinstance(i, Integral) for r in rows for i in r):
            raise TaesanError("input_ids must be whole numbers (token ids)")
        ids = torch.as_tensor(rows, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[1] == 0 or ids.dtype not in (torch.long, torch.int, torch.int32):
        raise TaesanError(f"input_ids must be a non-empty (batch, length) integer tensor, got shape {tuple(ids.shape)} {ids.dtype}")
    return ids.long()


def check(model, input_ids, attention_mask, *, max_new_tokens: int, min_new_tokens: int, do_sample: bool,
          temperature: float, top_k: int, top_p: float, repetition_penalty: float, no_repeat_ngram_size: int,
          eos_token_id, pad_token_id: int | None, stop_strings, decode, num_return_sequences: int, num_beams: int,
          length_penalty: float, early_stopping, seed, decoder_start_token_id: int | None, token_bytes) -> Settings:
    """generate's arguments -> Settings, or a one-line TaesanError naming the first bad one."""
    if isinstance(model, (str, PurePath)):  # a checkpoint's directory where its model was meant
        raise TaesanError(f"generate needs a model (taesan.load(DIR)), got {type(model).__name__}")
    if not hasattr(model, "new_cache"):  # a KV cache is how every generating model here decodes
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise TaesanError(f"a {kind} model does not generate: generate continues a GPT or an encoder-decoder")
    ids = as_ids(input_ids)
    seq2seq = is_encoder_decoder(model)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < vocab:
        raise TaesanError(f"input_ids hold id {int(ids.max()) if int(ids.max()) >= vocab else int(ids.min())}, outside "
                          f"the model's {vocab} embeddings: a tokenizer of another model?")
    if attention_mask is not None:
        if tuple(attention_mask.shape) != tuple(ids.shape):
            raise TaesanError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(ids.shape)}")
        if not seq2seq and not bool(attention_mask[:, -1].bool().all()):
            raise TaesanError("attention_mask: a decoder-only model needs left padding (every row's last token real)")
    counts = {"max_new_tokens": (max_new_tokens, 1), "min_new_tokens": (min_new_tokens, 0), "num_beams": (num_beams, 1),
              "num_return_sequences": (num_return_sequences, 1), "top_k": (top_k, 0),
              "no_repeat_ngram_size": (no_repeat_ngram_size, 0)}
    for name, (value, low) in counts.items():
        if not isinstance(value, int) or value < low:
            raise TaesanError(f"{name} must be an integer >= {low}, got {value!r}")
    if min_new_tokens > max_new_tokens:
        raise TaesanError(f"min_new_tokens {min_new_tokens} is more than max_new_tokens {max_new_tokens}")
    if not math.isfinite(length_penalty):
        raise TaesanError(f"length_penalty must be a finite number, got {length_penalty!r}")
    config = getattr(model, "config", None)
    limit = getattr(config, "n_positions", None)
    if not seq2seq and limit is not None and ids.shape[1] + max_new_tokens > limit:
        raise TaesanError(f"prompt length {ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds the model's n_positions={limit}")
    if not temperature > 0:
        raise TaesanError(f"temperature must be > 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise TaesanError(f"top_p must be in (0, 1], got {top_p!r}")
    if not repetition_penalty > 0:
        raise TaesanError(f"repetition_penalty must be > 0, got {repetition_penalty!r}")
    if early_stopping not in (True, False, "never"):
        raise TaesanError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if num_beams > 1 and num_return_sequences > num_beams:
        raise TaesanError(f"num_return_sequences={num_return_sequences} is more than num_beams={num_beams}")
    if num_beams == 1 and num_return_sequences > 1 and not do_sample:
        raise TaesanError("num_return_sequences > 1 needs do_sample=True or num_beams > 1 (greedy would repeat one answer)")
    if num_beams > 1 and do_sample:
        raise TaesanError("beam sampling (do_sample with num_beams > 1) is not supported; use one or the other")
    if num_beams > 1 and stop_strings:
        raise TaesanError("stop_strings work with greedy decoding and sampling, not with beam search")
    stops = (stop_strings,) if isinstance(stop_strings, str) else tuple(stop_strings or ())
    if any(not isinstance(t, str) or not t for t in stops):
        raise TaesanError("stop_strings must be non-empty strings (an empty one would stop before the first token)")
    if stops and decode is None:
        raise TaesanError("stop_strings need a decode callback (ids -> text)")
    eos = stop_ids(eos_token_id, config)
    if pad_token_id is None:
        pad = getattr(config, "pad_token_id", None) if seq2seq else None
        pad_token_id = pad if pad is not None else eos[0] if eos else 0
    start_id = None
    if seq2seq:
        start_id = decoder_start_token_id if decoder_start_token_id is not None else getattr(config, "decoder_start_token_id", None)
        if start_id is None:
            raise TaesanError("an encoder-decoder model needs decoder_start_token_id")
    generator = torch.Generator(device=ids.device).manual_seed(seed) if isinstance(seed, int) else seed
    return Settings(ids, attention_mask, max_new_tokens, min_new_tokens, bool(do_sample), temperature, top_k, top_p,
                    repetition_penalty, no_repeat_ngram_size, eos, pad_token_id, stops, decode, num_return_sequences,
                    num_beams, length_penalty, early_stopping, generator, start_id, token_bytes)


def stop_ids(eos_token_id, config) -> tuple[int, ...]:
    """The caller's stop token(s); None -> the model config's end-of-text id if it names one; [] -> none.

    stop_ids(None, GPTConfig(eos_token_id=0)) -> (0,);  stop_ids([], ...) -> ();  stop_ids(5, ...) -> (5,)
    """
    eos = eos_token_id if eos_token_id is not None else getattr(config, "eos_token_id", None)
    if eos is None:
        return ()
    return (int(eos),) if isinstance(eos, int) else tuple(int(e) for e in eos)
