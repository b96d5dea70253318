"""A SentencePiece `.model` file (KoBERT's spiece.model, XLM-R's sentencepiece.bpe.model, Llama's
tokenizer.model) read as a PipelineTokenizer: the protobuf is decoded here (a few fields; no protobuf
package), then the pipeline is the one HuggingFace's converter builds, which encodes as SentencePiece does:
the precompiled normalization map, trailing spaces stripped and runs of spaces made one, "▁" for spaces with
one in front, then Unigram (or BPE with merges taken from the vocabulary) with the model's byte fallback.
Control symbols (<s>, </s>) become special added tokens and user-defined symbols plain added tokens.

Not SentencePiece training, and not a general protobuf reader.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterator

from taesan.errors import TaesanError
from taesan.tokenizers.stages import decoders, normalizers, pre_tokenizers
from taesan.tokenizers.stages.added_tokens import AddedToken
from taesan.tokenizers.stages.models_bpe import BPE
from taesan.tokenizers.stages.models_unigram import Unigram
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer

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
               "treat_whitespace_as_suffix": False}
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
            names = {3: "model_type", 40: "unk_id", 35: "byte_fallback", 45: "unk_piece", 24: "treat_whitespace_as_suffix"}
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


def merges_from_vocab(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """BPE merges implied by the vocabulary: every split of a piece into two pieces, the merged piece's score
    deciding the order (highest first), then the ids of the halves — how SentencePiece's own BPE merges."""
    ids = {p: i for i, (p, _, _) in enumerate(pieces)}
    merges = []
    for piece, score, _ in pieces:
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in ids and piece[k:] in ids]
        local.sort(key=lambda m: (ids[m[0]], ids[m[1]]))
        merges += [(score, a, b) for a, b in local]
    merges.sort(key=lambda m: -m[0])  # stable: ties keep the order above
    return [(a, b) for _, a, b in merges]


def from_sentencepiece(path: str | Path) -> PipelineTokenizer:
    path = Path(path)
    try:
        proto = read_model_proto(path.read_bytes())
    except (TaesanError, UnicodeDecodeError, struct.error) as e:
        raise TaesanError(f"{path}: not a SentencePiece model ({e})") from None
    pieces, trainer, norm = proto["pieces"], proto["trainer"], proto["normalizer"]
    model_type = trainer["model_type"]
    if model_type not in (UNIGRAM, BPE_TYPE):
        raise TaesanError(f"{path}: SentencePiece model type {model_type} is not supported (unigram or bpe)")
    if trainer["treat_whitespace_as_suffix"]:
        raise TaesanError(f"{path}: treat_whitespace_as_suffix models are not supported")
    byte_fallback = bool(trainer["byte_fallback"])
    unk_id = trainer["unk_id"] if 0 <= trainer["unk_id"] < len(pieces) else None
    if model_type == UNIGRAM:
        model = Unigram([(p, s) for p, s, _ in pieces], unk_id, byte_fallback)
    else:
        vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
        unk = pieces[unk_id][0] if unk_id is not None else None
        model = BPE(vocab, merges_from_vocab(pieces), unk, fuse_unk=True, byte_fallback=byte_fallback)
    steps: list[normalizers.Normalizer] = []
    if norm["precompiled_charsmap"]:
        steps.append(normalizers.Precompiled(norm["precompiled_charsmap"]))
    if norm["remove_extra_whitespaces"]:
        steps += [normalizers.Strip(False, True), normalizers.Replace({"Regex": " {2,}"}, "▁")]
    scheme = "always" if norm["add_dummy_prefix"] else "never"
    added = [AddedToken(p, i, special=kind == CONTROL, normalized=False)
             for i, (p, _, kind) in enumerate(pieces) if kind in (CONTROL, USER_DEFINED)]
    tok = PipelineTokenizer(model, normalizers.Sequence(steps) if steps else None,
                            pre_tokenizers.Metaspace("▁", scheme, True), None, _decoder(scheme, byte_fallback), added)
    return tok


def _decoder(scheme: str, byte_fallback: bool) -> decoders.Decoder:
    if not byte_fallback:
        return decoders.Metaspace("▁", scheme, True)
    steps: list[decoders.Decoder] = [decoders.Replace({"String": "▁"}, " "), decoders.ByteFallback(), decoders.Fuse()]
    if scheme != "never":
        steps.append(decoders.Strip(" ", 1, 0))
    return decoders.Sequence(steps)
