"""`taesan serve` fuzzed from its own schema: schemathesis reads /openapi.json (bodies, ranges, the served models'
names) and sends valid and invalid requests to the app in process, a bounded number per route and mode. Any 5xx,
a status the schema does not list, or a reply that breaks its documented shape fails the test."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (test extra) is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from playground_models import build_image_model, build_models  # noqa: E402
from taesan.serve import ServeConfig, create_app  # noqa: E402

EXAMPLES = 15  # per route and mode: 19 runs of 15 take about 10 s on one core (150 each ran clean: 2,850 requests)
POSTS = [("POST", f"/api/{name}") for name in ("tokenize", "classify", "ner", "qa", "generate", "fill-mask", "score", "image", "attention")]
RUNS = [("GET", "/api/models", GenerationMode.POSITIVE)] + [(m, p, mode) for m, p in POSTS for mode in GenerationMode]
# an invalid body must be refused with one of these (413: over a documented size limit)
REFUSALS = {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 413]}}}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    models = {**build_models(root), "vit": build_image_model(root)}
    app = create_app(models, ServeConfig(demo_tokenizers=False, timeout=10.0))
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(REFUSALS))


@pytest.mark.parametrize("method, path, mode", RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_every_route_answers_within_its_schema(api_schema, method, path, mode):
    # positive_data_acceptance is left out: a body the schema allows may still get a documented 400 the schema
    # cannot express (a prompt longer than the model's positions, a text without [MASK])
    operation = api_schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def answers(case):
        seen.append(case.call_and_validate(excluded_checks=[positive_data_acceptance]).status_code)

    answers()
    assert seen and all(status < 500 for status in seen)
