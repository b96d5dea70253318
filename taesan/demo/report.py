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


@dataclass
class Table:
    """A header row and body rows; cells are shown as text (floats with 4 significant digits, ints with commas)."""

    header: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    """One part of the report, in reading order: paragraphs, tables, figures, then commands to try."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def _cell(value: Any) -> str:
    """0.123456 -> "0.1235", 928768 -> "928,768", anything else as str()."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in t.rows)
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
