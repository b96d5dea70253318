"""`taesan serve`: the playground: a JSON API and one web page for the models named on the command line.

Not the app (taesan.serve.create_app); this module names the models and runs uvicorn.
"""
from __future__ import annotations

import argparse

from taesan.cli import add_threads
from taesan.errors import TaesanError
from taesan.serve import ServeConfig, create_app, model_specs, require_web

HELP = "a local web playground and JSON API (tokenize, classify, ner, qa, generate, fill-mask, score, attention, image)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]DIR",
                   help="a checkpoint to serve (repeatable); named by its directory name unless NAME= is given")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="a request that computes longer gets a 408 (default 30)")
    p.add_argument("--max-concurrent", type=int, default=2, metavar="N",
                   help="model computations at once (default 2); 4 more wait, beyond that a request gets a 503")
    p.add_argument("--no-tokenizers", action="store_true",
                   help="skip training the word/char/BPE/WordPiece comparison tokenizers at start-up")
    add_threads(p)


def run(args: argparse.Namespace) -> int:
    require_web()
    import uvicorn

    if not 0 < args.port < 65536:
        raise TaesanError(f"--port {args.port}: choose 1..65535")
    if not args.timeout > 0:
        raise TaesanError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    if args.max_concurrent < 1:
        raise TaesanError(f"--max-concurrent {args.max_concurrent}: must be 1 or more")
    models = model_specs(args.model)
    config = ServeConfig(timeout=args.timeout, max_concurrent=args.max_concurrent, demo_tokenizers=not args.no_tokenizers)
    app = create_app(models, config)
    names = ", ".join(models) or "none (tokenizer comparison only)"
    print(f"taesan serve: models {names}; open http://{args.host}:{args.port}/  (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
