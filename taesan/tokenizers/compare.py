"""The ways to cut a sentence (word, morpheme, char, BPE, WordPiece, WordPiece merged within morphemes), measured
on a real corpus: train each kind on most lines, then on held-out lines report vocabulary size, [UNK] rate, tokens
per sentence, and word-variant splits.

Not a printer: returns data (and `plot` draws it); `taesan tokenizer compare` prints the table.
"""
from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from taesan.errors import TaesanError
from taesan.figures import korean_font, korean_rc, save_png
from taesan.tokenizers import KINDS
from taesan.tokenizers.corpus import iter_texts

DEFAULT_VARIANTS = ("갔었어", "갔었는데요", "갔었다", "먹었어", "먹었는데요", "먹었다")
# a kind trained with options, compared as a kind of its own: name -> (kind, training options)
TRAINED_AS = {"wordpiece-morphemes": ("wordpiece", {"merge_rule": "frequency", "morphemes": True})}
NEEDS_KIWI = ("morpheme", "wordpiece-morphemes")
DEFAULT_KINDS = ("word", "morpheme", "char", "bpe", "wordpiece", "wordpiece-morphemes")


@dataclass
class KindReport:
    """One kind's numbers. unk_rate = [UNK] tokens / all tokens on held-out lines (special tokens excluded)."""

    kind: str
    vocab_size: int
    unk_rate: float
    tokens_per_sentence: float
    chars_per_token: float
    train_seconds: float
    variants: dict[str, list[str]] = field(default_factory=dict)


def split_lines(data: Any, holdout_every: int = 10, max_lines: int | None = None) -> tuple[list[str], list[str]]:
    """Non-empty lines; every `holdout_every`-th one is held out (same distribution, deterministic)."""
    train, held = [], []
    n = 0
    for text in iter_texts(data):
        for line in text.split("\n"):
            if not line.strip():
                continue
            (held if n % holdout_every == 0 else train).append(line)
            n += 1
            if max_lines is not None and n >= max_lines:
                return train, held
    if not held or not train:
        raise TaesanError(f"compare needs at least {holdout_every + 1} non-empty lines, got {n}")
    return train, held


def surface_pieces(tok: Any, word: str) -> list[str]:
    """How `word` is cut, shown as slices of the word itself (readable even for byte-level BPE); [UNK] as is.

    Byte-level tokens that split characters have overlapping spans: such a run is shown as the text it covers,
    numbered, so a split syllable does not read as a doubled one. Byte-level BPE cutting 갔 into two byte
    tokens, then 었, 어: surface_pieces(bpe, "갔었어") -> ["갔(1/2)", "갔(2/2)", "었", "어"]
    """
    enc = tok.encode(word, add_special_tokens=False)
    unk = tok.unk_id
    runs: list[list[int]] = []  # token indices whose spans overlap, in order
    for n, (s, e) in enumerate(enc.offsets):
        if runs and s < enc.offsets[runs[-1][-1]][1]:
            runs[-1].append(n)
        else:
            runs.append([n])
    pieces = []
    for run in runs:
        s, e = enc.offsets[run[0]][0], max(enc.offsets[n][1] for n in run)
        for k, n in enumerate(run, start=1):
            if enc.ids[n] == unk:
                pieces.append(getattr(tok, "unk_token", "[UNK]"))
            else:
                pieces.append(word[s:e] if len(run) == 1 else f"{word[s:e]}({k}/{len(run)})")
    return pieces


BYTE_SPLIT = re.compile(r"\((\d+)/(\d+)\)$")  # surface_pieces' numbering: 카페(1/3)


