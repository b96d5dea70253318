"""Classification and NLI tasks: metrics by hand and against sklearn, the readers (every error path names
file and line), BERT and GPT heads end to end (loss falls, predictions, save/load), real-file smoke tests."""
from __future__ import annotations

import json
import random
import re

import pytest
import torch

import taesan
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.tasks import load_task
from taesan.tasks.base import replace_config
from taesan.tasks.classification import PairClassification, SequenceClassification, order_labels
from taesan.tasks.metrics.classification import (
    accuracy, class_counts, classification_scores, confusion_matrix, precision_recall_f1, scores_from_counts,
)
from taesan.tasks.readers.nli import PairExample, read_nli
from taesan.tasks.readers.sentiment import TextExample, read_sentiment
from taesan.tokenizers import BPETokenizer, WordPieceTokenizer
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune, load_finetuned

TINY_BERT = dict(d_model=32, n_layers=2, n_heads=2, n_positions=64, dropout=0.0, attn_dropout=0.0)


@pytest.fixture(scope="module")
def wordpiece():
    return WordPieceTokenizer.train(korean_corpus(300), vocab_size=300, min_frequency=1)


def demo(n: int) -> list[TextExample]:
    return [TextExample(t, str(y), f"demo, line {i + 2}") for i, (t, y) in enumerate(sentiment_examples(n))]


# ---- metrics ---------------------------------------------------------------------------------------------


