"""`taesan serve`: every API endpoint against the library it wraps, and every user mistake as a 4xx with a message."""
from __future__ import annotations

import json
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from playground_models import build_image_model, build_models  # noqa: E402
from taesan.errors import TaesanError  # noqa: E402
from taesan.serve import ServeConfig, create_app, model_specs, require_web  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    return {**build_models(root), "vit": build_image_model(root)}


@pytest.fixture(scope="module")
def app(models):
    return create_app(models, ServeConfig(precision="fp32"))  # the routes against fp32 calls, on any CPU kind


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def ok(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def error(client, path, body=None, status=400, match="", **kwargs):
    r = client.post(path, json=body) if body is not None else client.post(path, **kwargs)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert match in message and "\n" not in message, message
    return message


def stream_lines(client, body):
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


# ---- the page and the model list --------------------------------------------------------------------------------


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "태산" in page.text and "/static/app.js" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_models_lists_what_each_can_do(client):
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert set(listed) == {"gpt", "bert", "s2s", "sentiment", "ner", "qa", "vit"}
    assert listed["vit"]["actions"] == ["image"] and listed["vit"]["labels"] == [str(d) for d in range(10)]
    assert {"generate", "score", "attention"} <= set(listed["gpt"]["actions"])
    assert "fill-mask" in listed["bert"]["actions"] and "generate" not in listed["bert"]["actions"]
    assert listed["sentiment"]["actions"][0] == "classify" and listed["sentiment"]["labels"] == ["긍정", "부정"]
    assert listed["ner"]["task"] == "ner" and listed["qa"]["task"] == "qa"


# ---- every endpoint ------------------------------------------------------------------------------------------------


def test_tokenize_compares_four_kinds_and_the_served_tokenizers(client):
    r = ok(client, "/api/tokenize", {"text": "어제 카페 갔었어"})
    by_name = {t["name"]: t for t in r["tokenizers"]}
    assert {"word (demo)", "char (demo)", "bpe (demo)", "wordpiece (demo)"} <= set(by_name)
    assert by_name["word (demo)"]["tokens"] == ["어제", "▁카페", "▁갔었어"]
    assert by_name["char (demo)"]["tokens"] == ["어", "제", "▁", "카", "페", "▁", "갔", "었", "어"]
    assert len(by_name["char (demo)"]["ids"]) == len(by_name["char (demo)"]["tokens"])
    assert any(name.startswith("gpt (") for name in by_name)
    only = ok(client, "/api/tokenize", {"text": "어제", "model": "bert"})
    assert [t["name"] for t in only["tokenizers"]][-1].startswith("bert (") and len(only["tokenizers"]) == 5


def test_classify_reads_the_sentiment(client):
    good = ok(client, "/api/classify", {"model": "sentiment", "text": "이 영화 정말 재미있었다"})
    bad = ok(client, "/api/classify", {"model": "sentiment", "text": "이 영화 돈이 아깝다"})
    assert (good["label"], bad["label"]) == ("긍정", "부정")
    assert sum(good["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert good["probability"] == max(good["probabilities"].values())


def test_ner_spans_are_offsets_into_the_text(client):
    text = "철수는 어제 서울 카페에 갔었어"
    r = ok(client, "/api/ner", {"model": "ner", "text": text})
    assert r["text"] == text and isinstance(r["entities"], list)
    for e in r["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and e["label"] in ("PS", "LC")


def test_qa_answer_is_a_span_of_the_context(client):
    context = "철수는 어제 카페에 갔었는데 거기 사람이 많더라."
    r = ok(client, "/api/qa", {"model": "qa", "question": "어디에 갔어?", "context": context})
    assert context[r["start"]:r["end"]] == r["answer"] == "카페"


def test_generate_streams_what_generate_returns(client, models):
    import taesan
    from taesan.tokenizers import load

    lines = stream_lines(client, {"model": "gpt", "prompt": "티끌 모아", "max_new_tokens": 6})
    assert lines[-1]["done"] is True and set(lines[-1]) == {"done", "finish_reason"} and all("text" in line for line in lines[:-1])
    streamed = "".join(line["text"] for line in lines[:-1])
    tok = load(f"{models['gpt']}/tokenizer.json")
    model = taesan.load(models["gpt"])
    sep = tok.eos_id
    ids = [sep] + tok.encode("티끌 모아", add_special_tokens=False).ids
    out = taesan.generate(model, torch.tensor([ids]), max_new_tokens=6, eos_token_id=sep)[0, len(ids):].tolist()
    assert streamed == tok.decode([i for i in out if i != sep])
    assert lines[-1]["finish_reason"] == ("stop" if sep in out else "length")
    assert streamed.startswith(" 태산")  # the tiny GPT learned its line
    s2s = stream_lines(client, {"model": "s2s", "prompt": "어제 카페", "max_new_tokens": 5, "temperature": 0.8, "seed": 1})
    assert s2s[-1]["done"] and len(s2s) >= 2
    # past the GPT's positions it writes in a sliding window, as `taesan generate` does (it was a 400)
    long = stream_lines(client, {"model": "gpt", "prompt": "티끌 모아 태산 " * 20, "max_new_tokens": 50})
    assert long[-1]["done"] and len(long) >= 2


def test_fill_mask_is_the_masked_lm_softmax(client, models):
    import taesan
    from taesan.tokenizers import load

    r = ok(client, "/api/fill-mask", {"model": "bert", "text": "티끌 [MASK] 태산", "top_k": 3})
    assert len(r["masks"]) == 1 and r["masks"][0]["position"] == 2
    cands = r["masks"][0]["candidates"]
    tok, model = load(f"{models['bert']}/tokenizer.json"), taesan.load(models["bert"])
    probs = model(torch.tensor([tok.encode("티끌 [MASK] 태산").ids]))[0, 2].softmax(-1)
    top = probs.topk(3)
    assert [c["token"] for c in cands] == [tok.id_to_token(i) for i in top.indices.tolist()]
    assert [c["score"] for c in cands] == pytest.approx(top.values.tolist(), abs=1e-4)


def test_score_ranks_the_learned_sentence_first(client, models):
    import taesan
    from taesan.scoring import score_texts
    from taesan.tokenizers import load

    texts = ["태산 모아 티끌", "티끌 모아 태산"]
    r = ok(client, "/api/score", {"model": "gpt", "texts": texts})
    assert r["objective"] == "causal" and [s["text"] for s in r["scores"]] == ["티끌 모아 태산", "태산 모아 티끌"]
    tok = load(f"{models['gpt']}/tokenizer.json")
    direct = score_texts(taesan.load(models["gpt"]), tok, texts[1:], "causal", start_id=tok.eos_id)
    assert r["scores"][0]["log_prob"] == pytest.approx(direct[0], abs=1e-3)
    assert ok(client, "/api/score", {"model": "bert", "texts": ["티끌 모아 태산"]})["objective"] == "masked"


def test_attention_matrices(client):
    r = ok(client, "/api/attention", {"model": "gpt", "text": "티끌 모아 태산"})
    assert [b["layer"] for b in r["blocks"]] == [0, 1]
    w = torch.tensor(r["blocks"][0]["weights"])  # (H, T, T)
    T = len(r["blocks"][0]["queries"])
    assert w.shape == (2, T, T) and torch.all(torch.triu(w, 1) == 0)
    assert torch.allclose(w.sum(-1), torch.ones(2, T), atol=0.01)
    s2s = ok(client, "/api/attention", {"model": "s2s", "text": "어제 카페", "target": "오늘 학교"})
    cross = [b for b in s2s["blocks"] if b["kind"] == "cross"][0]
    assert cross["keys"] == s2s["blocks"][0]["queries"] and len(cross["weights"][0]) == len(cross["queries"])
    assert ok(client, "/api/attention", {"model": "sentiment", "text": "재미있었다"})["blocks"][0]["queries"][0] == "[CLS]"


def test_image_from_a_digit_is_what_predict_and_rollout_give(client, models):
    from taesan.tasks.readers.images import digits
    from taesan.tuning.finetune import load_finetuned
    from taesan.viz.rollout import vit_attention_map

    r = ok(client, "/api/image", {"model": "vit", "digit": 5, "top_k": 3})
    model, task = load_finetuned(models["vit"])
    model.eval()
    image = digits()[5]
    expected = task.predict(model, [image])[0]
    assert r["label"] == expected["label"] and r["true_label"] == image.label
    assert r["probability"] == pytest.approx(expected["probability"], abs=1e-4)
    assert len(r["top"]) == 3 and r["top"][0]["label"] == r["label"]
    assert [t["probability"] for t in r["top"]] == sorted((t["probability"] for t in r["top"]), reverse=True)
    pixels = task.collate(task.encode(image))["pixel_values"]  # (1, 1, 8, 8)
    rollout = torch.tensor(r["attention"])
    assert rollout.shape == (4, 4) and float(rollout.sum()) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(rollout, vit_attention_map(model, pixels)[0], atol=1e-4)
    seen = torch.tensor(r["image"])
    assert seen.shape == (8, 8) and torch.allclose(seen, torch.as_tensor(image.pixels) / 16, atol=1e-3)


def test_image_from_pixels_is_scaled_and_resized_like_the_task(client):
    from taesan.tasks.readers.images import digits

    grey = (digits()[5].pixels * 255 / 16).tolist()  # the same digit as 0-255 values
    as_digit = ok(client, "/api/image", {"model": "vit", "digit": 5})
    as_pixels = ok(client, "/api/image", {"model": "vit", "pixels": grey})
    assert as_pixels["label"] == as_digit["label"] and as_pixels["true_label"] is None
    assert as_pixels["probability"] == pytest.approx(as_digit["probability"], abs=1e-3)
    big = [[255 if 8 <= x < 24 else 0 for x in range(32)] for _ in range(32)]  # a 32×32 drawing: resized to 8×8
    r = ok(client, "/api/image", {"model": "vit", "pixels": big})
    assert len(r["image"]) == 8 and r["image"][0][0] == 0 and r["image"][4][3] == pytest.approx(1.0)


@pytest.mark.parametrize("body, status, match", [
    ({"model": "sentiment", "digit": 1}, 400, "cannot image"),
    ({"model": "vit"}, 400, "either 'digit'"),
    ({"model": "vit", "digit": 1, "pixels": [[0]]}, 400, "either 'digit'"),
    ({"model": "vit", "digit": 1797}, 400, "choose 0..1796"),
    ({"model": "vit", "digit": -1}, 400, "between 0"),
    ({"model": "vit", "digit": "3"}, 400, "expected an integer"),
    ({"model": "vit", "digit": None}, 400, "expected an integer"),
    ({"model": "vit", "digit": 1, "top_k": 0}, 400, "'top_k' = 0"),
    ({"model": "vit", "pixels": "0,0"}, 400, "2-D list"),
    ({"model": "vit", "pixels": []}, 400, "2-D list"),
    ({"model": "vit", "pixels": [1, 2]}, 400, "2-D list"),
    ({"model": "vit", "pixels": [[]]}, 400, "same length"),
    ({"model": "vit", "pixels": [[0, 1], [2]]}, 400, "same length"),
    ({"model": "vit", "pixels": [[0, 256]]}, 400, "256 is not a grey value"),
    ({"model": "vit", "pixels": [[0, -1]]}, 400, "not a grey value"),
    ({"model": "vit", "pixels": [[0, "a"]]}, 400, "not a grey value"),
    ({"model": "vit", "pixels": [[0, True]]}, 400, "not a grey value"),
    ({"model": "vit", "pixels": [[0, None]]}, 400, "not a grey value"),
    ({"model": "vit", "pixels": [[0] * 65]}, 413, "limit is 64×64"),
    ({"model": "vit", "pixels": [[0]] * 65}, 413, "limit is 64×64"),
])
def test_image_errors(client, body, status, match):
    error(client, "/api/image", body, status=status, match=match)


def test_image_nan_is_not_json_we_accept(client):
    raw = b'{"model": "vit", "pixels": [[0, NaN]]}'
    error(client, "/api/image", content=raw, headers={"content-type": "application/json"}, match="not a grey value")


# ---- every error path ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, match", [
    (b"{not json", "not JSON"), (b"", "not JSON"), (b"[1, 2]", "JSON object"), (b"\xff\xfe{}", "not UTF-8"),
])
def test_bad_bodies(client, raw, match):
    error(client, "/api/classify", content=raw, headers={"content-type": "application/json"}, match=match)


@pytest.mark.parametrize("path, body, status, match", [
    ("/api/classify", {"text": "안녕"}, 400, "field 'model' is missing"),
    ("/api/classify", {"model": "nope", "text": "안녕"}, 404, "unknown model 'nope'"),
    ("/api/classify", {"model": "/etc", "text": "안녕"}, 404, "unknown model"),  # never a path
    ("/api/classify", {"model": "gpt", "text": "안녕"}, 400, "cannot classify"),
    ("/api/ner", {"model": "sentiment", "text": "안녕"}, 400, "cannot ner"),
    ("/api/qa", {"model": "ner", "question": "어디?", "context": "카페"}, 400, "cannot qa"),
    ("/api/generate", {"model": "sentiment", "prompt": "안녕"}, 400, "cannot generate"),
    ("/api/fill-mask", {"model": "gpt", "text": "티끌 [MASK]"}, 400, "cannot fill-mask"),
    ("/api/score", {"model": "s2s", "texts": ["안녕"]}, 400, "cannot score"),
    ("/api/classify", {"model": "sentiment"}, 400, "field 'text' is missing"),
    ("/api/classify", {"model": "sentiment", "text": 3}, 400, "expected a string"),
    ("/api/classify", {"model": "sentiment", "text": "   "}, 400, "is empty"),
    ("/api/classify", {"model": "sentiment", "text": "가" * 2001}, 413, "limit is 2000"),
    ("/api/classify", {"model": "sentiment", "text": "a\x00b"}, 400, "NUL"),
    ("/api/qa", {"model": "qa", "question": "어디?"}, 400, "field 'context' is missing"),
    ("/api/qa", {"model": "qa", "question": "가" * 1000, "context": "나" * 1500}, 413, "question + context"),
    ("/api/fill-mask", {"model": "bert", "text": "티끌 모아 태산"}, 400, "put [MASK]"),
    ("/api/fill-mask", {"model": "bert", "text": "티끌 [MASK]", "top_k": 0}, 400, "'top_k' = 0"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": 0}, 400, "'max_new_tokens' = 0"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": 10_000}, 400, "between 1 and 200"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": "5"}, 400, "expected an integer"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": True}, 400, "expected an integer"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "temperature": -1}, 400, "'temperature'"),
    ("/api/generate", {"model": "gpt", "prompt": "티끌", "top_p": 2}, 400, "'top_p'"),
    ("/api/generate", {"model": "s2s", "prompt": "티끌", "max_new_tokens": 64}, 400, "64 positions"),
    ("/api/generate", {"model": "s2s", "prompt": "티끌 모아 태산 " * 30, "max_new_tokens": 5}, 400, "64 positions"),
    ("/api/score", {"model": "gpt", "texts": "티끌"}, 400, "non-empty list"),
    ("/api/score", {"model": "gpt", "texts": []}, 400, "non-empty list"),
    ("/api/score", {"model": "gpt", "texts": ["티끌", 5]}, 400, "expected a string"),
    ("/api/score", {"model": "gpt", "texts": ["티끌"] * 33}, 413, "limit is 32"),
    ("/api/attention", {"model": "gpt", "text": "티끌", "target": "모아"}, 400, "target is for encoder-decoder"),
    ("/api/attention", {"model": "gpt", "text": "티끌 모아 태산 " * 30}, 400, "at most 64"),
    ("/api/tokenize", {"text": "티끌", "model": "nope"}, 404, "unknown model"),
])
def test_user_errors_are_4xx_with_a_message(client, path, body, status, match):
    error(client, path, body, status=status, match=match)


