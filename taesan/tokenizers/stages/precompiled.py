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
    """The map, searched in the trie as the library searches it (byte by byte), with per-string caches."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 4:
            raise TaesanError("precompiled_charsmap is too short to hold a trie")
        (size,) = struct.unpack_from("<I", blob, 0)
        if size % 4 or 4 + size > len(blob) or size == 0:
            raise TaesanError(f"precompiled_charsmap: trie size {size} does not fit in {len(blob)} bytes")
        self.blob = bytes(blob)
        self.units = struct.unpack_from(f"<{size // 4}I", blob, 4)
        self.normalized = blob[4 + size :]
        self._starts: dict[str, bool] = {}  # character -> whether some key begins with it
        self._shortest: dict[str, str | None] = {}

    @staticmethod
    def _offset(unit: int) -> int:
        return (unit >> 10) << ((unit & 512) >> 6)

    def _search(self, key: bytes) -> tuple[list[tuple[int, int]], int]:
        """(every (length, value) of a key that prefixes `key`, how many bytes the walk got through)."""
        units, n = self.units, len(self.units)
        node = self._offset(units[0])
        found: list[tuple[int, int]] = []
        for depth, c in enumerate(key):
            if c == 0:
                return found, depth
            node ^= c
            if node >= n or units[node] & 0x800000FF != c:
                return found, depth
            unit = units[node]
            node ^= self._offset(unit)
            if (unit >> 8) & 1 and node < n:
                found.append((depth + 1, units[node] & 0x7FFFFFFF))
        return found, len(key)

    def _replacement(self, index: int) -> str:
        end = self.normalized.find(b"\0", index)
        return self.normalized[index : end if end >= 0 else len(self.normalized)].decode("utf-8", "replace")

    def starts_a_key(self, c: str) -> bool:
        hit = self._starts.get(c)
        if hit is None:
            raw = c.encode("utf-8", "surrogatepass")
            hit = self._starts[c] = self._search(raw)[1] == len(raw)
        return hit

    def may_change(self, text: str) -> bool:
        """False when no character of `text` begins a key: the map leaves it as it is."""
        return any(map(self.starts_a_key, set(text)))

    def shortest_prefix(self, chunk: str) -> str | None:
        """The replacement of the shortest key that begins `chunk` (the trie's first common-prefix hit)."""
        if chunk in self._shortest:
            return self._shortest[chunk]
        out = None
        if self.starts_a_key(chunk[0]):
            found, _ = self._search(chunk.encode("utf-8", "surrogatepass"))
            out = self._replacement(found[0][1]) if found else None
        if len(self._shortest) < 100_000:
            self._shortest[chunk] = out
        return out

    def longest_prefix(self, text: str, start: int = 0) -> tuple[int, str] | None:
        """(length in characters, replacement) of the longest key at text[start:], as SentencePiece normalizes."""
        if not self.starts_a_key(text[start]):
            return None
        raw = text[start : start + 64].encode("utf-8", "surrogatepass")
        found, _ = self._search(raw)
        if not found:
            return None
        length, value = found[-1]
        return len(raw[:length].decode("utf-8", "surrogatepass")), self._replacement(value)
