"""`taesan serve`: the playground. HTTP routes and limits (app.py), the served checkpoints and what each can do
(served.py), and the one web page (web/)."""
from taesan.serve.app import ServeConfig, create_app, model_specs, require_web

__all__ = ["ServeConfig", "create_app", "model_specs", "require_web"]