def test_lone_surrogate_is_bad_text(client):
    raw = b'{"model": "sentiment", "text": "\\ud800 abc"}'
    error(client, "/api/classify", content=raw, headers={"content-type": "application/json"}, match="not valid Unicode")


def test_body_size_limit_and_timeout(app):
    small = TestClient(create_app({}, ServeConfig(max_body=200, demo_tokenizers=False), loaded=app.state.served))
    error(small, "/api/classify", {"model": "sentiment", "text": "가" * 100}, status=413, match="limit")
    assert small.post("/api/classify", json={"model": "sentiment", "text": "재미있었다"}).status_code == 200
    slow = TestClient(create_app({}, ServeConfig(timeout=1e-6, demo_tokenizers=False), loaded=app.state.served))
    error(slow, "/api/fill-mask", {"model": "bert", "text": "티끌 [MASK] 태산"}, status=408, match="longer than")


def test_generation_stops_at_its_deadline(app):
    from taesan.serve.served import generate_stream

    served = app.state.served["gpt"]
    pieces = generate_stream(served, "티끌", 20, None, None, None, None, deadline=time.monotonic() - 1)
    with pytest.raises(TimeoutError):
        list(pieces)


def blocking_app(app, monkeypatch, **config):
    """An app whose image computation waits for the returned Event: a request that is busy until the test says."""
    from taesan.serve import served as serve_models

    release = threading.Event()
    real = serve_models.classify_image
    monkeypatch.setattr(serve_models, "classify_image", lambda *a: release.wait(10) and real(*a))
    busy = create_app({}, ServeConfig(demo_tokenizers=False, **config), loaded=app.state.served)
    return busy, release


