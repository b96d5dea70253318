"""`taesan serve`: the playground. What it is started with (options.py), the app's wiring (app.py), its routes
(routes.py), request bodies (requests.py), replies (replies.py), limits (limits.py), the guard in front
(guard.py), generation as a stream (stream.py), running it on a port (run.py), the served checkpoints (served.py)
and the one web page (web/).

Importing this package needs no web extra: create_app imports fastapi when called.
"""
from taesan.serve.options import ServeConfig, model_specs, require_web


def create_app(models: dict, config: ServeConfig | None = None, loaded: dict | None = None):
    """The FastAPI app serving `models` ({name: checkpoint dir}); see taesan.serve.app.create_app."""
    require_web()
    from taesan.serve.app import (
        create_app as build,  # fastapi is the optional `web` extra
    )

    return build(models, config, loaded)


__all__ = ["ServeConfig", "create_app", "model_specs", "require_web"]
