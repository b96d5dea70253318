"""`taesan predict --file` on a task's own data files: one input per sentence (NER: KLUE-NER, CoNLL) or per question
(QA: SQuAD / KorQuAD / KLUE-MRC JSON), never one per line of the file; plain text stays one input per line.

The checkpoints are untrained heads saved as finetune saves them: what is checked is which inputs are predicted."""
from __future__ import annotations

import json

import pytest

from taesan.cli import main
from taesan.models import create
from taesan.tasks.ner import NerConfig, TokenClassification
from taesan.tasks.qa import ExtractiveQA, QAConfig
from taesan.tasks.readers.ner import TaggedText
from taesan.tokenizers import CharTokenizer

SENTENCES = ["민수는 어제 강남역 카페에 갔었어", "어제 민수를 만났어"]
KLUE = ("## 토큰, 레이블 구분자 : \\t\n## 컬럼명 : CHAR\tNE_TAG\n"
        + "\n".join(f"## s{i}\t{s}\n" + "".join(f"{c}\tO\n" for c in s) for i, s in enumerate(SENTENCES)))
CONLL = "".join("".join(f"{w}\tO\n" for w in s.split()) + "\n" for s in SENTENCES)
CONTEXT = "세종대왕은 1443년에 훈민정음을 창제하였다. 이순신은 거북선을 만들었다."


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer.train(SENTENCES + [CONTEXT, "누가 무엇을 만들었나? 언제 창제했나"], vocab_size=300)


def save(task, model_dir, tok) -> str:
    task.build_model(create("bert", vocab_size=tok.vocab_size, n_positions=64, d_model=16, n_layers=1, n_heads=2,
                            d_ff=32)).save(model_dir)
    task.save(model_dir)
    tok.save(model_dir / "tokenizer.json")
    return str(model_dir)


def ner_model(tmp_path, tok, unit: str) -> str:
    task = TokenClassification(NerConfig(max_length=64), tok)
    task.fit_labels([TaggedText("민수", ["B-PS", "I-PS"], [(0, 1), (1, 2)], unit)])
    return save(task, tmp_path / f"ner-{unit}", tok)


def predicted(args: list[str], capsys) -> list[dict]:
    assert main(["predict", "--json", "--no-progress", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("unit", ["char", "word"])
def test_ner_predicts_each_sentence_of_a_tagged_file(tmp_path, tok, capsys, unit):
    model = ner_model(tmp_path, tok, unit)
    (tmp_path / "klue.tsv").write_text(KLUE, encoding="utf-8")
    (tmp_path / "conll.txt").write_text(CONLL, encoding="utf-8")
    for data in ("klue.tsv", "conll.txt"):  # either layout's sentences, typed as text, for either model
        rows = predicted(["--model", model, "--file", str(tmp_path / data)], capsys)
        assert [r["input"] for r in rows] == SENTENCES, data


def test_ner_plain_text_stays_one_input_per_line(tmp_path, tok, capsys):
    (tmp_path / "plain.txt").write_text("## 오늘\n" + "\n".join(SENTENCES) + "\n", encoding="utf-8")
    rows = predicted(["--model", ner_model(tmp_path, tok, "char"), "--file", str(tmp_path / "plain.txt")], capsys)
    assert [r["input"] for r in rows] == ["## 오늘", *SENTENCES]


def test_qa_predicts_each_question_of_a_squad_file(tmp_path, tok, capsys):
    model = save(ExtractiveQA(QAConfig(max_length=64), tok), tmp_path / "qa", tok)
    qas = [{"id": "q1", "question": "누가 창제했나?", "answers": [{"text": "세종대왕", "answer_start": 0}]},
           {"guid": "q2", "question": "무엇을 만들었나?", "answers": [], "is_impossible": True}]
    data = tmp_path / "KorQuAD_v1.0_train.json"
    data.write_text(json.dumps({"version": "1", "data": [{"paragraphs": [{"context": CONTEXT, "qas": qas}]}]},
                               ensure_ascii=False), encoding="utf-8")  # one line: the whole file used to be one input
    rows = predicted(["--model", model, "--file", str(data)], capsys)
    assert [r["input"] for r in rows] == [f"{q['question']} ||| {CONTEXT}" for q in qas]
    assert all(CONTEXT[r["start"]:r["end"]] == r["answer"] for r in rows)
    lines = tmp_path / "lines.txt"
    lines.write_text(f"누가 창제했나? ||| {CONTEXT}\n" + "가" * 3000 + "\n", encoding="utf-8")
    assert main(["predict", "--model", model, "--file", str(lines), "--no-progress"]) == 2
    [error] = capsys.readouterr().err.strip().splitlines()
    assert "|||" in error and len(error) < 200  # not the 3,000-character line
