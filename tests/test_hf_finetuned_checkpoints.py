"""A downloaded fine-tuned HF head model (no task.json) predicts, evaluates and is served as HF's pipeline does: its
task comes from config.json's architectures (a KcBERT NSMC classifier, a KoELECTRA NER tagger, a KorQuAD reader),
its labels from id2label. Tiny random models built with transformers; the answers are compared with HF's
text-classification and token-classification pipelines, and with the question-answering pipeline's rule (the best
p(start) * p(end) over [CLS] and the context, at most 15 tokens) on HF's own logits.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_files import NER, QA, corpus_lines, ner_tsv, squad_json

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
             initializer_range=0.3)  # wide weights: decisive answers, so a float's last digit flips no label
TEXTS = ["배우들 연기가 훌륭하다", "어제 카페 갔었어 거기 사람 많더라", "티끌 모아 태산 ㅋㅋ", "민수는 어제 서울에 갔다"]
SENTIMENT = ["부정", "긍정"]
KLUE_TAGS = ["O"] + [f"{p}-{t}" for t in ("PS", "LC", "DT") for p in "BI"]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Path:
    """A WordPiece vocab.txt and the tokenizer_config.json KcBERT ships (cased, so 한글 keeps its syllables)."""
    d = tmp_path_factory.mktemp("vocab")
    tok = tokenizers.BertWordPieceTokenizer(strip_accents=False, lowercase=False)
    tok.train_from_iterator(corpus_lines(), vocab_size=500, min_frequency=1,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.save_model(str(d))
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))
    return d


def hub_model(root: Path, vocab: Path, cls, labels: list[str] | None = None, electra: bool = False) -> Path:
    """A hub-style directory: the HF head model (config.json with architectures and id2label), vocab.txt, no task.json."""
    torch.manual_seed(0)
    size = len((vocab / "vocab.txt").read_text(encoding="utf-8").splitlines())
    named = dict(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}) if labels else {}
    config = (transformers.ElectraConfig(embedding_size=16, vocab_size=size, **SMALL, **named) if electra
              else transformers.BertConfig(vocab_size=size, **SMALL, **named))
    if labels is None and cls.__name__.endswith("SequenceClassification"):
        config.num_labels = 3  # HF's LABEL_0, LABEL_1, LABEL_2
    cls(config).eval().save_pretrained(root)
    for name in ("vocab.txt", "tokenizer_config.json"):
        (root / name).write_bytes((vocab / name).read_bytes())
    return root


def run(argv: list[str], capsys) -> tuple[str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, (argv, err)
    return out, err


def predicted(argv: list[str], capsys) -> tuple[list[dict], str]:
    out, err = run(["predict", *argv, "--json", "--precision", "fp32", "--no-progress", "--threads", "1"], capsys)
    return [json.loads(line) for line in out.splitlines()], err


# ---- classification ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsmc(tmp_path_factory, vocab) -> Path:
    return hub_model(tmp_path_factory.mktemp("kcbert-nsmc"), vocab, transformers.BertForSequenceClassification, SENTIMENT)


def test_a_hub_classifier_loads_as_its_head_with_hf_logits(nsmc):
    ours = taesan.load(nsmc)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(nsmc).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(nsmc)
    batch = hf_tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = theirs(**batch).logits
    got = ours(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    assert type(ours).__name__ == "BertForSequenceClassification" and ours.config.labels == SENTIMENT
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_hub_classifier_predicts_as_hf_text_classification(nsmc, tmp_path, capsys):
    hf = transformers.pipeline("text-classification", model=str(nsmc), device="cpu")
    expected = hf(TEXTS)
    p = taesan.pipeline(nsmc, precision="fp32")
    assert p.task == "classify" and "architectures (BertForSequenceClassification)" in p.notes[0]
    for ours, theirs in zip(p(TEXTS), expected):
        assert ours["label"] == theirs["label"] and ours["probability"] == pytest.approx(theirs["score"], abs=1e-5)
    # a pair, typed "a ||| b" or given as HF's {"text", "text_pair"}: [CLS] a [SEP] b [SEP] with segment ids
    [pair] = hf([{"text": "어제 카페 갔었어", "text_pair": "카페에 갔다"}])
    for item in ("어제 카페 갔었어 ||| 카페에 갔다", {"text": "어제 카페 갔었어", "text_pair": "카페에 갔다"}):
        assert p(item)["label"] == pair["label"] and p(item)["probability"] == pytest.approx(pair["score"], abs=1e-5)
    rows, err = predicted(["--model", str(nsmc), *TEXTS], capsys)
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert "the classification task comes from config.json's architectures" in err
    data = tmp_path / "nsmc_test.txt"  # NSMC's layout and ids (0 부정, 1 긍정): HF's answers to the first two, flipped after
    gold = [SENTIMENT.index(e["label"]) for e in expected[:2]] + [1 - SENTIMENT.index(e["label"]) for e in expected[2:]]
    data.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t{t}\t{g}\n" for i, (t, g) in enumerate(zip(TEXTS, gold))),
                    encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(nsmc), "--data", str(data), "--precision", "fp32", "--no-progress"], capsys)
    assert json.loads(out)["accuracy"] == pytest.approx(0.5)


def test_a_classifier_without_label_names_keeps_hf_s_and_pairs_from_a_file(tmp_path, vocab, capsys):
    """ELECTRA, id2label LABEL_0..2 (no names): the labels are HF's; a KorNLI-style file is read as pairs."""
    d = hub_model(tmp_path / "electra", vocab, transformers.ElectraForSequenceClassification, electra=True)
    expected = transformers.pipeline("text-classification", model=str(d), device="cpu")(TEXTS)
    p = taesan.pipeline(d, precision="fp32")
    assert p.bundle.task.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert [r["label"] for r in p(TEXTS)] == [e["label"] for e in expected]
    nli = tmp_path / "nli.tsv"
    nli.write_text("sentence1\tsentence2\tgold_label\n어제 카페 갔었어\t카페에 갔다\tLABEL_0\n", encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(d), "--data", str(nli), "--precision", "fp32", "--no-progress"], capsys)
    assert json.loads(out)["examples"] == 1
    rows, _ = predicted(["--model", str(d), "--file", str(nli)], capsys)
    assert rows[0]["input"] == "어제 카페 갔었어 ||| 카페에 갔다"
    assert rows[0]["label"] == p("어제 카페 갔었어 ||| 카페에 갔다")["label"]
    klue = tmp_path / "klue-nli.json"  # KLUE-NLI's JSON layout is a pair file too (it was read as single texts)
    klue.write_text(json.dumps([{"guid": "g0", "premise": "어제 카페 갔었어", "hypothesis": "카페에 갔다",
                                 "gold_label": "LABEL_0"}], ensure_ascii=False), encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(d), "--data", str(klue), "--precision", "fp32", "--no-progress"], capsys)
    assert json.loads(out)["examples"] == 1
    rows, _ = predicted(["--model", str(d), "--file", str(klue)], capsys)
    assert rows[0]["input"] == "어제 카페 갔었어 ||| 카페에 갔다"