def in_background(client, body):
    """POST /api/image from another thread; -> (thread, [response])."""
    out = []
    thread = threading.Thread(target=lambda: out.append(client.post("/api/image", json=body)))
    thread.start()
    return thread, out


def wait_for(condition, seconds=10.0):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def test_all_slots_busy_is_a_503_then_free_again(app, monkeypatch):
    busy, release = blocking_app(app, monkeypatch, max_concurrent=1, max_queue=1)
    client = TestClient(busy)
    slots = busy.state.slots
    first, first_out = in_background(client, {"model": "vit", "digit": 1})
    wait_for(lambda: slots.running == 1)
    second, second_out = in_background(client, {"model": "vit", "digit": 2})  # waits in the queue
    wait_for(lambda: slots.waiting == 1)
    error(client, "/api/image", {"model": "vit", "digit": 3}, status=503, match="server busy, try again")
    error(client, "/api/classify", {"model": "sentiment", "text": "좋다"}, status=503, match="server busy")
    release.set()
    for thread in (first, second):
        thread.join(10)
    assert [r[0].status_code for r in (first_out, second_out)] == [200, 200]
    assert slots.running == 0 and slots.waiting == 0
    ok(client, "/api/image", {"model": "vit", "digit": 3})


def test_a_timed_out_request_keeps_its_slot_until_its_thread_ends(app, monkeypatch):
    busy, release = blocking_app(app, monkeypatch, max_concurrent=1, max_queue=0, timeout=0.2)
    client = TestClient(busy)
    slots = busy.state.slots
    first, first_out = in_background(client, {"model": "vit", "digit": 1})
    wait_for(lambda: slots.running == 1)
    time.sleep(0.3)  # past the timeout: the request has its 408 (its thread still computes)
    error(client, "/api/image", {"model": "vit", "digit": 2}, status=503, match="server busy")
    release.set()
    first.join(10)
    assert first_out[0].status_code == 408 and "longer than 0.2 s" in first_out[0].json()["error"]
    wait_for(lambda: slots.running == 0)
    ok(client, "/api/image", {"model": "vit", "digit": 2})


