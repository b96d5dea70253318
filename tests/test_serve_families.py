"""The playground serves RoBERTa, ELECTRA and T5 checkpoints: fill-mask and scores on their masked LMs (RoBERTa's,
ELECTRA's generator; not the discriminator), classify / ner / qa on fine-tuned heads, generate on a T5 and on a T5
fine-tuned to translate; each answer is what the library gives for the same input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")

from fastapi.testclient import TestClient  # noqa: E402
from task_files import corpus_lines, write_task_files  # noqa: E402

import taesan  # noqa: E402
from taesan.cli import main  # noqa: E402
from taesan.scoring import score_texts  # noqa: E402
from taesan.serve import ServeConfig, create_app  # noqa: E402
from taesan.tokenizers import WordPieceTokenizer  # noqa: E402

SIZES = dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, n_positions=64)
FAST = ["--threads", "1", "--no-progress", "--max-steps", "2", "--batch-size", "8"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    files = write_task_files(root)
    tok = WordPieceTokenizer.train(corpus_lines(), vocab_size=400, min_frequency=1)
    tok.save(root / "tok.json")
    torch.manual_seed(0)
    dirs = {}
    for name, model_type, extra in (("roberta", "roberta-mlm", {}), ("electra-gen", "electra-generator", {"embedding_size": 16}),
                                    ("electra-disc", "electra-discriminator", {"embedding_size": 16})):
        dirs[name] = str(taesan.create(model_type, vocab_size=tok.vocab_size, pad_token_id=tok.pad_id, **SIZES, **extra)
                         .eval().save(root / name, tok))
    dirs["t5"] = str(taesan.create("t5-tiny", vocab_size=tok.vocab_size, eos_token_id=tok.eos_id).eval().save(root / "t5", tok))
    for name, task, model in (("roberta-nli", "pair-classification", "roberta-tiny"), ("electra-ner", "ner", "electra-tiny"),
                              ("roberta-qa", "qa", "roberta-tiny"), ("t5-translate", "translation", "t5-tiny")):
        assert main(["finetune", "--task", task, "--model", model, "--tokenizer", str(root / "tok.json"),
                     "--train", str(files[task]), "--out", str(root / name), *FAST]) == 0
        dirs[name] = str(root / name)
    return dirs


@pytest.fixture(scope="module")
def client(models):
    return TestClient(create_app(models, ServeConfig(precision="fp32")))  # against direct fp32 calls, on any CPU


def ok(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_family_lists_what_it_can_do(client):
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    for name in ("roberta", "electra-gen"):
        assert {"tokenize", "fill-mask", "score", "attention"} <= set(listed[name]["actions"]), name
        assert "generate" not in listed[name]["actions"]
    assert "fill-mask" not in listed["electra-disc"]["actions"] and "score" not in listed["electra-disc"]["actions"]
    assert "generate" in listed["t5"]["actions"] and "fill-mask" not in listed["t5"]["actions"]
    nli = listed["roberta-nli"]
    assert nli["actions"][0] == "classify" and nli["model_type"] == "roberta-sequence-classification"
    assert listed["electra-ner"]["actions"][0] == "ner" and listed["roberta-qa"]["actions"][0] == "qa"
    assert listed["t5-translate"]["task"] == "translation" and "generate" in listed["t5-translate"]["actions"]
    r = client.post("/api/fill-mask", json={"model": "electra-disc", "text": "티끌 [MASK] 태산"})
    assert r.status_code == 400 and "cannot fill-mask" in r.json()["error"]


@pytest.mark.parametrize("name", ["roberta", "electra-gen"])
def test_fill_mask_and_score_on_roberta_and_electras_generator(name, client, models):
    tok, model = taesan.tokenizers.load(models[name]), taesan.load(models[name])
    r = ok(client, "/api/fill-mask", {"model": name, "text": "티끌 [MASK] 태산", "top_k": 3})
    ids = tok.encode("티끌 [MASK] 태산").ids
    where = ids.index(tok.mask_id)
    with torch.no_grad():
        top = model(torch.tensor([ids]))[0, where].softmax(-1).topk(3)
    cands = r["masks"][0]["candidates"]
    assert r["masks"][0]["position"] == where and [c["token"] for c in cands] == [tok.id_to_token(i) for i in top.indices.tolist()]
    assert [c["score"] for c in cands] == pytest.approx(top.values.tolist(), abs=1e-4)
    texts = ["티끌 모아 태산", "어제 카페 갔었어"]
    scored = ok(client, "/api/score", {"model": name, "texts": texts})
    assert scored["objective"] == "masked"
    direct = dict(zip(texts, score_texts(model, tok, texts, "masked")))
    assert {s["text"]: s["log_prob"] for s in scored["scores"]} == pytest.approx(direct, abs=1e-3)


def test_fine_tuned_heads_answer_as_their_task_predicts(client, models):
    pipe = taesan.pipeline(models["roberta-nli"], precision="fp32")  # as the fixture serves
    pair = "어제 카페 갔었어 ||| 카페에 갔다"
    classified = ok(client, "/api/classify", {"model": "roberta-nli", "text": pair})
    assert classified["probabilities"] == pytest.approx(pipe(pair)["probabilities"])
    text = "민수는 어제 서울에 갔다"
    tagged = ok(client, "/api/ner", {"model": "electra-ner", "text": text})
    assert tagged["entities"] == taesan.pipeline(models["electra-ner"], precision="fp32")(text)["entities"]
    question, context = "누가 훈민정음을 만들었나?", "세종대왕은 1443년에 훈민정음을 만들었다."
    r = ok(client, "/api/qa", {"model": "roberta-qa", "question": question, "context": context})
    answer = taesan.pipeline(models["roberta-qa"], precision="fp32")(question=question, context=context)["answer"]
    assert context[r["start"]:r["end"]] == r["answer"] == answer
    for name in ("roberta", "electra-ner"):
        blocks = ok(client, "/api/attention", {"model": name, "text": "티끌 모아 태산"})["blocks"]
        assert blocks[0]["queries"][0] == "[CLS]" and len(blocks) == taesan.load(models[name]).config.n_layers


@pytest.mark.parametrize("name", ["t5", "t5-translate"])
def test_t5_streams_what_the_pipeline_writes(name, client, models):
    r = client.post("/api/generate", json={"model": name, "prompt": "고마워", "max_new_tokens": 4})
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert lines[-1]["done"] is True
    streamed = "".join(line["text"] for line in lines[:-1])
    expected = taesan.pipeline(models[name], task="generate", precision="fp32")("고마워", max_new_tokens=4)
    assert streamed == expected["completion"] and lines[-1]["finish_reason"] == expected["finish_reason"]
    if name == "t5-translate":  # the task's own decoding (greedy, max_target_length) is what generate gives
        limit = json.loads((Path(models[name]) / "task.json").read_text())["max_target_length"]
        translated = taesan.pipeline(models[name])("고마워")["translation"]
        assert translated == taesan.pipeline(models[name], task="generate")("고마워", max_new_tokens=limit)["completion"]
