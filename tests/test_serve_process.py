"""`taesan serve` as a real process on a free loopback port: SIGTERM with requests in flight ends it within
seconds, slow and broken clients are timed out, capped and let go without a traceback in the log, a port in use
is one line and exit 2, and memory stays flat under a few hundred requests."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the web extra (fastapi, uvicorn) is not installed")

import taesan  # noqa: E402
from taesan.tokenizers import CharTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# the server, optionally with a generation that never ends (and one that never starts, for the prompt "stuck")
SERVER = r'''
import sys, time
from taesan.serve import served

def endless(model, prompt, *args):
    if prompt == "stuck":
        time.sleep(3600)
    while True:
        time.sleep(0.01)
        yield "티끌"

if sys.argv[1] == "--endless":
    served.generate_stream = endless
from taesan.cli import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """An untrained one-layer GPT with a character tokenizer: it can generate, score, tokenize and attend."""
    out = tmp_path_factory.mktemp("process") / "gpt"
    tok = CharTokenizer.train(["티끌 모아 태산", "어제 카페 갔었어"], vocab_size=60, min_frequency=1, special_tokens=["<|endoftext|>"])
    taesan.create("gpt-tiny", vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=64).save(out, tok)
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`taesan serve` in a child process on a free port; its stderr goes to a file read by log()."""

    def __init__(self, checkpoint: str, tmp_path: Path, *flags: str, endless: bool = False) -> None:
        self.port = free_port()
        self.err = tmp_path / f"serve-{self.port}.err"
        args = ["--endless" if endless else "--real", "serve", "--model", f"gpt={checkpoint}", "--port", str(self.port),
                "--no-tokenizers", *flags]
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
        with open(self.err, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-c", SERVER, *args], stdout=subprocess.PIPE, stderr=err, env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.get("/api/models")[0] == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"taesan serve did not start: {self.log()}")
            time.sleep(0.1)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        c = self.connection()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def head(self, path: str, length: int) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {length}\r\n\r\n").encode()

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.err.read_text(errors="replace")


def read_until(sock: socket.socket, marker: bytes, seconds: float = 30) -> bytes:
    data, end = b"", time.monotonic() + seconds
    while marker not in data:
        sock.settimeout(max(0.01, end - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_stream(server: Server, prompt: str) -> socket.socket:
    body = json.dumps({"model": "gpt", "prompt": prompt, "max_new_tokens": 10}).encode()
    sock = server.raw()
    sock.sendall(server.head("/api/generate", len(body)) + body)
    return sock


def test_sigterm_with_requests_in_flight_exits_within_seconds(checkpoint, tmp_path):
    """A stream that would run for ever and a worker that never answers: SIGTERM still ends the process."""
    server = Server(checkpoint, tmp_path, "--max-concurrent", "2", endless=True)
    try:
        streaming = open_stream(server, "티끌")
        assert b'{"text": "' in read_until(streaming, b'{"text": "')
        stuck = open_stream(server, "stuck")
        time.sleep(0.3)  # the stuck request is in its worker now
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
        took = time.monotonic() - start
        assert took < 5, f"the server took {took:.1f} s to stop"
        streaming.settimeout(5)
        while streaming.recv(4096):  # the stream was ended, not left hanging
            pass
        for sock in (streaming, stuck):
            sock.close()
    finally:
        server.stop()


def test_slow_and_broken_clients(checkpoint, tmp_path):
    """A partial body gets a 408 and its connection closed; open connections past the cap get a 503; clients that
    leave mid-body or mid-stream leave no traceback in the server's log."""
    server = Server(checkpoint, tmp_path, "--body-timeout", "0.5", "--max-connections", "4", endless=True)
    try:
        partial = server.raw()  # Content-Length 100, 10 bytes sent
        partial.sendall(server.head("/api/score", 100) + b'{"model": ')
        start = time.monotonic()
        answer = read_until(partial, b"}")
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer, answer
        assert time.monotonic() - start < 5
        partial.settimeout(5)
        assert read_until(partial, b"never", seconds=2) == b""  # and the connection is closed at once
        partial.close()

        idle = [server.raw() for _ in range(4)]  # connections that send nothing hold their places
        time.sleep(0.2)
        status, body = server.get("/api/models")
        assert status == 503, (status, body)
        for sock in idle:
            sock.close()
        time.sleep(0.3)
        assert server.get("/api/models")[0] == 200

        leaves_mid_body = server.raw()
        leaves_mid_body.sendall(server.head("/api/score", 100) + b'{"model"')
        time.sleep(0.2)
        leaves_mid_body.close()
        leaves_mid_stream = open_stream(server, "티끌")
        read_until(leaves_mid_stream, b'{"text": "')
        leaves_mid_stream.close()
        time.sleep(0.5)
        assert server.get("/api/models")[0] == 200
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


def test_a_port_in_use_is_one_line_and_exit_2(capsys):
    from taesan.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--no-tokenizers", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "open http" not in out
    assert err.strip().splitlines() == [f"taesan: error: port {port} on 127.0.0.1 is in use; stop what uses it or choose another --port"] \
        or (len(err.strip().splitlines()) == 1 and f"port {port} on 127.0.0.1 is in use" in err), err


def test_memory_stays_flat_under_load(checkpoint, tmp_path):
    """A few hundred requests of every kind the checkpoint serves, some streams dropped half way: the server's
    resident memory after them is within a few MB of what it was after the first hundred."""
    server = Server(checkpoint, tmp_path, "--max-concurrent", "2")
    bodies = [("/api/tokenize", {"text": "어제 카페 갔었어"}), ("/api/score", {"model": "gpt", "texts": ["티끌 모아 태산"]}),
              ("/api/attention", {"model": "gpt", "text": "티끌 모아"}),
              ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": 20}),
              ("/api/score", {"model": "gpt", "texts": [None]})]  # a 400

    def burst(n: int) -> list[int]:
        c, statuses = server.connection(), []
        for i in range(n):
            path, body = bodies[i % len(bodies)]
            c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
        c.close()
        for _ in range(n // 20):  # and a stream dropped after its first piece
            sock = open_stream(server, "어제")
            read_until(sock, b'{"text": "')
            sock.close()
        return statuses

    try:
        assert set(burst(100)) == {200, 400}
        time.sleep(0.5)
        before = server.rss_kb()
        assert set(burst(400)) == {200, 400}
        time.sleep(0.5)
        grew = server.rss_kb() - before
        assert grew < 16_000, f"resident memory grew by {grew} kB over 400 requests"
    finally:
        server.stop()
