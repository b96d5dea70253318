"""The SentencePiece `.model` file format: a protobuf ModelProto with the pieces (string, score, type), the
trainer settings (model type, unk id, byte fallback) and the normalizer settings (precompiled map, dummy
prefix, whitespace rules), decoded here with a few lines of wire-format reading (no protobuf package).

Not the tokenizer built from it (sentencepiece.py) and not a general protobuf reader.
"""
from __future__ import annotations

import struct
from typing import Any, Iterator

from taesan.errors import TaesanError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # ModelProto.SentencePiece.Type
UNIGRAM, BPE_TYPE, WORD, CHAR = 1, 2, 3, 4  # TrainerSpec.ModelType


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise TaesanError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited and fixed fields."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise TaesanError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise TaesanError("truncated field")
        yield number, value


def read_model_proto(raw: bytes) -> dict[str, Any]:
    """The parts of a ModelProto taesan needs: pieces (piece, score, type), trainer and normalizer settings."""
    pieces: list[tuple[str, float, int]] = []
    trainer = {"model_type": UNIGRAM, "unk_id": 0, "byte_fallback": False, "unk_piece": "<unk>",
               "treat_whitespace_as_suffix": False, "unk_surface": " \u2047 "}
    normalizer = {"name": "", "precompiled_charsmap": b"", "add_dummy_prefix": True, "remove_extra_whitespaces": True,
                  "escape_whitespaces": True}
    for number, value in fields(raw):
        if number == 1:
            piece, score, kind = "", 0.0, NORMAL
            for n, v in fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    (score,) = struct.unpack("<f", v)
                elif n == 3:
                    kind = v
            pieces.append((piece, score, kind))
        elif number == 2:
            names = {3: "model_type", 40: "unk_id", 35: "byte_fallback", 45: "unk_piece", 24: "treat_whitespace_as_suffix",
                     44: "unk_surface"}
            for n, v in fields(value):
                if n in names:
                    trainer[names[n]] = v.decode("utf-8") if isinstance(v, bytes) else v
        elif number == 3:
            names = {1: "name", 2: "precompiled_charsmap", 3: "add_dummy_prefix", 4: "remove_extra_whitespaces",
                     5: "escape_whitespaces"}
            for n, v in fields(value):
                if n in names:
                    normalizer[names[n]] = v.decode("utf-8") if n == 1 else v
    if not pieces:
        raise TaesanError("no pieces in the model (is it a SentencePiece .model file?)")
    if trainer["unk_id"] >= 2**63:  # a negative int32 is written as a 64-bit varint
        trainer["unk_id"] -= 2**64
    return {"pieces": pieces, "trainer": trainer, "normalizer": normalizer}
