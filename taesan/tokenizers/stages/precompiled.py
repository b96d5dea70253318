"""SentencePiece's precompiled normalization map (`precompiled_charsmap`, base64 in tokenizer.json, bytes in a
.model file): a double-array trie from UTF-8 strings to offsets in a blob of NUL-terminated replacements.

Not the NormalizedString edits themselves (normalizers.Precompiled applies this map grapheme by grapheme).

Layout: a little-endian u32 with the trie's size in bytes, the trie as u32 units, then the replacement blob.
A unit holds a label (its low byte; bit 31 set means "no label"), a has-leaf flag (bit 8) and an offset
(bits 10+, shifted left 8 more when bit 9 is set); walking byte c from node n goes to n ^ offset ^ c.
"""
from __future__ import annotations

import struct

from taesan.errors import TaesanError


class CharsMap:
    """The map read into a dict {source string: replacement}, plus the fast test "may anything here change"."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 4:
            raise TaesanError("precompiled_charsmap is too short to hold a trie")
        (size,) = struct.unpack_from("<I", blob, 0)
        if size % 4 or 4 + size > len(blob):
            raise TaesanError(f"precompiled_charsmap: trie size {size} does not fit in {len(blob)} bytes")
        self.blob = bytes(blob)
        self.units = struct.unpack_from(f"<{size // 4}I", blob, 4)
        self.normalized = blob[4 + size :]
        self.table = self._read_all()
        self.firsts = frozenset(k[0] for k in self.table)
        self.max_chars = max((len(k) for k in self.table), default=0)

    def _replacement(self, index: int) -> str:
        end = self.normalized.find(b"\0", index)
        return self.normalized[index : end if end >= 0 else len(self.normalized)].decode("utf-8", "replace")

    def _read_all(self) -> dict[str, str]:
        """Every key of the trie with its replacement (a depth-first walk over all 255 labels per node)."""
        units, n = self.units, len(self.units)
        if not n:
            return {}
        out: dict[str, str] = {}
        stack = [(units[0] >> 10 << ((units[0] & 512) >> 6), b"")]
        while stack:
            node, key = stack.pop()
            for c in range(1, 256):
                child = node ^ c
                if child >= n:
                    continue
                unit = units[child]
                if unit & 0x800000FF != c:
                    continue
                nxt = child ^ (unit >> 10 << ((unit & 512) >> 6))
                k = key + bytes((c,))
                if (unit >> 8) & 1 and nxt < n:
                    try:
                        out[k.decode("utf-8")] = self._replacement(units[nxt] & 0x7FFFFFFF)
                    except UnicodeDecodeError:
                        pass  # keys are whole characters; a partial one cannot match text
                stack.append((nxt, k))
        return out

    def may_change(self, text: str) -> bool:
        """False when no character of `text` begins a key: the map leaves it as it is."""
        return not self.firsts.isdisjoint(text)

    def shortest_prefix(self, chunk: str) -> str | None:
        """The replacement of the shortest key that begins `chunk` (the trie's first common-prefix hit)."""
        if chunk[0] not in self.firsts:
            return None
        table = self.table
        for k in range(1, min(len(chunk), self.max_chars) + 1):
            r = table.get(chunk[:k])
            if r is not None:
                return r
        return None

    def longest_prefix(self, chunk: str, start: int = 0) -> tuple[int, str] | None:
        """(length in characters, replacement) of the longest key at chunk[start:], as SentencePiece normalizes."""
        table = self.table
        for k in range(min(len(chunk) - start, self.max_chars), 0, -1):
            r = table.get(chunk[start : start + k])
            if r is not None:
                return k, r
        return None