def test_waiting_for_a_slot_counts_against_the_timeout(app, monkeypatch):
    busy, release = blocking_app(app, monkeypatch, max_concurrent=1, max_queue=2, timeout=0.3)
    client = TestClient(busy)
    first, _ = in_background(client, {"model": "vit", "digit": 1})
    wait_for(lambda: busy.state.slots.running == 1)
    error(client, "/api/classify", {"model": "sentiment", "text": "좋다"}, status=408, match="longer than")
    assert busy.state.slots.waiting == 0  # the waiter that gave up left the queue
    release.set()
    first.join(10)
    wait_for(lambda: busy.state.slots.running == 0)


def asgi_post(path: str, body: dict, headers: dict | None = None) -> tuple[dict, bytes]:
    """An ASGI scope for a POST from a browser on this machine, and its body."""
    raw = json.dumps(body).encode()
    sent = {"host": "127.0.0.1:8000", "content-type": "application/json", "content-length": str(len(raw)), **(headers or {})}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    return scope, raw


def test_generation_holds_a_slot_and_stops_when_its_stream_is_dropped(app, monkeypatch):
    """The stream's thread ends (and frees its slot within 0.1 s) when the client goes away mid-stream: driven
    through the app's ASGI interface, as a server does when the connection drops."""
    import asyncio

    from taesan.serve import served as serve_models

    def endless(*args):  # a generation that would outlast the test: only the dropped stream can end it
        for _ in range(20_000):
            time.sleep(0.005)
            yield "티끌"

    monkeypatch.setattr(serve_models, "generate_stream", endless)
    busy = create_app({}, ServeConfig(demo_tokenizers=False, max_concurrent=1, max_queue=0), loaded=app.state.served)
    slots = busy.state.slots
    scope, raw = asgi_post("/api/generate", {"model": "gpt", "prompt": "티끌", "max_new_tokens": 40, "temperature": 1.0, "seed": 0})

    async def first_line_then_leave():
        left, first, lines = asyncio.Event(), asyncio.Event(), []
        messages = [{"type": "http.request", "body": raw, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                lines.append(message["body"])
                first.set()

        task = asyncio.create_task(busy(scope, receive, send))
        await asyncio.wait_for(first.wait(), 10)
        assert slots.running == 1
        left.set()  # the client goes away
        gone = time.monotonic()
        while slots.running and time.monotonic() < gone + 5:
            await asyncio.sleep(0.001)
        freed = time.monotonic() - gone
        await asyncio.wait_for(task, 5)
        return lines[0], freed

    line, freed = asyncio.run(first_line_then_leave())
    assert "text" in json.loads(line)
    assert slots.running == 0 and freed < 0.1, freed  # long before the 20,000 pieces (100 s)
    monkeypatch.undo()
    assert stream_lines(TestClient(busy), {"model": "gpt", "prompt": "티끌", "max_new_tokens": 2})[-1]["done"] is True
    wait_for(lambda: slots.running == 0)  # the thread frees its slot just after its last line


def test_slot_config_is_checked():
    with pytest.raises(TaesanError, match="at least 1 slot"):
        create_app({}, ServeConfig(demo_tokenizers=False, max_concurrent=0))


@pytest.mark.parametrize("text", ["🙂🙂", "[CLS] [SEP] [PAD]", "\t\n 가", "ㅋㅋㅋㅋ" * 50, "\u200b", "a" * 1999])
def test_odd_text_never_gives_a_500(client, text):
    for path, body in [
        ("/api/tokenize", {"text": text}), ("/api/classify", {"model": "sentiment", "text": text}),
        ("/api/ner", {"model": "ner", "text": text}), ("/api/qa", {"model": "qa", "question": text, "context": text}),
        ("/api/fill-mask", {"model": "bert", "text": text}), ("/api/score", {"model": "gpt", "texts": [text]}),
        ("/api/attention", {"model": "s2s", "text": text}), ("/api/generate", {"model": "gpt", "prompt": text, "max_new_tokens": 2}),
        ("/api/generate", {"model": "s2s", "prompt": text, "max_new_tokens": 2}),
        ("/api/image", {"model": "vit", "pixels": text}),
    ]:
        r = client.post(path, json=body)  # a server error would raise here (TestClient re-raises)
        assert r.status_code < 500, (path, r.text)
        if r.status_code >= 400:
            assert r.json()["error"]


# ---- start-up ----------------------------------------------------------------------------------------------------


def test_model_specs(models, tmp_path):
    assert model_specs([models["gpt"], f"mine={models['bert']}"]) == {"gpt": models["gpt"], "mine": models["bert"]}
    with pytest.raises(TaesanError, match="two models named 'gpt'"):
        model_specs([models["gpt"], f"gpt={models['bert']}"])
    with pytest.raises(TaesanError, match="not a checkpoint directory"):
        model_specs([str(tmp_path / "nope")])
    with pytest.raises(TaesanError, match="NAME=DIR"):
        model_specs([f"={models['gpt']}"])


def test_missing_web_extra_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(TaesanError, match=r"pip install 'taesan\[web\]'"):
        require_web()


def test_serve_cli_errors(tmp_path, capsys, models):
    from taesan.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    assert main(["serve", "--model", models["gpt"], "--port", "0"]) == 2
    assert main(["serve", "--model", models["gpt"], "--timeout", "0"]) == 2
    assert main(["serve", "--model", models["gpt"], "--max-concurrent", "0"]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 4 and "not a checkpoint directory" in errs[0] and "--port 0" in errs[1] and "--timeout 0" in errs[2]
    assert "--max-concurrent 0" in errs[3]


def test_generation_and_translation_tasks_stream_what_their_predict_returns(models):
    """A fine-tuned generation / translation checkpoint streams in its task's encoding (no separator shown)."""
    import taesan
    from taesan.serve.served import Served, generate_stream
    from taesan.tasks.generation import GenerationConfig, GenerationTask
    from taesan.tasks.translation import Translation, TranslationConfig
    from taesan.tokenizers import load

    bpe, wp = load(f"{models['gpt']}/tokenizer.json"), load(f"{models['s2s']}/tokenizer.json")
    gen = GenerationTask(GenerationConfig(max_new_tokens=8), tokenizer=bpe)
    gpt = gen.build_model(taesan.load(models["gpt"])).eval()
    served = Served("gen", None, gpt, bpe, gen, ["generate"])
    for prompt in ("티끌 모아", "어제 카페"):
        streamed = "".join(generate_stream(served, prompt, 8, None, None, None, None))
        assert streamed == gen.predict(gpt, [prompt])[0]["text"]
        if prompt == "티끌 모아":
            assert streamed.startswith("태산")  # the separator " " the task puts before its answer is not shown
    tr = Translation(TranslationConfig(max_target_length=12), tokenizer=wp)
    s2s = tr.build_model(taesan.load(models["s2s"])).eval()
    served = Served("tr", None, s2s, wp, tr, ["generate"])
    streamed = "".join(generate_stream(served, "어제 카페 갔었어", 12, None, None, None, None))
    assert streamed == tr.predict(s2s, ["어제 카페 갔었어"])[0]["translation"]


def test_a_backward_lm_is_served_for_scores_not_generation(tmp_path):
    """Its generate tab streamed text to the right of the prompt, which a right-to-left model does not write."""
    from taesan.serve.served import load_served
    from taesan.tokenizers import CharTokenizer

    import taesan

    tok = CharTokenizer.train(["티끌 모아 태산"], vocab_size=50, min_frequency=1, special_tokens=["<|endoftext|>"])
    taesan.create("gpt-tiny", vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=16).save(tmp_path, tok)
    (tmp_path / "training.json").write_text(json.dumps({"objective": "backward", "separator_id": 0}), encoding="utf-8")
    served = load_served("back", tmp_path)
    assert "score" in served.actions and "generate" not in served.actions and served.objective == "backward"
    (tmp_path / "training.json").write_text(json.dumps({"objective": "causal", "separator_id": 0}), encoding="utf-8")
    assert "generate" in load_served("fwd", tmp_path).actions
