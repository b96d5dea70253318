"""What `taesan serve` is started with: the served models by name, the server's limits and whom it answers.

Not the app (app.py) and not the web extra's code: this module imports neither fastapi nor uvicorn, so the CLI
can check its arguments (and say "pip install 'taesan[web]'") without them.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from taesan.errors import TaesanError


@dataclass
class ServeConfig:
    """The server's own limits. The limits of a request's fields (text length, max_new_tokens, ...) are the API's,
    in taesan.serve.requests, so the schema and the page show the same numbers."""

    timeout: float = 30.0  # seconds of computation per request, waiting for a slot included (generation: the whole stream)
    body_timeout: float = 10.0  # seconds for a request body to arrive; a slower client gets a 408 and is dropped
    max_body: int = 64 * 1024  # bytes of a request body
    max_concurrent: int = 2  # model computations running at once (see limits.Slots)
    max_queue: int = 4  # requests waiting for a slot; one more is a 503
    max_connections: int = 64  # open connections (uvicorn's limit_concurrency); a request beyond them gets a 503
    shutdown_grace: float = 2.0  # seconds requests in flight get to finish when the server is stopped
    allow_hosts: tuple[str, ...] = ()  # Host names answered besides the address the connection came in on ("*": any)
    allow_origins: tuple[str, ...] = ()  # other sites' origins ("https://example.org") whose pages may call the API
    demo_tokenizers: bool = True  # word/char/BPE/WordPiece on the embedded corpus for the comparison tab
    precision: str = "auto"  # the served models': auto (bf16 where the CPU computes it natively), fp32, bf16

    def check(self) -> None:
        """One line naming the first setting that cannot work."""
        for name in ("timeout", "body_timeout", "shutdown_grace"):
            if not getattr(self, name) > 0:
                raise TaesanError(f"{name} {getattr(self, name):g}: must be more than 0 seconds")
        if self.max_concurrent < 1 or self.max_queue < 0:
            raise TaesanError(f"max_concurrent {self.max_concurrent} / max_queue {self.max_queue}: "
                              "need at least 1 slot and a queue of 0 or more")
        if self.max_connections < 1 or self.max_body < 1:
            raise TaesanError(f"max_connections {self.max_connections} / max_body {self.max_body}: must be 1 or more")
        for origin in self.allow_origins:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise TaesanError(f"--allow-origin {origin!r}: expected scheme://host[:port], e.g. https://example.org")


def require_web() -> None:
    """A one-line error when the `web` extra is not installed."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise TaesanError(f"taesan serve needs {' and '.join(missing)}: pip install 'taesan[web]'")


def model_specs(values: list[str]) -> dict[str, str]:
    """["NAME=DIR" or "DIR", ...] -> {name: dir}; a bare DIR is named by its directory name."""
    models: dict[str, str] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep:
            name, directory = Path(value.rstrip("/")).name, value
        if not name or not directory:
            raise TaesanError(f"--model {value!r}: expected DIR or NAME=DIR")
        if name in models:
            raise TaesanError(f"--model: two models named {name!r}; name them with NAME=DIR")
        if not Path(directory).is_dir():
            raise TaesanError(f"--model {value}: {directory} is not a checkpoint directory")
        models[name] = directory
    return models
