"""Does it fit the model? The tokenizer's ids against the embedding rows, a task.json's labels against the head's
outputs, a length against the model's positions: one-line errors before anything runs, instead of an index error
deep in a forward pass or a head sized from a file (issue 14, "consistency").

Not the size of a checkpoint (models/size.py: checked before anything is allocated) and not a tokenizer's own file
format (taesan.tokenizers). What is detectable: an id past the last embedding row, two tokens that share an id (a
vocabulary whose ids are all 0), a RoBERTa whose padding id differs from the tokenizer's (its positions count from
it). A tokenizer of the right size but for another model is not.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from taesan.errors import TaesanError
from taesan.models.kinds import family_name, unwrap

VOCAB_FIELDS = ("vocab_size", "src_vocab_size", "tgt_vocab_size")


def embedding_rows(model: Any) -> int | None:
    """The rows every token id must fall within (an encoder-decoder's smaller side), or None (an image model)."""
    config = getattr(unwrap(model), "config", None)
    sizes = [getattr(config, f, None) for f in VOCAB_FIELDS]
    sizes = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)]
    return min(sizes) if sizes else None


def tokenizer_rows(tokenizer: Any) -> int:
    """The embedding rows a tokenizer needs: its largest id + 1 (more than its size when ids have gaps)."""
    return max(tokenizer.vocab.values(), default=-1) + 1


def check_tokenizer(model: Any, tokenizer: Any, source: Any = None) -> None:
    """One line when `tokenizer` cannot feed `model`: two tokens with one id, an id without an embedding row, a
    padding id RoBERTa's positions would not skip. A tokenizer smaller than the (padded) vocabulary is fine."""
    if tokenizer is None:
        return
    where = f"{source}: " if source else ""
    seen: dict[int, str] = {}
    for token, i in tokenizer.vocab.items():
        if i in seen:
            shared = len(tokenizer.vocab) - len(set(tokenizer.vocab.values()))
            raise TaesanError(f"{where}tokens {seen[i]!r} and {token!r} both have id {i} ({shared} tokens share "
                              f"an id): a corrupted vocabulary")
        seen[i] = token
    rows = embedding_rows(model)
    if rows is not None and seen and max(seen) >= rows:
        top = max(seen)
        raise TaesanError(f"{where}the tokenizer's ids reach {top} ({seen[top]!r}) but the model's vocab_size is "
                          f"{rows}: not this model's tokenizer")
    offset = getattr(getattr(unwrap(model), "backbone", unwrap(model)), "position_offset", 0)
    model_pad = getattr(getattr(unwrap(model), "config", None), "pad_token_id", None)
    if offset and tokenizer.pad_id is not None and model_pad is not None and tokenizer.pad_id != model_pad:
        raise TaesanError(f"{where}the padding token is id {tokenizer.pad_id} but the model's pad_token_id is "
                          f"{model_pad}; RoBERTa counts positions from it, so they must agree")


def positions(model: Any) -> int | None:
    """The longest sequence the model reads (n_positions; a soft prompt's leaves out its own), or None."""
    value = getattr(getattr(model, "config", None), "n_positions", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


LENGTH_FIELDS = ("max_length", "max_target_length")


def check_length(task: Any, model: Any, source: str = "--max-length", reserved: int = 0,
                 asked: Any = LENGTH_FIELDS) -> None:
    """One line when the task would feed more positions than the model has (`reserved`: taken by a soft prompt).
    Only the length fields in `asked` count (the others are defaults a task cuts to the model by itself)."""
    limit = positions(model)
    if limit is None:
        return
    limit -= reserved
    unasked = {f: 1 for f in LENGTH_FIELDS if f not in asked and hasattr(task.config, f)}
    probe = type(task)(dataclasses.replace(task.config, **unasked), task.tokenizer) if unasked else task
    needed = probe.positions_needed()
    if needed > limit:
        also = f" after the {reserved} prompt tokens" if reserved else ""
        raise TaesanError(f"{source}: the {task.name} task reads {needed} tokens per example but the model "
                          f"({family_name(model)}) has {limit} positions{also} (n_positions)")


def check_labels(task: Any, model: Any, source: str = "task.json") -> None:
    """One line when a task's labels and the head's outputs differ (10**7 names on a 2-way head, say)."""
    labels = getattr(task.config, "labels", None) or []
    outputs = getattr(getattr(model, "config", None), "num_labels", None)
    if labels and isinstance(outputs, int) and outputs and len(labels) != outputs:
        raise TaesanError(f"{source}: {len(labels):,} labels but the model's head has {outputs} outputs (num_labels)")


def check_finetuned(task: Any, model: Any, tokenizer: Any, task_file: Any, tokenizer_file: Any) -> None:
    """A fine-tuned checkpoint's parts agree: its task.json with the head and positions, its tokenizer with the rows."""
    check_labels(task, model, str(task_file))
    check_length(task, model, str(task_file))
    check_tokenizer(model, tokenizer, tokenizer_file)
