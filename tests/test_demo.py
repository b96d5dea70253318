"""`taesan demo --quick` end to end (one run shared by the tests): every section in the HTML report, figures
embedded and on disk, the report path printed last, checkpoints that the other commands read; the report
renderer and the demo corpus by hand.

Not the quality of the full demo (minutes of training): the quick mode only proves the wiring.
"""
import base64
import importlib.util
import json
import re

import pytest

from taesan.cli import main
from taesan.data.embedded import korean_corpus, object_particle
from taesan.demo.report import Section, Table, render, write_report
from taesan.pipeline.precision import use_precision
from taesan.tuning.finetune import load_finetuned

TITLES = ["Ways to cut a sentence", "A tiny GPT: next-word prediction", "A tiny BERT: fill in the blank",
          "One task, three ways to adapt", "Pretrained vs from scratch", "Practice questions from raw text",
          "Bring your own checkpoint",
          "A tiny ViT on handwritten digits", "Who attends to whom", "Checkpoints and timing"]
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
    for n, title in enumerate(TITLES[:-1], 1):  # the terminal shows the same steps, in order
        assert f"== {n}. {title}" in printed


def test_figures_are_written_and_embedded_in_the_report(demo):
    out, _ = demo
    page = (out / "report.html").read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    names = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    expected = {"tokenizers.png", "loss.png", "comparison.png", "transfer.png", "vit_rollout.png", "attention_gpt.png",
                "attention_gpt_L0H0.png", "attention_bert.png", "attention_bert_L0H0.png"}
    assert expected <= set(names) and len(embedded) == len(names) == 10  # loss.png twice: GPT and BERT
    assert all(base64.b64decode(data)[:8] == PNG for data in embedded)
    for path in ["figures/tokenizers.png", "figures/transfer.png", "figures/vit_rollout.png", "figures/attention_gpt.png", "figures/attention_bert.png",
                 "gpt/loss.png", "bert/loss.png", "sentiment/comparison.png"]:
        assert (out / path).read_bytes()[:8] == PNG, path
    assert not re.search(r'src="(?!data:)', page)  # one self-contained file


def test_the_unseen_verb_form_is_unknown_to_words_and_split_by_subwords(demo):
    out, _ = demo
    assert not any("갔었잖아" in line for line in korean_corpus(300, seed=1))
    page = (out / "report.html").read_text(encoding="utf-8")
    row = re.search(r"<tr><td>카페 갔었잖아</td>(.*?)</tr>", page).group(1)
    word, char, bpe, wordpiece, *morphemes = re.findall(r"<td>(.*?)</td>", row)
    assert word == "카페 · [UNK]"
    if morphemes:  # WordPiece merged within kiwipiepy's morphemes: the unseen ending is a piece of its own
        assert morphemes[0].endswith("갔었 · 잖아"), morphemes
    assert "[UNK]" not in bpe and "갔었" in bpe  # bytes never fail; the stem is a learned piece
    assert char.startswith("카 · 페 · ▁")


def predict_as_the_commands_do(directory, texts):
    """The fine-tuned task's own predictions at the precision `--precision auto` picks on this CPU."""
    model, task = load_finetuned(directory)
    precision = use_precision(model, "auto")
    with precision.context():
        return task.predict(model, texts)


def test_the_pretrained_models_learned_and_are_checkpoints_the_other_commands_read(demo, capsys):
    out, printed = demo
    for name in ("gpt", "bert"):
        rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in rows if "loss" in r]
        assert losses[-1] < losses[0], name  # training moved
        trained = json.loads((out / name / "training.json").read_text())
        assert trained["objective"] == ("causal" if name == "gpt" else "masked")
    assert trained["mask_prob"] == 0.3  # the BERT hides 30% of its tokens (see DemoConfig.mask_prob)
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
    [expected] = predict_as_the_commands_do(out / "sentiment" / "bert-full", [review])
    task = load_finetuned(out / "sentiment" / "bert-full")[1]
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
    [expected] = predict_as_the_commands_do(out / "sentiment" / "bert-full", ["정말 지루했다"])
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


def _section(page: str, title: str) -> str:
    start = page.index(f"{title}</h2>")
    return page[start: page.index("</section>", start)]


def _tables(html_text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of every <table> in the text, cells as their (escaped) text."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", html_text, re.S):
        header = re.findall(r"<th>(.*?)</th>", table)
        rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])]
        out.append((header, rows))
    return out


