"""Dataclass configs <-> JSON, with checked field names and types.

Not a config framework: a config is a plain dataclass; this module only reads, writes and validates it.
"""
from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from taesan.atomic import atomic_write_text
from taesan.encoding import not_utf8
from taesan.errors import TaesanError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _type_ok(value: Any, annotation: Any) -> bool:
    """A loose runtime check of JSON values against simple annotations (int, float, str, bool, Optional, list)."""
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is None:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def config_from_dict(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Build a dataclass config from a dict; unknown fields or wrong types raise a one-line TaesanError.

    Keys listed in ``IGNORED_KEYS`` (bookkeeping such as ``model_type``) are skipped.
    """
    if not isinstance(data, dict):
        raise TaesanError(f"{source}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key in IGNORED_KEYS:
            continue
        if key not in names:
            raise TaesanError(f"{source}: unknown field {key!r} for {cls.__name__}")
        if not _type_ok(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))  # int, not <class 'int'>
            raise TaesanError(f"{source}: field {key!r} has value {value!r}, expected {expected}")
        kwargs[key] = tuple(value) if isinstance(value, list) and typing.get_origin(hints[key]) is tuple else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise TaesanError(f"{source}: {e}") from None


IGNORED_KEYS = {"model_type", "taesan_version", "architectures"}


def check_fields(config: Any, positive: tuple[str, ...] = (), fractions: tuple[str, ...] = (),
                 divisible: tuple[tuple[str, str], ...] = (), positive_floats: tuple[str, ...] = (),
                 choices: dict[str, Any] | None = None) -> None:
    """The checks every model config makes, in one place; a ValueError naming the field (config_from_dict turns it
    into one line naming the file).

    positive: integers >= 1; fractions: floats in [0, 1) (None allowed: "use the default"); divisible: (a, b) pairs
    with a % b == 0 (d_model by n_heads); positive_floats: > 0 (norm_eps); choices: field -> the allowed values.
    """
    for name in positive:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"field {name!r} must be a positive integer, got {value!r}")
    for a, b in divisible:
        if getattr(config, a) % getattr(config, b):
            raise ValueError(f"field {a!r}={getattr(config, a)} is not divisible by {b!r}={getattr(config, b)}")
    for name in fractions:
        value = getattr(config, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError(f"field {name!r} must be in [0, 1), got {value!r}")
    for name in positive_floats:
        if not getattr(config, name) > 0:
            raise ValueError(f"field {name!r} must be positive, got {getattr(config, name)!r}")
    for name, allowed in (choices or {}).items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"field {name!r} is {getattr(config, name)!r}; choose one of {sorted(allowed)}")


# Caps on a JSON file from somewhere else (config.json, task.json, trainer_state.json): past them the reader
# refuses with one line instead of spending seconds and gigabytes, or raising RecursionError / ValueError.
MAX_JSON_BYTES = 16 * 2**20  # a config is kilobytes; a large HF config with label names is well under a megabyte
MAX_JSON_DEPTH = 100  # configs nest 2-4 levels; Python's parser itself fails near 1,000 with a RecursionError
MAX_INT_DIGITS = 40  # 2**128 has 39 digits; Python refuses over 4,300 with a ValueError


def parse_json(text: str, source: str, max_chars: int = MAX_JSON_BYTES) -> Any:
    """JSON text -> value, with the caps above; any failure is a one-line TaesanError naming `source`.

    parse_json('{"a": [1, 2]}', "x.json") -> {'a': [1, 2]}
    """
    if len(text) > max_chars:
        raise TaesanError(f"{source}: {len(text):,} characters of JSON, over the limit of {max_chars:,}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaesanError(f"{source}: {_decode_error(e)}") from None
    except RecursionError:
        raise TaesanError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:  # Python's own cap: "Exceeds the limit (4300 digits) for integer string conversion"
        raise TaesanError(f"{source}: an integer of over 4,300 digits (the limit is {MAX_INT_DIGITS})") from None
    outside_strings = _STRING.sub('""', text)  # linear: the text is valid JSON, every string closes
    digits = _LONG_NUMBER.search(outside_strings)
    if digits:
        raise TaesanError(f"{source}: an integer of {len(digits.group()):,} digits (the limit is {MAX_INT_DIGITS})")
    if _too_deep(outside_strings):
        raise TaesanError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LONG_NUMBER = re.compile(r"\d{%d,}" % (MAX_INT_DIGITS + 1))
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def _too_deep(outside_strings: str) -> bool:
    """Whether lists and objects nest deeper than MAX_JSON_DEPTH: each pass removes the innermost pairs, so a
    file of depth d is empty after d passes. _too_deep('{"a": [[1]]}') -> False."""
    brackets = _NOT_BRACKET.sub("", outside_strings)
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return False
        brackets = _INNERMOST.sub("", brackets)
    return bool(brackets)


def _decode_error(e: json.JSONDecodeError) -> str:
    """A whole sentence: json's "Unterminated string starting at" needs its position to read as one."""
    if not e.doc.strip():
        return "the file is empty (no JSON value)"
    msg = e.msg if e.msg.endswith(" at") else e.msg + " at"
    cut = " (the file ends there: cut short?)" if e.pos >= len(e.doc.rstrip()) else ""
    return f"invalid JSON: {msg} line {e.lineno} column {e.colno}{cut}"


def read_json(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file; a missing, malformed, oversized or too deeply nested file raises a TaesanError naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TaesanError(f"{path}: {size:,} bytes, over the limit of {max_bytes:,} for a JSON file taesan reads")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaesanError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TaesanError(f"{path}: a directory, not a JSON file") from None
    except UnicodeDecodeError as e:
        raise not_utf8(path, f"{e.reason} at byte {e.start}") from None
    return parse_json(text, str(path), max_bytes)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename), UTF-8, human-readable."""
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
