"""The QA lexical priors' pieces: sentence spans, IDF-weighted bigram overlap with the question, per-token weights,
the share of an answer the question already says."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taesan.tasks.question_overlap import bigrams, echo_share, sentence_weights, sentences, token_prior

CONTEXT = "카터는 1953년에 입대했다. 그는 3.5년 복무했다.\n땅콩 농장을 물려받았다."


def test_docstring_cases():
    assert sentences("카터는 1953년에 입대했다. 그는 3.5년 복무했다.") == [(0, 17), (17, 30)]
    assert bigrams("미국 해군") == {"미국", "국해", "해군"}
    assert sentence_weights("카터는 언제 입대했나?", "카터는 1953년에 입대했다. 그는 해군이었다.") == [(0, 17, 1.0), (17, 26, 0.0)]
    assert token_prior([(0, 0), (0, 3), (0, 3), (5, 7)], [False, False, True, True], [(0, 4, 1.0), (4, 9, 0.5)]) == [0, 0, 1.0, 0.5]
    asked = bigrams("뉘르부르크링은 어느 나라에 있나?")
    assert (echo_share("뉘르부르크링", asked), echo_share("독일", asked)) == (1.0, 0.0)


def test_echo_share_is_the_share_of_the_answer_the_question_holds():
    asked = bigrams("지미 카터는 언제 해군에 입대했나?")
    assert echo_share("해군 1953년", asked) == pytest.approx(1 / 6)  # 해군 of 해군 군1 19 95 53 3년
    assert echo_share("독", asked) == 0.0 and echo_share("", asked) == 0.0  # no bigram: nothing echoed
    assert echo_share("카터", set()) == 0.0


def test_sentences_break_after_end_marks_and_lines_not_inside_numbers():
    parts = [CONTEXT[a:b] for a, b in sentences(CONTEXT)]
    assert parts == ["카터는 1953년에 입대했다. ", "그는 3.5년 복무했다.\n", "땅콩 농장을 물려받았다."]
    assert sentences("") == [(0, 0)] and sentences("끝.") == [(0, 2)]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="가나다 .!?\n3a", max_size=40))
def test_sentences_cover_the_text_end_to_end(text):
    spans = sentences(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a < b or len(text) == 0 for a, b in spans)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:]))


def test_the_sentence_with_the_question_words_weighs_most():
    weights = sentence_weights("땅콩 농장은 누가 물려받았나?", CONTEXT)
    assert [w for _, _, w in weights][2] == 1.0 and max(w for _, _, w in weights[:2]) < 1.0
    assert all(w == 0.0 for _, _, w in sentence_weights("xyz", CONTEXT))  # nothing shared: no sentence favoured
    assert sentence_weights("질문", "") == [(0, 0, 0.0)]


def test_a_bigram_every_sentence_has_counts_less_than_a_rare_one():
    context = "가나 다라. 가나 마바. 가나 사아."
    # the question shares 가나 with every sentence and 마바 with the second only: the second wins, the others weigh less
    weights = [w for _, _, w in sentence_weights("가나 마바?", context)]
    assert weights[1] == 1.0 and weights[0] == weights[2] and 0 < weights[0] < 0.5


def test_token_prior_follows_offsets_and_restarts_when_they_go_back():
    weights = [(0, 4, 1.0), (4, 9, 0.5), (9, 12, 0.25)]
    offsets = [(0, 0), (10, 11), (5, 6), (0, 2), (11, 12)]
    assert token_prior(offsets, [False, True, True, True, True], weights) == [0.0, 0.25, 0.5, 1.0, 0.25]


@pytest.mark.parametrize("field", ["sentence_prior", "echo_penalty"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_qa_config_refuses_a_bad_prior(field, bad):
    from taesan.errors import TaesanError
    from taesan.tasks.qa import QAConfig

    with pytest.raises(TaesanError, match=field):
        QAConfig(**{field: bad})
