"""Dataclass configs <-> JSON, with checked field names and types.

Not a config framework: a config is a plain dataclass; this module only reads, writes and validates it.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from taesan.atomic import atomic_write_text
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


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or malformed file raises a TaesanError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaesanError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise TaesanError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TaesanError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename), UTF-8, human-readable."""
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
