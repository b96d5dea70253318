"""Decoding: greedy, sampling (temperature, top-k, top-p), beam search, with penalties, stop tokens and strings,
streaming and batched prompts of different lengths; a KV cache for GPT and the encoder-decoder.

Not a tokenizer: ids in, ids out (stop strings need a `decode` callback). Logits processors live in taesan.sampling.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch

from taesan.decoding.beam import beam_search
from taesan.decoding.runners import is_encoder_decoder, setup
from taesan.decoding.sampling import processor_for
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
) -> torch.Tensor | Iterator[torch.Tensor]:
    """Continue each prompt row; -> token ids (B · num_return_sequences, L).

    Decoder-only models return prompt + continuation (left-padded prompts stay left-padded); encoder-decoder
    models read `input_ids` as the source and return the target, starting with `decoder_start_token_id`
    (default: the model config's). Rows that stop early are filled with `pad_token_id`.
    attention_mask: (B, T) 1/0; padding must be on the left for a decoder-only model.
    eos_token_id: stop token(s); default the model config's eos_token_id if it has one (pass [] for none).
    stop_strings: stop a row once `decode(new ids of the row)` contains one of them.
    seed: an int or a torch.Generator, for reproducible sampling.
    stream: return an iterator that yields each step's new tokens (B · num_return_sequences,) instead
    (greedy and sampling only).
    Beam search follows HuggingFace's (length_penalty divides a hypothesis' log-probability by its length
    ** length_penalty; early_stopping True, False or "never"), and returns its num_return_sequences best.
    """
    settings = _check(locals())
    steps = _decode_steps(model, settings)
    if stream:
        if num_beams > 1:
            raise TaesanError("stream=True works with greedy decoding and sampling, not with beam search")
        return steps
    if num_beams > 1:
        return beam_search(model, settings)
    if not settings["stops"]:
        return _decode_fast(model, settings)
    for _ in steps:
        pass
    return settings["result"]


def _check(s: dict) -> dict:
    """Validate the settings (one-line TaesanErrors) and normalise them: ids as a tensor, stop tokens as a list."""
    s = dict(s)
    model = s["model"]
    ids = s["input_ids"]
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor([list(r) for r in ids] if len(ids) and not isinstance(ids[0], int) else [list(ids)], dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[1] == 0 or ids.dtype not in (torch.long, torch.int, torch.int32):
        raise TaesanError(f"input_ids must be a non-empty (batch, length) integer tensor, got shape {tuple(ids.shape)} {ids.dtype}")
    s["input_ids"] = ids.long()
    mask = s["attention_mask"]
    if mask is not None:
        if tuple(mask.shape) != tuple(ids.shape):
            raise TaesanError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {tuple(ids.shape)}")
        if not is_encoder_decoder(model) and not bool(mask[:, -1].bool().all()):
            raise TaesanError("attention_mask: a decoder-only model needs left padding (every row's last token real)")
    config = getattr(model, "config", None)
    for name, low in (("max_new_tokens", 1), ("min_new_tokens", 0), ("num_beams", 1), ("num_return_sequences", 1), ("top_k", 0), ("no_repeat_ngram_size", 0)):
        if not isinstance(s[name], int) or s[name] < low:
            raise TaesanError(f"{name} must be an integer >= {low}, got {s[name]!r}")
    if s["min_new_tokens"] > s["max_new_tokens"]:
        raise TaesanError(f"min_new_tokens {s['min_new_tokens']} is more than max_new_tokens {s['max_new_tokens']}")
    if not math.isfinite(s["length_penalty"]):
        raise TaesanError(f"length_penalty must be a finite number, got {s['length_penalty']!r}")
    limit = getattr(config, "n_positions", None)
    if not is_encoder_decoder(model) and limit is not None and ids.shape[1] + s["max_new_tokens"] > limit:
        raise TaesanError(f"prompt length {ids.shape[1]} + max_new_tokens {s['max_new_tokens']} exceeds the model's n_positions={limit}")
    if not s["temperature"] > 0:
        raise TaesanError(f"temperature must be > 0, got {s['temperature']!r}")
    if not 0 < s["top_p"] <= 1:
        raise TaesanError(f"top_p must be in (0, 1], got {s['top_p']!r}")
    if not s["repetition_penalty"] > 0:
        raise TaesanError(f"repetition_penalty must be > 0, got {s['repetition_penalty']!r}")
    if s["early_stopping"] not in (True, False, "never"):
        raise TaesanError(f"early_stopping must be True, False or 'never', got {s['early_stopping']!r}")
    beams, ret = s["num_beams"], s["num_return_sequences"]
    if beams > 1 and ret > beams:
        raise TaesanError(f"num_return_sequences={ret} is more than num_beams={beams}")
    if beams == 1 and ret > 1 and not s["do_sample"]:
        raise TaesanError("num_return_sequences > 1 needs do_sample=True or num_beams > 1 (greedy would repeat one answer)")
    if beams > 1 and s["do_sample"]:
        raise TaesanError("beam sampling (do_sample with num_beams > 1) is not supported; use one or the other")
    if beams > 1 and s["stop_strings"]:
        raise TaesanError("stop_strings work with greedy decoding and sampling, not with beam search")
    eos = s["eos_token_id"]
    if eos is None:
        eos = getattr(config, "eos_token_id", None)
    s["eos"] = [] if eos is None else [eos] if isinstance(eos, int) else [int(e) for e in eos]
    if s["pad_token_id"] is None:
        pad = getattr(config, "pad_token_id", None) if is_encoder_decoder(model) else None
        s["pad_token_id"] = pad if pad is not None else s["eos"][0] if s["eos"] else 0
    stops = s["stop_strings"]
    s["stops"] = [stops] if isinstance(stops, str) else list(stops or [])
    if any(not isinstance(t, str) or not t for t in s["stops"]):
        raise TaesanError("stop_strings must be non-empty strings (an empty one would stop before the first token)")
    if s["stops"] and s["decode"] is None:
        raise TaesanError("stop_strings need a decode callback (ids -> text)")
    if is_encoder_decoder(model):
        start = s["decoder_start_token_id"]
        s["start_id"] = start if start is not None else getattr(config, "decoder_start_token_id", None)
        if s["start_id"] is None:
            raise TaesanError("an encoder-decoder model needs decoder_start_token_id")
    seed = s["seed"]
    if isinstance(seed, int):
        seed = torch.Generator(device=ids.device).manual_seed(seed)
    s["generator"] = seed
    return s


def _prefill(model, s: dict) -> tuple:
    """What both decoding loops start from: -> (runner, buffer, valid, L0, processors, first logits, stop ids or None)."""
    runner, buffer, valid, L0 = setup(model, s, s["num_return_sequences"])
    procs = processor_for(s)
    logits = runner.prefill()
    procs.start(buffer[:, :L0], None if valid is None else valid[:, :L0], logits.shape[-1])
    eos = torch.tensor(s["eos"], dtype=torch.long, device=buffer.device) if s["eos"] else None
    return runner, buffer, valid, L0, procs, logits, eos


def _decode_steps(model, s: dict) -> Iterator[torch.Tensor]:
    """Greedy or sampling, one yield per step: the new tokens (N,); s["result"] holds the ids when it ends."""
    with torch.inference_mode():
        runner, buffer, valid, L0, procs, logits, eos = _prefill(model, s)
        unfinished = torch.ones(buffer.shape[0], dtype=torch.bool, device=buffer.device)
    check_stops = bool(s["eos"] or s["stops"])
    sample, generator, pad, max_new = s["do_sample"], s["generator"], s["pad_token_id"], s["max_new_tokens"]
    cur = L0
    for new in range(max_new):
        with torch.inference_mode():
            scores = procs(logits.float(), buffer[:, :cur], None if valid is None else valid[:, :cur], new)
            if sample:
                tokens = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)  # (N,)
            else:
                tokens = scores.argmax(-1)  # (N,)
            if check_stops:
                tokens = torch.where(unfinished, tokens, pad)
            buffer[:, cur] = tokens
            cur += 1
            procs.update(tokens)
            if eos is not None:
                unfinished &= ~torch.isin(tokens, eos)
            if s["stops"]:
                _stop_strings(unfinished, buffer[:, L0:cur], s["stops"], s["decode"])
            done = check_stops and not bool(unfinished.any())
            s["result"] = buffer[:, :cur]
        yield tokens.clone()
        if done or new + 1 == max_new:
            return
        with torch.inference_mode():
            logits = runner.step(tokens[:, None])


STOP_CHECK_EVERY = 8  # steps between "has every row met a stop token?" checks in the lean loop


def _decode_fast(model, s: dict) -> torch.Tensor:
    """Greedy or sampling without streaming or stop strings: the lean loop behind `generate` -> ids (N, L).

    The same tokens as `_decode_steps`, with less work per step: each step's choice is written straight into
    its column of the output (argmax/multinomial `out=`), which is also the next step's input, and stop tokens
    are looked for every STOP_CHECK_EVERY steps instead of every step. Rows that stopped meanwhile decode on
    (rows never see each other); their tokens after the stop are overwritten with padding at the end.
    """
    with torch.inference_mode():
        runner, buffer, valid, L0, procs, logits, eos = _prefill(model, s)
        ended = torch.zeros(buffer.shape[0], dtype=torch.bool, device=buffer.device)
        sample, generator, max_new, active = s["do_sample"], s["generator"], s["max_new_tokens"], procs.active
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
            if procs.seen is not None:
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
        return _pad_after_stop(buffer[:, : cur + 1], L0, eos, s["pad_token_id"])


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


def _stop_strings(unfinished: torch.Tensor, new_ids: torch.Tensor, stops: list[str], decode) -> None:
    """Mark rows finished (in place) whose generated text contains a stop string."""
    for row in unfinished.nonzero().flatten().tolist():
        text = decode(new_ids[row].tolist())
        if any(stop in text for stop in stops):
            unfinished[row] = False
