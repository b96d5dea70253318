"""The playground server: a FastAPI app with a JSON API over the models named at start-up, and the static
page in taesan/serve/web served by the same process. `create_app(models)` builds it; `taesan serve` runs it.

Not the inference (taesan.serve.served) and not a way to open arbitrary checkpoints: a request names a
served model; it never carries a path. Every user mistake is a 4xx with {"error": "one line"}.
"""

import asyncio
import functools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taesan.errors import TaesanError
from taesan.serve import served as sm

WEB_DIR = Path(__file__).parent / "web"


@dataclass
class ServeConfig:
    max_chars: int = 2000  # longest text (or prompt, question + context) a request may carry
    max_body: int = 64 * 1024  # bytes of a request body
    max_new_tokens: int = 200  # generation cap per request
    max_texts: int = 32  # sentences per score request
    timeout: float = 30.0  # seconds of computation per request, waiting for a slot included (generation: the whole stream)
    max_concurrent: int = 2  # model computations running at once (see Slots)
    max_queue: int = 4  # requests waiting for a slot; one more is a 503
    max_image_side: int = 64  # rows and columns of a "pixels" image
    demo_tokenizers: bool = True  # word/char/BPE/WordPiece on the embedded corpus for the comparison tab


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def require_web() -> None:
    """A one-line error when the `web` extra is not installed."""
    import importlib.util

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


class Slots:
    """At most `limit` model computations at once; at most `queue` more requests wait (first come, first served);
    a request beyond that is refused at once with a 503 "server busy, try again".

    A slot is held by the worker thread until the computation really returns. Python cannot stop a thread, so a
    request that timed out (408) keeps its slot until its thread ends: the cap counts running threads, not open
    requests. Not tied to one event loop: release() may be called from any thread.
    """

    def __init__(self, limit: int, queue: int) -> None:
        if limit < 1 or queue < 0:
            raise TaesanError(f"max_concurrent {limit} / max_queue {queue}: need at least 1 slot and a queue of 0 or more")
        self.limit, self.queue = limit, queue
        self.running = 0
        self._waiting: deque = deque()  # (loop, future) of each request waiting for a slot, oldest first
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        with self._lock:
            if self.running < self.limit and not self._waiting:
                self.running += 1
                return
            if len(self._waiting) >= self.queue:
                raise HTTPError(503, "server busy, try again")
            loop = asyncio.get_running_loop()
            waiter = (loop, loop.create_future())
            self._waiting.append(waiter)
        try:
            await waiter[1]  # release() hands its slot over: `running` stays the same
        except BaseException:  # cancelled (timeout, client gone) while waiting, or just as the slot came
            with self._lock:
                handed = waiter not in self._waiting
                if not handed:
                    self._waiting.remove(waiter)
            if handed:
                self.release()
            raise

    def release(self) -> None:
        """Give the slot to the oldest waiting request, or free it."""
        with self._lock:
            while self._waiting:
                loop, future = self._waiting.popleft()
                try:
                    loop.call_soon_threadsafe(_grant, future)
                    return
                except RuntimeError:  # that request's event loop is closed: try the next one
                    continue
            self.running -= 1


