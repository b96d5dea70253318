"""The playground in a real browser: Playwright drives Debian's Chromium against `taesan serve` on a free port;
a classification, a streamed generation, the QA answer highlight, the attention hover and a digit's label and
attention rollout show up on the page."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium fonts-nanum; .ci/run does it)",
                allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

from playground_models import build_image_model, build_models  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from taesan.serve import create_app

    root = tmp_path_factory.mktemp("browser")
    app = create_app({**build_models(root), "vit": build_image_model(root)})
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.set_default_timeout(60_000)
        page.goto(server + "/")
        page.wait_for_selector("body[data-ready='1']")
        yield page
        browser.close()


def test_classification_shows_the_label(page, tmp_path):
    page.click("#tabs button[data-tab='classify']")
    assert page.locator("#tab-classify select.model").input_value() == "sentiment"
    page.fill("#classify-text", "이 영화 정말 재미있었다")
    page.click("#classify-run")
    page.wait_for_selector("#classify-label")
    assert page.text_content("#classify-label") == "긍정"
    assert "%" in page.text_content("#classify-out")
    page.fill("#classify-text", "이 영화 돈이 아깝다")
    page.click("#classify-run")
    page.wait_for_function("document.querySelector('#classify-label')?.textContent === '부정'")
    page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
    assert (tmp_path / "classify.png").stat().st_size > 1000


def test_generation_streams_into_the_page(page, tmp_path):
    page.click("#tabs button[data-tab='generate']")
    page.select_option("#tab-generate select.model", "gpt")
    page.fill("#generate-prompt", "티끌 모아")
    page.fill("#generate-n", "6")
    page.click("#generate-run")
    page.wait_for_selector("#generate-out[data-done='1']")
    assert page.text_content("#generate-text").startswith(" 태산")  # what the tiny GPT learned
    assert page.text_content("#generate-out").startswith("티끌 모아 태산")
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)
    assert (tmp_path / "generate.png").stat().st_size > 1000


def test_generation_bounds_are_the_apis_own(page, server):
    """The temperature, top-p and max-new-tokens boxes take their min and max from /openapi.json (the box once
    allowed a temperature of 0, which the API refuses)."""
    import httpx

    fields = httpx.get(server + "/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]
    page.click("#tabs button[data-tab='generate']")
    for box, name in (("generate-temperature", "temperature"), ("generate-top-p", "top_p"), ("generate-n", "max_new_tokens")):
        field = next(c for c in [fields[name], *fields[name].get("anyOf", [])] if "minimum" in c)
        low, high = page.evaluate(f"[document.getElementById('{box}').min, document.getElementById('{box}').max]")
        assert (float(low), float(high)) == (field["minimum"], field["maximum"]), box
    assert float(page.get_attribute("#generate-temperature", "min")) == 0.01


def test_an_empty_completion_shows_its_finish_reason(page, monkeypatch):
    from taesan.serve import served

    def ends_at_once(*args):  # the model's first token is end-of-text
        return EndedStream("stop")

    monkeypatch.setattr(served, "generate_stream", ends_at_once)
    page.click("#tabs button[data-tab='generate']")
    page.select_option("#tab-generate select.model", "gpt")
    page.fill("#generate-prompt", "티끌 모아")
    page.click("#generate-run")
    page.wait_for_selector("#generate-out[data-done='1'] #generate-finish")
    assert page.text_content("#generate-text") == ""
    assert page.text_content("#generate-finish").startswith("empty completion: finish_reason stop")


def test_ner_entities_are_marked_in_the_text(page, server):
    import httpx

    text = "철수는 어제 서울 카페에 갔었어"
    expected = httpx.post(server + "/api/ner", json={"model": "ner", "text": text}).json()["entities"]
    page.click("#tabs button[data-tab='ner']")
    page.fill("#ner-text", text)
    page.click("#ner-run")
    page.wait_for_selector("#ner-out .highlighted")
    marks = page.locator("#ner-out mark")
    assert marks.count() == len(expected)
    for i, e in enumerate(expected):
        assert marks.nth(i).text_content() == e["text"] + e["label"]  # the span, then its type tag
    assert page.evaluate("document.querySelector('#ner-out .highlighted').innerText.replace(/(PS|LC)/g, '')") == text


def test_qa_answer_is_highlighted_and_attention_hovers(page, tmp_path):
    page.click("#tabs button[data-tab='qa']")
    page.click("#qa-run")
    page.wait_for_selector("#qa-out mark.answer")
    assert page.text_content("#qa-out mark.answer") == "카페"
    page.click("#tabs button[data-tab='attention']")
    page.select_option("#tab-attention select.model", "gpt")
    page.click("#attention-run")
    page.wait_for_function("document.querySelector('#attention-block').options.length === 2")
    page.select_option("#attention-head", "0")
    box = page.locator("#attention-canvas").bounding_box()
    page.mouse.move(box["x"] + 90 + 5, box["y"] + 90 + 5)  # the first cell: the first token looks at itself
    assert page.text_content("#attention-hover").endswith(": 1.000  (self L0)")
    page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)


def test_errors_show_on_the_page(page):
    page.click("#tabs button[data-tab='fill-mask']")
    page.fill("#fill-text", "티끌 모아 태산")
    page.click("#fill-run")
    page.wait_for_selector("#fill-out .error")
    assert "[MASK]" in page.text_content("#fill-out .error")


def test_tokenizers_side_by_side(page):
    page.click("#tabs button[data-tab='tokenize']")
    page.fill("#tokenize-text", "어제 카페 갔었어")
    page.click("#tokenize-run")
    page.wait_for_selector("#tokenize-out table")
    rows = page.locator("#tokenize-out tr")
    names = [rows.nth(i).locator("td").first.text_content() for i in range(1, rows.count())]
    assert names[:4] == ["word (demo)", "char (demo)", "bpe (demo)", "wordpiece (demo)"]
    word = rows.nth(1).locator("td.tokens span")
    assert [word.nth(i).text_content() for i in range(word.count())] == ["어제", "▁카페", "▁갔었어"]


def test_image_tab_classifies_a_digit_and_a_drawing(page, server, tmp_path):
    import httpx

    expected = httpx.post(server + "/api/image", json={"model": "vit", "digit": 7}).json()
    page.click("#tabs button[data-tab='image']")
    assert page.locator("#tab-image select.model").input_value() == "vit"
    page.fill("#image-digit", "7")
    page.click("#image-run")
    page.wait_for_selector("#image-label")
    assert page.text_content("#image-label") == expected["label"]
    assert f"true label {expected['true_label']}" in page.text_content("#image-out") and "%" in page.text_content("#image-out")
    lit = page.evaluate("Array.from(document.querySelector('#image-canvas').getContext('2d')"
                        ".getImageData(0, 0, 200, 200).data).some((v, i) => i % 4 === 0 && v > 0)")
    assert lit  # the digit and its rollout were drawn
    box = page.locator("#image-draw").bounding_box()
    page.mouse.move(box["x"] + 80, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 80, box["y"] + 140, steps=8)  # a "1"
    page.mouse.up()
    page.evaluate("document.querySelector('#image-label').remove()")
    page.click("#drawn-run")
    page.wait_for_selector("#image-label")
    assert page.text_content("#image-label") in [str(d) for d in range(10)]
    assert "true label" not in page.text_content("#image-out")
    page.screenshot(path=str(tmp_path / "image.png"), full_page=True)


class EndedStream:
    """A text stream (as pipeline.text.TextStream) that ends before its first piece, with its finish_reason."""

    def __init__(self, reason: str) -> None:
        self.finish_reason = reason

    def __iter__(self):
        return iter(())
