"""`taesan demo --quick` end to end (one run shared by the tests): every section in the HTML report, figures
embedded and on disk, the report path printed last, checkpoints that the other commands read; the report
renderer and the demo corpus by hand.

Not the quality of the full demo (minutes of training): the quick mode only proves the wiring.
"""
import base64
import json
import re

import pytest

from taesan.cli import main
from taesan.data.embedded import korean_corpus, object_particle
from taesan.demo.report import Section, Table, render, write_report
from taesan.tuning.finetune import load_finetuned

TITLES = ["Four ways to cut a sentence", "A tiny GPT: next-word prediction", "A tiny BERT: fill in the blank",
          "One task, three ways to adapt", "A tiny ViT on handwritten digits", "Who attends to whom", "Checkpoints and timing"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "taesan-demo"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "--quick", "--out", str(out), "--no-progress", "--seed", "1"])
    assert code == 0
    return out, stdout.getvalue()


def test_the_report_path_is_printed_last_and_holds_every_section(demo):
    out, printed = demo
    last = printed.strip().splitlines()[-1]
    assert last == f"report: {(out / 'report.html').resolve()}"
    page = (out / "report.html").read_text(encoding="utf-8")
    headings = re.findall(r"<h2>\d+\. (.*?)</h2>", page)
    assert headings == [t.replace("&", "&amp;") for t in TITLES]
    for n, title in enumerate(TITLES[:6], 1):  # the terminal shows the same steps, in order
        assert f"== {n}. {title}" in printed


def test_figures_are_written_and_embedded_in_the_report(demo):
    out, _ = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    names = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    expected = {"tokenizers.png", "loss.png", "comparison.png", "vit_rollout.png", "attention_gpt.png", "attention_gpt_L0H0.png",
                "attention_bert.png", "attention_bert_L0H0.png"}
    assert expected <= set(names) and len(embedded) == len(names) == 9  # loss.png twice: GPT and BERT
    assert all(base64.b64decode(data)[:8] == PNG for data in embedded)
    for path in ["figures/tokenizers.png", "figures/vit_rollout.png", "figures/attention_gpt.png", "figures/attention_bert.png",
                 "gpt/loss.png", "bert/loss.png", "sentiment/comparison.png"]:
        assert (out / path).read_bytes()[:8] == PNG, path
    assert not re.search(r'src="(?!data:)', page)  # one self-contained file


def test_the_unseen_verb_form_is_unknown_to_words_and_split_by_subwords(demo):
    out, _ = demo
    assert not any("갔었잖아" in line for line in korean_corpus(300, seed=1))
    page = (out / "report.html").read_text(encoding="utf-8")
    row = re.search(r"<tr><td>카페 갔었잖아</td>(.*?)</tr>", page).group(1)
    word, char, bpe, wordpiece = re.findall(r"<td>(.*?)</td>", row)
    assert word == "카페 · [UNK]"
    assert "[UNK]" not in bpe and "갔었" in bpe  # bytes never fail; the stem is a learned piece
    assert char.startswith("카 · 페 · ▁")


def test_the_pretrained_models_learned_and_are_checkpoints_the_other_commands_read(demo, capsys):
    out, printed = demo
    for name in ("gpt", "bert"):
        rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in rows if "loss" in r]
        assert losses[-1] < losses[0], name  # training moved
        assert json.loads((out / name / "training.json").read_text())["objective"] == ("causal" if name == "gpt" else "masked")
    capsys.readouterr()
    assert main(["score", "--model", str(out / "gpt"), "난폭 운전", "무모 운전"]) == 0
    assert "난폭 운전" in capsys.readouterr().out
    assert main(["generate", "--model", str(out / "gpt"), "--prompt", "티끌 모아", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("티끌 모아")
    assert main(["predict", "--model", str(out / "vit"), "digits:0"]) == 0
    capsys.readouterr()
    review = "이 영화 최고의 영화다"
    assert main(["predict", "--model", str(out / "sentiment" / "bert-full"), review]) == 0
    shown = capsys.readouterr().out
    model, task = load_finetuned(out / "sentiment" / "bert-full")
    [expected] = task.predict(model, [review])
    assert shown == f"{task.describe(expected)}\t{review}\n"  # the fine-tuned classifier's own answer
    assert f"taesan serve --model gpt={out / 'gpt'} --model bert={out / 'bert'}" in printed
    for command in ("taesan generate --model", "taesan score --model", "taesan predict --model", "taesan attention --model"):
        assert command in printed


def test_serve_offers_the_demo_checkpoints(demo):
    from fastapi.testclient import TestClient

    from taesan.cli.demo import serving_app

    out, _ = demo
    names = ["gpt", "bert", "vit", "sentiment-bert-full"]
    client = TestClient(serving_app([(n, out / n.replace("sentiment-", "sentiment/")) for n in names]))
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert set(listed) == set(names)
    assert sorted(listed["sentiment-bert-full"]["labels"]) == ["긍정", "부정"]
    fills = client.post("/api/fill-mask", json={"model": "bert", "text": "티끌 [MASK] 태산"}).json()
    assert len(fills["masks"][0]["candidates"]) == 5
    label = client.post("/api/classify", json={"model": "sentiment-bert-full", "text": "정말 지루했다"}).json()
    model, task = load_finetuned(out / "sentiment" / "bert-full")
    [expected] = task.predict(model, ["정말 지루했다"])
    assert (label["label"], label["probability"]) == (expected["label"], pytest.approx(expected["probability"], abs=1e-6))
    assert listed["vit"]["actions"] == ["image"]  # the playground's Image tab
    digit = client.post("/api/image", json={"model": "vit", "digit": 0}).json()
    assert digit["label"] in [str(d) for d in range(10)] and len(digit["attention"]) > 0


def test_a_foreign_non_empty_out_directory_is_refused(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("taesan demo: error: --out") and "\n" not in err
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


def test_render_escapes_text_and_numbers_sections(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(PNG + b"rest")
    sections = [Section("<b>first</b>", ["1 < 2 & 3"], [Table(["x", "y"], [["어제", 0.123456]], "cap")], [png], ["taesan demo"]),
                Section("second")]
    page = render("title", sections, intro="hello")
    assert "<h2>1. &lt;b&gt;first&lt;/b&gt;</h2>" in page and "<h2>2. second</h2>" in page
    assert "<p>1 &lt; 2 &amp; 3</p>" in page
    assert "<td>어제</td><td>0.1235</td>" in page  # floats to 4 significant digits
    assert "<td>928,768</td>" in render("t", [Section("s", tables=[Table(["n"], [[928768]])])])
    assert base64.b64encode(PNG + b"rest").decode() in page
    assert "<pre>taesan demo</pre>" in page
    path = write_report(tmp_path / "r" / "report.html", "title", sections)
    assert path.read_text(encoding="utf-8") == render("title", sections)
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # atomic: no temp file left


def test_object_particle_follows_the_final_consonant():
    assert object_particle("책") == "책을"
    assert object_particle("커피") == "커피를"
    assert object_particle("김밥") == "김밥을"
    assert object_particle("우유") == "우유를"


def test_only_the_quick_configuration_calls_itself_quick(demo, tmp_path):
    from taesan.demo import DemoConfig

    assert DemoConfig().is_quick is False and DemoConfig.quick(tmp_path).is_quick is True
    out, _ = demo
    assert "quick mode" in (out / "report.html").read_text(encoding="utf-8")