def test_the_tokenizer_cuts_are_an_html_table_and_the_figure_only_bars(demo):
    out, printed = demo
    section = _section((out / "report.html").read_text(encoding="utf-8"), "Ways to cut a sentence")
    (head1, sizes), (head2, cuts) = _tables(section)
    kinds = ["word", "char", "bpe", "wordpiece"] + (["wordpiece-morphemes"] if importlib.util.find_spec("kiwipiepy") else [])
    assert head1 == ["kind", "vocab size", "[UNK] %", "tokens / sentence"] and [r[0] for r in sizes] == kinds
    assert head2 == ["sentence", *kinds] and len(cuts) == 3
    assert all(re.fullmatch(r"\d+\.\d\d", r[2]) and re.fullmatch(r"\d+\.\d\d", r[3]) for r in sizes)  # one rule per column
    png = (out / "figures" / "tokenizers.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert height < 0.45 * width  # one row of bar panels: the ~5 px table below them is gone
    numbered = [cell for row in cuts for cell in row if re.search(r"\(\d+/\d+\)", cell)]
    if numbered:  # byte-level BPE cut inside a syllable: the report says how to read it, the terminal too
        assert "How to read a numbered piece" in section and "UTF-8 bytes" in section
        assert any("byte-level BPE spelled" in line for line in printed.splitlines())


def test_byte_split_note_explains_the_numbered_pieces():
    from taesan.tokenizers.compare import byte_split_note

    note = byte_split_note(["카페(1/3)", "카페(2/3)", "카페(3/3)", "▁갔었", "잖아"])
    assert note.startswith("카페(1/3) · 카페(2/3) · 카페(3/3): byte-level BPE spelled 카페 with 3 tokens")
    assert "카페 is 6" in note
    assert byte_split_note(["카페", "▁갔었", "잖아"]) == ""


def test_sentiment_table_lists_every_mode_with_one_accuracy_format(demo):
    out, _ = demo
    [(header, rows)] = _tables(_section((out / "report.html").read_text(encoding="utf-8"), "One task, three ways to adapt"))
    assert header == ["mode", "model", "accuracy", "trainable parameters", "seconds", "note"]
    modes = {(r[0], r[1]) for r in rows}
    for model in ("GPT", "BERT"):
        assert ("prompt tuning via the LM head (2 tokens)", model) in modes  # run, or listed as not run with why
    for mode, model, accuracy, params, seconds, note in rows:
        if note.startswith("not run"):
            assert accuracy == params == seconds == "–"
            continue
        assert re.fullmatch(r"[01]\.\d{3}( ± \d\.\d{3})?", accuracy), accuracy
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", params), params
        assert seconds == "–" or re.fullmatch(r"\d+\.\d", seconds), seconds
        if "in-context" in mode:  # calibrated against the content-free input, read against guessing at its rates
            assert re.search(r"calibrated [01]\.\d{3} \(guessing at its label rates [01]\.\d{3}\)", note), note
    section = _section((out / "report.html").read_text(encoding="utf-8"), "One task, three ways to adapt")
    assert "In-context learning" in section and "Calibrated (" in section  # the verdict, in words


def test_cloze_questions_ask_about_the_embedded_paragraphs(demo):
    out, printed = demo
    paragraphs = (out / "data" / "ko_paragraphs.txt").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index(". Practice questions from raw text</h2>"):page.index(". Bring your own checkpoint</h2>")]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", section)
    assert len(rows) == 8 and "cloze questions, e.g." in printed
    for question, answer, sentence in rows:
        assert answer in paragraphs and question.endswith("?")
        assert any(word in question for word in ("무엇", "언제", "몇"))
        assert sentence in paragraphs  # a whole sentence of the paragraph the question was made from
    holds = re.search(r"it holds the answer for (\d+) of these (\d+) questions", section)
    assert holds and 0 < int(holds[1]) <= int(holds[2])