def _grant(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


# ---- request fields ------------------------------------------------------------------------------------------


def _text(body: dict, key: str, cfg: ServeConfig, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise HTTPError(400, f"field {key!r}: expected a string" if key in body else f"field {key!r} is missing")
    if not value.strip():
        raise HTTPError(400, f"field {key!r} is empty")
    if len(value) > cfg.max_chars:
        raise HTTPError(413, f"field {key!r} is {len(value)} characters; the limit is {cfg.max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HTTPError(400, f"field {key!r} is not valid Unicode text (a lone surrogate)") from None
    if "\x00" in value:
        raise HTTPError(400, f"field {key!r} contains a NUL character")
    return value


def _number(body: dict, key: str, kind: type, default, low, high):
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise HTTPError(400, f"field {key!r}: expected {'an integer' if kind is int else 'a number'}")
    value = kind(value)
    if not low <= value <= high:
        raise HTTPError(400, f"field {key!r} = {value}: must be between {low} and {high}")
    return value


def _pixels(body: dict, cfg: ServeConfig) -> list[list[float]]:
    """Field "pixels": a non-empty rectangular list of rows of numbers 0-255, at most max_image_side each way."""
    rows = body["pixels"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise HTTPError(400, "field 'pixels': expected a 2-D list of grey values 0-255 (a list of rows)")
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        raise HTTPError(400, "field 'pixels': rows must be non-empty and all the same length")
    if len(rows) > cfg.max_image_side or width > cfg.max_image_side:
        raise HTTPError(413, f"field 'pixels' is {len(rows)}×{width}; the limit is {cfg.max_image_side}×{cfg.max_image_side}")
    for r in rows:
        for v in r:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 255:
                raise HTTPError(400, f"field 'pixels': {json.dumps(v)[:20]} is not a grey value 0-255")
    return rows


# ---- the app -------------------------------------------------------------------------------------------------


def create_app(models: dict[str, str], config: ServeConfig | None = None, loaded: dict[str, Any] | None = None):
    """The FastAPI app serving `models` ({name: checkpoint dir}); `loaded` may hand over Served objects already
    in memory (the demo). Models load now, so a bad checkpoint fails at start-up, not at the first request."""
    require_web()
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles


    cfg = config or ServeConfig()
    served: dict[str, sm.Served] = dict(loaded or {})
    for name, directory in models.items():
        served[name] = sm.load_served(name, directory)
    tokenizers = list(sm.comparison_tokenizers()) if cfg.demo_tokenizers else []

    app = FastAPI(title="taesan playground", docs_url=None, redoc_url=None)
    slots = Slots(cfg.max_concurrent, cfg.max_queue)
    app.state.served, app.state.config, app.state.slots = served, cfg, slots
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(TaesanError)
    async def _user_error(request: Request, exc: TaesanError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def body_of(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_body:
            raise HTTPError(413, f"request body is {declared} bytes; the limit is {cfg.max_body}")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > cfg.max_body:
                raise HTTPError(413, f"request body is over the limit of {cfg.max_body} bytes")
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPError(400, "request body is not UTF-8") from None
        except json.JSONDecodeError as e:
            raise HTTPError(400, f"request body is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return body

    def model_of(body: dict) -> sm.Served:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise HTTPError(400, "field 'model' is missing: name one of the served models")
        if name not in served:
            raise HTTPError(404, f"unknown model {name!r}; served: {', '.join(served) or 'none'}")
        return served[name]

    def holding_slot(fn, *args):
        try:
            return fn(*args)
        finally:
            slots.release()

    async def in_slot(fn, *args):
        await slots.acquire()
        return await asyncio.to_thread(holding_slot, fn, *args)  # the thread starts in this same step: no gap to leak the slot

    async def compute(fn, *args):
        """Run model work in a worker thread holding a slot; a 503 when all slots and the queue are taken, a 408
        when waiting plus computing takes longer than the timeout (the thread then finishes and frees its slot)."""
        try:
            return await asyncio.wait_for(in_slot(fn, *args), cfg.timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, f"the request took longer than {cfg.timeout:g} s; try a shorter text") from None
        except sm.WrongTask as e:
            raise HTTPError(400, str(e)) from None

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/api/models")
    async def list_models():
        return {"models": [s.describe() for s in served.values()], "limits": {"max_chars": cfg.max_chars,
                "max_new_tokens": cfg.max_new_tokens, "max_body": cfg.max_body, "max_image_side": cfg.max_image_side}}

    @app.post("/api/tokenize")
    async def tokenize(request: Request):
        body = await body_of(request)
        text = _text(body, "text", cfg)
        chosen = [(f"{kind} (demo)", tok) for kind, tok in tokenizers]
        if body.get("model") is not None:
            s = model_of(body)
            s.need("tokenize")
            chosen.append((f"{s.name} ({type(s.tokenizer).__name__})", s.tokenizer))
        else:
            chosen += [(f"{s.name} ({type(s.tokenizer).__name__})", s.tokenizer) for s in served.values() if "tokenize" in s.actions]
        if not chosen:
            raise HTTPError(400, "no tokenizer to compare: the server runs with --no-tokenizers and no text model")
        return {"text": text, "tokenizers": await compute(sm.tokenize, text, chosen)}

    async def task_call(request: Request, action: str):
        body = await body_of(request)
        s = model_of(body)
        s.need(action)
        if action == "qa":
            question, context = _text(body, "question", cfg), _text(body, "context", cfg)
            if len(question) + len(context) > cfg.max_chars:
                raise HTTPError(413, f"question + context are {len(question) + len(context)} characters; the limit is {cfg.max_chars}")
            value = {"question": question, "context": context}
        else:
            value = _text(body, "text", cfg)
        result = await compute(sm.run_task, s, action, value)
        return {"model": s.name, **value, **result} if action == "qa" else {"model": s.name, "text": value, **result}

    @app.post("/api/classify")
    async def classify(request: Request):
        return await task_call(request, "classify")

    @app.post("/api/ner")
    async def ner(request: Request):
        return await task_call(request, "ner")

    @app.post("/api/qa")
    async def qa(request: Request):
        return await task_call(request, "qa")

    @app.post("/api/generate")
    async def generate(request: Request):
        """NDJSON lines: {"text": piece} as tokens arrive, then {"text": "", "finish_reason": "stop" | "length"}
        (an empty completion has only that one), then {"done": true} (or {"error": ...} mid-stream)."""
        body = await body_of(request)
        s = model_of(body)
        s.need("generate")
        prompt = _text(body, "prompt", cfg)
        n = _number(body, "max_new_tokens", int, 50, 1, cfg.max_new_tokens)
        temperature = _number(body, "temperature", float, None, 0.01, 10.0)
        top_k = _number(body, "top_k", int, None, 1, 1000)
        top_p = _number(body, "top_p", float, None, 0.01, 1.0)
        seed = _number(body, "seed", int, None, 0, 2**31 - 1)
        deadline = time.monotonic() + cfg.timeout
        try:
            await asyncio.wait_for(slots.acquire(), cfg.timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, f"no free slot within {cfg.timeout:g} s; try again") from None
        messages, stop = generation_thread(s, (prompt, n, temperature, top_k, top_p, seed, deadline))
        try:
            kind, value = await messages.get()  # "ready" once the settings are checked, or why not
        except BaseException:
            stop.set()
            raise
        if kind == "refused":
            raise HTTPError(400, value)

        async def lines():
            try:
                while True:
                    kind, value = await messages.get()
                    if kind == "text":
                        yield json.dumps({"text": value}, ensure_ascii=False) + "\n"
                    elif kind == "done":
                        yield json.dumps({"text": "", "finish_reason": value}) + "\n"
                        yield json.dumps({"done": True}) + "\n"
                        return
                    else:
                        yield json.dumps({"error": value, "done": True}, ensure_ascii=False) + "\n"
                        return
            finally:  # the stream ended, the client went away or the response was dropped: the thread stops
                stop.set()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def generation_thread(s, settings: tuple) -> tuple[asyncio.Queue, threading.Event]:
        """Generation in one worker thread that holds its slot (already acquired) from start to end.

        -> (messages, stop): ("ready" | "refused", ...) first, then ("text", piece)... and one ("done", finish_reason)
        or ("error", message).
        The thread checks `stop` between pieces (set when the response's stream ends or is dropped, e.g. the
        client disconnected) and generate_stream stops itself at the deadline, so no generation outlives both.
        """
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, value: Any = None) -> None:
            try:
                loop.call_soon_threadsafe(messages.put_nowait, (kind, value))
            except RuntimeError:  # the event loop is gone: nobody is listening
                stop.set()

        def run() -> None:
            try:
                try:
                    pieces = sm.generate_stream(s, *settings)
                except TaesanError as e:
                    return put("refused", str(e))
                put("ready")
                try:
                    for piece in pieces:  # the prompt's prefill runs here, inside the stream
                        if stop.is_set():
                            break
                        put("text", piece)
                    put("done", pieces.finish_reason)
                except TimeoutError:
                    put("error", f"generation stopped after {cfg.timeout:g} s (timeout)")
                except TaesanError as e:
                    put("error", str(e))
                except Exception as e:  # a bug: still one line to the page, the stream already said 200
                    put("error", f"generation failed ({type(e).__name__})")
                finally:
                    pieces.close()
            finally:
                slots.release()

        threading.Thread(target=run, name="taesan-generate", daemon=True).start()
        return messages, stop

    @app.post("/api/fill-mask")
    async def fill_mask(request: Request):
        body = await body_of(request)
        s = model_of(body)
        s.need("fill-mask")
        text = _text(body, "text", cfg)
        top_k = _number(body, "top_k", int, 5, 1, 50)
        return {"model": s.name, "text": text, **await compute(sm.fill_mask, s, text, top_k)}

    @app.post("/api/score")
    async def score(request: Request):
        body = await body_of(request)
        s = model_of(body)
        s.need("score")
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts:
            raise HTTPError(400, "field 'texts': expected a non-empty list of strings")
        if len(texts) > cfg.max_texts:
            raise HTTPError(413, f"field 'texts' has {len(texts)} sentences; the limit is {cfg.max_texts}")
        texts = [_text({"texts[]": t}, "texts[]", cfg) for t in texts]
        return {"model": s.name, **await compute(sm.score, s, texts)}

    @app.post("/api/image")
    async def image(request: Request):
        """{"model", "digit": N} (sklearn's N-th bundled digit) or {"model", "pixels": [[0-255, ...], ...]}
        -> the label, top labels with probabilities, the image as the model read it and the rollout map."""
        body = await body_of(request)
        s = model_of(body)
        s.need("image")
        if ("digit" in body) == ("pixels" in body):
            raise HTTPError(400, "give the image as either 'digit' (a bundled digit's index) or 'pixels' (rows of 0-255)")
        top_k = _number(body, "top_k", int, 5, 1, 100)
        if "digit" in body:
            n = _number(body, "digit", int, None, 0, 10**6)
            if n is None:
                raise HTTPError(400, "field 'digit': expected an integer")
            read = functools.partial(sm.digit_image, n)  # sklearn's digits load in the worker thread
        else:
            read = functools.partial(sm.pixel_image, _pixels(body, cfg))
        return {"model": s.name, **await compute(lambda: sm.classify_image(s, read(), top_k))}

    @app.post("/api/attention")
    async def attention(request: Request):
        body = await body_of(request)
        s = model_of(body)
        s.need("attention")
        text = _text(body, "text", cfg)
        target = _text(body, "target", cfg, required=False)
        return {"model": s.name, **await compute(sm.attention, s, text, target)}

    return app