def test_counts_and_scores_by_hand():
    # gold 0 0 1 1 2, predicted 0 1 1 1 0: class 0 tp1 fp1 fn1; class 1 tp2 fp1 fn0; class 2 tp0 fp0 fn1
    c = class_counts([0, 1, 1, 1, 0], [0, 0, 1, 1, 2], 3)
    assert c == {"tp": [1, 2, 0], "fp": [1, 1, 0], "fn": [1, 0, 1]}
    s = scores_from_counts(c["tp"], c["fp"], c["fn"], ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(3 / 5)
    # F1: a = 1/2, b = 2·(2/3)·1/(2/3+1) = 4/5, c = 0 -> macro 13/30
    assert s["f1_a"] == pytest.approx(0.5) and s["f1_b"] == pytest.approx(0.8) and s["f1_c"] == 0.0
    assert s["macro_f1"] == pytest.approx(13 / 30)
    assert s["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)
    assert accuracy([0, 1, 1], [0, 0, 1]) == pytest.approx(2 / 3)


def test_scores_equal_sklearn():
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = random.Random(3)
    for k in (2, 3, 5):
        gold = [rng.randrange(k) for _ in range(60)]
        pred = [g if rng.random() < 0.5 else rng.randrange(k) for g in gold]
        pred[0] = k - 1 if k > 2 else pred[0]
        ours = classification_scores(pred, gold, [str(i) for i in range(k)])
        p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=list(range(k)), average="macro", zero_division=0)
        per_class = precision_recall_fscore_support(gold, pred, labels=list(range(k)), average=None, zero_division=0)[2]
        assert ours["accuracy"] == pytest.approx(accuracy_score(gold, pred))
        assert (ours["macro_precision"], ours["macro_recall"], ours["macro_f1"]) == pytest.approx((p, r, f))
        assert [ours[f"f1_{i}"] for i in range(k)] == pytest.approx(list(per_class))


def test_confusion_matrix_equals_sklearn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    assert confusion_matrix([0, 1, 1], [0, 0, 1], 2) == [[1, 1], [0, 1]]
    rng = random.Random(5)
    gold, pred = [rng.randrange(4) for _ in range(50)], [rng.randrange(4) for _ in range(50)]
    assert confusion_matrix(pred, gold, 4) == sk_confusion(gold, pred, labels=range(4)).tolist()


def test_label_order():
    assert order_labels({"neutral", "entailment"}, ("entailment", "neutral", "contradiction")) == ["entailment", "neutral", "contradiction"]
    assert order_labels({"10", "2", "1"}) == ["1", "2", "10"]
    assert order_labels({"pos", "neg"}) == ["neg", "pos"]
    assert order_labels({"yes", "entailment"}, ("entailment", "neutral", "contradiction")) == ["entailment", "yes"]


# ---- readers ---------------------------------------------------------------------------------------------


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_sentiment_reader(tmp_path):
    f = write(tmp_path / "a.tsv", "id\tdocument\tlabel\n1\t어제 카페 갔었어 좋더라\t1\n2\t\t0\n\n3\t돈이 아깝다\t0\n")
    ex = read_sentiment(f)
    assert [(e.text, e.label) for e in ex] == [("어제 카페 갔었어 좋더라", "1"), ("돈이 아깝다", "0")]  # the empty text skipped
    assert ex[1].source == f"{f}, line 5"
    g = write(tmp_path / "b.tsv", "text\tlabel\n좋다\tpos\n")
    assert read_sentiment(g)[0].label == "pos"


@pytest.mark.parametrize("content, message", [
    ("id\tdocument\n1\t좋다\n", "line 1: missing column(s) label"),
    ("id\treview\tlabel\n1\t좋다\t1\n", "line 1: no text column"),
    ("id\tdocument\tlabel\n1\t좋다\t1\n2\t별로\n", "line 3: expected 3 tab-separated fields, found 2"),
    ("id\tdocument\tlabel\n1\t좋다\t \n", "line 2: empty label"),
    ("", "the file is empty"),
    ("id\tdocument\tlabel\n", "no labelled rows"),
])
def test_sentiment_reader_errors(tmp_path, content, message):
    f = write(tmp_path / "bad.tsv", content)
    with pytest.raises(TaesanError, match=re.escape(message)) as e:
        read_sentiment(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_csv_json_and_jsonl_read_as_the_tsv_does(tmp_path):
    """The same reviews as CSV (a quoted field holding a comma, a quote and a newline), JSON Lines and a JSON list
    (labels as numbers), each row naming its line."""
    import csv

    rows = [("1", '맛있다, 또 "갈게요"\n진짜로', "1"), ("2", "별로였다", "0"), ("3", "", "1")]
    with open(tmp_path / "a.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("id", "document", "label"), *rows])
    ex = read_sentiment(tmp_path / "a.csv")
    assert [(e.text, e.label) for e in ex] == [('맛있다, 또 "갈게요"\n진짜로', "1"), ("별로였다", "0")]
    assert ex[1].source == f"{tmp_path / 'a.csv'}, line 4"  # the first row spans lines 2-3
    objects = [{"text": t, "label": int(y)} for _, t, y in rows]
    write(tmp_path / "a.jsonl", "\n".join(json.dumps(o, ensure_ascii=False) for o in objects) + "\n")
    write(tmp_path / "a.json", json.dumps(objects, ensure_ascii=False, indent=1))
    for name, second_line in (("a.jsonl", 2), ("a.json", 6)):
        ex = read_sentiment(tmp_path / name)
        assert [(e.text, e.label) for e in ex] == [('맛있다, 또 "갈게요"\n진짜로', "1"), ("별로였다", "0")]
        assert ex[1].source == f"{tmp_path / name}, line {second_line}"


def test_other_columns_are_named_with_settings(tmp_path, wordpiece):
    f = write(tmp_path / "hate.tsv", "comments\thate\tbias\n정말 좋은 글이네요\tnone\tnone\n이런 글은 처음 봐\toffensive\tothers\n")
    with pytest.raises(TaesanError, match=re.escape("no text column: the header needs one of document, text, sentence "
                                                    "(found ['comments', 'hate', 'bias']); --set text_column=NAME")):
        read_sentiment(f)
    assert [e.label for e in read_sentiment(f, "comments", "hate")] == ["none", "offensive"]
    with pytest.raises(TaesanError, match="line 1: missing column\\(s\\) rating"):
        read_sentiment(f, "comments", "rating")
    task = SequenceClassification(tokenizer=wordpiece)
    replace_config(task, text_column="comments", label_column="bias")
    assert [e.label for e in task.read(f)] == ["none", "others"]
    pair = PairClassification(tokenizer=wordpiece)
    replace_config(pair, text_column="comments")
    with pytest.raises(TaesanError, match="setting text_column is for classification files"):
        pair.read(f)
    with pytest.raises(TaesanError, match="setting text_column is for classification files"):
        pair.input_texts(f)  # predict --file --set text_column=... on a pair model: refused too, not ignored


@pytest.mark.parametrize("name, content, message", [
    ("a.jsonl", '{"text": "좋다", "label": 1}\n{"text": "별로"}\n', "line 2: missing field label"),
    ("b.jsonl", '{"text": "좋다", "label": 1}\n[1]\n', "line 2: expected an object"),
    ("c.json", '[{"text": ["좋다"], "label": 1}]', "line 1: field text is list, expected text or a number"),
    ("d.json", '{"data": [{"text": "좋다", "label": 1}, 3]}', "item 2: expected an object"),
    ("e.csv", 'text,label\n"좋다,1\n', "not valid CSV"),
    ("f.csv", "text,label\n좋다\n", "line 2: expected 2 comma-separated fields, found 1"),
    ("g.json", "[]", "the file is empty"),
])
def test_csv_and_json_errors_name_the_line(tmp_path, name, content, message):
    f = write(tmp_path / name, content)
    with pytest.raises(TaesanError, match=re.escape(message)) as e:
        read_sentiment(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_reader_file_errors(tmp_path):
    with pytest.raises(TaesanError, match="no such file"):
        read_sentiment(tmp_path / "missing.tsv")
    f = write(tmp_path / "euckr.tsv", "id\tdocument\tlabel\n1\t좋다\t1\n", "euc-kr")
    with pytest.raises(TaesanError, match="line 2: not UTF-8"):
        read_sentiment(f)


def test_nli_tsv_and_json(tmp_path):
    tsv = write(tmp_path / "k.tsv", "sentence1\tsentence2\tgold_label\n그가 말했다\t그는 말하지 않았다\tcontradiction\n")
    assert read_nli(tsv) == [PairExample("그가 말했다", "그는 말하지 않았다", "contradiction", f"{tsv}, line 2")]
    items = [{"guid": "a", "premise": "흡연 가능", "hypothesis": "흡연 금지", "gold_label": "contradiction"},
             {"guid": "b", "premise": "방이 넓다", "hypothesis": "방이 있다", "gold_label": "entailment"}]
    js = write(tmp_path / "k.json", json.dumps(items, ensure_ascii=False, indent=1))
    ex = read_nli(js)
    assert [e.label for e in ex] == ["contradiction", "entailment"]
    assert ex[0].source == f"{js}, line 2" and ex[1].source == f"{js}, line 8"  # each object's opening line
    wrapped = write(tmp_path / "w.data", json.dumps({"data": items}))  # content, not extension, says JSON
    assert len(read_nli(wrapped)) == 2
    # the TSV's names in JSON (sentence1 / sentence2, label) and a number as the label, as classification reads them
    named = [{"sentence1": "흡연 가능", "sentence2": "흡연 금지", "label": 0}, {"sentence1": "a", "sentence2": "b", "gold_label": "1"}]
    assert [(e.premise, e.label) for e in read_nli(write(tmp_path / "n.json", json.dumps(named)))] == [("흡연 가능", "0"), ("a", "1")]


def test_nli_json_with_a_score_says_pair_classification_learns_classes(tmp_path):
    """KLUE-STS's items carry a score object (label 3.7, binary-label 1), not a class: the error says so."""
    sts = [{"guid": "s", "sentence1": "숙소 좋아요", "sentence2": "숙소가 좋다", "labels": {"label": 3.7, "binary-label": 1}}]
    with pytest.raises(TaesanError, match=r"missing or empty field\(s\) gold_label \(or label\).*regression.*binary-label"):
        read_nli(write(tmp_path / "sts.json", json.dumps(sts, ensure_ascii=False)))
    with pytest.raises(TaesanError, match="regression"):
        read_nli(write(tmp_path / "f.json", json.dumps([{"premise": "a", "hypothesis": "b", "gold_label": 3.2}])))
    with pytest.raises(TaesanError, match=r"missing or empty field\(s\) gold_label$"):
        read_nli(write(tmp_path / "t.json", json.dumps([{"premise": "a", "hypothesis": "b", "gold_label": True}])))


@pytest.mark.parametrize("name, content, message", [
    ("a.tsv", "premise\tgold_label\nx\tneutral\n", "line 1: expected the columns sentence1, sentence2, gold_label"),
    ("b.tsv", "sentence1\tsentence2\tgold_label\nx\t\tneutral\n", "line 2: empty sentence2"),
    ("c.json", '[\n {"premise": "x", "hypothesis": "y", "gold_label": "neutral"},\n {"premise": "x", "gold_label": "neutral"}\n]',
     "line 3: missing or empty field"),
    ("d.json", '[\n {"premise": "x",\n  "hypothesis": }\n]', "line 3: not valid JSON"),
    ("e.json", '[\n 1\n]', "line 2: expected an object"),
    ("f.json", '{"version": 1}', "expected a JSON list"),
    ("g.json", "[]", "no labelled pairs"),
])
def test_nli_reader_errors(tmp_path, name, content, message):
    f = write(tmp_path / name, content)
    with pytest.raises(TaesanError, match=re.escape(message)) as e:
        read_nli(f)
    assert str(f) in str(e.value)


def test_unknown_label_names_file_and_line(tmp_path, wordpiece):
    task = SequenceClassification(tokenizer=wordpiece)
    task.fit_labels(demo(8))
    f = write(tmp_path / "t.tsv", "id\tdocument\tlabel\n1\t좋다\t1\n2\t별로\t2\n")
    with pytest.raises(TaesanError, match=r"t\.tsv, line 3: unknown label '2' \(known: 0, 1\)"):
        [task.encode(e) for e in read_sentiment(f)]


# ---- the task --------------------------------------------------------------------------------------------


def test_encode_and_collate_pair(wordpiece):
    task = PairClassification(tokenizer=wordpiece)
    task.fit_labels([PairExample("a", "b", "neutral")])
    assert task.labels == ["entailment", "neutral", "contradiction"]
    feats = task.encode(PairExample("어제 카페", "카페 갔었어", "contradiction")) + task.encode(PairExample("영화", "영화", "entailment"))
    f = feats[0]
    assert f["labels"] == 2 and wordpiece.decode(f["input_ids"]) and f["input_ids"][0] == wordpiece.cls_id
    seps = [i for i, t in enumerate(f["input_ids"]) if t == wordpiece.sep_id]
    assert f["token_type_ids"] == [0] * (seps[0] + 1) + [1] * (len(f["input_ids"]) - seps[0] - 1)  # [CLS] a [SEP] | b [SEP]
    batch = task.collate(feats)
    n0, n1 = len(feats[0]["input_ids"]), len(feats[1]["input_ids"])
    assert batch["input_ids"].shape == (2, max(n0, n1)) and batch["labels"].tolist() == [2, 0]
    assert batch["attention_mask"].sum(1).tolist() == [n0, n1]
    assert batch["input_ids"][1, n1:].eq(wordpiece.pad_id).all()
    assert task.parse_input("어제 카페 갔었어 ||| 카페에 갔다") == ("어제 카페 갔었어", "카페에 갔다")
    with pytest.raises(TaesanError, match="premise \\|\\|\\| hypothesis"):
        task.parse_input("구분자가 없다")


def test_pair_for_a_tokenizer_without_template_is_joined_by_eos():
    tok = BPETokenizer.train(korean_corpus(100), vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    task = PairClassification(tokenizer=tok)
    task.fit_labels([PairExample("a", "b", "neutral")])
    a, b = tok.encode("어제 카페 갔었어").ids, tok.encode("카페에 갔다").ids
    f = task.encode(PairExample("어제 카페 갔었어", "카페에 갔다", "neutral"))[0]
    assert f["input_ids"] == a + [tok.eos_id] + b and f["labels"] == 1
    replace_config(task, max_length=len(a) + 3)  # room for 2 of the pair's tokens: the longer side is cut first
    cut = task.encode(PairExample("어제 카페 갔었어", "카페에 갔다", None))[0]["input_ids"]
    assert len(cut) == len(a) + 3 and cut.count(tok.eos_id) == 1


def test_metrics_summed_over_batches_equal_one_pass(wordpiece):
    task = SequenceClassification(tokenizer=wordpiece)
    task.fit_labels([TextExample("a", "x"), TextExample("b", "y"), TextExample("c", "z")])
    torch.manual_seed(0)
    logits, labels = torch.randn(10, 3), torch.randint(0, 3, (10,))
    totals = {}
    for part in (slice(0, 4), slice(4, 10)):
        for k, (s, c) in task.metrics(logits[part], labels[part]).items():
            totals[k] = (totals.get(k, (0, 0))[0] + s, totals.get(k, (0, 0))[1] + c)
    summary = task.summarize(totals)
    direct = classification_scores(logits.argmax(-1).tolist(), labels.tolist(), task.labels)
    assert summary["macro_f1"] == pytest.approx(direct["macro_f1"]) and summary["accuracy"] == pytest.approx(direct["accuracy"])
    assert summary["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)


def run_finetune(task, model, train, valid, out, steps=40, lr=2e-3):
    config = TrainConfig(max_steps=steps, lr=lr, warmup=4, eval_every=0, save_every=0, log_every=1, progress=False,
                         precision="fp32")  # finetune scores in its run's precision: the reloaded model is scored in fp32
    return finetune(task, model, train, valid, out, config, batch_size=16)


def test_bert_end_to_end_learns_predicts_and_round_trips(tmp_path, wordpiece):
    examples = demo(96)
    task = SequenceClassification(tokenizer=wordpiece)
    model = taesan.create("bert", vocab_size=wordpiece.vocab_size, **TINY_BERT)
    result = run_finetune(task, model, examples[:80], examples[80:], tmp_path / "out")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines() if '"loss"' in line and "eval" not in line]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1  # the loss falls
    assert result.metrics["accuracy"] >= 0.75 and result.metrics["examples"] == 16
    assert type(result.model).__name__ == "BertForSequenceClassification" and result.model.config.labels == ["0", "1"]
    texts = ["이 영화 정말 재미있었다", "그 영화 돈이 아깝다 ㅋㅋ"]
    before = task.predict(result.model, texts)
    for p in before:
        assert set(p) == {"label", "probability", "probabilities"} and p["label"] in ("0", "1")
        assert sum(p["probabilities"].values()) == pytest.approx(1.0) and p["probability"] == max(p["probabilities"].values())
    model2, task2 = load_finetuned(tmp_path / "out")
    assert task2.to_dict() == task.to_dict()
    after = task2.predict(model2, texts)
    assert [p["label"] for p in after] == [p["label"] for p in before]
    assert [p["probability"] for p in after] == pytest.approx([p["probability"] for p in before], abs=1e-6)
    assert task2.evaluate(model2, examples[80:]) == pytest.approx(result.metrics)


def test_gpt_head_end_to_end(tmp_path):
    tok = BPETokenizer.train(korean_corpus(300), vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    assert tok.pad_id is None  # GPT-2 style: no pad token; the attention mask finds the last real token
    examples = demo(96)
    task = SequenceClassification(tokenizer=tok)
    model = taesan.create("gpt", vocab_size=tok.vocab_size, n_positions=64, d_model=32, n_layers=2, n_heads=2, dropout=0.0, attn_dropout=0.0)
    result = run_finetune(task, model, examples[:80], examples[80:], tmp_path / "gpt", steps=50)
    assert type(result.model).__name__ == "GPTForSequenceClassification" and not task.config.type_ids
    assert result.metrics["accuracy"] >= 0.75
    model2, task2 = load_finetuned(tmp_path / "gpt")
    text = ["이 영화 최고의 영화다", "그 드라마 너무 실망했다"]
    before, after = task.predict(result.model, text), task2.predict(model2, text)
    assert [p["label"] for p in after] == [p["label"] for p in before]
    assert [p["probabilities"]["1"] for p in after] == pytest.approx([p["probabilities"]["1"] for p in before], abs=1e-6)


def test_pair_task_on_bert_head_and_wrong_model(tmp_path, wordpiece):
    pairs = [PairExample(f"{w} 카페 갔었어", f"{w} 카페 갔었어" if i % 2 else f"{w} 학교 갔었어", "entailment" if i % 2 else "contradiction")
             for i, w in enumerate(["어제", "오늘", "주말에", "아침에"] * 4)]
    task = PairClassification(tokenizer=wordpiece)
    task.fit_labels(pairs)
    model = task.build_model(taesan.create("bert-mlm", vocab_size=wordpiece.vocab_size, **TINY_BERT))
    assert model.config.num_labels == 3 and model.config.labels == ["entailment", "neutral", "contradiction"]
    assert task.build_model(model) is model  # the same head and labels: kept
    out = task.predict(model, ["어제 카페 ||| 오늘 카페"])
    assert set(out[0]["probabilities"]) == {"entailment", "neutral", "contradiction"}
    with pytest.raises(TaesanError, match="needs a text model"):
        task.build_model(taesan.create("vit-tiny"))
    too_small = taesan.create("bert", vocab_size=100, **TINY_BERT)
    with pytest.raises(TaesanError, match="the tokenizer.s ids reach 299 .* but the model.s vocab_size is 100"):
        task.build_model(too_small)


def test_load_task_from_json(tmp_path, wordpiece):
    task = PairClassification(tokenizer=wordpiece)
    task.fit_labels([PairExample("a", "b", "neutral")])
    task.save(tmp_path)
    again = load_task(tmp_path, wordpiece)
    assert isinstance(again, PairClassification) and again.labels == task.labels


# ---- real files --------------------------------------------------------------------------------------------


def test_real_nsmc(shared_data):
    ex = read_sentiment(shared_data / "sentiment" / "nsmc_raw_test.tsv")
    assert len(ex) == 5000 and {e.label for e in ex} == {"0", "1"}
    assert sum(e.label == "1" for e in ex) == 2500


def test_real_sst2(shared_data):
    ex = read_sentiment(shared_data / "english" / "sst2_dev.tsv")
    assert len(ex) == 872 and sum(e.label == "1" for e in ex) == 444


def test_real_kornli_and_klue(shared_data):
    kor = read_nli(shared_data / "nli" / "kornli_xnli.dev.ko.tsv")
    assert len(kor) == 2490 and sum(e.label == "neutral" for e in kor) == 830
    klue = read_nli(shared_data / "nli" / "klue-nli-v1.1_dev.shared.json")
    assert len(klue) == 2100 and {e.label for e in klue} == {"entailment", "neutral", "contradiction"}
    assert klue[0].source.endswith("line 2") and klue[0].premise.startswith("흡연자분들은")


def test_rdrop_runs_twice_and_adds_the_symmetric_kl(wordpiece):
    """R-Drop: in training two passes (different dropout), loss = their mean cross-entropy + rdrop x symmetric KL;
    in evaluation one pass; rdrop 0 is the plain loss."""
    import torch.nn.functional as F

    examples = demo(8)
    task = SequenceClassification(tokenizer=wordpiece)
    task.fit_labels(examples)
    replace_config(task, rdrop=2.0)
    model = task.build_model(taesan.create("bert", vocab_size=wordpiece.vocab_size, **{**TINY_BERT, "dropout": 0.3}))
    inputs, labels = task.prepare(task.collate([f for ex in examples for f in task.encode(ex)]))
    torch.manual_seed(0)
    pair = task.run_model(model.train(), inputs, labels)
    assert pair.shape == (2, 8, 2) and not torch.equal(pair[0], pair[1])  # two dropout masks
    a, b = pair.unbind(0)
    kl = (F.kl_div(a.log_softmax(-1), b.log_softmax(-1), log_target=True, reduction="batchmean")
          + F.kl_div(b.log_softmax(-1), a.log_softmax(-1), log_target=True, reduction="batchmean")) / 2
    expected = (F.cross_entropy(a, labels) + F.cross_entropy(b, labels)) / 2 + 2.0 * kl
    assert kl.item() > 0 and task.loss(pair, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert task.run_model(model.eval(), inputs, labels).shape == (8, 2)  # evaluation: one pass
    replace_config(task, rdrop=0.0)
    assert task.run_model(model.train(), inputs, labels).shape == (8, 2)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(TaesanError, match="^classification setting rdrop must be a number >= 0, got"):
            replace_config(task, rdrop=bad)


def test_confusion_plot_draws_korean_labels_where_a_korean_font_is_installed(tmp_path):
    """YNAT's labels (IT과학, 경제) were empty boxes and 17 "Glyph missing" warnings: the plot now takes the font
    the attention plots use."""
    import warnings

    from matplotlib import font_manager

    from taesan.tasks.classification import plot_confusion

    if not any("nanum" in p.lower() for p in font_manager.findSystemFonts()):
        pytest.skip("no Nanum font installed (Debian: fonts-nanum), so Hangul cannot be drawn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s) DejaVu Sans" is a UserWarning
        path = plot_confusion([[3, 1], [0, 4]], ["IT과학", "경제"], tmp_path / "confusion.png", title="검증")
    assert path.stat().st_size > 0
