"""Cloze questions from raw Korean text (taesan.tasks.cloze_qa) and `taesan cloze-qa`."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("kiwipiepy")

from taesan.cli import main
from taesan.errors import TaesanError
from taesan.tasks.cloze_qa import ClozeConfig, agree, answer_spans, cloze_examples, cloze_question, trim_answer, write_cloze
from taesan.tasks.readers.qa import read_squad
from taesan.tokenizers import WordPieceTokenizer
from taesan.tokenizers.word import kiwi

# hand-written paragraphs (facts made up for the test), each over 100 characters, naming people, places and numbers
PARAGRAPHS = [
    "김민준은 1988년 3월 부산에서 태어났다. 그는 서울대학교에서 물리학을 공부하였고 2015년 한빛전자에 입사하였다. "
    "한빛전자에서 그는 30개 이상의 특허를 출원하였으며, 2020년에는 대전 연구소의 소장이 되었다.",
    "제주도는 대한민국에서 가장 큰 섬이다. 한라산은 제주도 한가운데에 있으며 높이는 1,947미터이다. "
    "해마다 1,000만 명이 넘는 관광객이 제주도를 찾고, 감귤과 흑돼지가 유명하다. 박지은 작가는 제주도를 배경으로 소설을 썼다.",
    "세종대왕은 1443년 훈민정음을 만들었다. 집현전의 학자들이 이 일을 도왔고, 훈민정음은 1446년 반포되었다. "
    "오늘날 한글날은 10월 9일이며, 서울 광화문 광장에는 세종대왕의 동상이 서 있다. 이 동상은 2009년에 세워졌다.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("cloze") / "wiki.txt"
    path.write_text("\n".join(PARAGRAPHS + ["짧은 줄"]) + "\n", encoding="utf-8")
    return path


def spans_of(text):
    sentence = kiwi().split_into_sents(text, return_tokens=True)[0]
    return [(text[s:e], word) for s, e, word in answer_spans(sentence.tokens, ClozeConfig())]


def test_answer_spans_cut_numbers_from_names_and_ask_the_right_word():
    assert spans_of("지미 카터는 1953년 미국 해군에 입대했다.") == [("지미 카터", "무엇"), ("1953년", "언제"), ("미국 해군", "무엇")]
    spans = dict(spans_of("그는 1997년 2월 도미타 미치오와 30개 이상의 회사를 세웠다."))
    assert spans["1997년 2월"] == "언제" and spans["30개"] == "몇" and spans["도미타 미치오"] == "무엇"
    assert spans_of("오늘은 날씨가 좋다.") == []  # no proper noun, no number: nothing to ask


def test_particles_agree_with_the_question_word():
    assert agree("무엇", "를") == "무엇을" and agree("무엇", "는") == "무엇은" and agree("무엇", "로") == "무엇으로"
    assert agree("언제", "은") == "언제는" and agree("언제", "이") == "언제가" and agree("몇", None) == "몇"
    quiet = ClozeConfig(drop=0.0, shuffle=1e-9)  # no noise: the question reads as the sentence
    text = "지미 카터는 1953년 미국 해군에 입대했다."
    assert cloze_question(text, 0, 5, "무엇", random.Random(0), quiet) == "무엇은 1953년 미국 해군에 입대했다?"
    assert cloze_question(text, 13, 18, "무엇", random.Random(0), quiet) == "지미 카터는 1953년 무엇에 입대했다?"


def test_question_keeps_a_window_of_words_around_the_question_word():
    text = "하나 둘 셋 넷 다섯 여섯 지미 카터 일곱 여덟 아홉 열 열하나."
    quiet = ClozeConfig(drop=0.0, shuffle=1e-9, window=2)
    start = text.index("지미")
    assert cloze_question(text, start, start + 5, "무엇", random.Random(0), quiet) == "다섯 여섯 무엇 일곱 여덟?"


def test_trim_answer_drops_brackets_and_punctuation_at_the_edges():
    text = "「훈민정음」, "
    assert text[slice(*trim_answer(text, 0, len(text)))] == "훈민정음"


def test_examples_point_at_their_answers_and_are_seeded(corpus):
    texts = corpus.read_text(encoding="utf-8").splitlines()
    examples = cloze_examples(texts, 100, seed=0, config=ClozeConfig(per_sentence=1.0))
    assert len(examples) >= 8
    contexts = set()
    for ex in examples:
        answer = ex.answers[0]
        assert ex.context[answer.start:answer.end] == answer.text and answer.text == answer.text.strip()
        assert ex.question.endswith("?") and any(w in ex.question for w in ("무엇", "언제", "몇"))
        contexts.add(ex.context)
    assert contexts <= set(PARAGRAPHS)  # the 4-character line is too short to be a paragraph
    again = cloze_examples(texts, 100, seed=0, config=ClozeConfig(per_sentence=1.0))
    other = cloze_examples(texts, 100, seed=1, config=ClozeConfig(per_sentence=1.0))
    assert [(e.question, e.answers[0].start) for e in again] == [(e.question, e.answers[0].start) for e in examples]
    assert [e.question for e in other] != [e.question for e in examples]
    assert len(cloze_examples(texts, 3, seed=0)) == 3
    nul = cloze_examples([PARAGRAPHS[0].replace(" ", "\0", 1)], 100, seed=0, config=ClozeConfig(per_sentence=1.0))
    assert nul and all("\0" not in ex.question + ex.context for ex in nul)  # a NUL in the text is not the answer's mark


def test_written_file_reads_back_as_squad(corpus, tmp_path):
    out = tmp_path / "cloze.json"
    examples = write_cloze([corpus], out, 50, seed=0)
    back = read_squad(out)
    assert [(e.question, e.context, e.answers[0].text, e.answers[0].start) for e in back] == \
        [(e.question, e.context, e.answers[0].text, e.answers[0].start) for e in examples]
    assert len(json.loads(out.read_text(encoding="utf-8"))["data"]) == len({e.context for e in examples})


def test_bad_input_is_one_clear_error_and_writes_nothing(corpus, tmp_path):
    out = tmp_path / "cloze.json"
    with pytest.raises(TaesanError, match="file not found"):
        write_cloze([tmp_path / "missing.txt"], out, 10)
    short = tmp_path / "short.txt"
    short.write_text("티끌 모아 태산\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="no cloze question"):
        write_cloze([short], out, 10)
    with pytest.raises(TaesanError, match="max_questions"):
        write_cloze([corpus], out, 0)
    with pytest.raises(TaesanError, match="min_chars"):
        ClozeConfig(min_chars=500, max_chars=100)
    assert list(tmp_path.iterdir()) == [short]


def test_cli_questions_pretrain_a_qa_model(corpus, tmp_path, capsys):
    """The recipe the README gives: cloze-qa, then finetune --task qa on its file (here a few steps)."""
    out = tmp_path / "cloze.json"
    assert main(["cloze-qa", "--corpus", str(corpus), "--out", str(out), "--max-questions", "20", "--no-progress"]) == 0
    assert "questions on" in capsys.readouterr().out
    tok = tmp_path / "tok.json"
    WordPieceTokenizer.train(PARAGRAPHS * 3, vocab_size=400, min_frequency=1).save(tok)
    run = tmp_path / "qa"
    assert main(["finetune", "--task", "qa", "--model", "bert-tiny", "--tokenizer", str(tok), "--train", str(out),
                 "--valid", str(out), "--out", str(run), "--max-steps", "3", "--threads", "1", "--no-progress"]) == 0
    assert (run / "model.safetensors").is_file() and "korquad_f1" in json.loads((run / "eval_results.json").read_text())
    assert main(["cloze-qa", "--corpus", str(tmp_path / "nope.txt"), "--out", str(out)]) == 2
    assert "file not found" in capsys.readouterr().err


WORDS = ["서울", "부산", "1988년", "3월", "김민준은", "학교에", "갔다", "세종대왕", "(훈민정음)", "「책」", "30개",
         "이순신이", "거북선을", "만들었다.", "그리고", "KTX로", "2시간", "연구소의", "소장이", "되었다.", "·", ","]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=3, max_size=40), min_size=1, max_size=4), st.integers(0, 3))
def test_every_answer_sits_at_its_offset_whatever_the_text(paragraph_words, seed):
    """Property: on any paragraph of these pieces, each answer is the context's text at answer_start, non-empty,
    without brackets or spaces at its edges, and its question asks with one of the three words."""
    texts = [" ".join(words) for words in paragraph_words]
    for ex in cloze_examples(texts, 50, seed, ClozeConfig(min_chars=1, per_sentence=1.0)):
        answer = ex.answers[0]
        assert ex.context[answer.start:answer.end] == answer.text and answer.text.strip() == answer.text != ""
        assert answer.text[0] not in "()「」,·" and answer.text[-1] not in "()「」,·"
        assert any(word in ex.question for word in ("무엇", "언제", "몇")) and ex.question.endswith("?")