def test_a_hub_classifier_is_served(nsmc):
    pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
    from fastapi.testclient import TestClient

    from taesan.serve import ServeConfig, create_app

    app = create_app({"nsmc": str(nsmc)}, ServeConfig(precision="fp32", demo_tokenizers=False))
    expected = transformers.pipeline("text-classification", model=str(nsmc), device="cpu")(TEXTS[0])[0]
    reply = TestClient(app).post("/api/classify", json={"model": "nsmc", "text": TEXTS[0]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["label"] == expected["label"]
    assert reply.json()["probability"] == pytest.approx(expected["score"], abs=1e-5)


# ---- ner ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def koelectra_ner(tmp_path_factory, vocab) -> Path:
    return hub_model(tmp_path_factory.mktemp("koelectra-ner"), vocab, transformers.ElectraForTokenClassification,
                     KLUE_TAGS, electra=True)


def test_a_hub_ner_model_tags_as_hf_token_classification(koelectra_ner, tmp_path, capsys):
    """Each token's own most probable tag, grouped as aggregation_strategy="simple" groups them."""
    hf = transformers.pipeline("token-classification", model=str(koelectra_ner), aggregation_strategy="simple", device="cpu")
    p = taesan.pipeline(koelectra_ner, precision="fp32")
    assert p.task == "ner" and "the ner task comes from config.json's architectures" in p.notes[0]
    found = 0
    for text, ours in zip(TEXTS, p(TEXTS)):
        theirs = [(e["entity_group"], e["start"], e["end"]) for e in hf(text)]
        assert [(e["label"], e["start"], e["end"]) for e in ours["entities"]] == theirs, text
        assert [e["score"] for e in ours["entities"]] == pytest.approx([e["score"] for e in hf(text)], abs=1e-4)
        found += len(theirs)
    assert found > 3  # a random tagger finds entities: the grouping was compared, not two empty lists
    rows, err = predicted(["--model", str(koelectra_ner), TEXTS[3]], capsys)
    assert rows[0]["entities"] == p(TEXTS[3])["entities"] and "the ner task comes from" in err
    klue = tmp_path / "klue-ner.tsv"
    klue.write_text(ner_tsv(NER), encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(koelectra_ner), "--data", str(klue), "--no-progress"], capsys)
    assert json.loads(out)["units"] == sum(len(t) for t, _ in NER)  # characters, KLUE's unit
    conll = tmp_path / "conll.txt"  # words tagged: the file's own unit is scored
    conll.write_text("민수는 B-PS\n어제 B-DT\n서울에 B-LC\n갔다 O\n", encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(koelectra_ner), "--data", str(conll), "--no-progress"], capsys)
    assert json.loads(out)["units"] == 4


