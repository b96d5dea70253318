"""Who may ask, and in what form: an ASGI middleware in front of the app that answers for the request itself.

- Host: the Host header must name the address the connection came in on (or, on loopback, "localhost"), or a
  name given with --allow-host. A page on evil.example whose name was rebound to 127.0.0.1 names evil.example.
- Origin: a browser names the page that sends a request; another site's page is refused unless --allow-origin
  names it. Requests without an Origin (curl, scripts) are not cross-site.
- Bodies: only application/json (a form or text/plain post from another site needs no preflight), read against a
  size cap and a clock, and parsed once here (depth, integer length, UTF-8) before the app sees them.
- A client that leaves before its body arrived is let go quietly: no answer, no traceback.

Not the request's fields (requests.py) nor the server's capacity (limits.py).
"""
from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers

from taesan.serve.limits import ClientGone, read_body
from taesan.serve.options import ServeConfig
from taesan.serve.replies import HTTPError, send_error
from taesan.serve.requests import parse_body

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host: str) -> str:
    """A Host header's name without its port, lower case: "[::1]:8000" -> "::1", "Example.org:80" -> "example.org"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def host_problem(host: str | None, server: tuple | None, allowed: tuple[str, ...]) -> str | None:
    """Why a request's Host header is not this server, or None. `server` is the (address, port) the connection
    came in on (the ASGI scope's "server")."""
    if "*" in allowed:
        return None
    if not host:
        return "the request has no Host header"
    name = host_name(host)
    names = {host_name(a) for a in allowed}
    if server:
        names.add(str(server[0]).lower())
        if _is_loopback(str(server[0])):
            names.update(LOOPBACK_NAMES)
    if name in names:
        return None
    return f"host {host!r} is not this server; to answer it, start with --allow-host {name}"


def origin_problem(origin: str | None, host: str | None, scheme: str, allowed: tuple[str, ...]) -> str | None:
    """Why a request's Origin may not call the API, or None: same origin, no Origin, or one --allow-origin names."""
    if origin is None or origin.rstrip("/") in allowed or "*" in allowed:
        return None
    if host and origin.lower() == f"{scheme}://{host}".lower():
        return None
    return f"requests from another site's page ({origin[:100]}) are refused; to allow it, start with --allow-origin {origin[:100]}"


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json"


class Guard:
    """ASGI middleware: Host, Origin and body checks before the app (see the module's docstring)."""

    def __init__(self, app, config: ServeConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cfg, headers = self.config, Headers(scope=scope)
        problem = host_problem(headers.get("host"), scope.get("server"), cfg.allow_hosts) or \
            origin_problem(headers.get("origin"), headers.get("host"), scope.get("scheme", "http"), cfg.allow_origins)
        if problem:
            return await send_error(send, 403, problem)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        read = False  # whether the body was read to its end (if not, the connection closes after the answer)
        try:
            if not is_json(headers.get("content-type")):
                raise HTTPError(415, f"send the body as application/json (not {headers.get('content-type') or 'no type'})")
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cfg.max_body:
                raise HTTPError(413, f"request body is {declared} bytes; the limit is {cfg.max_body}")
            raw = await read_body(receive, cfg.max_body, cfg.body_timeout)
            read = True
            parse_body(raw)
        except HTTPError as e:
            return await send_error(send, e.status, e.message, close=not read)
        except ClientGone:
            return
        await self.app(scope, _replay(raw, receive), send)


def _replay(raw: bytes, receive):
    """An ASGI receive that hands the app the body already read, then waits on the client (for its disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
