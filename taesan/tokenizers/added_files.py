"""The tokens HuggingFace adds to a vocab.txt / vocab.json / .model tokenizer from the files beside it: the
tokenizer_config.json's added_tokens_decoder (or the older added_tokens.json), additional_special_tokens, and
T5's 100 sentinels <extra_id_N> after a spiece.model's pieces.

Not the tokenizer itself: these are AddedTokens for `PipelineTokenizer.add_tokens` or a tokenizer.json's list.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from taesan.config import read_json
from taesan.errors import TaesanError
from taesan.tokenizers.stages.added_tokens import AddedToken
from taesan.tokenizers.tokenizer_config import ROLES, token_name

T5_CLASSES = {"T5Tokenizer", "T5TokenizerFast", "MT5Tokenizer", "MT5TokenizerFast"}
T5_MODEL_TYPES = {"t5", "mt5", "umt5"}
MAX_EXTRA_IDS = 10_000


def _json(path: Path) -> Any:
    """A config file beside a tokenizer, read as every checkpoint JSON is (size, depth and number limits)."""
    return read_json(path)


def extra_special_tokens(config: dict[str, Any]) -> list[str]:
    """additional_special_tokens (transformers 5 also writes extra_special_tokens), as token strings."""
    out: list[str] = []
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = config.get(key)
        for t in value if isinstance(value, list) else []:
            name = token_name(t)
            if name is not None and name not in out:
                out.append(name)
    return out


def t5_sentinels(directory: Path, config: dict[str, Any], pieces: int) -> list[AddedToken]:
    """T5Tokenizer's sentinels for a T5 directory (tokenizer_class T5Tokenizer, an extra_ids field, or config.json
    model_type t5/mt5): <extra_id_i> is id pieces + extra_ids - 1 - i, so <extra_id_0> is the last id.

    t5_sentinels(d, {"extra_ids": 2}, 300) -> [<extra_id_0> = 301, <extra_id_1> = 300]"""
    model_type = None
    if (directory / "config.json").is_file():
        model = _json(directory / "config.json")
        model_type = model.get("model_type") if isinstance(model, dict) else None
    if config.get("tokenizer_class") not in T5_CLASSES and "extra_ids" not in config and model_type not in T5_MODEL_TYPES:
        return []
    n = config.get("extra_ids", 100)
    if type(n) is not int or not 0 <= n <= MAX_EXTRA_IDS:
        where = directory / "tokenizer_config.json"
        raise TaesanError(f"{where}: extra_ids must be a whole number 0..{MAX_EXTRA_IDS}, got {n!r:.40}")
    return [AddedToken(f"<extra_id_{i}>", pieces + n - 1 - i, special=True, normalized=False) for i in range(n)]


def added_tokens(directory: Path, config: dict[str, Any], vocab: dict[str, int]) -> list[AddedToken]:
    """What HF adds to `vocab`: tokenizer_config's added_tokens_decoder (id -> token and its options), else
    added_tokens.json (token -> id; special, and matched in the raw text, when it is a named or additional
    special token), then each additional special token not yet in either, at the next free id. A token of
    `vocab` listed as additional special becomes special with its own id."""
    extra = extra_special_tokens(config)
    specials = set(extra) | {n for r in ROLES if (n := token_name(config.get(f"{r}_token"))) is not None}
    out: dict[str, AddedToken] = {}
    table = config.get("added_tokens_decoder")
    if isinstance(table, dict) and table:
        where = directory / "tokenizer_config.json"
        for key, entry in table.items():
            content = token_name(entry)
            if content is None or not str(key).isdigit():
                raise TaesanError(f"{where}: added_tokens_decoder entry {key!r:.20} needs a numeric id and a token")
            options = entry if isinstance(entry, dict) else {}
            out[content] = AddedToken.from_json({**options, "content": content, "id": int(key)})
    elif (directory / "added_tokens.json").is_file():
        where = directory / "added_tokens.json"
        table = _json(where)
        if not isinstance(table, dict) or not all(type(i) is int and i >= 0 for i in table.values()):
            raise TaesanError(f"{where}: must map each token to a whole-number id")
        for content, i in table.items():
            out[content] = AddedToken(content, i, special=content in specials, normalized=content not in specials)
    free = max([*vocab.values(), *(t.id for t in out.values())], default=-1) + 1
    for content in extra:
        if content in out:
            continue
        if content in vocab:
            out[content] = AddedToken(content, vocab[content], special=True, normalized=False)
        else:
            out[content], free = AddedToken(content, free, special=True, normalized=False), free + 1
    return list(out.values())
