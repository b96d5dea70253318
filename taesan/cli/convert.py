"""`taesan convert`: HuggingFace checkpoint directory <-> taesan checkpoint directory (--from-hf takes the hub's
tokenizer files along as they are: tokenizer_config.json, special_tokens_map.json, spiece.model, ...)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taesan.pipeline.bundle import copy_tokenizer_files
from taesan.pipeline.convert import convert, export_notes

HELP = "convert a checkpoint between the HuggingFace and taesan layouts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-hf", metavar="DIR", help="a HuggingFace checkpoint directory to convert to taesan")
    src.add_argument("--to-hf", metavar="DIR", help="a taesan checkpoint directory to export for HuggingFace")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the converted checkpoint")


def run(args: argparse.Namespace) -> int:
    if args.from_hf:
        out = convert(args.from_hf, args.out, "from-hf")  # the tokenizer taesan reads, written as tokenizer.json
        copied = copy_tokenizer_files(Path(args.from_hf), out)  # and the hub's own files, as they are
        if copied:
            print(f"copied {', '.join(p.name for p in copied)}", file=sys.stderr)
    else:
        out = convert(args.to_hf, args.out, "to-hf")
        for line in export_notes(args.to_hf):
            print(line, file=sys.stderr)
    print(f"wrote {out}")
    return 0