def test_a_ner_model_whose_tags_are_not_bio_says_so(tmp_path, vocab, capsys):
    d = hub_model(tmp_path / "io", vocab, transformers.BertForTokenClassification, ["O", "PER-B", "PER-I"])
    with pytest.raises(TaesanError, match=r"reads BIO tags .*'PER-B' is not a BIO tag"):
        Bundle.load(d).need_task()
    assert "tokenize" in Bundle.load(d).actions  # the model still loads for everything else


# ---- qa ----------------------------------------------------------------------------------------------------------


def hf_reader_answer(model, tok, question: str, context: str) -> dict:
    """HF's question-answering pipeline's rule on HF's logits: softmax over [CLS] and the context, [CLS] itself never
    the answer, the best p(start) * p(end) with start <= end < start + 15."""
    enc = tok(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    allowed = torch.tensor([i == 0 or s == 1 for i, s in enumerate(enc.sequence_ids(0))])
    with torch.no_grad():
        out = model(**enc)
    start = out.start_logits[0].masked_fill(~allowed, -10000.0).softmax(-1)
    end = out.end_logits[0].masked_fill(~allowed, -10000.0).softmax(-1)
    start[0] = end[0] = 0.0
    scores = torch.triu(start[:, None] * end[None, :]) - torch.triu(torch.ones(len(start), len(start)), diagonal=15)
    s, e = divmod(int(scores.argmax()), len(start))
    lo, hi = offsets[s][0], offsets[e][1]
    return {"answer": context[lo:hi], "start": lo, "end": hi, "score": float(scores[s, e])}


def test_a_hub_reader_answers_as_hf_question_answering(tmp_path, vocab, capsys):
    d = hub_model(tmp_path / "korquad", vocab, transformers.BertForQuestionAnswering)
    theirs = transformers.AutoModelForQuestionAnswering.from_pretrained(d).eval()
    tok = transformers.AutoTokenizer.from_pretrained(d)
    p = taesan.pipeline(d, precision="fp32")
    assert p.task == "qa" and "the qa task comes from config.json's architectures" in p.notes[0]
    for context, question, _ in QA:
        expected = hf_reader_answer(theirs, tok, question, context)
        ours = p(question=question, context=context)
        assert (ours["answer"], ours["start"], ours["end"]) == (expected["answer"], expected["start"], expected["end"])
        assert ours["score"] == pytest.approx(expected["score"], abs=1e-5)
    context, question, _ = QA[0]
    rows, err = predicted(["--model", str(d), f"{question} ||| {context}"], capsys)
    assert rows[0]["answer"] == hf_reader_answer(theirs, tok, question, context)["answer"] and "qa task" in err
    data = tmp_path / "korquad.json"
    data.write_text(squad_json(QA), encoding="utf-8")
    out, _ = run(["evaluate", "--model", str(d), "--data", str(data), "--precision", "fp32", "--no-progress"], capsys)
    hits = [hf_reader_answer(theirs, tok, q, c)["answer"] == a for c, q, a in QA]
    assert json.loads(out)["exact_match"] == pytest.approx(100 * sum(hits) / len(hits))


def test_a_backbone_without_a_head_still_has_no_task(tmp_path, vocab):
    d = tmp_path / "mlm"
    hub_model(d, vocab, transformers.BertForMaskedLM)
    with pytest.raises(TaesanError, match="not fine-tuned for a task"):
        Bundle.load(d).need_task()
    assert taesan.pipeline(d).task == "fill-mask"
