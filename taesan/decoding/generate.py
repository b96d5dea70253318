"""Decoding: greedy, sampling (temperature, top-k, top-p), beam search, with penalties, stop tokens and strings,
streaming and batched prompts of different lengths; a KV cache for GPT and the encoder-decoder.

Not a tokenizer: ids in, ids out (stop strings need a `decode` callback). Logits processors live in taesan.sampling.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch

from taesan.decoding.sampling import LogitsProcessor
from taesan.errors import TaesanError

BIG_NEG = -1.0e9  # "impossible" in beam scores; finite, as HF's, so sums of scores stay ordered


# ---- the model side: prefill once, then one token per step -----------------------------------------------------


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
        fast = getattr(model, "decode_step", None)  # a model's lean one-token path, when it has one
        self.weights = model.step_weights() if fast is not None else None
        self.fast = fast

    def prefill(self) -> torch.Tensor:
        """The whole prompt through the model -> next-token logits (B, V)."""
        mask = self.mask[:, : self.length] if self.padded else None
        logits = self.model(self.ids, attention_mask=mask, position_ids=self.positions, cache=self.cache)
        if self.padded:
            self.positions = self.positions[:, -1:] + 1  # (B, 1): the next token's position
        return logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1) just chosen -> logits (B, V) for the token after them."""
        self.length += 1
        fast = self.fast
        if not self.padded:
            return fast(tokens, self.cache, weights=self.weights) if fast else self.model(tokens, cache=self.cache)[:, -1]
        mask, positions = self.mask[:, : self.length], self.positions
        self.positions = positions + 1
        if fast:
            return fast(tokens, self.cache, mask, positions, self.weights)
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
        self.memory = None  # now in the cache as keys/values
        return logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model.decode(tokens, None, self.src_mask, cache=self.cache)
        return logits[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)
        if self.src_mask is not None:
            self.src_mask = self.src_mask.index_select(0, index)


def is_encoder_decoder(model) -> bool:
    return hasattr(model, "encode") and hasattr(model, "decode")


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
        return _beam_search(model, settings)
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


def _setup(model, s: dict, copies: int):
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


def _processor(s: dict) -> LogitsProcessor:
    return LogitsProcessor(
        s["repetition_penalty"], s["no_repeat_ngram_size"], s["min_new_tokens"], s["eos"],
        s["do_sample"], s["temperature"], s["top_k"], s["top_p"],
    )


def _prefill(model, s: dict) -> tuple:
    """What both decoding loops start from: -> (runner, buffer, valid, L0, processors, first logits, stop ids or None)."""
    runner, buffer, valid, L0 = _setup(model, s, s["num_return_sequences"])
    procs = _processor(s)
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


# ---- beam search -------------------------------------------------------------------------------------------------


def _beam_search(model, s: dict) -> torch.Tensor:
    """Beam search as HuggingFace's transformers does it (same candidates, scores and stopping rules).

    Each step every live beam proposes its tokens; the best 2·K (more with several stop tokens) of the B·K·V
    candidates are kept; those ending in a stop token (or at max length) compete, length-normalised, for the
    K finished slots; the best K others live on. Scores are sums of log-probabilities.
    """
    with torch.inference_mode():
        K, lp, early = s["num_beams"], s["length_penalty"], s["early_stopping"]
        runner, flat, valid, L0 = _setup(model, s, K)
        B, L = flat.shape[0] // K, flat.shape[1]
        procs = _processor(s)
        logits = runner.prefill()
        V = logits.shape[-1]
        procs.start(flat[:, :L0], None if valid is None else valid[:, :L0], V)
        eos = torch.tensor(s["eos"], dtype=torch.long, device=flat.device)
        n_cand = max(2, 1 + len(s["eos"])) * K
        first_k = torch.arange(n_cand, device=flat.device) < K  # only the K best candidates may finish
        offsets = torch.arange(B, device=flat.device)[:, None] * K  # (B, 1)

        running = flat.view(B, K, L)
        scores = torch.zeros(B, K, device=flat.device)
        scores[:, 1:] = BIG_NEG  # at first all beams are equal: only beam 0 may propose
        done = running.clone()
        done_scores = torch.full((B, K), BIG_NEG, device=flat.device)
        done_flag = torch.zeros(B, K, dtype=torch.bool, device=flat.device)
        done_len = torch.zeros(B, K, dtype=torch.long, device=flat.device)
        improvable = torch.ones(B, 1, dtype=torch.bool, device=flat.device)

        for cur in range(L0, L):
            flat_running = running.reshape(B * K, L)
            log_probs = torch.log_softmax(logits.float(), -1)
            log_probs = procs(log_probs, flat_running[:, :cur], None if valid is None else valid[:, :cur], cur - L0)
            total = (log_probs.view(B, K, V) + scores[:, :, None]).view(B, K * V)
            cand_scores, cand = torch.topk(total, n_cand)  # (B, n_cand)
            beam, token = cand // V, cand % V
            cand_seqs = _gather(running, beam)  # (B, n_cand, L)
            cand_seqs[:, :, cur] = token
            hits = torch.isin(token, eos) | (cur + 1 >= L)  # (B, n_cand): the candidate ends here

            # the K best unfinished candidates live on
            live_scores = cand_scores + hits.float() * BIG_NEG
            keep = torch.topk(live_scores, K).indices  # (B, K)
            running, scores, source = _gather(cand_seqs, keep), _gather(live_scores, keep), _gather(beam, keep)

            # finished candidates compete for the K finished slots, length-normalised
            finished = hits & first_k
            normed = cand_scores / ((cur + 1 - L0) ** lp)
            normed += (done_flag.all(-1, keepdim=True) & (early is True)).float() * BIG_NEG
            normed += (~improvable).float() * BIG_NEG
            normed += (~finished) * BIG_NEG
            all_scores = torch.cat([done_scores, normed], 1)
            best = torch.topk(all_scores, K).indices
            done = _gather(torch.cat([done, cand_seqs], 1), best)
            done_scores = _gather(all_scores, best)
            done_flag = _gather(torch.cat([done_flag, finished], 1), best)
            new_len = torch.full_like(token, cur + 1 - L0)
            done_len = _gather(torch.cat([done_len, new_len], 1), best)

            index = (source + offsets).view(-1)  # (B·K,) the row each surviving beam continues
            improvable = _still_improvable(improvable, scores, done_scores, done_flag, cur + 1 - L0, L - L0, early, lp)
            if not (bool(improvable.any()) and not (bool(done_flag.all()) and early is True) and not bool(hits.all())):
                break
            procs.reorder(index)
            runner.reorder(index)
            next_tokens = running[:, :, cur].reshape(B * K)
            procs.update(next_tokens)
            logits = runner.step(next_tokens[:, None])

        ret = s["num_return_sequences"]
        out = done[:, :ret].reshape(B * ret, L)
        return out[:, : L0 + int(done_len[:, :ret].max())].clone()


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of the beam dimension: t (B, n, ...) at index (B, m) -> (B, m, ...)."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)


def _still_improvable(improvable, scores, done_scores, done_flag, length: int, max_length: int, early, lp: float) -> torch.Tensor:
    """(B, 1): could the best live beam still beat the worst finished hypothesis? (HF's heuristic.)

    early_stopping=False assumes the live beam stops now; "never" with lp > 0 assumes it grows to max length.
    """
    best_length = max_length if early == "never" and lp > 0 else length
    best_possible = scores[:, :1] / (best_length**lp)
    worst_done = torch.where(done_flag, done_scores.min(1, keepdim=True).values, BIG_NEG)
    return improvable & (best_possible > worst_done).any(-1, keepdim=True)