def byte_split_note(pieces: list[str], sep: str = " · ") -> str:
    """What surface_pieces' "(k/n)" means, told on the first such piece in `pieces` ("" when there is none).

    byte_split_note(["카페(1/3)", "카페(2/3)", "카페(3/3)", "▁갔었"]) -> "카페(1/3) · 카페(2/3) · 카페(3/3): byte-level BPE
    spelled 카페 with 3 tokens ..."
    """
    for piece in pieces:
        m = BYTE_SPLIT.search(piece)
        if m:
            text, n = piece[: m.start()], int(m.group(2))
            run = sep.join(f"{text}({k}/{n})" for k in range(1, n + 1))
            return (f"{run}: byte-level BPE spelled {text} with {n} tokens whose edges fall inside characters "
                    f"(a Hangul syllable is 3 UTF-8 bytes, {text} is {len(text.encode())}), so no token is a whole "
                    f"character; each shows the text the {n} cover together, numbered 1 to {n}")
    return ""


def available_kinds(kinds: tuple[str, ...] = DEFAULT_KINDS) -> list[str]:
    """The requested kinds that can run here (morpheme and wordpiece-morphemes need kiwipiepy)."""
    return [k for k in kinds if k not in NEEDS_KIWI or importlib.util.find_spec("kiwipiepy") is not None]


def compare(
    data: Any,
    vocab_size: int = 8000,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    min_frequency: int = 2,
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    holdout_every: int = 10,
    max_lines: int | None = None,
    on_kind: Callable[[str], None] | None = None,
) -> list[KindReport]:
    """Train each kind at `vocab_size` on the training lines and measure it on the held-out lines."""
    unknown = [k for k in kinds if k not in KINDS and k not in TRAINED_AS]
    if unknown:
        raise TaesanError(f"unknown tokenizer kind(s) {unknown}; choose from {sorted([*KINDS, *TRAINED_AS])}")
    train, held = split_lines(data, holdout_every, max_lines)
    held_chars = sum(len(t) for t in held)
    reports = []
    for kind in available_kinds(kinds):
        if on_kind is not None:
            on_kind(kind)
        t0 = time.perf_counter()
        base, options = TRAINED_AS.get(kind, (kind, {}))
        tok = KINDS[base].train(train, vocab_size=vocab_size, min_frequency=min_frequency, **options)
        seconds = time.perf_counter() - t0
        unk, total = tok.unk_id, 0
        n_unk = 0
        for enc in tok.encode_batch(held, padding=False, add_special_tokens=False):
            total += len(enc.ids)
            if unk is not None:
                n_unk += sum(1 for i in enc.ids if i == unk)
        reports.append(KindReport(
            kind=kind, vocab_size=tok.vocab_size, unk_rate=n_unk / max(total, 1), tokens_per_sentence=total / len(held),
            chars_per_token=held_chars / max(total, 1), train_seconds=seconds,
            variants={w: surface_pieces(tok, w) for w in variants},
        ))
    return reports


def plot(reports, path: str | Path) -> Path:
    """The comparison as a PNG: three bar panels (vocabulary, [UNK] rate, tokens per sentence), each bar labelled
    with its value. The variant splits are not drawn: as a table inside the picture they were ~5 px text; the
    caller shows them as text (the terminal, the demo's HTML table, compare.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(korean_rc(korean_font())):
        return _draw(plt, reports, Path(path))


def _draw(plt, reports, path: Path) -> Path:
    import warnings

    kinds = [r.kind for r in reports]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [("vocabulary size", [r.vocab_size for r in reports], "{:,.0f}"),
              ("[UNK] rate (%)", [100 * r.unk_rate for r in reports], "{:.2f}"),
              ("tokens per sentence", [r.tokens_per_sentence for r in reports], "{:.1f}")]
    for ax, (title, values, shown) in zip(axes, panels):
        bars = ax.bar(kinds, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"][: len(kinds)])
        ax.bar_label(bars, labels=[shown.format(v) for v in values], fontsize=9)
        ax.set_title(title)
        ax.margins(y=0.15)  # room for the labels above the tallest bar
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("tokenizers compared on held-out lines")
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing Hangul glyphs when no CJK font is installed
        fig.tight_layout()
        return save_png(fig, path)
