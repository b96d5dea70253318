"""One self-contained HTML report: titled sections of paragraphs, tables, figures (PNG embedded as base64) and
commands to try, written atomically to a single file that opens anywhere without a server.

Not a template engine and not the demo: it knows sections, not models; `taesan.demo` fills the sections.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taesan.atomic import atomic_write_text

STYLE = """
body { font-family: "Nanum Gothic", "Noto Sans KR", "Apple SD Gothic Neo", "Malgun Gothic", sans-serif;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: .3em; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f6f6f6; padding: .6em .8em; overflow-x: auto; }
nav ol { columns: 2; }
"""


# One rule per kind of column, so a column never shows "1" beside "0.5375": a fraction (accuracy, macro-F1) with
# three decimals, a count with separators, seconds with one decimal, any other measured number with two.
FORMATS = {
    "fraction": lambda v: f"{v:.3f}",  # accuracy 0.5375 -> "0.538", 1.0 -> "1.000"
    "count": lambda v: f"{round(v):,}",  # 928768 -> "928,768"
    "seconds": lambda v: f"{v:.1f}",  # 2.2345 -> "2.2"
    "number": lambda v: f"{v:.2f}",  # a log-probability -3.0 -> "-3.00", a probability 0.352 -> "0.35", a rate in %
    "difference": lambda v: f"{v:.1e}",  # a numerical difference 3.2e-07 -> "3.2e-07", 0.0 -> "0.0e+00"
    "text": str,
}


@dataclass
class Table:
    """A header row and body rows; `kinds` names each column's kind (a key of FORMATS), so a column is formatted
    by one rule. Without it: floats with 4 significant digits, ints with commas, the rest as text."""

    header: list[str]
    rows: list[list[Any]]
    caption: str = ""
    kinds: list[str] | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds or [] if k not in FORMATS]
        if unknown or (self.kinds is not None and len(self.kinds) != len(self.header)):
            raise ValueError(f"Table kinds {self.kinds}: one of {sorted(FORMATS)} per column of {self.header}")


@dataclass
class Section:
    """One part of the report, in reading order: paragraphs, tables, figures, then commands to try."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def _cell(value: Any, kind: str | None = None) -> str:
    """A cell by its column's kind (FORMATS); a (mean, spread) pair as "0.525 ± 0.012"; NaN or None as "–"
    (not measured). No kind: 0.123456 -> "0.1235", 928768 -> "928,768", anything else as str()."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, tuple) and len(value) == 2:
        return f"{_cell(value[0], kind)} ± {_cell(value[1], kind)}"
    if isinstance(value, str) or isinstance(value, bool):
        return str(value)
    if kind is not None:
        return FORMATS[kind](value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    kinds = t.kinds or [None] * len(t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, k))}</td>" for c, k in zip(row, kinds)) + "</tr>"
                   for row in t.rows)
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(path: Path) -> str:
    """The PNG inlined as a data: URL, so the report is one file; its name is the caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _anchor(n: int) -> str:
    return f"s{n}"


def render(title: str, sections: list[Section], intro: str = "") -> str:
    """The whole page as an HTML string (every piece of text escaped)."""
    parts = [f"<!DOCTYPE html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    items = "".join(f'<li><a href="#{_anchor(n)}">{html.escape(s.title)}</a></li>' for n, s in enumerate(sections, 1))
    parts.append(f"<nav><ol>{items}</ol></nav>")
    for n, s in enumerate(sections, 1):
        parts.append(f'<section id="{_anchor(n)}"><h2>{n}. {html.escape(s.title)}</h2>')
        parts.extend(f"<p>{html.escape(p)}</p>" for p in s.text)
        parts.extend(_table(t) for t in s.tables)
        parts.extend(_figure(f) for f in s.figures)
        if s.commands:
            parts.append("<p>Try it:</p><pre>" + html.escape("\n".join(s.commands)) + "</pre>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: list[Section], intro: str = "") -> Path:
    """Render and write the report atomically; returns its path."""
    path = Path(path)
    atomic_write_text(path, render(title, sections, intro))
    return path
