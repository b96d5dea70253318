"""`taesan generate`: continue a prompt with a trained model, streaming the text to the terminal as it is decoded.

Not the decoding itself (taesan.pipeline.text: the prompt as trained, stops, finish_reason); this module prints:
the text on stdout, how it ended (finish_reason) on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taesan.cli import add_threads
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.precision import use_precision
from taesan.pipeline.text import STOP, check_writes, complete, sampling, stream
from taesan.textfiles import lines

HELP = "continue a prompt with a language model (greedy, sampling, beam search), streaming the text"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint directory (taesan or HuggingFace) with tokenizer.json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help='the text to continue, e.g. "티끌 모아"')
    src.add_argument("--prompt-file", metavar="FILE", help="one prompt per line")
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--min-new-tokens", type=int, default=0)
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (setting any sampling option samples)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample among the most likely tokens holding probability p")
    p.add_argument("--greedy", action="store_true", help="always the most likely token (the default without sampling options)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages tokens already in the text (e.g. 1.2)")
    p.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N", help="never repeat an n-gram of this size")
    p.add_argument("--beams", type=int, default=1, help="beam search with this many beams")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer, < 0 shorter outputs")
    p.add_argument("--num-return", type=int, default=1, help="outputs per prompt (sampling or beams)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop once this text appears (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="for reproducible sampling")
    p.add_argument("--tokenizer", default=None, metavar="FILE", help="default: DIR/tokenizer.json")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the CPU multiplies it natively (AMX, AVX512-BF16) or on CUDA, else fp32")
    add_threads(p)


def _prompts(args) -> list[str]:
    if args.prompt is not None:
        return [args.prompt]
    path = Path(args.prompt_file)
    if not path.is_file():
        raise TaesanError(f"{path}: {'a directory, not a prompt file' if path.is_dir() else 'prompt file not found'}")
    prompts = [line.strip() for _, line in lines(path) if line.strip()]  # a BOM dropped, as every reader drops it
    if not prompts:
        raise TaesanError(f"{path}: no prompt in the file")
    return prompts


def run(args: argparse.Namespace) -> int:
    bundle = Bundle.load(args.model, tokenizer=args.tokenizer)
    bundle.need_tokenizer()
    check_writes(bundle)
    precision = use_precision(bundle.model, args.precision)
    unsaid = [precision.note]  # said once the first prompt's settings are checked (an error stays one line)
    options = dict(
        max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
        **sampling(args.temperature, args.top_k, args.top_p, greedy=args.greedy),
        repetition_penalty=args.repetition_penalty, no_repeat_ngram_size=args.no_repeat_ngram, num_beams=args.beams,
        length_penalty=args.length_penalty, num_return_sequences=args.num_return, stop_strings=args.stop or None,
        seed=args.seed,
    )
    numbered = args.beams > 1 or args.num_return > 1
    whole = numbered or bundle.objective == "backward"  # a backward LM's new text goes before the prompt
    for n, prompt in enumerate(_prompts(args), start=1):
        with precision.context():
            _one(bundle, prompt, n, whole, numbered, options, unsaid)
    return 0


def _one(bundle: Bundle, prompt: str, n: int, whole: bool, numbered: bool, options: dict, unsaid: list[str]) -> None:
    """Continue one prompt and print it (streamed unless whole); a GPT writes past its positions in a sliding window."""
    try:
        if whole:
            completions = complete(bundle, prompt, sliding_window=True, **options)
        else:
            pieces = stream(bundle, prompt, sliding_window=True, **options)  # settings checked before anything prints
    except TaesanError as e:
        raise TaesanError(f"prompt {n}: {e}") from None
    while unsaid:
        print(unsaid.pop(), file=sys.stderr)
    if whole:
        for k, c in enumerate(completions, start=1):
            print(f"[{k}] {c.shown}" if numbered else c.shown)
            _say_why(c.finish_reason, c.text, f"[{k}] " if numbered else "")
        return
    out = sys.stdout
    out.write(pieces.head)
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    _say_why(pieces.finish_reason, pieces.completion.text)


def _say_why(finish_reason: str, text: str, prefix: str = "") -> None:
    """How the completion ended, on stderr (stdout keeps only the text): "stop" (the model's end token or a stop
    string) or "length" (--max-new-tokens); an empty completion says so."""
    why = "the model ended the text" if finish_reason == STOP else "--max-new-tokens reached"
    empty = ": an empty completion (its first token was end-of-text)" if not text and finish_reason == STOP else ""
    print(f"{prefix}finish_reason: {finish_reason} ({why}){empty}", file=sys.stderr)
