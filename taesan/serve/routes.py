"""The API's routes, one small function each: the body arrives checked (requests.py), the route picks the served
model, runs the model work in a slot (limits.py) and returns a JSON-able dict (shapes in replies.py).

Not the inference (taesan.serve.served) and not a way to open arbitrary checkpoints: a request names a served
model; it never carries a path. The app's state (set by app.create_app) holds the served models, the config, the
slots and the demo tokenizers.
"""
from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse

from taesan.serve import served as sm
from taesan.serve.limits import Deadline, compute
from taesan.serve.replies import (
    ERRORS,
    GENERATE_STREAM,
    AttentionReply,
    ClassifyReply,
    FillMaskReply,
    HTTPError,
    ImageReply,
    ModelsReply,
    NerReply,
    QAReply,
    ScoreReply,
    TokenizeReply,
)
from taesan.serve.requests import (
    MAX_CHARS,
    MAX_IMAGE_SIDE,
    MAX_NEW_TOKENS,
    MAX_TEXTS,
    AttentionRequest,
    ClassifyRequest,
    FillMaskRequest,
    GenerateRequest,
    ImageRequest,
    NerRequest,
    QARequest,
    ScoreRequest,
    TokenizeRequest,
)
from taesan.serve.stream import Generation

WEB_DIR = Path(__file__).parent / "web"

router = APIRouter()


def _reply(model) -> dict:
    """The route's documented answers: `model` for a 200, ERRORS for the rest."""
    return {"response_model": None, "responses": {200: {"model": model}, **ERRORS}}


def served_model(request: Request, name: str, action: str) -> sm.Served:
    """The served model called `name`, which must be able to do `action` (404 / 400 otherwise)."""
    served = request.app.state.served
    if name not in served:
        raise HTTPError(404, f"unknown model {name!r}; served: {', '.join(served) or 'none'}")
    served[name].need(action)
    return served[name]


async def run(request: Request, fn, *args, served: sm.Served | None = None):
    """fn(*args) in a worker thread holding a slot, within the server's timeout, under the served model's precision
    (`served`, else the first Served among the arguments; autocast is per thread, so it is entered there)."""
    state = request.app.state
    served = served or next((a for a in args if isinstance(a, sm.Served)), None)
    if served is not None and served.precision is not None:
        fn = functools.partial(_in_precision, served.precision, fn)
    return await compute(state.slots, state.config.timeout, fn, *args)


def _in_precision(precision, fn, *args):
    with precision.context():
        return fn(*args)


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/api/models", **_reply(ModelsReply))
async def list_models(request: Request):
    """The served models, what each can do, and the request limits."""
    cfg = request.app.state.config
    return {"models": [s.describe() for s in request.app.state.served.values()],
            "limits": {"max_chars": MAX_CHARS, "max_new_tokens": MAX_NEW_TOKENS, "max_texts": MAX_TEXTS,
                       "max_body": cfg.max_body, "max_image_side": MAX_IMAGE_SIDE}}


@router.post("/api/tokenize", **_reply(TokenizeReply))
async def tokenize(body: TokenizeRequest, request: Request):
    """The text cut by the demo's word/char/BPE/WordPiece tokenizers and the served models' own."""
    chosen = [(f"{kind} (demo)", tok) for kind, tok in request.app.state.tokenizers]
    if body.model is not None:
        s = served_model(request, body.model, "tokenize")
        chosen.append((f"{s.name} ({type(s.tokenizer).__name__})", s.tokenizer))
    else:
        chosen += [(f"{s.name} ({type(s.tokenizer).__name__})", s.tokenizer)
                   for s in request.app.state.served.values() if "tokenize" in s.actions]
    if not chosen:
        raise HTTPError(400, "no tokenizer to compare: the server runs with --no-tokenizers and no text model")
    return {"text": body.text, "tokenizers": await run(request, sm.tokenize, body.text, chosen)}


@router.post("/api/classify", **_reply(ClassifyReply))
async def classify(body: ClassifyRequest, request: Request):
    s = served_model(request, body.model, "classify")
    return {"model": s.name, "text": body.text, **await run(request, sm.run_task, s, "classify", body.text)}


@router.post("/api/ner", **_reply(NerReply))
async def ner(body: NerRequest, request: Request):
    """Entities with character spans into the text."""
    s = served_model(request, body.model, "ner")
    return {"model": s.name, "text": body.text, **await run(request, sm.run_task, s, "ner", body.text)}


@router.post("/api/qa", **_reply(QAReply))
async def qa(body: QARequest, request: Request):
    """The answer as a span of the context."""
    s = served_model(request, body.model, "qa")
    value = {"question": body.question, "context": body.context}
    return {"model": s.name, **value, **await run(request, sm.run_task, s, "qa", value)}


@router.post("/api/generate", response_class=StreamingResponse, responses={200: GENERATE_STREAM, **ERRORS})
async def generate(body: GenerateRequest, request: Request):
    """The prompt's continuation, streamed as NDJSON lines while the model writes it."""
    state = request.app.state
    s = served_model(request, body.model, "generate")
    deadline = Deadline(state.config.timeout)
    try:
        await asyncio.wait_for(state.slots.acquire(), deadline.left())
    except asyncio.TimeoutError:
        raise HTTPError(408, f"no free slot within {deadline.seconds:g} s; try again") from None
    start = functools.partial(sm.generate_stream, s, body.prompt, body.max_new_tokens, body.temperature, body.top_k,
                              body.top_p, body.seed, deadline.end)  # the slot is the worker's from here on
    generation = Generation(state.slots, start, deadline)
    await generation.first()
    return StreamingResponse(generation.lines(), media_type="application/x-ndjson")


@router.post("/api/fill-mask", **_reply(FillMaskReply))
async def fill_mask(body: FillMaskRequest, request: Request):
    """Each mask's likeliest tokens from the masked LM."""
    s = served_model(request, body.model, "fill-mask")
    return {"model": s.name, "text": body.text, **await run(request, sm.fill_mask, s, body.text, body.top_k)}


@router.post("/api/score", **_reply(ScoreReply))
async def score(body: ScoreRequest, request: Request):
    """Sentence log-probabilities, highest first."""
    s = served_model(request, body.model, "score")
    return {"model": s.name, **await run(request, sm.score, s, body.texts)}


@router.post("/api/image", **_reply(ImageReply))
async def image(body: ImageRequest, request: Request):
    """A bundled digit or drawn pixels -> the label, top labels with probabilities, the image as the model read
    it and the [CLS] attention rollout over its patches."""
    s = served_model(request, body.model, "image")
    if body.digit is not None:
        read = functools.partial(sm.digit_image, body.digit)  # sklearn's digits load in the worker thread
    else:
        read = functools.partial(sm.pixel_image, body.pixels)
    return {"model": s.name, **await run(request, lambda: sm.classify_image(s, read(), body.top_k), served=s)}


@router.post("/api/attention", **_reply(AttentionReply))
async def attention(body: AttentionRequest, request: Request):
    """Every layer's attention matrices (self, and cross for an encoder-decoder given a target)."""
    s = served_model(request, body.model, "attention")
    return {"model": s.name, **await run(request, sm.attention, s, body.text, body.target)}


ACTIONS = {"/api/tokenize": "tokenize", "/api/classify": "classify", "/api/ner": "ner", "/api/qa": "qa",
           "/api/generate": "generate", "/api/fill-mask": "fill-mask", "/api/score": "score", "/api/image": "image",
           "/api/attention": "attention"}  # what a route's model must be able to do (the schema lists those models)
