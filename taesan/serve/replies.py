"""What the API answers: the shape of every reply (for /openapi.json) and the one-line error every 4xx/5xx carries.

Not the routes (routes.py) nor the request bodies (requests.py). The 200 shapes here document the replies; the
routes return plain dicts, so a reply is not validated twice (the schema test checks them against this file).
"""
from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field


class HTTPError(Exception):
    """A status and one line for the user: raised anywhere in a request, answered as {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def send_error(send, status: int, message: str, close: bool = False) -> None:
    """Answer {"error": message} straight on the ASGI channel (the guard and the deadline, outside the app);
    `close` ends the connection after it (a body left unread: the client may still be sending it)."""
    body = json.dumps({"error": message}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + [(b"connection", b"close")] * close})
    await send({"type": "http.response.body", "body": body})


class ErrorReply(BaseModel):
    error: str = Field(description="one line naming the problem (the field, its value, the limit)")


ERRORS = {  # every status a route may answer besides 200, for the schema
    "4XX": {"model": ErrorReply, "description": "a request the user can fix: one line says what"},
    400: {"model": ErrorReply, "description": "a malformed body or field, or a model that cannot do this"},
    403: {"model": ErrorReply, "description": "a Host this server is not, or another site's page (see --allow-host, --allow-origin)"},
    404: {"model": ErrorReply, "description": "no served model by that name"},
    408: {"model": ErrorReply, "description": "the body or the computation took longer than the server's limit"},
    413: {"model": ErrorReply, "description": "a body, text, list or image over its limit"},
    415: {"model": ErrorReply, "description": "a body that is not application/json"},
    503: {"model": ErrorReply, "description": "all model slots and the queue are taken: try again"},
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # a task may add fields; these are the ones the page reads


class ModelInfo(_Open):
    name: str
    model_type: str
    task: str | None
    actions: list[str]
    labels: list[str]


class ModelsReply(_Open):
    models: list[ModelInfo]
    limits: dict[str, int | float]


class TokenizerCut(_Open):
    name: str
    tokens: list[str]
    ids: list[int]
    unk: int
    unk_id: int | None
    vocab_size: int


class TokenizeReply(_Open):
    text: str
    tokenizers: list[TokenizerCut]


class ClassifyReply(_Open):
    model: str
    text: str
    label: str
    probability: float
    probabilities: dict[str, float]


class Entity(_Open):
    text: str
    label: str
    start: int
    end: int


class NerReply(_Open):
    model: str
    text: str
    entities: list[Entity]


class QAReply(_Open):
    model: str
    question: str
    context: str
    answer: str
    start: int | None
    end: int | None


class Candidate(_Open):
    token: str
    text: str
    score: float


class MaskFill(_Open):
    position: int
    candidates: list[Candidate]


class FillMaskReply(_Open):
    model: str
    text: str
    tokens: list[str]
    masks: list[MaskFill]


class Scored(_Open):
    text: str
    log_prob: float


class ScoreReply(_Open):
    model: str
    objective: str
    scores: list[Scored]


class AttentionBlock(_Open):
    kind: str
    layer: int
    heads: int
    queries: list[str]
    keys: list[str]
    weights: list[list[list[float]]]


class AttentionReply(_Open):
    model: str
    blocks: list[AttentionBlock]


class Ranked(_Open):
    label: str
    probability: float


class ImageReply(_Open):
    model: str
    label: str
    probability: float
    top: list[Ranked]
    true_label: str | int | None
    image: list[list[float]]
    attention: list[list[float]]


GENERATE_STREAM = {  # /api/generate answers NDJSON: one JSON object per line
    "description": 'NDJSON lines: {"text": piece} as tokens arrive, then {"done": true, "finish_reason": ...} '
                   '(or {"error": "...", "done": true} when generation fails after the stream began)',
    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
}
