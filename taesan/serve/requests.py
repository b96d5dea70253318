"""What a request may say: each route's JSON body as a pydantic model (types, ranges, what `null` means), the
API's limits as one constant each, and every validation error as one line with its status.

Not who may ask (guard.py) nor what the server does with it (routes.py). The models are the API's contract:
/openapi.json is generated from them, and the page reads its input bounds from that schema.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from taesan.serve.replies import HTTPError

MAX_CHARS = 2000  # longest text (or prompt, question + context) a request may carry
MAX_NEW_TOKENS = 200  # generation cap per request
MAX_TEXTS = 32  # sentences per score request
MAX_IMAGE_SIDE = 64  # rows and columns of a "pixels" image
MAX_DEPTH = 8  # nesting of a JSON body (pixels need 3)
MAX_DIGITS = 100  # digits of an integer literal in a body (Python refuses to read ints past 4,300 digits)
TEMPERATURE = (0.01, 10.0)  # the page's temperature box has these bounds, read from the schema


# ---- the JSON body as a whole -------------------------------------------------------------------------------------

def parse_body(raw: bytes) -> dict:
    """A request body -> its JSON object, or a 400 with one line: not UTF-8, not JSON, nested deeper than
    MAX_DEPTH, an integer of more than MAX_DIGITS digits, not an object.

    json.loads recurses: 3,000 brackets raise RecursionError (caught here, before any other code recurses on the
    value); a shallower body is measured after parsing, without recursion. (Counting brackets outside strings
    with a regex first was quadratic on a body of escaped quotes.)
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "request body is not UTF-8") from None
    too_deep = f"request body is nested deeper than {MAX_DEPTH} levels"
    try:
        body = json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as e:
        raise HTTPError(400, f"request body is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise HTTPError(400, too_deep) from None
    if depth(body) > MAX_DEPTH:
        raise HTTPError(400, too_deep)
    if not isinstance(body, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return body


def depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value: 1 -> 0, [1] -> 1, {"a": [[1]]} -> 3."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_DIGITS:
        raise HTTPError(400, f"request body has an integer of {len(literal.lstrip('-'))} digits; the limit is {MAX_DIGITS}")
    return int(literal)


# ---- field types ---------------------------------------------------------------------------------------------------


def _readable(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "is empty")
    if "\x00" in value:
        raise PydanticCustomError("nul", "contains a NUL character")
    return value


Text = Annotated[str, Field(min_length=1, max_length=MAX_CHARS), AfterValidator(_readable)]
ModelName = Annotated[str, Field(min_length=1, description="one of the served models (GET /api/models)")]


def _int(default: int | None, low: int, high: int, description: str) -> Any:
    """An integer field from low to high: true, 5.0 and "5" are not integers."""
    return Field(default, ge=low, le=high, strict=True, description=description)


def _number(default: float | None, low: float, high: float, description: str) -> Any:
    """A finite number from low to high (NaN and Infinity are refused)."""
    return Field(default, ge=low, le=high, allow_inf_nan=False, description=description)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # strict: "5" is not 5 and true is not 1


class TokenizeRequest(_Body):
    text: Text
    model: ModelName | None = Field(None, description="one served model's tokenizer beside the demo ones; "
                                                      "null or absent: every served text model's")


class TextRequest(_Body):
    model: ModelName
    text: Text


class ClassifyRequest(TextRequest):
    pass


class NerRequest(TextRequest):
    pass


class QARequest(_Body):
    model: ModelName
    question: Text
    context: Text

    @model_validator(mode="after")
    def _fits(self) -> QARequest:
        n = len(self.question) + len(self.context)
        if n > MAX_CHARS:
            raise PydanticCustomError("too_long_together", "question + context are {n} characters; the limit is {limit}",
                                      {"n": n, "limit": MAX_CHARS})
        return self


class GenerateRequest(_Body):
    """Sampling settings are optional: null or absent means "not set" (all three unset: greedy decoding)."""

    model: ModelName
    prompt: Text
    max_new_tokens: int = _int(50, 1, MAX_NEW_TOKENS, "new tokens at most; absent: 50 (null is refused)")
    temperature: float | None = _number(None, *TEMPERATURE, "sampling temperature; null: not set")
    top_k: int | None = _int(None, 1, 1000, "sample from the k likeliest tokens; null: not set")
    top_p: float | None = _number(None, 0.01, 1.0, "sample from the smallest set with this much probability; null: not set")
    seed: int | None = _int(None, 0, 2**31 - 1, "the sampling seed; null: a fresh one")


class FillMaskRequest(_Body):
    model: ModelName
    text: Text = Field(description="a text with the tokenizer's mask token, e.g. 티끌 [MASK] 태산")
    top_k: int = _int(5, 1, 50, "candidates per mask (null is refused)")


class ScoreRequest(_Body):
    model: ModelName
    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS, description="the sentences to score")


Grey = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Row = Annotated[list[Grey], Field(min_length=1, max_length=MAX_IMAGE_SIDE)]


class ImageRequest(_Body):
    """Either "digit" (the index of one of sklearn's bundled digits) or "pixels" (rows of grey values 0-255)."""

    model: ModelName
    digit: int = _int(None, 0, 10**6, "a bundled digit's index (absent when pixels are given)")
    pixels: list[Row] = Field(None, min_length=1, max_length=MAX_IMAGE_SIDE,
                              description=f"rows of grey values 0-255, at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE}")
    top_k: int = _int(5, 1, 100, "labels to rank")

    @model_validator(mode="after")
    def _one_image(self) -> ImageRequest:
        if ("digit" in self.model_fields_set) == ("pixels" in self.model_fields_set):
            raise PydanticCustomError("one_image", "give the image as either 'digit' (a bundled digit's index) "
                                                   "or 'pixels' (rows of 0-255)")
        if self.pixels is not None and any(len(row) != len(self.pixels[0]) for row in self.pixels):
            raise PydanticCustomError("ragged", "field 'pixels': rows must be non-empty and all the same length")
        return self


class AttentionRequest(_Body):
    model: ModelName
    text: Text
    target: Text | None = Field(None, description="the decoder's input (encoder-decoder models only); null: none")


BODIES = {"/api/tokenize": TokenizeRequest, "/api/classify": ClassifyRequest, "/api/ner": NerRequest,
          "/api/qa": QARequest, "/api/generate": GenerateRequest, "/api/fill-mask": FillMaskRequest,
          "/api/score": ScoreRequest, "/api/image": ImageRequest, "/api/attention": AttentionRequest}


# ---- one line per error ----------------------------------------------------------------------------------------------

_TOO_BIG = {"string_too_long", "too_long", "too_long_together"}  # over a limit: 413, the rest 400
_EXPECTED = {"string_type": "a string", "string_unicode": "valid Unicode text (a lone surrogate?)", "int_type": "an integer",
             "int_from_float": "an integer", "float_type": "a number", "finite_number": "a finite number",
             "list_type": "a list", "model_type": "a JSON object"}


def one_line(errors: list[dict], body: type[BaseModel] | None) -> HTTPError:
    """pydantic's errors for a request body -> one HTTPError naming the first problem (the field, the value,
    the limit): 413 for a value over a size limit, 400 for the rest."""
    error = errors[0]
    loc = [p for p in error["loc"] if p != "body"]
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    status = 413 if kind in _TOO_BIG else 400
    if not loc:
        message = error["msg"] if kind.startswith(("one_image", "ragged", "too_long_together")) else \
            f"request body: {error['msg']}"
        return HTTPError(status, message)
    name = loc[0]
    field = f"field {name!r}"
    if name == "pixels":
        return HTTPError(status, _pixels(loc, kind, value))
    if len(loc) > 1:
        field += f" item {loc[1]}"
    if kind == "missing":
        hint = ": name one of the served models" if name == "model" else ""
        return HTTPError(400, f"{field} is missing{hint}")
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(body, name)
        return HTTPError(400, f"{field} = {value}: must be between {low} and {high}")
    if kind == "string_too_long":
        return HTTPError(413, f"{field} is {len(value)} characters; the limit is {ctx['max_length']}")
    if kind == "too_long":
        return HTTPError(413, f"{field} has {ctx.get('actual_length', len(value))} items; the limit is {ctx['max_length']}")
    if kind in ("string_too_short", "too_short"):
        return HTTPError(400, f"{field} is empty" if kind == "string_too_short" else f"{field}: expected a non-empty list")
    if name == "texts" and len(loc) == 1:
        return HTTPError(400, f"{field}: expected a non-empty list of strings")
    if kind in _EXPECTED:
        return HTTPError(400, f"{field}: expected {_EXPECTED[kind]}" if kind != "string_unicode" else
                         f"{field} is not valid Unicode text (a lone surrogate)")
    return HTTPError(status, f"{field} {error['msg']}")


def _bounds(body: type[BaseModel] | None, name: str) -> tuple[Any, Any]:
    """A field's (minimum, maximum) as its model declares them."""
    low = high = "?"
    if body is not None and name in body.model_fields:
        for rule in body.model_fields[name].metadata:
            low = getattr(rule, "ge", low)
            high = getattr(rule, "le", high)
    return low, high


def _pixels(loc: list, kind: str, value: Any) -> str:
    side = f"{MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE}"
    if len(loc) == 3:  # one value
        return f"field 'pixels': {json.dumps(value)[:20]} is not a grey value 0-255"
    if kind == "too_long":
        what = f"{len(value)} rows" if len(loc) == 1 else f"a row of {len(value)} values"
        return f"field 'pixels' has {what}; the limit is {side}"
    if kind == "too_short" and len(loc) == 2:
        return "field 'pixels': rows must be non-empty and all the same length"
    return "field 'pixels': expected a 2-D list of grey values 0-255 (a list of rows)"
