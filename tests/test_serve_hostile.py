"""`taesan serve` against hostile and broken requests, in process: every malformed body is a 4xx with one line,
a failing worker reaches the client, no request outlives its deadline, other sites and other Host names are
refused, and /openapi.json documents every body and every 4xx. (Real sockets: test_serve_process.py.)"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from playground_models import build_models  # noqa: E402
from taesan.serve import ServeConfig, create_app  # noqa: E402
from taesan.serve import served as serve_models  # noqa: E402

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    models = build_models(tmp_path_factory.mktemp("hostile"), tasks=())
    return create_app(models, ServeConfig(demo_tokenizers=False))


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app, raise_server_exceptions=False)  # a 500 is an answer to check, not an exception


def one_line_error(r, status: int, match: str = "") -> str:
    assert r.status_code == status, (r.status_code, r.text)
    message = r.json()["error"]
    assert match in message and "\n" not in message and len(message) < 300, message
    return message


def a_new_app(app, **config):
    return create_app({}, ServeConfig(demo_tokenizers=False, **config), loaded=app.state.served)


# ---- malformed bodies: a 4xx with one line, never a 500 or a hang ---------------------------------------------------

HOSTILE_BODIES = [
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": None}, 400, "'max_new_tokens': expected an integer"),
    ("/api/fill-mask", {"model": "bert", "text": "티끌 [MASK]", "top_k": None}, 400, "'top_k': expected an integer"),
    ("/api/generate", {"model": "gpt", "prompt": None}, 400, "'prompt': expected a string"),
    ("/api/generate", {"model": None, "prompt": "티끌"}, 400, "'model': expected a string"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "seed": -1}, 400, "'seed' = -1: must be between 0 and 2147483647"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "temperature": 0}, 400, "between 0.01 and 10"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "top_k": 5.5}, 400, "'top_k': expected an integer"),
    ("/api/generate", {"model": "gpt", "prompt": ["티끌"]}, 400, "'prompt': expected a string"),
    ("/api/generate", {"model": {"name": "gpt"}, "prompt": "티끌"}, 400, "'model': expected a string"),
    ("/api/score", {"model": "gpt", "texts": [None]}, 400, "'texts' item 0: expected a string"),
    ("/api/score", {"model": "gpt", "texts": None}, 400, "non-empty list"),
    ("/api/attention", {"model": "gpt", "text": "티끌", "target": ""}, 400, "'target' is empty"),
    ("/api/tokenize", {"text": ""}, 400, "'text' is empty"),
    ("/api/qa", {"model": "gpt", "question": {}, "context": "카페"}, 400, "'question': expected a string"),
]


@pytest.mark.parametrize("path, body, status, match", HOSTILE_BODIES)
def test_malformed_fields_are_one_line_4xx(client, path, body, status, match):
    one_line_error(client.post(path, json=body), status, match)


@pytest.mark.parametrize("raw, match", [
    (b"[" * 3000 + b"]" * 3000, "nested deeper than 8 levels"),  # json.loads: RecursionError
    (b'{"model": "gpt", "prompt": "a", "x": ' + b"[" * 50 + b"]" * 50 + b"}", "nested deeper than 8 levels"),
    (b'{"model": "gpt", "prompt": "a", "seed": ' + b"9" * 4301 + b"}", "integer of 4301 digits"),  # int(): ValueError
    (b'{"model": "gpt", "prompt": "a", "seed": -' + b"9" * 5000 + b"}", "integer of 5000 digits"),
    (b'{"model": "gpt", "prompt": "a", "temperature": 1e999}', "'temperature': expected a finite number"),
    (b'{"model": "gpt", "prompt": "a", "temperature": NaN}', "'temperature': expected a finite number"),
    (b'{"model": "gpt", "prompt": "a"', "not JSON"),
    (b'"just a string"', "JSON object"),
    (b"null", "JSON object"),
    (b"\xef\xbb\xbf{}", "not JSON"),  # a UTF-8 byte order mark
])
def test_hostile_json_is_a_400(client, raw, match):
    one_line_error(client.post("/api/generate", content=raw, headers=JSON), 400, match)


def test_a_body_of_escaped_quotes_is_refused_at_once(client):
    """An unterminated string of 32,000 escaped quotes: one pass of the JSON parser, not a quadratic scan."""
    start = time.monotonic()
    one_line_error(client.post("/api/generate", content=b'"' + b'\\"' * 32_000, headers=JSON), 400, "not JSON")
    assert time.monotonic() - start < 2


def test_deep_nesting_inside_strings_is_just_text(client):
    for prompt in ("[" * 500 + "{", '\\"[[[[[[[[[[', '\\\\"' + "[" * 20):  # brackets, escaped quotes, an escaped backslash
        r = client.post("/api/tokenize", json={"text": prompt})
        assert r.status_code == 200 and r.json()["text"] == prompt


# ---- a failing worker reaches the client; every request has a deadline ----------------------------------------------


def test_a_worker_that_fails_before_streaming_is_a_500_with_one_line(app, monkeypatch):
    def broken(*args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(serve_models, "generate_stream", broken)
    busy = a_new_app(app)
    client = TestClient(busy, raise_server_exceptions=False)
    one_line_error(client.post("/api/generate", json={"model": "gpt", "prompt": "티끌"}), 500, "internal error (TypeError)")
    assert busy.state.slots.running == 0  # the slot came back


def test_a_worker_that_fails_mid_stream_ends_with_an_error_line(app, monkeypatch):
    def breaks_after_one(*args):
        yield "티끌"
        raise TypeError("unsupported operand")

    monkeypatch.setattr(serve_models, "generate_stream", breaks_after_one)
    r = TestClient(a_new_app(app)).post("/api/generate", json={"model": "gpt", "prompt": "티끌"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert r.status_code == 200 and lines == [{"text": "티끌"}, {"error": "generation failed (TypeError)", "done": True}]


def test_a_failing_computation_is_a_500_with_one_line(app, monkeypatch):
    monkeypatch.setattr(serve_models, "fill_mask", lambda *a: 1 / 0)
    r = TestClient(a_new_app(app), raise_server_exceptions=False).post("/api/fill-mask", json={"model": "bert", "text": "티끌 [MASK]"})
    one_line_error(r, 500, "internal error (ZeroDivisionError)")


def test_a_worker_that_never_answers_gets_a_408_at_the_deadline(app, monkeypatch):
    release = threading.Event()

    def stuck(*args):  # hangs before its first piece, as a TypeError used to hang the old server
        release.wait(30)
        return iter(["late"])

    monkeypatch.setattr(serve_models, "generate_stream", stuck)
    busy = a_new_app(app, timeout=0.5)
    start = time.monotonic()
    r = TestClient(busy).post("/api/generate", json={"model": "gpt", "prompt": "티끌"})
    assert time.monotonic() - start < 5
    one_line_error(r, 408, "did not start within 0.5 s")
    release.set()
    deadline = time.monotonic() + 5
    while busy.state.slots.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert busy.state.slots.running == 0


def test_a_stream_that_stalls_ends_with_an_error_line_at_the_deadline(app, monkeypatch):
    release = threading.Event()

    def stalls(*args):
        yield "티끌"
        release.wait(30)
        yield "late"

    monkeypatch.setattr(serve_models, "generate_stream", stalls)
    start = time.monotonic()
    r = TestClient(a_new_app(app, timeout=0.5)).post("/api/generate", json={"model": "gpt", "prompt": "티끌"})
    release.set()
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert time.monotonic() - start < 5
    assert lines == [{"text": "티끌"}, {"error": "generation stopped after 0.5 s (timeout)", "done": True}]


def test_the_finish_reason_reaches_the_stream(app, monkeypatch):
    def empty(*args):  # the model's first token is end-of-text: no piece, and the reason why
        return EndedStream("stop")

    monkeypatch.setattr(serve_models, "generate_stream", empty)
    r = TestClient(a_new_app(app)).post("/api/generate", json={"model": "gpt", "prompt": "티끌"})
    assert [json.loads(line) for line in r.text.splitlines()] == [{"done": True, "finish_reason": "stop"}]


def asgi_scope(path: str, headers: dict[str, str], method: str = "POST") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


def call(app, scope: dict, chunks: list[bytes], then_wait: bool = True, seconds: float = 10.0):
    """Drive the ASGI app: send `chunks` of body (the last with more_body=False unless then_wait), then block
    (a client that stops sending). -> [(status, body bytes)] of what the app sent, or [] when it answered nothing."""
    sent: list = []

    async def go():
        queue = [{"type": "http.request", "body": c, "more_body": then_wait or i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            if queue:
                return queue.pop(0)
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), seconds)

    asyncio.run(go())
    status = [m["status"] for m in sent if m["type"] == "http.response.start"]
    return [(status[0], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))] if status else []


def test_a_partial_body_is_not_held_forever(app):
    """Content-Length 100 and 10 bytes sent: a 408 once the body timeout passes, not a wait without end."""
    slow = a_new_app(app, body_timeout=0.3)
    scope = asgi_scope("/api/classify", {"host": "127.0.0.1:8000", "content-type": "application/json", "content-length": "100"})
    start = time.monotonic()
    [(status, body)] = call(slow, scope, [b'{"model": '])
    assert status == 408 and "did not arrive within 0.3 s" in json.loads(body)["error"]
    assert time.monotonic() - start < 3


def test_a_client_that_leaves_mid_body_gets_no_answer_and_no_traceback(app, caplog):
    async def go():
        messages = [{"type": "http.request", "body": b'{"model"', "more_body": True}, {"type": "http.disconnect"}]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = asgi_scope("/api/classify", {"host": "127.0.0.1:8000", "content-type": "application/json"})
        await app(scope, receive, send)
        return sent

    assert asyncio.run(go()) == [] and "Traceback" not in caplog.text


def test_no_request_outlives_the_end_to_end_deadline():
    """The backstop around the whole app: a handler stuck forever is answered 408; a stream stuck forever is ended."""
    from taesan.serve.limits import EndToEnd

    async def stuck_before(scope, receive, send):
        await asyncio.sleep(3600)

    async def stuck_mid_stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.sleep(3600)

    start = time.monotonic()
    [(status, body)] = call(EndToEnd(stuck_before, 0.2), asgi_scope("/", {}), [b""], then_wait=False)
    assert status == 408 and "longer than 0.2 s" in json.loads(body)["error"]
    assert call(EndToEnd(stuck_mid_stream, 0.2), asgi_scope("/", {}), [b""], then_wait=False) == [(200, b"part")]
    assert time.monotonic() - start < 3


# ---- other sites, other Host names, other content types --------------------------------------------------------------

BODY = {"model": "bert", "text": "티끌 [MASK] 태산"}


@pytest.mark.parametrize("headers, status, match", [
    ({"content-type": "text/plain"}, 415, "application/json"),
    ({"content-type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ({"content-type": "multipart/form-data; boundary=x"}, 415, "application/json"),
    ({"content-type": ""}, 415, "application/json"),
    ({**JSON, "origin": "http://evil.example"}, 403, "another site's page (http://evil.example)"),
    ({**JSON, "origin": "null"}, 403, "another site's page"),
    ({**JSON, "origin": "http://testserver.evil.example"}, 403, "another site's page"),
    ({**JSON, "host": "evil.example:8765"}, 403, "host 'evil.example:8765' is not this server"),
    ({**JSON, "host": "evil.example:8765", "origin": "http://evil.example:8765"}, 403, "is not this server"),
    ({**JSON, "host": "localhost"}, 403, "is not this server"),  # this test server's address is not loopback
])
def test_cross_site_and_rebinding_requests_are_refused(client, headers, status, match):
    r = client.post("/api/fill-mask", content=json.dumps(BODY), headers=headers)
    one_line_error(r, status, match)


def test_the_page_host_itself_may_call(client):
    headers = {**JSON, "origin": "http://testserver"}  # a page this server served, calling it
    assert client.post("/api/fill-mask", content=json.dumps(BODY), headers=headers).status_code == 200
    assert client.post("/api/fill-mask", content=json.dumps(BODY), headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_loopback_names_and_allowed_names(app):
    """A server on 127.0.0.1 answers Host 127.0.0.1, localhost and [::1]; other names only when allowed."""
    local = TestClient(a_new_app(app), base_url="http://127.0.0.1:8765")
    allowed = TestClient(a_new_app(app, allow_hosts=("playground.lan",), allow_origins=("https://example.org",)),
                         base_url="http://127.0.0.1:8765")
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"):
        assert local.get("/api/models", headers={"host": host}).status_code == 200, host
    assert local.get("/api/models", headers={"host": "playground.lan"}).status_code == 403
    assert allowed.get("/api/models", headers={"host": "playground.lan:8765"}).status_code == 200
    other_site = {**JSON, "origin": "https://example.org"}
    assert local.post("/api/fill-mask", json=BODY, headers=other_site).status_code == 403
    r = allowed.post("/api/fill-mask", json=BODY, headers=other_site)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://example.org"
    preflight = allowed.options("/api/fill-mask", headers={"origin": "https://example.org", "access-control-request-method": "POST",
                                                           "access-control-request-headers": "content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://example.org"


def test_bad_allowed_origin_is_one_line():
    from taesan.errors import TaesanError

    with pytest.raises(TaesanError, match="--allow-origin 'example.org'"):
        create_app({}, ServeConfig(demo_tokenizers=False, allow_origins=("example.org",)))


# ---- the schema documents every body and every 4xx ---------------------------------------------------------------------


def test_openapi_documents_every_body_and_every_error(client):
    schema = client.get("/openapi.json").json()
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert set(posts) == {"/api/tokenize", "/api/classify", "/api/ner", "/api/qa", "/api/generate", "/api/fill-mask",
                          "/api/score", "/api/image", "/api/attention"}
    components = schema["components"]["schemas"]
    for path, op in posts.items():
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert components[body]["properties"] and op["requestBody"]["required"], path
        responses = op["responses"]
        assert "422" not in responses and {"200", "4XX", "400", "403", "408", "413", "415", "503"} <= set(responses), path
    generate = components["GenerateRequest"]["properties"]
    assert generate["max_new_tokens"]["type"] == "integer" and generate["max_new_tokens"]["maximum"] == 200
    assert [c for c in generate["temperature"]["anyOf"] if c["type"] == "number"][0]["minimum"] == 0.01
    assert {"type": "null"} in generate["temperature"]["anyOf"]  # null: not set
    assert generate["model"]["enum"] == ["gpt", "s2s"]  # the served models that can generate
    assert components["FillMaskRequest"]["properties"]["top_k"]["type"] == "integer"  # null is refused


def test_unknown_paths_and_methods_answer_json(client):
    one_line_error(client.get("/api/nope"), 404, "Not Found")
    one_line_error(client.get("/api/classify"), 405, "Method Not Allowed")


class EndedStream:
    """A text stream (as pipeline.text.TextStream) that ends before its first piece, with its finish_reason."""

    def __init__(self, reason: str) -> None:
        self.finish_reason = reason

    def __iter__(self):
        return iter(())
