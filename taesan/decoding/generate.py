"""Decoding: greedy, sampling (temperature, top-k, top-p), beam search, with penalties, stop tokens and strings,
streaming and batched prompts of different lengths; a KV cache for GPT and the encoder-decoder.

Not a tokenizer: ids in, ids out (stop strings need a `decode` callback). Settings are checked in settings.py,
logits processors live in sampling.py, beam search in beam.py, the model side in runners.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from taesan.decoding.beam import beam_search
from taesan.decoding.runners import setup
from taesan.decoding.sampling import LogitsProcessor, processor_for
from taesan.decoding.settings import Settings, check
from taesan.errors import TaesanError

# ---- the public function -----------------------------------------------------------------------------------------


def generate(
    model,
    input_ids: torch.Tensor | Sequence[Sequence[int]],
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 20,
    min_new_tokens: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    stop_strings: str | Sequence[str] | None = None,
    decode: Callable[[list[int]], str] | None = None,
    num_return_sequences: int = 1,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    seed: int | torch.Generator | None = None,
    stream: bool = False,
    decoder_start_token_id: int | None = None,
    token_bytes: Sequence[bytes | None] | None = None,
) -> torch.Tensor | Iterator[torch.Tensor]:
    """Continue each prompt row; -> token ids (B · num_return_sequences, L).

    Decoder-only models return prompt + continuation (left-padded prompts stay left-padded); encoder-decoder
    models read `input_ids` as the source and return the target, starting with `decoder_start_token_id`
    (default: the model config's). Rows that stop early are filled with `pad_token_id`.
    attention_mask: (B, T) 1/0; padding must be on the left for a decoder-only model.
    eos_token_id: stop token(s); default the model config's eos_token_id (a GPT's end-of-text) if it names one,
    so a pretrained GPT ends its text there as `taesan generate` does; pass [] for no stop token.
    stop_strings: stop a row once `decode(new ids of the row)` contains one of them.
    seed: an int or a torch.Generator, for reproducible sampling.
    stream: return an iterator that yields each step's new tokens (B · num_return_sequences,) instead
    (greedy and sampling only).
    Beam search follows HuggingFace's (length_penalty divides a hypothesis' log-probability by its length
    ** length_penalty; early_stopping True, False or "never"), and returns its num_return_sequences best.
    token_bytes: each token id's bytes (None for special tokens), for a byte-level tokenizer: when sampling, a
    token that cannot continue a half-written UTF-8 character is never drawn (see sampling.Utf8Guard).
    """
    settings = check(
        model, input_ids, attention_mask, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
        do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        stop_strings=stop_strings, decode=decode, num_return_sequences=num_return_sequences, num_beams=num_beams,
        length_penalty=length_penalty, early_stopping=early_stopping, seed=seed,
        decoder_start_token_id=decoder_start_token_id, token_bytes=token_bytes,
    )
    if stream:
        if num_beams > 1:
            raise TaesanError("stream=True works with greedy decoding and sampling, not with beam search")
        return _decode_steps(model, settings)
    if num_beams > 1:
        return beam_search(model, settings)
    if not settings.stop_strings:
        return _decode_fast(model, settings)
    steps = _decode_steps(model, settings)
    while True:
        try:
            next(steps)
        except StopIteration as end:  # the loop returns the ids when it ends
            return end.value


@dataclass
class Prefilled:
    """Where both decoding loops start: the prompt has gone through the model once."""

    runner: Any  # runners.DecoderOnly / EncoderDecoder: chosen tokens -> next logits
    buffer: torch.Tensor  # (N, L0 + max_new) the ids so far, then room for the new ones
    valid: torch.Tensor | None  # (N, L0 + max_new) False at left padding, or None without padding
    prompt_length: int  # L0: columns of the buffer the prompt fills
    processors: LogitsProcessor
    logits: torch.Tensor  # (N, V) for the first new token
    eos: torch.Tensor | None  # the stop ids, or None without any


def _prefill(model, s: Settings) -> Prefilled:
    runner, buffer, valid, L0 = setup(model, s, s.num_return_sequences)
    procs = processor_for(s)
    logits = runner.prefill()
    procs.start(buffer[:, :L0], None if valid is None else valid[:, :L0], logits.shape[-1])
    eos = torch.tensor(s.eos, dtype=torch.long, device=buffer.device) if s.eos else None
    return Prefilled(runner, buffer, valid, L0, procs, logits, eos)


def _decode_steps(model, s: Settings) -> Iterator[torch.Tensor]:
    """Greedy or sampling, one yield per step: the new tokens (N,); returns the ids (N, L) when it ends."""
    with torch.inference_mode():
        p = _prefill(model, s)
        unfinished = torch.ones(p.buffer.shape[0], dtype=torch.bool, device=p.buffer.device)
    buffer, valid, L0, procs, logits, eos = p.buffer, p.valid, p.prompt_length, p.processors, p.logits, p.eos
    check_stops = bool(s.eos or s.stop_strings)
    cur = L0
    for new in range(s.max_new_tokens):
        with torch.inference_mode():
            scores = procs(logits.float(), buffer[:, :cur], None if valid is None else valid[:, :cur], new)
            if s.do_sample:
                tokens = torch.multinomial(scores.softmax(-1), 1, generator=s.generator).squeeze(1)  # (N,)
            else:
                tokens = scores.argmax(-1)  # (N,)
            if check_stops:
                tokens = torch.where(unfinished, tokens, s.pad_token_id)
            buffer[:, cur] = tokens
            cur += 1
            procs.update(tokens)
            if eos is not None:
                unfinished &= ~torch.isin(tokens, eos)
            if s.stop_strings:
                _stop_strings(unfinished, buffer[:, L0:cur], s.stop_strings, s.decode)
            done = check_stops and not bool(unfinished.any())
        yield tokens.clone()
        if done or new + 1 == s.max_new_tokens:
            return buffer[:, :cur]
        with torch.inference_mode():
            logits = p.runner.step(tokens[:, None])
    return buffer[:, :cur]


STOP_CHECK_EVERY = 8  # steps between "has every row met a stop token?" checks in the lean loop


def _decode_fast(model, s: dict) -> torch.Tensor:
    """Greedy or sampling without streaming or stop strings: the lean loop behind `generate` -> ids (N, L).

    The same tokens as `_decode_steps`, with less work per step: each step's choice is written straight into
    its column of the output (argmax/multinomial `out=`), which is also the next step's input, and stop tokens
    are looked for every STOP_CHECK_EVERY steps instead of every step. Rows that stopped meanwhile decode on
    (rows never see each other); their tokens after the stop are overwritten with padding at the end.
    """
    with torch.inference_mode():
        p = _prefill(model, s)
        runner, buffer, valid, L0, procs, logits, eos = p.runner, p.buffer, p.valid, p.prompt_length, p.processors, p.logits, p.eos
        ended = torch.zeros(buffer.shape[0], dtype=torch.bool, device=buffer.device)
        sample, generator, max_new, active = s.do_sample, s.generator, s.max_new_tokens, procs.active
        columns = buffer[:, L0:].split(1, dim=1)  # (N, 1) views, one per new position
        checked = L0
        for cur in range(L0, L0 + max_new):
            scores = logits.float()
            if active:
                scores = procs(scores, buffer[:, :cur], None if valid is None else valid[:, :cur], cur - L0)
            if sample:
                torch.multinomial(scores.softmax(-1), 1, generator=generator, out=columns[cur - L0])
            else:
                torch.argmax(scores, -1, keepdim=True, out=columns[cur - L0])
            if procs.follows_tokens:
                procs.update(buffer[:, cur])
            last = cur + 1 == L0 + max_new
            if eos is not None and (last or cur + 1 - checked >= STOP_CHECK_EVERY):
                ended |= torch.isin(buffer[:, checked : cur + 1], eos).any(1)
                checked = cur + 1
                if bool(ended.all()):
                    break
            if last:
                break
            logits = runner.step(columns[cur - L0])
        return _pad_after_stop(buffer[:, : cur + 1], L0, eos, s.pad_token_id)


def _pad_after_stop(ids: torch.Tensor, L0: int, eos: torch.Tensor | None, pad: int) -> torch.Tensor:
    """Pad each row after its first stop token and cut the columns no row needs -> a new (N, L) tensor.

    [[7, 2, 9, 9], [7, 5, 2, 9]] with L0=1, eos [2], pad 0 -> [[7, 2, 0], [7, 5, 2]]
    """
    if eos is None:
        return ids.clone()
    new = ids[:, L0:]  # (N, n)
    hit = torch.isin(new, eos)
    after = (hit.long().cumsum(1) - hit.long()) > 0  # strictly after the row's first stop token
    out = ids.clone()
    out[:, L0:] = new.masked_fill(after, pad)
    if bool(hit.any(1).all()):  # every row stopped: keep up to the last row's stop
        out = out[:, : L0 + int(hit.long().argmax(1).max()) + 1]
    return out


def _stop_strings(unfinished: torch.Tensor, new_ids: torch.Tensor, stops: Sequence[str], decode) -> None:
    """Mark rows finished (in place) whose generated text contains a stop string."""
    for row in unfinished.nonzero().flatten().tolist():
        text = decode(new_ids[row].tolist())
        if any(stop in text for stop in stops):
            unfinished[row] = False
