"""Text in, text out, in one place: a prompt encoded as the checkpoint was trained, decoded by taesan.generate
with its stop ids, read back as text (whole, or streamed piece by piece with a half-written character held back)
with the reason it ended: "stop" (an end token or a stop string) or "length" (max_new_tokens).

Not the decoding (taesan.decoding: ids in, ids out) and not a printer: the CLI, the server and the demo show it.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import torch

from taesan.decoding import generate
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.tasks.generation import readable

STOP, LENGTH = "stop", "length"  # finish reasons, as HF/OpenAI-style APIs name them


@dataclass
class Prompt:
    """A prompt as the model reads it. A pretrained GPT reads it after its document separator; a backward LM reads
    it reversed; an encoder-decoder reads it as the source with its special tokens; a fine-tuned generation or
    translation task encodes it as it did in training."""

    ids: list[int]
    head: str  # what a person sees before the new text: the prompt (and a generation task's separator), or ""
    forward_ids: list[int] | None = None  # a backward LM's prompt in reading order: the new text goes before it
    strip: str = ""  # what the model writes before its answer (a generation task's separator): not shown


@dataclass
class Completion:
    text: str  # the new text
    finish_reason: str  # STOP or LENGTH
    shown: str  # the whole text as a person reads it (`taesan generate` prints this)
    tokens: int  # new tokens, an end token included


def sampling(temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             greedy: bool = False) -> dict[str, Any]:
    """The CLI's and the page's rule: setting any sampling option samples; none (or greedy) is greedy decoding.

    sampling(top_p=0.9) -> {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 0.9}
    """
    sample = not greedy and any(v is not None for v in (temperature, top_k, top_p))
    return {"do_sample": sample, "temperature": temperature or 1.0, "top_k": top_k or 0,
            "top_p": top_p if top_p is not None else 1.0}


def encode_prompt(bundle: Bundle, text: str, max_new_tokens: int, sliding_window: bool = False) -> Prompt:
    """`text` -> the Prompt the checkpoint reads, or a one-line error (no tokens, too long for the model).

    sliding_window: a GPT may write past its positions, each new token reading the last n_positions (see
    SlidingWindow); without it, prompt + max_new_tokens must fit."""
    check_writes(bundle)
    task, tok, seq2seq = bundle.task, bundle.need_tokenizer(), bundle.seq2seq
    if task is not None and (task.name == "translation" or task.name == "generation" and task.config.seq2seq):
        prompt = Prompt(task.source_ids(text), "")  # the encoder reads it; the decoder writes the answer alone
    elif task is not None and task.name == "generation":
        sep = task.config.separator
        prompt = Prompt(task.prompt_ids(text), text + sep if text and sep else text, strip=sep)
    elif seq2seq:
        prompt = Prompt(tok.encode(text, add_special_tokens=True).ids, "")
    elif bundle.objective == "backward":  # it reads right to left; the prompt follows a space in its documents
        forward = tok.encode(" " + text, add_special_tokens=False).ids
        prompt = Prompt(_after_separator(bundle, forward[::-1]), "", forward_ids=forward)
    else:
        prompt = Prompt(_after_separator(bundle, tok.encode(text, add_special_tokens=False).ids), text)
    if not prompt.ids:
        raise TaesanError("the prompt encodes to no tokens")
    limit = getattr(bundle.model.config, "n_positions", None)
    n = len(prompt.ids)
    if limit is not None and not seq2seq and n + max_new_tokens > limit and not (sliding_window and slides(bundle)):
        raise TaesanError(f"the prompt is {n} tokens; with max_new_tokens {max_new_tokens} that exceeds the model's "
                          f"{limit} positions (n_positions={limit})")
    if limit is not None and seq2seq and (n > limit or max_new_tokens >= limit):
        raise TaesanError(f"the source is {n} tokens and max_new_tokens {max_new_tokens}; the model has {limit} "
                          f"positions (n_positions={limit}) for each")
    return prompt


def slides(bundle: Bundle) -> bool:
    """The model can decode in a sliding window: a GPT (decode_step on a KV cache), not an encoder-decoder."""
    return not bundle.seq2seq and hasattr(bundle.model, "decode_step") and hasattr(bundle.model, "new_cache")


class SlidingWindow:
    """A GPT that writes past its n_positions as nanoGPT's `sample` does: each new token is predicted from the last
    n_positions tokens only (a longer prompt is read from its last n_positions too).

    Within the positions it decodes as the model does, through its KV cache; once the text is longer, the window
    moves by one token per step and each step runs the window through the model again (learned positions shift,
    so no cache can be kept): slower, but exactly what the model was trained to read. Rows without padding only.
    `taesan.generate` takes it in the model's place.
    """

    def __init__(self, model) -> None:
        self.model, self.limit = model, model.config.n_positions
        self.config = SimpleNamespace(**{**dataclasses.asdict(model.config), "n_positions": None})

    def new_cache(self) -> "_WindowCache":
        return _WindowCache(self.model.new_cache())

    def __call__(self, input_ids: torch.Tensor, attention_mask=None, position_ids=None, cache=None) -> torch.Tensor:
        """The prompt (N, T) -> logits (N, min(T, limit), V) of its last window; the cache keeps every id."""
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            raise TaesanError("a sliding window decodes rows without padding")
        cache.ids = input_ids
        return self.model(input_ids[:, -self.limit:], cache=cache.inner)

    def decode_step(self, tokens: torch.Tensor, cache: "_WindowCache", attention_mask=None, position_ids=None) -> torch.Tensor:
        """tokens (N, 1) just chosen -> fp32 logits (N, V) from the last n_positions ids."""
        cache.ids = torch.cat([cache.ids, tokens], dim=1)  # (N, L + 1)
        if cache.ids.shape[1] <= self.limit:
            return self.model.decode_step(tokens, cache.inner)
        return self.model(cache.ids[:, -self.limit:])[:, -1].float()


class _WindowCache:
    """The model's KV cache (used while the text fits its positions) and every id so far (N, L)."""

    def __init__(self, inner) -> None:
        self.inner, self.ids = inner, None

    def reserve(self, n: int) -> None:
        reserve = getattr(self.inner, "reserve", None)
        if reserve is not None:
            reserve(n)

    def reorder(self, index: torch.Tensor) -> None:
        self.inner.reorder(index)
        self.ids = self.ids.index_select(0, index)


