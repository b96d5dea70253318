"""Extractive QA: windows and offsets on Korean text, n-best decoding, SQuAD/KorQuAD metrics, the reader,
and fine-tuning end to end on a handful of examples."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from taesan.errors import TaesanError
from taesan.tasks import load_task, task_class
from taesan.tasks.metrics import squad
from taesan.tasks.qa import ExtractiveQA, QAConfig, answer_tokens, nbest_spans
from taesan.tasks.readers.qa import Answer, QAExample, read_squad
from taesan.tokenizers import CharTokenizer, WordPieceTokenizer

LETTERS = "가나다라마바사아자차카타파하"  # 14 characters, 14 tokens for a character tokenizer
HISTORY = "세종대왕은 1443년에 훈민정음을 창제하였다. 이순신은 임진왜란 때 거북선을 만들었다."
QUESTIONS = [("누가 훈민정음을 창제했나?", "세종대왕"), ("훈민정음은 언제 창제되었나?", "1443년"),
             ("거북선을 만든 사람은?", "이순신"), ("이순신은 무엇을 만들었나?", "거북선")]


def example(question: str, context: str, answer: str, qid: str = "q") -> QAExample:
    return QAExample(question, context, [Answer(answer, context.index(answer))], qid)


@pytest.fixture(scope="module")
def chars() -> CharTokenizer:
    return CharTokenizer.train([LETTERS, HISTORY, "누구?"] + [q for q, _ in QUESTIONS], vocab_size=300)


def char_task(tok, max_length=16, doc_stride=4, max_question_length=8, **kw) -> ExtractiveQA:
    return ExtractiveQA(QAConfig(max_length=max_length, doc_stride=doc_stride, max_question_length=max_question_length, **kw), tok)


def span_text(feature, context):
    s, e = feature["labels"]
    return context[feature["offsets"][s][0]:feature["offsets"][e][1]]


# ---- windows, labels and offsets ----------------------------------------------------------------------------
def test_answer_in_the_first_window_comes_back_exactly(chars):
    task = char_task(chars, max_length=64, doc_stride=8, max_question_length=16)
    for q, a in QUESTIONS:
        ex = example(q, HISTORY, a)
        feats = task.encode(ex)
        holding = [f for f in feats if f["labels"] != [0, 0]]
        assert holding, a
        assert all(span_text(f, HISTORY) == a for f in holding)
        for f in holding:  # the label points at context tokens, never the question
            s, e = f["labels"]
            assert f["token_type_ids"][s] == 1 and f["token_type_ids"][e] == 1 and s <= e


def test_answer_crossing_a_window_edge_is_labelled_in_the_next_window(chars):
    # room for 16 - 3 specials - 3 question tokens = 10 context tokens; windows 0..9 and 6..13 (stride 4)
    task = char_task(chars)
    ex = example("누구?", LETTERS, "자차카")  # characters 8..10: cut by the first window's edge
    feats = task.encode(ex)
    assert len(feats) == 2
    assert feats[0]["labels"] == [0, 0]
    assert feats[1]["labels"] == [7, 9]  # [CLS] 누 구 ? [SEP] then 사(6) 아(7) 자(8): 자 is token 5 + 2
    assert span_text(feats[1], LETTERS) == "자차카"
    early = task.encode(example("누구?", LETTERS, "사아"))  # characters 6..7: whole in both windows
    assert [f["labels"] for f in early] == [[11, 12], [5, 6]]


def test_answer_outside_every_window_points_at_cls(chars):
    no_overlap = char_task(chars, doc_stride=0)  # windows 0..9 and 10..13: 자차카 (8..10) is in neither
    assert [f["labels"] for f in no_overlap.encode(example("누구?", LETTERS, "자차카"))] == [[0, 0], [0, 0]]
    too_long = char_task(chars)  # 11 characters never fit 10 context tokens
    assert all(f["labels"] == [0, 0] for f in too_long.encode(example("누구?", LETTERS, LETTERS[1:12])))


def test_windows_cover_the_context_and_overlap_by_doc_stride(chars):
    task = char_task(chars, max_length=24, doc_stride=5, max_question_length=8)
    windows = task.windows("누가 창제했나?", HISTORY)
    spans = [[o for o, s in zip(w.offsets, w.sequence_ids) if s == 1] for w in windows]
    assert len(windows) > 2 and all(len(w) <= 24 for w in windows)
    for a, b in zip(spans, spans[1:]):
        assert a[-5:] == b[:5]  # exactly doc_stride shared context tokens
    covered = {c for span in spans for lo, hi in span for c in range(lo, hi)}
    assert covered == set(range(len(HISTORY)))
    assert all(w.tokens[0] == "[CLS]" and w.sequence_ids[1:9] == [0] * 8 for w in windows)


def test_long_question_is_cut_to_max_question_length(chars):
    task = char_task(chars, max_length=32, doc_stride=4, max_question_length=5)
    w = task.windows("누가 훈민정음을 창제했나?", HISTORY)[0]
    assert w.tokens[1:7] == ["누", "가", " ", "훈", "민", "[SEP]"]


def test_wordpiece_label_covers_the_answer_in_whole_tokens():
    tok = WordPieceTokenizer.train([HISTORY, "훈민정음 창제 세종 1443 년"] * 3, vocab_size=120, min_frequency=1)
    task = ExtractiveQA(QAConfig(max_length=48, doc_stride=8, max_question_length=16), tok)
    ex = example("훈민정음은 언제 창제되었나?", HISTORY, "1443")
    (f,) = [f for f in task.encode(ex) if f["labels"] != [0, 0]]
    text = span_text(f, HISTORY)
    assert "1443" in text and text in HISTORY.split()[1]  # "1443" or the whole word piece run "1443년에"


def test_answer_tokens_hand_case():
    # [CLS] q [SEP] 카페 갔 ##었어 [SEP] over the context "카페 갔었어" (word pieces: no space token)
    offsets = [(0, 0), (0, 1), (0, 0), (0, 2), (3, 4), (4, 6), (0, 0)]
    seq = [None, 0, None, 1, 1, 1, None]
    assert answer_tokens(offsets, seq, 3, 6) == (4, 5)  # 갔었어
    assert answer_tokens(offsets, seq, 2, 6) == (4, 5)  # " 갔었어": the leading space starts at the next token
    assert answer_tokens(offsets, seq, 1, 4) == (3, 4)  # "페 갔": inside a token, the whole token
    assert answer_tokens(offsets[:5] + [(0, 0)], seq[:5] + [None], 3, 6) == (0, 0)  # the window ends inside the answer


# ---- n-best decoding -----------------------------------------------------------------------------------------
def test_nbest_docstring_case():
    spans = nbest_spans(torch.tensor([0.0, 5, 1, 4]), torch.tensor([0.0, 1, 3, 2]), torch.tensor([False, True, True, True]), n_best=2)
    assert spans == [(8.0, 1, 2), (7.0, 1, 3)]
    wide = nbest_spans(torch.tensor([0.0, 5, 1, 4]), torch.tensor([0.0, 1, 3, 2]), torch.tensor([False, True, True, True]), n_best=3)
    # starts {1, 3, 2} x ends {2, 3, 1}: (1, 2) 8, (1, 3) 7, (1, 1) 6, (3, 3) 6, (2, 2) 4, (2, 3) 3; ties: earlier start
    assert wide == [(8.0, 1, 2), (7.0, 1, 3), (6.0, 1, 1)]


def test_nbest_rules():
    ctx = torch.tensor([False, False, True, True, True, True])
    # the question token 1 has the highest scores but is not context; the best legal span is (2, 5)
    start, end = torch.tensor([0.0, 9, 3, 1, 1, 0]), torch.tensor([0.0, 9, 0, 1, 1, 3])
    assert nbest_spans(start, end, ctx, n_best=4)[0] == (6.0, 2, 5)
    # 4 tokens is longer than max_answer_length 3: (2, 5) is dropped
    assert (2, 5) not in [(s, e) for _, s, e in nbest_spans(start, end, ctx, n_best=4, max_answer_length=3)]
    # only the top-1 start (5) and top-1 end (2) are paired: end < start leaves nothing
    assert nbest_spans(torch.tensor([0.0, 0, 1, 0, 0, 2]), torch.tensor([0.0, 0, 2, 0, 0, 1]), ctx, n_best=1) == []
    assert nbest_spans(start, end, torch.zeros(6, dtype=torch.bool)) == []


class PointAt(nn.Module):
    """A stand-in QA model: start logit 8 on token `first`, end logit 8 on token `last`, 0 elsewhere."""

    def __init__(self, first: int, last: int) -> None:
        super().__init__()
        self.first, self.last = first, last
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start, end = (input_ids == self.first).float() * 8, (input_ids == self.last).float() * 8  # (B, T) each
        return torch.stack([start, end], -1) + self.bias  # (B, T, 2)


def test_predict_finds_the_span_in_a_later_window_and_maps_characters(chars):
    task = char_task(chars, max_length=24, doc_stride=5, max_question_length=8)
    model = PointAt(chars.token_to_id("거"), chars.token_to_id("선"))
    (out,) = task.predict(model, ["무엇을 만들었나? ||| " + HISTORY])
    start = HISTORY.index("거북선")
    assert out["answer"] == "거북선" and (out["start"], out["end"]) == (start, start + 3)
    assert HISTORY[out["start"]:out["end"]] == out["answer"]
    holding = [w for w in task.windows("무엇을 만들었나?", HISTORY)
               if {(start, start + 1), (start + 2, start + 3)} <= {o for s, o in zip(w.sequence_ids, w.offsets) if s == 1}]
    allowed = min(1 + sum(s == 1 for s in w.sequence_ids) for w in holding)  # [CLS] + context share each softmax
    p = math.exp(8) / (math.exp(8) + allowed - 1)
    assert holding and out["score"] == pytest.approx(p * p, rel=1e-5)
    # the same pair as a dict and as an example give the same answer
    assert task.predict(model, [{"question": "무엇을 만들었나?", "context": HISTORY}]) == [out]


class PointAtTwo(nn.Module):
    """A stand-in QA model that cannot choose: start logit 8 on tokens `starts`, end logit 8 on tokens `ends`."""

    def __init__(self, starts: list[int], ends: list[int]) -> None:
        super().__init__()
        self.starts, self.ends = torch.tensor(starts), torch.tensor(ends)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start, end = torch.isin(input_ids, self.starts).float() * 8, torch.isin(input_ids, self.ends).float() * 8  # (B, T)
        return torch.stack([start, end], -1) + self.bias  # (B, T, 2)


def test_sentence_prior_breaks_the_tie_toward_the_sentence_the_question_names(chars):
    """세종대왕 and 이순신 score alike; the question shares 거북선 and 만들 with the second sentence only."""
    model = PointAtTwo([chars.token_to_id("세"), chars.token_to_id("이")], [chars.token_to_id("왕"), chars.token_to_id("신")])
    question = "거북선을 만든 사람은?"
    plain = char_task(chars, max_length=80, doc_stride=8, max_question_length=16, max_answer_length=5)
    (alone,) = plain.predict(model, [{"question": question, "context": HISTORY}])
    assert alone["answer"] == "세종대왕"  # a tie goes to the earlier span
    with_prior = char_task(chars, max_length=80, doc_stride=8, max_question_length=16, max_answer_length=5, sentence_prior=4.0)
    (chosen,) = with_prior.predict(model, [{"question": question, "context": HISTORY}])
    assert chosen["answer"] == "이순신" and HISTORY[chosen["start"]:chosen["end"]] == "이순신"
    assert chosen["score"] == pytest.approx(alone["score"])  # the score stays the reader's own span probability
    # the prior only ranks spans: training features, batches and the loss are the same with it or without
    ex = example(question, HISTORY, "이순신")
    assert with_prior.encode(ex) == plain.encode(ex)
    batch = plain.collate(plain.encode(ex))
    logits = model(batch["input_ids"])
    assert with_prior.loss(logits, with_prior.prepare(batch)[1]) == plain.loss(logits, plain.prepare(batch)[1])


def test_echo_penalty_turns_away_from_the_question_s_own_words(chars):
    """The reader likes 이순신 and 거북선 alike; asked about 이순신, the penalty answers 거북선, the word the question lacks."""
    model = PointAtTwo([chars.token_to_id("이"), chars.token_to_id("거")], [chars.token_to_id("신"), chars.token_to_id("선")])
    question = "이순신은 무엇을 만들었나?"
    plain = char_task(chars, max_length=80, doc_stride=8, max_question_length=16, max_answer_length=5)
    echo = char_task(chars, max_length=80, doc_stride=8, max_question_length=16, max_answer_length=5, echo_penalty=4.0)
    (alone,) = plain.predict(model, [{"question": question, "context": HISTORY}])
    (chosen,) = echo.predict(model, [{"question": question, "context": HISTORY}])
    assert (alone["answer"], chosen["answer"]) == ("이순신", "거북선")
    assert chosen["score"] == pytest.approx(alone["score"])  # the reader's own probability, as before
    assert echo.evaluate(model, [example(question, HISTORY, "거북선")])["exact_match"] == 100.0


def test_parse_input(chars):
    task = char_task(chars)
    assert task.parse_input("누가 만들었나? ||| 이순신이 만들었다") == {"question": "누가 만들었나?", "context": "이순신이 만들었다"}
    with pytest.raises(TaesanError, match=r"\|\|\|"):
        task.parse_input("질문만 있다")
    with pytest.raises(TaesanError):
        task.predict(PointAt(0, 0), [{"question": "q"}])


# ---- loss --------------------------------------------------------------------------------------------------
def test_loss_ignores_question_and_padding_positions(chars):
    task = char_task(chars)
    logits = torch.randn(2, 6, 2)
    mask = torch.tensor([[1, 0, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1]], dtype=torch.bool)
    positions = torch.tensor([[3, 4], [0, 0]])
    loss = task.loss(logits, {"positions": positions, "answer_mask": mask})
    expected = 0.0
    for b in range(2):
        allowed = mask[b].nonzero().squeeze(1).tolist()
        for k in range(2):
            scores = logits[b, allowed, k]
            expected += -(scores[allowed.index(int(positions[b, k]))] - scores.logsumexp(0)) / 4
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    huge = logits.clone()
    huge[~mask] += 100.0  # scores on question and padding tokens change nothing
    assert float(task.loss(huge, {"positions": positions, "answer_mask": mask})) == pytest.approx(float(loss), rel=1e-5)
    m = task.metrics(logits, {"positions": positions, "answer_mask": mask})
    assert m["loss"][0] / m["loss"][1] == pytest.approx(float(loss), rel=1e-5) and m["start_accuracy"][1] == 2


# ---- metrics (the official scripts' behaviour as hand-computed cases) -------------------------------------------
def test_squad_normalisation():
    assert squad.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert squad.normalize_answer("an apple, a pear") == "apple pear"
    assert squad.normalize_answer("theater Anthem") == "theater anthem"  # articles only as whole words
    assert squad.normalize_answer("U.S.") == "us"
    assert squad.normalize_answer("《훈민정음》") == "《훈민정음》"  # not ASCII punctuation: SQuAD keeps it
    assert squad.normalize_korquad("《훈민정음》을") == "훈민정음 을"
    assert squad.normalize_korquad("The ‘Broncos’") == "the broncos"  # KorQuAD keeps English articles


def test_squad_exact_match_and_f1():
    assert squad.exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert squad.exact_match("Denver", "Denver Broncos") == 0.0
    assert squad.f1("Denver Broncos team", "the Denver Broncos") == pytest.approx(0.8)  # P 2/3, R 1
    assert squad.f1("the the", "a an") == 0.0  # both normalise to nothing: no shared words
    assert squad.f1("x x y", "x y y y") == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))  # bag overlap 2
    assert squad.f1("세종대왕이", "세종대왕") == 0.0  # word F1 misses Korean particles ...
    assert squad.char_f1("세종대왕이", "세종대왕") == pytest.approx(8 / 9)  # ... character F1 does not
    assert squad.char_f1("아아아", "아") == pytest.approx(0.5)  # P 1/3, R 1
    assert squad.char_f1("1443 년", "1443년") == 1.0  # whitespace removed
    assert squad.korquad_exact_match("《훈민정음》", "훈민정음") == 1.0


def test_squad_scores_take_the_best_gold_and_average_in_percent():
    scores = squad.squad_scores(["Denver Broncos", "세종대왕이", "Carolina"],
                                [["The Broncos", "Denver Broncos"], ["세종대왕"], ["Panthers"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 / 3)
    assert scores["korquad_exact_match"] == pytest.approx(100 / 3)
    # character F1 gives Carolina/Panthers credit for a, n, r: P = R = 3/8
    assert scores["korquad_f1"] == pytest.approx(100 * (1 + 8 / 9 + 3 / 8) / 3)
    with pytest.raises(ValueError):
        squad.squad_scores(["x"], [[]])


# ---- reader ------------------------------------------------------------------------------------------------
def squad_file(tmp_path, qas, context=HISTORY, name="qa.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]},
                               ensure_ascii=False), encoding="utf-8")
    return path


def test_reader_reads_every_answer(tmp_path):
    path = squad_file(tmp_path, [{"id": "k1", "question": "누가?", "answers": [
        {"text": "세종대왕", "answer_start": 0}, {"text": "세종대왕은", "answer_start": 0}]}])
    (ex,) = read_squad(path)
    assert (ex.id, ex.question, ex.context) == ("k1", "누가?", HISTORY)
    assert [(a.text, a.start, a.end) for a in ex.answers] == [("세종대왕", 0, 4), ("세종대왕은", 0, 5)]


@pytest.mark.parametrize("qas, message", [
    ([{"id": "k9", "question": "누가?", "answers": [{"text": "세종대왕", "answer_start": 3}]}], r"question 'k9'.*not at answer_start 3"),
    ([{"id": "k9", "question": "누가?", "answers": [{"text": "세종대왕", "answer_start": 999}]}], r"question 'k9'.*answer_start 999"),
    ([{"id": "k9", "question": " ", "answers": []}], r"question 'k9': the question is empty"),
    ([{"id": "k9", "question": "누가?", "answers": [], "is_impossible": "no"}], r"'is_impossible' should be true or false"),
    ([{"id": "k9", "question": "누가?", "answers": [{"text": "가" * 500, "answer_start": 0}]}], r"answer '가{60}\.\.\.' is not"),
    ([{"id": "k9", "answers": []}], r"question 'k9': missing 'question'"),
    ([{"id": "k9", "question": "누가?", "answers": [{"text": "세종대왕", "answer_start": "0"}]}], r"'answer_start' should be int"),
    ([{"question": "누가?", "answers": []}], r"qas\[0\]: missing 'id' \(or KLUE-MRC's 'guid'\)"),
])
def test_reader_errors_name_the_question(tmp_path, qas, message):
    with pytest.raises(TaesanError, match=message):
        read_squad(squad_file(tmp_path, qas))


def test_reader_file_errors(tmp_path):
    with pytest.raises(TaesanError, match="no such file"):
        read_squad(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n  {"paragraphs": ]\n}', encoding="utf-8")
    with pytest.raises(TaesanError, match=r"bad.json, line 2: not valid JSON"):
        read_squad(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('[{"context": "x"}]', encoding="utf-8")
    with pytest.raises(TaesanError, match="SQuAD/KorQuAD format"):
        read_squad(wrong)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"data": "é"}'.encode("latin-1"))
    with pytest.raises(TaesanError, match="not UTF-8"):
        read_squad(latin)


def test_real_files(shared_data):
    korquad = read_squad(shared_data / "qa" / "KorQuAD_v1.0_dev.shared.json")
    squad_dev = read_squad(shared_data / "english" / "squad_v1.1_dev.first10articles.json")
    assert len(korquad) == 4148 and len(squad_dev) == 3036
    assert sum(len(ex.answers) for ex in squad_dev) == 9107
    # every gold answer of the first questions comes back exactly from character windows
    sample = korquad[:40]
    tok = CharTokenizer.train([ex.context + ex.question for ex in sample], vocab_size=3000)
    task = ExtractiveQA(QAConfig(max_length=128, doc_stride=48, max_question_length=40, max_answer_length=48), tok)
    for ex in sample:
        labelled = [f for f in task.encode(ex) if f["labels"] != [0, 0]]
        assert labelled and all(span_text(f, ex.context) == ex.answers[0].text for f in labelled), ex.id


# ---- the task as a whole -----------------------------------------------------------------------------------
def test_config_and_model_checks(chars):
    with pytest.raises(TaesanError, match="doc_stride"):
        ExtractiveQA.from_dict({"task": "qa", "max_length": 32, "doc_stride": 30})
    assert task_class("qa") is ExtractiveQA
    old = ExtractiveQA.from_dict({"task": "qa", "max_length": 64}).config  # a task.json from before the lexical priors
    assert (old.sentence_prior, old.echo_penalty) == (0.0, 0.0)  # decodes as it did: the reader alone
    from taesan.models import create

    task = char_task(chars, max_length=128, max_question_length=16)
    with pytest.raises(TaesanError, match="needs a BERT, RoBERTa or ELECTRA model"):
        task.build_model(create("gpt-tiny", vocab_size=chars.vocab_size, d_model=32, n_layers=1, n_heads=2))
    task.build_model(create("bert-tiny", vocab_size=chars.vocab_size, d_model=32, n_layers=1, n_heads=2, n_positions=64))
    assert task.config.max_length == 64  # the default window cut to a 64-position model (as NER's), not an error


def test_cli_cuts_a_default_window_to_the_model_and_refuses_one_asked_for(chars, tmp_path, capsys):
    """`finetune --task qa` on a 64-position model said "pass --max-length 64" though no length was given; the
    README says a default length is cut to the model. One asked for that does not fit is still refused."""
    from taesan.cli import main
    from taesan.models import create

    model = create("bert-tiny", vocab_size=chars.vocab_size, d_model=32, n_layers=1, n_heads=2, n_positions=64)
    model.save(tmp_path / "small", tokenizer=chars)
    data = tmp_path / "qa.json"
    data.write_text(json.dumps({"data": [{"paragraphs": [{"context": HISTORY, "qas": [
        {"id": str(i), "question": q, "answers": [{"text": a, "answer_start": HISTORY.index(a)}]}
        for i, (q, a) in enumerate(QUESTIONS)]}]}]}, ensure_ascii=False), encoding="utf-8")
    common = ["finetune", "--task", "qa", "--model", str(tmp_path / "small"), "--train", str(data), "--valid", str(data),
              "--max-steps", "2", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "cut")]) == 0
    assert json.loads((tmp_path / "cut" / "task.json").read_text())["max_length"] == 64
    assert main(common + ["--out", str(tmp_path / "asked"), "--max-length", "128"]) == 2
    assert "--max-length: the qa task reads 128 tokens per example but the model" in capsys.readouterr().err


def test_finetune_end_to_end_and_round_trip(chars, tmp_path):
    from taesan.models import create
    from taesan.train import TrainConfig
    from taesan.tuning.finetune import finetune, load_finetuned

    task = char_task(chars, max_length=40, doc_stride=8, max_question_length=16)
    examples = [example(q, HISTORY, a, str(i)) for i, (q, a) in enumerate(QUESTIONS)]
    model = create("bert-tiny", vocab_size=chars.vocab_size, d_model=32, n_layers=2, n_heads=2, n_positions=64)
    cfg = TrainConfig(max_steps=40, lr=3e-3, warmup=4, eval_every=0, save_every=0, log_every=5, progress=False)
    result = finetune(task, model, examples, examples, tmp_path, cfg, batch_size=8, device="cpu")
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert set(result.metrics) == {"exact_match", "f1", "korquad_exact_match", "korquad_f1"}
    untrained = task.build_model(create("bert-tiny", vocab_size=chars.vocab_size, d_model=32, n_layers=2, n_heads=2, n_positions=64))
    assert result.metrics["korquad_f1"] > task.evaluate(untrained, examples)["korquad_f1"]
    assert json.loads((tmp_path / "eval_results.json").read_text())["f1"] == result.metrics["f1"]

    inputs = [{"question": q, "context": HISTORY} for q, _ in QUESTIONS]
    before = task.predict(result.model, inputs)
    for p in before:
        assert set(p) == {"answer", "start", "end", "score"} and 0.0 <= p["score"] <= 1.0
        assert HISTORY[p["start"]:p["end"]] == p["answer"]
    loaded, loaded_task = load_finetuned(tmp_path)
    assert isinstance(loaded_task, ExtractiveQA) and loaded_task.config == task.config
    assert isinstance(load_task(tmp_path), ExtractiveQA)
    after = loaded_task.predict(loaded, inputs)
    assert [(p["answer"], p["start"], p["end"]) for p in after] == [(p["answer"], p["start"], p["end"]) for p in before]
    assert [p["score"] for p in after] == pytest.approx([p["score"] for p in before], rel=1e-4)
    assert loaded_task.evaluate(loaded, examples) == pytest.approx(result.metrics)


def test_stride_and_question_length_follow_max_length():
    assert (QAConfig().stride, QAConfig().question_tokens) == (64, 64)
    import dataclasses

    short = dataclasses.replace(QAConfig(), max_length=64)  # what `taesan finetune --max-length 64` does
    assert (short.stride, short.question_tokens) == (16, 16)
    with pytest.raises(TaesanError, match="doc_stride"):
        dataclasses.replace(QAConfig(), max_length=4)


def test_cli_finetune_evaluate_predict(chars, tmp_path, capsys):
    from taesan.cli import main

    qas = [{"id": str(i), "question": q, "answers": [{"text": a, "answer_start": HISTORY.index(a)}]} for i, (q, a) in enumerate(QUESTIONS)]
    data = squad_file(tmp_path, qas)
    tok = chars.save(tmp_path / "tok.json")
    out = tmp_path / "qa"
    assert main(["finetune", "--task", "qa", "--model", "bert-tiny", "--tokenizer", str(tok), "--train", str(data),
                 "--valid", str(data), "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--max-length", "64",
                 "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((out / "task.json").read_text())["max_length"] == 64
    printed = capsys.readouterr().out
    assert "defaults: sentence_prior 4, echo_penalty 4 -- a 0.5M-parameter reader (< 20M)" in printed, printed
    saved = json.loads((out / "task.json").read_text())
    assert (saved["sentence_prior"], saved["echo_penalty"]) == (4.0, 4.0)  # evaluate and predict decode with them
    assert main(["evaluate", "--model", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr()
    assert set(json.loads(printed.out)) == {"exact_match", "f1", "korquad_exact_match", "korquad_f1"}
    assert "qa decoding: sentence_prior 4, echo_penalty 4 (task.json)" in printed.err
    assert main(["predict", "--model", str(out), "--json", "누가 만들었나? ||| " + HISTORY]) == 0
    p = json.loads(capsys.readouterr().out)
    assert HISTORY[p["start"]:p["end"]] == p["answer"] and p["input"].startswith("누가")
    assert main(["predict", "--model", str(out), "질문만"]) == 2
    err = capsys.readouterr().err
    assert "|||" in err and len(err.strip().splitlines()) == 1
    # --set ...=0 is the reader alone, at finetune and at evaluate (an older task.json has no such field: 0);
    # a prior given keeps the other's default, and the line names only what was chosen
    assert main(["finetune", "--task", "qa", "--model", "bert-tiny", "--tokenizer", str(tok), "--train", str(data),
                 "--valid", str(data), "--out", str(tmp_path / "alone"), "--max-steps", "2", "--batch-size", "4",
                 "--max-length", "64", "--device", "cpu", "--no-progress", "--set", "sentence_prior=0"]) == 0
    assert "defaults: echo_penalty 4 -- " in capsys.readouterr().out
    saved = json.loads((tmp_path / "alone" / "task.json").read_text())
    assert (saved["sentence_prior"], saved["echo_penalty"]) == (0.0, 4.0)
    assert main(["evaluate", "--model", str(out), "--data", str(data), "--set", "sentence_prior=0", "echo_penalty=0"]) == 0
    printed = capsys.readouterr()
    assert set(json.loads(printed.out)) == {"exact_match", "f1", "korquad_exact_match", "korquad_f1"}
    assert "qa decoding" not in printed.err  # the reader alone: nothing to say
    # an export for HF says that HF's pipeline will decode without the priors (the weights are the same)
    assert main(["convert", "--to-hf", str(out), "--out", str(tmp_path / "hf")]) == 0
    err = capsys.readouterr().err
    assert "sentence_prior 4, echo_penalty 4 (its task.json); HF's question-answering pipeline" in err
    assert err.count("\n") == 1 and "--set sentence_prior=0 echo_penalty=0" in err
    assert main(["convert", "--to-hf", str(tmp_path / "alone"), "--out", str(tmp_path / "hf-alone")]) == 0
    err = capsys.readouterr().err
    assert "with echo_penalty 4 (its task.json)" in err and "sentence_prior" not in err


def test_parse_input_refuses_an_empty_question_or_context():
    """" ||| " used to predict an empty answer at characters 0-0 with exit code 0."""
    task = ExtractiveQA(QAConfig(), None)
    assert task.parse_input(" 수도는? ||| 서울이다 ") == {"question": "수도는?", "context": "서울이다"}
    for text in (" ||| 서울이다", "수도는? |||  ", " ||| "):
        with pytest.raises(TaesanError, match="empty question or context"):
            task.parse_input(text)


@pytest.mark.parametrize("name", ["sentence_prior", "echo_penalty"])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_a_prior_weight_must_be_a_finite_number_at_least_zero(name, value):
    with pytest.raises(TaesanError, match=f"^qa setting {name} must be a number >= 0, got"):
        QAConfig(**{name: value})


# ---- KLUE-MRC, unanswerable questions, predict --file and long inputs --------------------------------------
def klue_mrc_qas():
    """KLUE-MRC's layout: "guid" for the id, is_impossible, and plausible_answers on the unanswerable ones."""
    return [{"guid": "klue-mrc-1", "question": "누가 훈민정음을 창제했나?", "is_impossible": False,
             "answers": [{"text": "세종대왕", "answer_start": 0}]},
            {"guid": "klue-mrc-2", "question": "한글날은 언제인가?", "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "1443년", "answer_start": 6}]},
            {"guid": "klue-mrc-3", "question": "누가 거북선을 만들었나?", "answers": []}]


def test_reader_takes_klue_mrc_guid_and_keeps_unanswerable_questions_answerless(tmp_path):
    first, impossible, unanswered = read_squad(squad_file(tmp_path, klue_mrc_qas()))
    assert (first.id, first.answers[0].text) == ("klue-mrc-1", "세종대왕")
    assert (impossible.id, impossible.answers, unanswered.answers) == ("klue-mrc-2", [], [])
    assert [ex.answers for ex in read_squad(squad_file(tmp_path, klue_mrc_qas()), labelled=False)] == [[], [], []]


def test_read_skips_unanswerable_questions_and_says_how_many(tmp_path, chars):
    """They were an error ("unanswerable SQuAD 2.0 questions are not supported") that stopped a KLUE-MRC file."""
    path = squad_file(tmp_path, klue_mrc_qas())
    task = char_task(chars)
    assert [ex.id for ex in task.read(path)] == ["klue-mrc-1"]
    assert list(task.skipped) == [str(path)]
    [note] = task.read_notes()
    assert note.startswith(f"{path}: skipped 2 of 3 questions as unanswerable") and "the other 1" in note
    plain = squad_file(tmp_path, klue_mrc_qas()[:1], name="plain.json")
    assert len(char_task(chars).read(plain)) == 1 and char_task(chars).read_notes() == []
    with pytest.raises(TaesanError, match=r"none.json: all 2 questions are unanswerable"):
        task.read(squad_file(tmp_path, klue_mrc_qas()[1:], name="none.json"))
    (tmp_path / "empty.json").write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(TaesanError, match=r"empty.json: no questions in the file"):
        task.read(tmp_path / "empty.json")


def test_input_texts_are_the_questions_of_a_squad_file(tmp_path, chars):
    """predict --file on KorQuAD JSON fed the whole file to parse_input as one line."""
    task = char_task(chars)
    path = squad_file(tmp_path, klue_mrc_qas(), name="data.txt")  # a leading '{' tells JSON whatever the name
    texts = task.input_texts(path)
    assert texts == [f"{q['question']} ||| {HISTORY}" for q in klue_mrc_qas()]  # unanswerable ones too: nothing is scored
    assert [task.parse_input(t) for t in texts][1] == {"question": "한글날은 언제인가?", "context": HISTORY}
    lines = tmp_path / "lines.txt"
    lines.write_text(f"누가? ||| {HISTORY}\n", encoding="utf-8")
    assert task.input_texts(lines) is None  # one input per line, as before


@pytest.mark.parametrize("text", ["가" * 5000, " ||| " + "가" * 5000, '{"data": [' + "가" * 5000])
def test_an_error_quotes_only_the_start_of_a_long_input(chars, text):
    with pytest.raises(TaesanError) as e:
        char_task(chars).parse_input(text)
    assert len(str(e.value)) < 160 and "...'" in str(e.value)
