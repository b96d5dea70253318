"""The playground app: FastAPI wiring of the routes (routes.py), the guard in front of them (guard.py), the end-to-end
deadline (limits.py), one-line errors for every failure, and the static page in taesan/serve/web.

Not a route and not a limit: this module only puts the pieces together. `taesan serve` runs the app (run.py).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from taesan.errors import TaesanError
from taesan.serve import served as sm
from taesan.serve.guard import Guard
from taesan.pipeline.precision import use_precision
from taesan.serve.limits import EndToEnd, Slots
from taesan.serve.options import ServeConfig
from taesan.serve.replies import HTTPError
from taesan.serve.requests import BODIES, one_line
from taesan.serve.routes import ACTIONS, WEB_DIR, router


class Playground(FastAPI):
    """FastAPI whose schema names the served models: a route's "model" field lists the models that can do it, so
    a schema-driven client (or fuzzer) reaches the real inference, not only the 404."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            name_served_models(super().openapi(), self.state.served)
        return self.openapi_schema


def create_app(models: dict[str, str], config: ServeConfig | None = None, loaded: dict[str, Any] | None = None):
    """The app serving `models` ({name: checkpoint dir}); `loaded` may hand over Served objects already in memory
    (the demo). Models load now, so a bad checkpoint fails at start-up, not at the first request."""
    cfg = config or ServeConfig()
    cfg.check()
    served: dict[str, sm.Served] = dict(loaded or {})
    for name, directory in models.items():
        served[name] = sm.load_served(name, directory)
    for s in served.values():
        s.precision = use_precision(s.model, cfg.precision)

    app = Playground(title="taesan playground", version="1", docs_url=None, redoc_url=None)
    app.state.served, app.state.config = served, cfg
    app.state.slots = Slots(cfg.max_concurrent, cfg.max_queue)
    app.state.tokenizers = list(sm.comparison_tokenizers()) if cfg.demo_tokenizers else []
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_exception_handler(HTTPError, _http_error)
    app.add_exception_handler(TaesanError, _user_error)
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    app.add_exception_handler(Exception, _server_error)
    if cfg.allow_origins:  # answer the browser's preflight for the sites --allow-origin names (Guard refuses the rest)
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.allow_origins), allow_methods=["GET", "POST"],
                           allow_headers=["content-type"])
    app.add_middleware(Guard, config=cfg)
    app.add_middleware(EndToEnd, seconds=cfg.body_timeout + cfg.timeout + 1.0)  # outermost: after every inner limit
    return app


async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _user_error(request: Request, exc: TaesanError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    error = one_line(list(exc.errors()), BODIES.get(request.url.path))
    return JSONResponse({"error": error.message}, status_code=error.status)


async def _starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: one line to the client; the server log keeps the traceback (Starlette re-raises after this)."""
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"}, status_code=500)


def name_served_models(schema: dict[str, Any], served: dict[str, sm.Served]) -> None:
    """In place: each route's "model" field -> an enum of the served models that can do what the route does."""
    components = schema.get("components", {}).get("schemas", {})
    for path, action in ACTIONS.items():
        names = [s.name for s in served.values() if action in s.actions]
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        field = components[body["$ref"].rsplit("/", 1)[-1]]["properties"]["model"]
        for choice in [field, *field.get("anyOf", [])]:
            if choice.get("type") == "string" and names:
                choice["enum"] = names