def _writer(bundle: Bundle, prompt: Prompt, max_new_tokens: int, sliding_window: bool):
    """What taesan.generate decodes with: the model, or the model in a SlidingWindow when the text outgrows it."""
    limit = getattr(bundle.model.config, "n_positions", None)
    if sliding_window and slides(bundle) and limit is not None and len(prompt.ids) + max_new_tokens > limit:
        return SlidingWindow(bundle.model)
    return bundle.model


def _after_separator(bundle: Bundle, ids: list[int]) -> list[int]:
    """A pretrained GPT saw each document after the separator: so does its prompt."""
    return ids if bundle.separator_id is None or bundle.task is not None else [bundle.separator_id, *ids]


def check_writes(bundle: Bundle) -> None:
    """A one-line error unless the checkpoint writes text (a GPT, an encoder-decoder, a generation task)."""
    if "generate" not in bundle.actions:
        inner = type(getattr(bundle.model, "inner", bundle.model)).__name__  # a soft prompt wraps its model
        raise TaesanError(f"{bundle.directory}: a {inner} does not write text; generate needs a GPT or an "
                          f"encoder-decoder model")


def decoder(bundle: Bundle, prompt: Prompt) -> Callable[[list[int]], str]:
    """New ids -> their text: what they add after the prompt's ids (a WordPiece "##" piece joins the prompt's last
    word, a word-initial one brings its space), end tokens dropped, the separator a generation task writes first
    left out. An encoder-decoder's output and a backward LM's text (it goes before the prompt) read alone."""
    stops, tok, strip = set(bundle.stop_ids), bundle.tokenizer, prompt.strip
    alone = bundle.seq2seq or prompt.forward_ids is not None
    before = [] if alone else readable(tok, [i for i in prompt.ids if i not in stops])

    def decode(ids: list[int]) -> str:
        text = tok.decode_after(before, readable(tok, [i for i in ids if i not in stops]))
        return text[len(strip):] if strip and text.startswith(strip) else text

    return decode


def _generate_options(bundle: Bundle, prompt: Prompt, options: dict[str, Any]) -> dict[str, Any]:
    """The caller's taesan.generate options plus the checkpoint's: stop ids, the decode callback stop strings
    use, and the byte table that keeps sampled characters whole."""
    out = {"eos_token_id": bundle.stop_ids, "token_bytes": bundle.token_bytes, **options}
    out["decode"] = decoder(bundle, prompt)
    if bundle.task is not None and bundle.task.name == "generation":
        out.setdefault("pad_token_id", bundle.task.pad_id)
    return out


