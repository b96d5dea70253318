"""`taesan serve`: the playground: a JSON API and one web page for the models named on the command line.

Not the app (taesan.serve.create_app) nor the server loop (taesan.serve.run); this module reads the flags,
binds the port, then loads the models and serves them.
"""
from __future__ import annotations

import argparse

from taesan.cli import add_threads
from taesan.errors import TaesanError
from taesan.serve import ServeConfig, create_app, model_specs, require_web
from taesan.serve.run import bind, serve

HELP = "a local web playground and JSON API (tokenize, classify, ner, qa, generate, fill-mask, score, attention, image)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]DIR",
                   help="a checkpoint to serve (repeatable); named by its directory name unless NAME= is given")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="a request that computes longer gets a 408 (default 30)")
    p.add_argument("--max-concurrent", type=int, default=2, metavar="N",
                   help="model computations at once (default 2); 4 more wait, beyond that a request gets a 503")
    p.add_argument("--body-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a request body not all sent within this gets a 408 and its connection is closed (default 10)")
    p.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="open connections at once (default 64); a request beyond them gets a 503")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name to answer besides the address it listens on (repeatable; '*' for any); "
                        "other names are refused, which stops DNS-rebinding pages")
    p.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="another site whose pages may call the API, e.g. https://example.org (repeatable); "
                        "other sites' pages are refused")
    p.add_argument("--no-tokenizers", action="store_true",
                   help="skip training the word/char/BPE/WordPiece comparison tokenizers at start-up")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="the served models' precision; auto: bf16 where the CPU multiplies it natively (AMX, "
                   "AVX512-BF16) or on CUDA, else fp32")
    add_threads(p)


def run(args: argparse.Namespace) -> int:
    require_web()
    if not 0 < args.port < 65536:
        raise TaesanError(f"--port {args.port}: choose 1..65535")
    if not args.timeout > 0:
        raise TaesanError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    if not args.body_timeout > 0:
        raise TaesanError(f"--body-timeout {args.body_timeout:g}: must be more than 0 seconds")
    if args.max_concurrent < 1:
        raise TaesanError(f"--max-concurrent {args.max_concurrent}: must be 1 or more")
    if args.max_connections < 1:
        raise TaesanError(f"--max-connections {args.max_connections}: must be 1 or more")
    models = model_specs(args.model)
    config = ServeConfig(timeout=args.timeout, body_timeout=args.body_timeout, max_concurrent=args.max_concurrent, max_connections=args.max_connections,
                         allow_hosts=tuple(args.allow_host), allow_origins=tuple(o.rstrip("/") for o in args.allow_origin),
                         demo_tokenizers=not args.no_tokenizers, precision=args.precision)
    config.check()
    sock = bind(args.host, args.port)  # before loading anything: a port in use is one line, at once
    try:
        app = create_app(models, config)
    except BaseException:
        sock.close()
        raise
    names = ", ".join(models) or "none (tokenizer comparison only)"
    host = f"[{args.host}]" if ":" in args.host else args.host
    chosen = {s.precision.note for s in app.state.served.values()}
    print(f"taesan serve: models {names}; open http://{host}:{args.port}/  (Ctrl-C stops)", flush=True)
    for note in sorted(chosen):
        print(note, flush=True)
    for served in app.state.served.values():  # a HF head model's task, from its config.json
        for note in served.notes:
            print(note, flush=True)
    serve(app, sock, config)
    return 0
