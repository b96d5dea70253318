"""`taesan convert`: HuggingFace checkpoint directory <-> taesan checkpoint directory."""
from __future__ import annotations

import argparse
import sys

from taesan.pipeline.convert import convert, export_notes

HELP = "convert a checkpoint between the HuggingFace and taesan layouts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-hf", metavar="DIR", help="a HuggingFace checkpoint directory to convert to taesan")
    src.add_argument("--to-hf", metavar="DIR", help="a taesan checkpoint directory to export for HuggingFace")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the converted checkpoint")


def run(args: argparse.Namespace) -> int:
    if args.from_hf:
        out = convert(args.from_hf, args.out, "from-hf")
    else:
        out = convert(args.to_hf, args.out, "to-hf")
        for line in export_notes(args.to_hf):
            print(line, file=sys.stderr)
    print(f"wrote {out}")
    return 0
