"""The decoders of tokenizer.json: ByteLevel, Metaspace, WordPiece, BPEDecoder, ByteFallback, Fuse, Strip,
Replace and Sequence. Each maps the list of token strings to a new list (`decode_chain`); the text is their
concatenation. Without a decoder, tokens are joined with spaces.

Not the choice of which tokens to decode (PipelineTokenizer.decode drops special tokens when asked).
"""
from __future__ import annotations

from typing import Any

from taesan.errors import TaesanError
from taesan.tokenizers.bpe import bytes_to_unicode
from taesan.tokenizers.stages.normalized import regex_matches
from taesan.tokenizers.stages.normalizers import compile_pattern

_BYTE_OF = {c: b for b, c in bytes_to_unicode().items()}
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def cleanup(text: str) -> str:
    """The library's decoding cleanup: no space before punctuation and English contractions.

    >>> cleanup("hello , world !")
    'hello, world!'
    """
    for a, b in _CLEANUP:
        text = text.replace(a, b)
    return text


class Decoder:
    def decode_chain(self, tokens: list[str]) -> list[str]:
        raise NotImplementedError

    def decode(self, tokens: list[str]) -> str:
        return "".join(self.decode_chain(tokens))

    def to_json(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


class ByteLevel(Decoder):
    """Byte symbols back to UTF-8 text (a token with a character outside the 256 symbols counts as its own
    UTF-8 bytes); invalid bytes become U+FFFD."""

    def __init__(self, **options: Any) -> None:
        self.options = options  # add_prefix_space / trim_offsets / use_regex: kept for the file, unused

    def decode_chain(self, tokens: list[str]) -> list[str]:
        raw = bytearray()
        for t in tokens:
            try:
                raw += bytes(_BYTE_OF[c] for c in t)
            except KeyError:
                raw += t.encode("utf-8", "surrogatepass")
        return [raw.decode("utf-8", "replace")]

    def to_json(self) -> dict[str, Any]:
        return {"type": "ByteLevel", "add_prefix_space": self.options.get("add_prefix_space", True),
                "trim_offsets": self.options.get("trim_offsets", True), "use_regex": self.options.get("use_regex", True)}


class Metaspace(Decoder):
    """"▁" back to spaces; in the first token they are dropped (the prepended one) unless prepend_scheme is never."""

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True) -> None:
        self.replacement, self.prepend_scheme, self.split = replacement, prepend_scheme, split

    def decode_chain(self, tokens: list[str]) -> list[str]:
        r, drop_first = self.replacement, self.prepend_scheme != "never"
        return [t.replace(r, "" if i == 0 and drop_first else " ") for i, t in enumerate(tokens)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "Metaspace", "replacement": self.replacement, "prepend_scheme": self.prepend_scheme,
                "split": self.split}


class WordPiece(Decoder):
    """`##` pieces glued to the one before, others after a space; `cleanup` per token."""

    def __init__(self, prefix: str = "##", cleanup: bool = True) -> None:
        self.prefix, self.cleanup = prefix, cleanup

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for i, t in enumerate(tokens):
            if i:
                t = t.replace(self.prefix, "", 1) if t.startswith(self.prefix) else " " + t
            out.append(cleanup(t) if self.cleanup else t)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"type": "WordPiece", "prefix": self.prefix, "cleanup": self.cleanup}


class BPEDecoder(Decoder):
    """The end-of-word suffix ("</w>") becomes a space, except in the last token."""

    def __init__(self, suffix: str = "</w>") -> None:
        self.suffix = suffix

    def decode_chain(self, tokens: list[str]) -> list[str]:
        n = len(tokens) - 1
        return [t.replace(self.suffix, "" if i == n else " ") for i, t in enumerate(tokens)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "BPEDecoder", "suffix": self.suffix}


class ByteFallback(Decoder):
    """Runs of <0xNN> tokens back to the text their bytes spell; a run that is not UTF-8 gives one U+FFFD per byte."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out: list[str] = []
        run = bytearray()
        for t in tokens:
            b = None
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                try:
                    b = int(t[3:5], 16)
                except ValueError:
                    b = None
            if b is not None:
                run.append(b)
                continue
            if run:
                out += _flush(run)
                run = bytearray()
            out.append(t)
        if run:
            out += _flush(run)
        return out


def _flush(run: bytearray) -> list[str]:
    try:
        return [run.decode("utf-8")]
    except UnicodeDecodeError:
        return ["\ufffd"] * len(run)


class Fuse(Decoder):
    def decode_chain(self, tokens: list[str]) -> list[str]:
        return ["".join(tokens)]


class Strip(Decoder):
    """Up to `start` leading and `stop` trailing `content` characters off every token."""

    def __init__(self, content: str = " ", start: int = 0, stop: int = 0) -> None:
        self.content, self.start, self.stop = content, start, stop

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for t in tokens:
            a = 0
            while a < min(self.start, len(t)) and t[a] == self.content:
                a += 1
            b = len(t)
            for _ in range(self.stop):
                if b > a and t[b - 1] == self.content:
                    b -= 1
                else:
                    break
            out.append(t[a:b])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"type": "Strip", "content": self.content, "start": self.start, "stop": self.stop}


class Replace(Decoder):
    def __init__(self, pattern: Any, content: str) -> None:
        self.regex, self.pattern = compile_pattern(pattern, "decoder Replace")
        self.content = content

    def decode_chain(self, tokens: list[str]) -> list[str]:
        if self.regex is None:
            return tokens
        out = []
        for t in tokens:
            parts = [self.content if m else t[s:e] for s, e, m in regex_matches(self.regex, t)]
            out.append("".join(parts))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"type": "Replace", "pattern": self.pattern, "content": self.content}


class Sequence(Decoder):
    def __init__(self, decoders: list[Decoder]) -> None:
        self.decoders = decoders

    def decode_chain(self, tokens: list[str]) -> list[str]:
        for d in self.decoders:
            tokens = d.decode_chain(tokens)
        return tokens

    def to_json(self) -> dict[str, Any]:
        return {"type": "Sequence", "decoders": [d.to_json() for d in self.decoders]}


def from_json(obj: Any) -> Decoder | None:
    """A tokenizer.json "decoder" object -> a Decoder (None stays None)."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TaesanError(f"tokenizer.json: a decoder must be an object with a 'type', got {obj!r:.80}")
    kind = obj["type"]
    if kind == "ByteLevel":
        return ByteLevel(**{k: obj[k] for k in ("add_prefix_space", "trim_offsets", "use_regex") if k in obj})
    if kind == "Metaspace":
        scheme = obj.get("prepend_scheme") or ("always" if obj.get("add_prefix_space", True) else "never")
        return Metaspace(str(obj.get("replacement", obj.get("str_rep", "▁"))), str(scheme).lower(), bool(obj.get("split", True)))
    if kind == "WordPiece":
        return WordPiece(str(obj.get("prefix", "##")), bool(obj.get("cleanup", True)))
    if kind == "BPEDecoder":
        return BPEDecoder(str(obj.get("suffix", "</w>")))
    if kind == "ByteFallback":
        return ByteFallback()
    if kind == "Fuse":
        return Fuse()
    if kind == "Strip":
        return Strip(str(obj.get("content", " ")), int(obj.get("start", 0)), int(obj.get("stop", 0)))
    if kind == "Replace":
        return Replace(obj.get("pattern"), str(obj.get("content", "")))
    if kind == "Sequence":
        return Sequence([d for d in map(from_json, obj.get("decoders") or []) if d is not None])
    raise TaesanError(f"tokenizer.json: decoder type {kind!r} is not supported")
