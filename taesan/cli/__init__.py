"""The command line: a table from command name to the module that implements it; one line per user error.

Each command module defines HELP, add_arguments(parser) and run(args). Library code never parses
arguments or prints; these modules do.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from taesan.errors import TaesanError

# command -> module; each is imported when the parser is built.
COMMANDS: dict[str, str] = {
    "convert": "taesan.cli.convert",
    "word2vec": "taesan.cli.word2vec",
    "tokenizer": "taesan.cli.tokenizer",
    "pretrain": "taesan.cli.pretrain",
    "score": "taesan.cli.score",
    "generate": "taesan.cli.generate",
    "cloze-qa": "taesan.cli.cloze_qa",
    "finetune": "taesan.cli.finetune",
    "evaluate": "taesan.cli.evaluate",
    "predict": "taesan.cli.predict",
    "attention": "taesan.cli.attention",
    "serve": "taesan.cli.serve",
    "fewshot": "taesan.cli.fewshot",
    "compare-modes": "taesan.cli.compare_modes",
    "demo": "taesan.cli.demo",
}


def add_threads(p: argparse.ArgumentParser) -> None:
    """--threads, which every heavy command takes: torch's CPU threads, set once in main()."""
    p.add_argument("--threads", type=int, default=None, help="CPU threads (fewer on a shared machine; default: torch's)")


class _UsageError(Exception):
    """A flag the parser refused (an unknown choice, a missing argument): printed as one line by `main`."""


class Parser(argparse.ArgumentParser):
    """argparse, with a refused flag raised as one line (`--kind: invalid choice 'bogus' (choose from ...)`)
    instead of a usage block; every command's parser and sub-parser is one of these (argparse makes them so)."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="taesan", description="태산: a compact transformer system (티끌 모아 태산).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the command they were given to, not by `taesan` (argparse's parse_args does that)
            raise _UsageError(f"taesan {args.command}: error: unrecognized arguments: {' '.join(extra)} "
                              f"(see taesan {args.command} --help)")
    except _UsageError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        threads = getattr(args, "threads", None)  # every command's --threads means torch's CPU threads: set here once
        if threads is not None:
            if threads < 1:  # torch's own error was a traceback
                raise TaesanError(f"--threads must be >= 1, got {threads}")
            import torch

            torch.set_num_threads(threads)
        code = args._run(args)
    except TaesanError as e:
        print(f"taesan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"taesan {args.command}: interrupted", file=sys.stderr)
        return 130
    except (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as e:  # a path the user gave
        hint = " (a file is where a directory goes)" if isinstance(e, FileExistsError) else ""
        path = e.filename2 or e.filename  # os.replace(temp, target): the target is the one the user named
        print(f"taesan {args.command}: error: {path}: {e.strerror.lower()}{hint}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader closed the pipe (`taesan evaluate ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):  # a full disk outside training (convert, tokenizer train)
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"taesan {args.command}: error: {where}no space left on the device", file=sys.stderr)
        return 2
    return int(code or 0)
