"""NER data: KLUE-NER (one BIO tag per character) and CoNLL-2003 (one BIO tag per word), told apart by content.

Not alignment to subwords (taesan.tasks.ner does that): a reader only yields the text, its labelled units
(character or word spans into the text) and their tags, and names the file and line of anything malformed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from taesan.tasks.metrics.entities import split_tag
from taesan.textfiles import data_error, read_text


@dataclass
class TaggedText:
    """A sentence with one BIO tag per unit; unit i covers text[spans[i][0]:spans[i][1]].

    KLUE: units are the characters (spaces included, tagged like any other); CoNLL: units are the
    words, joined by single spaces to make `text`.
    """

    text: str
    tags: list[str]
    spans: list[tuple[int, int]]
    unit: str = "char"  # "char" or "word"
    id: str = ""
    path: str = ""  # the file it came from, for error messages
    lines: list[int] = field(default_factory=list)  # the line of each unit's tag

    @property
    def units(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]

    def where(self, unit: int = 0) -> str:
        """'FILE, line N' of a unit's tag (the file alone when lines are unknown), for error messages."""
        line = self.lines[unit] if unit < len(self.lines) else None
        return f"{self.path or '<examples>'}, line {line}" if line is not None else (self.path or "<examples>")


def read_ner(path: str | Path) -> list[TaggedText]:
    """Sentences of a KLUE-NER file (its lines start with '##' headers) or a CoNLL-2003 file (anything else)."""
    numbered = list(_lines(path))
    first = next((line for _, line in numbered if line.strip()), None)
    if first is None:
        raise data_error(path, None, "the file is empty")
    sentences = list(_klue(path, numbered) if first.startswith("##") else _conll(path, numbered))
    if not sentences:
        raise data_error(path, None, "no tagged sentences found")
    return sentences


def ner_layout(path: str | Path) -> str | None:
    """'char' for a KLUE-NER file, 'word' for a CoNLL file, None for anything else (plain text, a sentence a line),
    so `predict --file` can take a tagged file's sentences. KLUE: a '##' line first and 'character<TAB>tag' lines
    (read_ner then checks every line); CoNLL: every line 'word ... tag' with a BIO tag last, or -DOCSTART-.

    "## s1<TAB>민수\n민<TAB>B-PS\n수<TAB>I-PS" -> 'char'; "EU B-ORG\nrejects O" -> 'word'; "EU rejects it" -> None
    """
    numbered = [line for _, line in _lines(path) if line.strip()]
    if not numbered:
        return None
    if numbered[0].startswith("##"):
        return "char" if any(_is_tagged_char(line) for line in numbered) else None  # else a heading over plain text
    return "word" if all(_is_tagged_word(line) for line in numbered) else None


def _is_bio(tag: str) -> bool:
    try:
        split_tag(tag)
    except ValueError:
        return False
    return True


def _is_tagged_char(line: str) -> bool:
    char, sep, tag = line.partition("\t")
    return bool(sep) and len(char) == 1 and _is_bio(tag.strip())


def _is_tagged_word(line: str) -> bool:
    fields = line.split()
    return fields[0] == "-DOCSTART-" or len(fields) >= 2 and _is_bio(fields[-1])


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Lines split on '\\n' only: a KLUE character may be a separator that str.splitlines would cut at."""
    for no, line in enumerate(read_text(path).split("\n"), start=1):
        yield no, line[:-1] if line.endswith("\r") else line


def _check_tag(path: str | Path, no: int, tag: str) -> str:
    try:
        split_tag(tag)
    except ValueError:
        raise data_error(path, no, f"tag {tag!r} is not BIO (O, B-TYPE or I-TYPE)") from None
    return tag


def _klue(path: str | Path, numbered: list[tuple[int, str]]) -> Iterator[TaggedText]:
    """'## id<TAB>sentence' header lines, then one 'char<TAB>tag' line per character; blank lines between."""
    chars: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    ident = ""  # the sentence's id, from its '## id<TAB>sentence' header

    def flush() -> Iterator[TaggedText]:
        nonlocal ident
        if chars:
            text = "".join(chars)
            yield TaggedText(text, list(tags), [(i, i + 1) for i in range(len(text))], "char", ident, str(path),
                             list(lines))
        chars.clear(), tags.clear(), lines.clear()
        ident = ""

    for no, line in numbered:
        if not line.strip():  # blank (a space character always has its tab and tag)
            yield from flush()
            continue
        if line.startswith("##"):
            if chars:  # a header right after characters: a new sentence without the blank line
                yield from flush()
            body = line[2:].strip()
            if "\t" in body:  # '## id<TAB>sentence'; other '##' lines are comments
                ident = body.split("\t", 1)[0].strip()
            continue
        char, sep, tag = line.partition("\t")
        if not sep:
            raise data_error(path, no, "expected 'character<TAB>tag' (KLUE-NER layout), found no tab")
        if len(char) != 1:
            raise data_error(path, no, f"expected one character before the tab, found {char!r}")
        chars.append(char), tags.append(_check_tag(path, no, tag.strip())), lines.append(no)
    yield from flush()


def _conll(path: str | Path, numbered: list[tuple[int, str]]) -> Iterator[TaggedText]:
    """'token POS chunk NER' lines (any columns; the first is the word, the last its tag); -DOCSTART- skipped."""
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> Iterator[TaggedText]:
        if words:
            spans, pos = [], 0
            for w in words:
                spans.append((pos, pos + len(w)))
                pos += len(w) + 1
            yield TaggedText(" ".join(words), list(tags), spans, "word", "", str(path), list(lines))
        words.clear(), tags.clear(), lines.clear()

    for no, line in numbered:
        fields = line.split()
        if not fields:
            yield from flush()
            continue
        if fields[0] == "-DOCSTART-":
            yield from flush()
            continue
        if len(fields) < 2:
            raise data_error(path, no, f"expected 'word ... tag' (CoNLL columns), found {line.strip()!r}")
        words.append(fields[0]), tags.append(_check_tag(path, no, fields[-1])), lines.append(no)
    yield from flush()
