"""A SentencePiece `.model` file (KoBERT's spiece.model, XLM-R's sentencepiece.bpe.model, Llama's
tokenizer.model) as a tokenizer that encodes and decodes as the `sentencepiece` library does: its
normalization (the precompiled map, longest rule first; extra spaces dropped; "▁" for spaces and one in
front), its unigram search (float32 scores, user-defined symbols preferred, control/byte/unused pieces out
of the lattice) or its BPE (merge the adjacent pair whose union is the highest-scored piece, leftmost on a
tie), unknown runs as one <unk> or as <0xNN> bytes, and its decoding (" ⁇ " for <unk>).

Not the file format (sentencepiece_proto.py). Saved, it becomes the tokenizer.json HuggingFace's converter
writes for such a model (Precompiled, Strip, Replace, Metaspace, Unigram/BPE), which encodes like
SentencePiece except on rare text (ties between equal-scored cuts, multi-character normalization rules).
"""
from __future__ import annotations

import heapq
import struct
from pathlib import Path
from typing import Any, Iterable

from taesan.errors import TaesanError
from taesan.tokenizers.base import Piece, as_ids
from taesan.tokenizers.sentencepiece_proto import (
    BPE_TYPE,
    BYTE,
    CONTROL,
    NORMAL,
    UNIGRAM,
    UNKNOWN,
    UNUSED,
    USER_DEFINED,
    read_model_proto,
)
from taesan.tokenizers.stages import decoders, normalizers, pre_tokenizers
from taesan.tokenizers.stages.added_tokens import AddedToken
from taesan.tokenizers.stages.models_bpe import BPE
from taesan.tokenizers.stages.models_unigram import Unigram
from taesan.tokenizers.stages.models_words import Model, Token, byte_tokens
from taesan.tokenizers.stages.normalized import NormalizedString
from taesan.tokenizers.stages.precompiled import CharsMap
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer

SPACE = "\u2581"  # ▁
CACHE_LIMIT = 250_000


