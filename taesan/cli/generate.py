"""`taesan generate`: continue a prompt with a trained model, streaming the text to the terminal as it is decoded.

Not the decoding itself (taesan.generate: ids in, ids out); this module tokenizes, streams and prints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import taesan
from taesan.checkpoint import read_training, stop_id
from taesan.decoding import is_encoder_decoder
from taesan.errors import TaesanError
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.load import check_vocabulary

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


def _prompts(args) -> list[str]:
    if args.prompt is not None:
        return [args.prompt]
    path = Path(args.prompt_file)
    if not path.is_file():
        raise TaesanError(f"{path}: {'a directory, not a prompt file' if path.is_dir() else 'prompt file not found'}")
    try:
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise TaesanError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not prompts:
        raise TaesanError(f"{path}: no prompt in the file")
    return prompts


def _stream(steps, decode, out) -> None:
    """Print the text as tokens arrive: decode everything so far and print what is new (a byte-level BPE
    token may end inside a character: wait for the rest, shown as U+FFFD)."""
    ids: list[int] = []
    shown = 0
    for tokens in steps:
        ids.append(int(tokens[0]))
        text = decode(ids)
        if text.endswith("\ufffd"):
            continue
        out.write(text[shown:])
        out.flush()
        shown = len(text)
    text = decode(ids)
    out.write(text[shown:] + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    import torch


    directory = Path(args.model)
    if not directory.is_dir():
        raise TaesanError(f"{directory}: no such checkpoint directory")
    tok_path = Path(args.tokenizer) if args.tokenizer else directory / "tokenizer.json"
    if not tok_path.exists():
        raise TaesanError(f"{tok_path}: the checkpoint has no tokenizer (pass --tokenizer FILE)")
    tokenizer = load_tokenizer(tok_path)
    model = taesan.load(directory).eval()
    seq2seq = is_encoder_decoder(model)
    if not seq2seq and not hasattr(getattr(model, "inner", model), "new_cache"):  # a soft prompt wraps its base
        raise TaesanError(f"{directory}: a {type(getattr(model, 'inner', model)).__name__} does not write text; "
                          f"generate needs a GPT or an encoder-decoder model")
    check_vocabulary(model, tokenizer, tok_path)
    stop = None if seq2seq else stop_id(directory, tokenizer)
    backward = not seq2seq and read_training(directory).get("objective") == "backward"  # it writes the text that comes before the prompt
    sample = not args.greedy and any(v is not None for v in (args.temperature, args.top_k, args.top_p))
    settings = dict(
        max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens, do_sample=sample,
        temperature=args.temperature or 1.0, top_k=args.top_k or 0, top_p=args.top_p if args.top_p is not None else 1.0,
        repetition_penalty=args.repetition_penalty, no_repeat_ngram_size=args.no_repeat_ngram, num_beams=args.beams,
        length_penalty=args.length_penalty, num_return_sequences=args.num_return, stop_strings=args.stop or None,
        seed=args.seed,
    )
    if not seq2seq:
        settings["eos_token_id"] = [] if stop is None else stop

    def decode(ids: list[int]) -> str:
        return tokenizer.decode([i for i in ids if i != stop])

    settings["decode"] = decode
    out = sys.stdout
    for n, text in enumerate(_prompts(args)):
        ids = tokenizer.encode(text, add_special_tokens=seq2seq).ids
        forward_ids = ids
        if backward:  # a backward LM reads right to left; the prompt follows a space in its documents
            forward_ids = tokenizer.encode(" " + text, add_special_tokens=False).ids
            ids = forward_ids[::-1]
        if not seq2seq and stop is not None:
            ids = [stop] + ids  # the model saw documents after a separator
        if not ids:
            raise TaesanError(f"prompt {n + 1} encodes to no tokens")
        if not seq2seq and len(ids) + args.max_new_tokens > model.config.n_positions:
            raise TaesanError(f"prompt {n + 1}: {len(ids)} tokens + --max-new-tokens {args.max_new_tokens} exceed the model's n_positions={model.config.n_positions}")
        if seq2seq and len(ids) > model.config.n_positions:
            raise TaesanError(f"prompt {n + 1}: {len(ids)} tokens exceed the model's n_positions={model.config.n_positions}")
        input_ids = torch.tensor([ids])
        shown = text if not seq2seq else ""
        if backward:  # the new tokens go before the prompt: print each output whole
            for k, row in enumerate(taesan.generate(model, input_ids, **settings).tolist()):
                prefix = f"[{k + 1}] " if args.beams > 1 or args.num_return > 1 else ""
                out.write(f"{prefix}{decode(row[len(ids):][::-1] + forward_ids).strip()}\n")
            continue
        if args.beams == 1 and args.num_return == 1:
            steps = taesan.generate(model, input_ids, stream=True, **settings)  # settings checked here, before printing
            out.write(shown)
            _stream(steps, decode, out)
            continue
        result = taesan.generate(model, input_ids, **settings)
        start = 1 if seq2seq else len(ids)
        for k, row in enumerate(result.tolist()):
            out.write(f"[{k + 1}] {shown}{decode(row[start:])}\n")
    return 0
