"""Running the app on a port: the socket is bound first (a port in use is one line, before anything is
printed or loaded), then uvicorn serves it with a cap on open connections and a bounded shutdown.

Not the app (app.py): any ASGI app with a ServeConfig runs here.
"""
from __future__ import annotations

import errno
import socket

from taesan.errors import TaesanError
from taesan.serve.options import ServeConfig


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening; one line when the address cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise TaesanError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart may reuse TIME_WAIT ports
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise TaesanError(f"port {port} on {host} is in use; stop what uses it or choose another --port") from None
        if e.errno == errno.EACCES:
            raise TaesanError(f"port {port} on {host} needs more rights; choose a --port above 1023") from None
        raise TaesanError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    sock.set_inheritable(True)
    return sock


def serve(app, sock: socket.socket, config: ServeConfig) -> None:
    """Serve `app` on the bound socket until SIGINT/SIGTERM. Beyond config.max_connections open connections a
    request gets a 503; at shutdown, requests still running after config.shutdown_grace seconds are cancelled
    (model threads are daemons: they do not hold the process)."""
    import uvicorn  # the optional `web` extra

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=config.max_connections,
                                           timeout_graceful_shutdown=config.shutdown_grace, timeout_keep_alive=5))
    server.run(sockets=[sock])