def complete(bundle: Bundle, text: str, sliding_window: bool = False, **options: Any) -> list[Completion]:
    """Continue `text`; -> one Completion per returned sequence (num_return_sequences, beams). `options` are
    taesan.generate's (max_new_tokens default 50, do_sample, top_p, num_beams, stop_strings, seed, ...).
    sliding_window: a GPT writes past its positions (see SlidingWindow) instead of refusing."""
    options.setdefault("max_new_tokens", 50)
    prompt = encode_prompt(bundle, text, options["max_new_tokens"], sliding_window)
    settings = _generate_options(bundle, prompt, options)
    model = _writer(bundle, prompt, options["max_new_tokens"], sliding_window)
    rows = generate(model, torch.tensor([prompt.ids], device=_device(bundle)), **settings)
    start = 1 if bundle.seq2seq else len(prompt.ids)  # an encoder-decoder's output begins with its start token
    return [_completion(bundle, prompt, row[start:], options) for row in rows.tolist()]


def _completion(bundle: Bundle, prompt: Prompt, new: list[int], options: dict[str, Any]) -> Completion:
    stops = set(bundle.stop_ids)
    end = next((k for k, i in enumerate(new) if i in stops), None)
    new = new if end is None else new[: end + 1]  # what follows the end token is padding
    decode = decoder(bundle, prompt)
    text = decode(new[::-1] if prompt.forward_ids is not None else new)
    if prompt.forward_ids is not None:  # the new tokens go before the prompt, read back in order
        kept = readable(bundle.tokenizer, [i for i in new[::-1] if i not in stops])
        shown = bundle.tokenizer.decode(kept + prompt.forward_ids).strip()
    else:
        shown = prompt.head + text
    return Completion(text, _finish_reason(end is not None, text, options, len(new)), shown, len(new))


def _finish_reason(hit_end: bool, text: str, options: dict[str, Any], n_new: int) -> str:
    stop_strings = options.get("stop_strings") or ()
    stop_strings = [stop_strings] if isinstance(stop_strings, str) else stop_strings
    if hit_end or any(s in text for s in stop_strings) or n_new < options["max_new_tokens"]:
        return STOP
    return LENGTH


def stream(bundle: Bundle, text: str, deadline: float | None = None, sliding_window: bool = False,
           **options: Any) -> "TextStream":
    """Continue `text` one token at a time (greedy or sampling, one sequence): iterate the TextStream for the new
    text piece by piece; its finish_reason is set once it ends. Every setting is checked here, before the first
    piece. `deadline` (time.monotonic()) stops it with TimeoutError. sliding_window: as in `complete`."""
    options.setdefault("max_new_tokens", 50)
    prompt = encode_prompt(bundle, text, options["max_new_tokens"], sliding_window)
    if prompt.forward_ids is not None:
        raise TaesanError("a backward LM writes the text before the prompt: it cannot stream to the right of it")
    settings = _generate_options(bundle, prompt, options)
    model = _writer(bundle, prompt, options["max_new_tokens"], sliding_window)
    steps = generate(model, torch.tensor([prompt.ids], device=_device(bundle)), stream=True, **settings)
    return TextStream(steps, settings["decode"], prompt, set(bundle.stop_ids), options, deadline)


class TextStream:
    """The new text as it is decoded: iterate for pieces (a byte-level token ending inside a character waits for
    the rest, and so does a first piece that may still grow into the separator a generation task writes first).
    After the last piece, `finish_reason` and `completion` say how it ended."""

    def __init__(self, steps, decode, prompt: Prompt, stops: set[int], options: dict[str, Any],
                 deadline: float | None) -> None:
        self.head = prompt.head
        self.finish_reason: str | None = None
        self.completion: Completion | None = None
        self._steps, self._decode, self._strip, self._stops = steps, decode, prompt.strip, stops
        self._options, self._deadline = options, deadline
        self._pieces = self._run()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop decoding (the reader went away)."""
        self._pieces.close()
        self._steps.close()

    def _run(self) -> Iterator[str]:
        new: list[int] = []
        shown = 0
        for tokens in self._steps:
            new.append(int(tokens[0]))
            text = self._decode(new)
            if self._strip and shown == 0 and self._strip.startswith(text):
                continue
            if not text.endswith("\ufffd") and len(text) > shown:
                yield text[shown:]
                shown = len(text)
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise TimeoutError("generation ran out of time")
        text = self._decode(new)
        if len(text) > shown:
            yield text[shown:]
        hit_end = bool(new) and new[-1] in self._stops
        self.finish_reason = _finish_reason(hit_end, text, self._options, len(new))
        self.completion = Completion(text, self.finish_reason, self.head + text, len(new))


def _device(bundle: Bundle) -> torch.device:
    return next(bundle.model.parameters()).device
