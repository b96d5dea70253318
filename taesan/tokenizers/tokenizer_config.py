"""HuggingFace's tokenizer_config.json and special_tokens_map.json beside a tokenizer file: which tokens play
the roles bos/eos/unk/pad/mask/cls/sep, the model's maximum length, and BERT's do_lower_case.

Not a tokenizer: `apply` only tells an existing tokenizer the names (its ids stay as its file says).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taesan.tokenizers.base import Tokenizer

ROLES = ("bos", "eos", "unk", "pad", "mask", "cls", "sep")
NO_LIMIT = 10**9  # HF writes int(1e30) for "no maximum length"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a damaged side file does not stop the tokenizer itself from loading
    return data if isinstance(data, dict) else {}


def read(directory: Path) -> dict[str, Any]:
    """special_tokens_map.json, then tokenizer_config.json over it (the latter is what transformers writes last)."""
    return {**_read(directory / "special_tokens_map.json"), **_read(directory / "tokenizer_config.json")}


def token_name(value: Any) -> str | None:
    """"<s>" or {"content": "<s>", ...} (an AddedToken as transformers writes it) -> "<s>"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def lowercase_hint(config: dict[str, Any]) -> bool:
    """do_lower_case for a bare vocab.txt (BERT's default, True, when not said)."""
    return bool(config.get("do_lower_case", True))


def apply(tok: Tokenizer, config: dict[str, Any]) -> Tokenizer:
    """Tell `tok` the role names (only tokens its vocabulary has) and model_max_length."""
    for role in ROLES:
        name = token_name(config.get(f"{role}_token"))
        if name is not None and name in tok.vocab:
            tok.special_names[role] = name
    limit = config.get("model_max_length")
    if isinstance(limit, (int, float)) and 0 < limit < NO_LIMIT:
        tok.model_max_length = int(limit)
    return tok
