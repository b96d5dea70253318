"""Atomic file writes: write to a temp file beside the target, then rename.

A crash or a full disk never leaves a half-written checkpoint, tokenizer or report behind.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)  # read once, at import (setting it is the only way to read it)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's directory; on success it is renamed onto ``path``.

    >>> with atomic_path("out.bin") as tmp:   # doctest: +SKIP
    ...     tmp.write_bytes(b"...")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # after writing (safetensors recreates the file): mkstemp's 0600 made it private
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# the temp names atomic_path makes: "." + the target's name + "." + mkstemp's 8 random characters + ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_leftovers(directory: str | Path) -> list[Path]:
    """Delete the temp files that writes killed mid-way left in `directory` (not below it); -> what was removed.

    Only for a directory one process writes (a training run's out dir): a live write's temp file looks the same.
    """
    removed = []
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.iterdir():
            if _TEMP_NAME.match(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