def f32(x: float) -> float:
    """x rounded to float32, the precision SentencePiece keeps scores in."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bytes_text(run: bytes) -> str:
    """Byte pieces back to text as SentencePiece does: each whole UTF-8 character as itself, every other byte one
    U+FFFD. (Python's "replace" gives one U+FFFD per maximal bad subpart: b"\\xf2\\xbd" is one there, two here.)"""
    out, i, n = [], 0, len(run)
    while i < n:
        b = run[i]
        size = 1 if b < 0x80 else 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if size and i + size <= n:
            try:
                out.append(bytes(run[i:i + size]).decode("utf-8"))
                i += size
                continue
            except UnicodeDecodeError:  # a bad continuation, an overlong form or a surrogate
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


class SentencePieceNormalizer(normalizers.Normalizer):
    """SentencePiece's Normalizer: at each position a user-defined symbol is kept as it is, else the longest
    rule of the precompiled map applies, else the character stays; spaces at the start are dropped, a run
    of spaces becomes one, spaces at the end go; every space becomes "▁" and one "▁" goes in front.
    A normalized character points at the original characters its rule consumed; the "▁" in front points at
    the first one."""

    def __init__(self, charsmap: CharsMap | None, user_defined: Iterable[str], add_dummy_prefix: bool = True,
                 remove_extra_whitespaces: bool = True, escape_whitespaces: bool = True) -> None:
        self.map, self.add_dummy_prefix = charsmap, add_dummy_prefix
        self.remove_extra_whitespaces, self.escape_whitespaces = remove_extra_whitespaces, escape_whitespaces
        self.user_defined = sorted({u for u in user_defined if u}, key=len, reverse=True)

    def _prefix(self, text: str, i: int) -> tuple[int, str]:
        """(characters consumed, their normalized form) at position i."""
        for u in self.user_defined:
            if text.startswith(u, i):
                return len(u), u
        if self.map is not None:
            hit = self.map.longest_prefix(text, i)
            if hit is not None:
                return hit
        c = text[i]
        return 1, "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c

    def normalize(self, s: NormalizedString) -> None:
        text, old = s.text, s.alignments()
        space = SPACE if self.escape_whitespaces else " "
        chars: list[str] = []
        align: list[tuple[int, int]] = []
        i, n = 0, len(text)
        if self.remove_extra_whitespaces:
            while i < n:
                k, out = self._prefix(text, i)
                if out != " ":
                    break
                i += k
        if i >= n:
            s.text, s.align = "", []
            return
        if self.add_dummy_prefix:
            chars.append(space)
            align.append((-1, -1))  # filled below with the first consumed character's span
        prev_space = self.remove_extra_whitespaces
        while i < n:
            k, out = self._prefix(text, i)
            span = (old[i][0], old[i + k - 1][1])
            if prev_space and self.remove_extra_whitespaces:
                out = out.lstrip(" ")
            if out:
                for c in out:
                    chars.append(space if c == " " else c)
                    align.append(span)
                prev_space = out.endswith(" ")
            i += k
            if not self.remove_extra_whitespaces:
                prev_space = False
        if self.remove_extra_whitespaces:
            while chars and chars[-1] == space:
                chars.pop()
                align.pop()
        if align and align[0] == (-1, -1):
            align[0] = align[1] if len(align) > 1 else (s.shift, s.shift)
        s.text, s.align = "".join(chars), align

    def to_json(self) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        if self.map is not None:
            steps.append(normalizers.Precompiled(self.map.blob).to_json())
        if self.remove_extra_whitespaces:  # (a leading space is the dummy prefix's, or dropped without one)
            steps += [{"type": "Strip", "strip_left": not self.add_dummy_prefix, "strip_right": True},
                      {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": SPACE}]
        return {"type": "Sequence", "normalizers": steps}


class SentencePieceUnigram(Unigram):
    """Unigram searched as SentencePiece searches: over the whole normalized text, in float32 (every sum is
    rounded to float32 before it is compared), only normal and user-defined pieces in the lattice, a
    user-defined piece scored length_in_bytes * max_score - 0.1 so that it always wins. Known gap: after a
    user-defined symbol, a run such as ??? whose splits ?? · ? and ? · ?? tie to the last bit may split the other
    way than SentencePiece 0.2 (5 of ~40,000 random short strings; tests/test_sentencepiece.py lists them)."""

    float32_scores = True

    def __init__(self, pieces: list[tuple[str, float, int]], unk_id: int | None, byte_fallback: bool) -> None:
        super().__init__([(p, s) for p, s, _ in pieces], unk_id, byte_fallback)
        normal = [s for _, s, kind in pieces if kind == NORMAL]
        self.min_score = f32(min(normal, default=0.0))
        max_score = f32(max(normal, default=0.0))
        self.unk_score = f32(self.min_score - 10.0)
        lengths: dict[str, set[int]] = {}
        self._scored = {}
        for i, (p, s, kind) in enumerate(pieces):
            if kind in (NORMAL, USER_DEFINED) and p and self.vocab.get(p) == i:
                score = f32(len(p.encode("utf-8")) * max_score - 0.1) if kind == USER_DEFINED else f32(s)
                self._scored[p] = (i, score)
                lengths.setdefault(p[0], set()).add(len(p))
        self._lengths = {c: sorted(v) for c, v in lengths.items()}

    def tokenize(self, word: str) -> list[Token]:
        """A whole normalized text (no cache: texts rarely repeat)."""
        return self._tokens(word, self.viterbi(word)) if word else []

    def _tokens(self, word: str, path: list[tuple[int, int, bool]]) -> list[Token]:
        out: list[Token] = []
        for s, e, unknown in path:
            text = word[s:e]
            if not unknown:
                out.append((self.vocab[text], text, s, e))
                continue
            fallback = byte_tokens(text, self.vocab, s, e) if self.byte_fallback else None
            if fallback is not None:
                out.extend(fallback)
                continue
            if self.unk_id is None:
                raise TaesanError(f"{text!r} is not in the SentencePiece vocabulary and it has no unknown piece")
            out.append((self.unk_id, text, s, e))
        return out


class SentencePieceBPE(Model):
    """SentencePiece's BPE: characters (user-defined symbols whole), then repeatedly the adjacent pair whose
    concatenation is a piece with the highest score, leftmost on a tie; pieces not in the vocabulary are
    unknown (a run of them one <unk>, or <0xNN> bytes with byte fallback)."""

    def __init__(self, pieces: list[tuple[str, float, int]], unk_id: int | None, byte_fallback: bool) -> None:
        super().__init__({})
        self.vocab = {}
        for i, (p, _, _) in enumerate(pieces):
            self.vocab.setdefault(p, i)
        self.inverse = {i: p for i, (p, _, _) in enumerate(pieces)}
        self.scores = {p: f32(s) for p, s, kind in pieces if kind in (NORMAL, USER_DEFINED, UNUSED)}
        self.user_defined = sorted({p for p, _, kind in pieces if kind == USER_DEFINED and p}, key=len, reverse=True)
        self.unk_id, self.byte_fallback = unk_id, byte_fallback
        self._cache: dict[str, list[Token]] = {}

    def tokenize(self, word: str) -> list[Token]:
        if not word:
            return []
        hit = self._cache.get(word)
        if hit is None:
            hit = self._tokens(self._merge(word))
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = hit
        return hit

    def _symbols(self, word: str) -> list[list]:
        out, i = [], 0
        while i < len(word):
            u = next((u for u in self.user_defined if word.startswith(u, i)), None)
            k = len(u) if u else 1
            out.append([word[i : i + k], i, i + k])
            i += k
        return out

    def _merge(self, word: str) -> list[list]:
        sym = self._symbols(word)
        n = len(sym)
        nxt, prv = list(range(1, n + 1)), list(range(-1, n - 1))
        heap: list[tuple[float, int, int, str]] = []
        scores = self.scores

        def push(left: int, right: int) -> None:
            if left < 0 or right >= n:
                return
            piece = sym[left][0] + sym[right][0]
            s = scores.get(piece)
            if s is not None:
                heapq.heappush(heap, (-s, left, right, piece))

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, right, piece = heapq.heappop(heap)
            if not sym[left][0] or not sym[right][0] or nxt[left] != right or sym[left][0] + sym[right][0] != piece:
                continue  # stale
            sym[left] = [piece, sym[left][1], sym[right][2]]
            sym[right] = ["", 0, 0]
            nxt[left] = nxt[right]
            if nxt[right] < n:
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])
        return [s for s in sym if s[0]]

    def _tokens(self, symbols: list[list]) -> list[Token]:
        out: list[Token] = []
        run: list | None = None  # a pending run of unknown symbols [text, start, end]
        for text, s, e in symbols + [(None, 0, 0)]:
            known = text is not None and text in self.scores
            if text is not None and not known:
                run = [run[0] + text, run[1], e] if run else [text, s, e]
                continue
            if run:
                out += self._unknown(*run)
                run = None
            if text is not None:
                out.append((self.vocab[text], text, s, e))
        return out

    def _unknown(self, text: str, s: int, e: int) -> list[Token]:
        fallback = byte_tokens(text, self.vocab, s, e) if self.byte_fallback else None
        if fallback is not None:
            return fallback
        if self.unk_id is None:
            raise TaesanError(f"{text!r} is not in the SentencePiece vocabulary and it has no unknown piece")
        return [(self.unk_id, text, s, e)]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError  # SentencePieceTokenizer.to_hf_json writes a BPE model


def merges_from_vocab(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """BPE merges implied by the vocabulary, as HuggingFace's converter derives them: every split of a piece
    into two pieces, the merged piece's score deciding the order (highest first), then the ids of the halves."""
    ids = {p: i for i, (p, _, _) in enumerate(pieces)}
    merges = []
    for piece, score, _ in pieces:
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in ids and piece[k:] in ids]
        local.sort(key=lambda m: (ids[m[0]], ids[m[1]]))
        merges += [(score, a, b) for a, b in local]
    merges.sort(key=lambda m: -m[0])  # stable: ties keep the order above
    return [(a, b) for _, a, b in merges]


def read_proto(path: str | Path) -> dict[str, Any]:
    """A .model (or Marian's .spm) file's ModelProto, or one TaesanError naming the file."""
    path = Path(path)
    try:
        return read_model_proto(path.read_bytes())
    except (TaesanError, UnicodeDecodeError, struct.error) as e:
        raise TaesanError(f"{path}: not a SentencePiece model ({e})") from None


def stages(proto: dict[str, Any]) -> tuple[Model, SentencePieceNormalizer, pre_tokenizers.PreTokenizer | None]:
    """The model, normalizer and pre-tokenizer that run a ModelProto as SentencePiece does."""
    pieces, trainer, norm = proto["pieces"], proto["trainer"], proto["normalizer"]
    if trainer["model_type"] not in (UNIGRAM, BPE_TYPE):
        raise TaesanError(f"SentencePiece model type {trainer['model_type']} is not supported (unigram or bpe)")
    if trainer["treat_whitespace_as_suffix"]:
        raise TaesanError("SentencePiece models with treat_whitespace_as_suffix are not supported")
    unk_id = trainer["unk_id"] if 0 <= trainer["unk_id"] < len(pieces) else None
    byte_fallback = bool(trainer["byte_fallback"])
    model: Model = (SentencePieceUnigram(pieces, unk_id, byte_fallback) if trainer["model_type"] == UNIGRAM
                    else SentencePieceBPE(pieces, unk_id, byte_fallback))
    charsmap = CharsMap(norm["precompiled_charsmap"]) if norm["precompiled_charsmap"] else None
    user_defined = [p for p, _, kind in pieces if kind == USER_DEFINED]
    normalizer = SentencePieceNormalizer(charsmap, user_defined, bool(norm["add_dummy_prefix"]),
                                         bool(norm["remove_extra_whitespaces"]), bool(norm["escape_whitespaces"]))
    # unigram searches the whole text (float32 sums depend on what came before); BPE merges never cross
    # a "▁" unless a piece has one inside, so it may cut the text into words first
    inner = any(SPACE in p[1:] for p, _, kind in pieces if kind in (NORMAL, USER_DEFINED))
    words = trainer["model_type"] == BPE_TYPE and not inner and norm["escape_whitespaces"]
    return model, normalizer, pre_tokenizers.Metaspace(SPACE, "never", True) if words else None


class SentencePieceTokenizer(PipelineTokenizer):
    """A .model file as SentencePiece runs it. Control symbols (<s>, </s>) are special tokens, but, as in
    SentencePiece, written in a text they are plain characters; user-defined symbols stay whole."""

    kind = "sentencepiece"

    def __init__(self, proto: dict[str, Any], added_tokens: Iterable[AddedToken] = ()) -> None:
        """added_tokens: tokens after the model's pieces (T5's <extra_id_N>, an added_tokens.json's), matched first."""
        model, normalizer, pre = stages(proto)
        added = list(added_tokens)
        super().__init__(model, normalizer, pre, None, None, added)
        self._read_settings(proto)
        self.special_tokens = [p for p, _, kind in proto["pieces"] if kind in (CONTROL, UNKNOWN)]
        self.special_tokens += [t.content for t in added if t.special and t.content not in self.special_tokens]

    def _read_settings(self, proto: dict[str, Any]) -> None:
        """What decoding needs from the model file: each piece's type, the unknown's surface, the first space."""
        self.proto, self.types = proto, [kind for _, _, kind in proto["pieces"]]
        self.unk_surface = str(proto["trainer"]["unk_surface"])
        norm = proto["normalizer"]
        self.strip_first_space = bool(norm["add_dummy_prefix"] or norm["remove_extra_whitespaces"])

    def pieces(self, text: str) -> list[Piece]:
        """The pipeline's pieces, with a word id per "▁"-started word (the search ran over the whole text)."""
        out, word = [], -1
        for p in super().pieces(text):
            if word < 0 or p.token.startswith(SPACE):
                word += 1
            out.append(Piece(p.token, p.id, p.start, p.end, word))
        return out

    tokenize = pieces

    @classmethod
    def from_file(cls, path: str | Path) -> "SentencePieceTokenizer":
        return cls(read_proto(path))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """As SentencePiece decodes: control symbols vanish (shown when skip_special_tokens=False), <unk> is
        " ⁇ ", runs of <0xNN> pieces are their bytes, "▁" is a space and the first one is dropped."""
        out: list[str] = []
        run = bytearray()
        at_start = True
        for i in as_ids(ids):
            piece = self.inverse.get(i)
            if piece is None:
                raise TaesanError(f"token id {i} is not in the vocabulary (size {self.vocab_size})")
            kind = self._kind(i, piece)
            if kind == BYTE:
                run.append(int(piece[3:5], 16))
                continue
            if run:
                out.append(bytes_text(run))
                run = bytearray()
                at_start = False
            if kind == CONTROL:
                text = "" if skip_special_tokens else piece
            elif kind == UNKNOWN:
                text = self.unk_surface
            else:
                if at_start and self.strip_first_space and piece.startswith(SPACE):
                    piece = piece[1:]
                text = piece.replace(SPACE, " ")
            out.append(text)
            if text:
                at_start = False
        if run:
            out.append(bytes_text(run))
        return "".join(out)

    def _kind(self, i: int, piece: str) -> int:
        """A piece's SentencePiece type; a special added token (T5's <extra_id_N>) decodes as a control symbol."""
        if i in self.added.special_ids:
            return CONTROL
        return self.types[i] if i < len(self.types) else NORMAL

    def to_hf_json(self) -> dict[str, Any]:
        """The tokenizer.json HuggingFace's converter writes for this model."""
        pieces, trainer, norm = self.proto["pieces"], self.proto["trainer"], self.proto["normalizer"]
        unk_id = trainer["unk_id"] if 0 <= trainer["unk_id"] < len(pieces) else None
        byte_fallback = bool(trainer["byte_fallback"])
        if trainer["model_type"] == UNIGRAM:
            model = Unigram([(p, s) for p, s, _ in pieces], unk_id, byte_fallback)
        else:
            vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
            model = BPE(vocab, merges_from_vocab(pieces), pieces[unk_id][0] if unk_id is not None else None,
                        fuse_unk=True, byte_fallback=byte_fallback)
        scheme = "always" if norm["add_dummy_prefix"] else "never"
        if byte_fallback:
            steps: list[decoders.Decoder] = [decoders.Replace({"String": SPACE}, " "), decoders.ByteFallback(), decoders.Fuse()]
            decoder: decoders.Decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if scheme != "never" else []))
        else:
            decoder = decoders.Metaspace(SPACE, scheme, True)
        added = [AddedToken(p, i, special=kind == CONTROL, normalized=False)
                 for i, (p, _, kind) in enumerate(pieces) if kind in (CONTROL, USER_DEFINED)]
        added += [t for t in self.added.tokens if t.id >= len(pieces)]
        steps_json = self.normalizer.to_json()
        return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [t.to_json() for t in added],
                "normalizer": steps_json if steps_json["normalizers"] else None,
                "pre_tokenizer": pre_tokenizers.Metaspace(SPACE, scheme, True).to_json(), "post_processor": None,
                "decoder": decoder.to_json(), "model": model.to_json()}