def test_pretrained_and_scratch_are_fine_tuned_alike_and_both_reported(demo):
    import torch

    import taesan
    from taesan.demo.transfer import scratch_like

    out, printed = demo
    section = _section((out / "report.html").read_text(encoding="utf-8"), "Pretrained vs from scratch")
    [(header, rows)] = _tables(section)
    assert header[:4] == ["model", "labelled reviews", "start", "accuracy"]
    sizes = sorted({int(r[1]) for r in rows})
    assert len(sizes) == 2 and sizes[0] == 16  # quick: 8 per label, then all of the training reviews
    starts = {"BERT": ("pretrained", "from scratch", "word2vec embeddings"), "GPT": ("pretrained", "from scratch")}
    assert [(r[0], r[2]) for r in rows] == [(m, s) for m in ("BERT", "GPT") for _ in sizes for s in starts[m]]
    for name, size, start, accuracy, mean, steps, _ in rows:
        assert 0.0 <= float(accuracy) <= 1.0 and 0.0 <= float(mean) <= 1.0
        assert steps == "6"  # the same budget for both starts (quick: 6 steps)
        results = json.loads((out / "transfer" / f"{name.lower()}-{size}-{start.split()[-1]}-seed1" / "eval_results.json").read_text())
        assert f"{results['accuracy']:.3f}" == accuracy  # the table shows the run's own evaluation (one seed in quick)
        run = json.loads((out / "transfer" / f"{name.lower()}-{size}-{start.split()[-1]}-seed1" / "task.json").read_text())
        # as the printed `taesan finetune` commands would run: a small classifier with R-Drop, and a BERT reading the
        # mean (its masked-LM [CLS] and a fresh preset's never learned anything)
        assert run["rdrop"] == 3.0 and run["pooling"] == ("mean" if name == "BERT" else None)
    assert ("pretraining wins" in section) or ("did not win" in section) or ("got there sooner" in section)
    assert "labels  pretrained" in printed and "labels  from scratch" in printed and "comparisons here" in section
    assert "BERT, 16 labelled reviews: word2vec embeddings" in section and "--embeddings" in section
    # what pretraining can teach here, counted: the phrases the few labels show, the held-out reviews they miss
    counted = re.search(r"The 16 labelled reviews show \d+ of the 24 phrases, and (\d+) of the \d+ held-out reviews", section)
    assert counted and int(counted.group(1)) > 0  # quick, seed 1: 5 of 12
    scored = re.search(r"on those, BERT pretrained ([\d.]+) against ([\d.]+) from scratch, GPT pretrained", section)
    assert scored and all(0.0 <= float(x) <= 1.0 for x in scored.groups())  # each run scored on just those reviews
    assert f"on the {counted.group(1)} held-out reviews with another: BERT pretrained" in printed
    accuracy = {(r[0], r[1], r[2]): float(r[3]) for r in rows}
    vectors_lost = all(accuracy[("BERT", str(n), "word2vec embeddings")] < accuracy[("BERT", str(n), "from scratch")]
                       for n in sizes)
    assert ("word2vec knows a word by its neighbours" in section) == vectors_lost  # why it lost, only where it did
    pretrained = taesan.load(out / "bert")
    scratch = scratch_like(pretrained, seed=1)
    ours, theirs = pretrained.state_dict(), scratch.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}  # the same shape
    key = next(k for k in ours if k.endswith("tok_emb.weight"))
    assert not torch.equal(ours[key], theirs[key])  # random init, not the pretrained weights


def test_the_exported_hf_directories_load_back_with_equal_ids_and_logits(demo):
    import torch
    import transformers  # test-only: the exported directory as HuggingFace itself reads it

    import taesan
    from taesan import tokenizers

    out, printed = demo
    section = _section((out / "report.html").read_text(encoding="utf-8"), "Bring your own checkpoint")
    assert "point taesan at a checkpoint downloaded" in section
    [(header, rows)] = _tables(section)
    assert [r[0] for r in rows] == ["BERT", "GPT"] and [r[1] for r in rows] == ["bert", "gpt2"]
    for row in rows:
        assert row[5] == "yes" and float(row[6]) < 1e-5
    for name, auto in (("bert", transformers.AutoModelForMaskedLM), ("gpt", transformers.AutoModelForCausalLM)):
        hf_dir = out / "hf" / name
        assert "taesan_version" not in json.loads((hf_dir / "config.json").read_text())  # HF's layout, not taesan's
        ours, tok = taesan.load(out / name).eval(), tokenizers.load(out / name / "tokenizer.json")
        theirs = auto.from_pretrained(hf_dir).eval()
        hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
        ids = tok.encode("티끌 모아 태산").ids
        assert hf_tok("티끌 모아 태산")["input_ids"] == ids
        with torch.no_grad():
            diff = (ours(input_ids=torch.tensor([ids])) - theirs(input_ids=torch.tensor([ids])).logits).abs().max()
        assert float(diff) < 1e-5
    assert "bert-hf=" in printed and "gpt-hf=" in printed  # served like any checkpoint


def test_cells_follow_their_column_kind():
    page = render("t", [Section("s", tables=[Table(["acc", "n", "s", "x"], [[1.0, 928768, 2.26, 0.5], [0.5376, 3.0, 10.0, float("nan")],
                                                                             [(0.525, 0.0124), 7, None, 0.0]],
                                                     kinds=["fraction", "count", "seconds", "number"])])])
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1])]
    assert rows == [["1.000", "928,768", "2.3", "0.50"], ["0.538", "3", "10.0", "–"], ["0.525 ± 0.012", "7", "–", "0.00"]]
    with pytest.raises(ValueError):
        Table(["a", "b"], [], kinds=["fraction"])


def test_the_masked_lm_twins_line_reports_the_measured_cosines(tmp_path):
    """The demo says why a masked LM can lose on its templates with numbers from the checkpoint: the cosine of the
    two twins' token embeddings after pretraining and at random init; nothing where the words are cut in pieces."""
    import torch

    import taesan
    from taesan.demo.transfer import masked_lm_twins
    from taesan.tokenizers import WordTokenizer
    from taesan.tuning.embeddings import token_tables

    words = ["재미있었다", "지루했다", "감동적이었다"]
    tok = WordTokenizer.train(["이 영화 " + " ".join(words)] * 3, vocab_size=50, min_frequency=1)
    bert = taesan.create("bert-mlm", vocab_size=tok.vocab_size, n_layers=1, d_model=16, n_heads=2, d_ff=32, n_positions=16)
    table = token_tables(bert)[0].weight
    with torch.no_grad():
        direction = torch.randn(16)
        fun, dull, moving = (tok.token_to_id(w) for w in words)
        table[fun], table[dull], table[moving] = direction, 2 * direction, -direction  # twins at cosine 1, same-sentiment at -1
    bert.save(tmp_path / "bert", tok)
    line = masked_lm_twins(tmp_path / "bert", seed=0)
    assert line.startswith("Why pretraining lost with few labels here:")
    assert "at cosine 1.00 (random init: " in line and "closer than 재미있었다 and 감동적이었다, which share the sentiment (-1.00)" in line
    pieces = WordTokenizer.train(["이 영화 재미있었다"] * 3, vocab_size=50, min_frequency=1)  # no 지루했다 token
    bert.save(tmp_path / "cut", pieces)
    assert masked_lm_twins(tmp_path / "cut", seed=0) is None


def test_phrase_coverage_counts_the_phrases_labels_show_and_the_held_out_reviews_they_miss():
    """The transfer step says how many sentiment phrases the few labelled reviews show and how many held-out reviews
    hold one they never show: those are what pretraining alone can place."""
    from taesan.data.embedded import BAD, GOOD, review, sentiment_examples
    from taesan.demo.transfer import phrase_coverage
    from taesan.tasks.readers.sentiment import TextExample

    def ex(text):
        return TextExample(text, "x", "test")

    labelled = [ex(f"이 영화 {GOOD[0]} {GOOD[1]}"), ex(f"그 영화 {BAD[0]} 정말로")]
    held = [ex(f"이 드라마 {GOOD[0]}"), ex(f"이번 작품 {GOOD[0]} {GOOD[2]}"), ex(f"그 영화 {BAD[3]}..."), ex("이 영화 ㅋㅋ")]
    assert phrase_coverage(labelled, held) == (3, held[1:3])  # GOOD[0..1], BAD[0] shown; GOOD[2], BAD[3] never
    # every generated review holds one to three phrases of its own sentiment only
    import random
    rng = random.Random(0)
    for text in (review(rng, GOOD, k) for k in (1, 2, 3)):
        assert 1 <= sum(p in text for p in GOOD) <= 3 and not any(p in text for p in BAD)
    for text, label in sentiment_examples(40, seed=3):
        assert any(p in text for p in (GOOD if label else BAD)) and not any(p in text for p in (BAD if label else GOOD))
