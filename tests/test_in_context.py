"""In-context learning: demonstration counts and seeds as asked, the query never among its own demonstrations,
the oldest demonstration dropped first when the window is short, a context/continuation join that never leaves
the continuation empty (BPE merges a leading space into the word), and calibration on a hand-made LM."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch import nn

from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.tasks.readers.sentiment import TextExample
from taesan.tuning.in_context import (
    Demonstrations, PromptFormat, Shown, build_query, calibrated_choice, classify, continuation_log_probs, fewshot, join_ids,
    parse_verbalizer,
)


@pytest.fixture(scope="module")
def bpe():
    from taesan.tokenizers import BPETokenizer

    return BPETokenizer.train(korean_corpus(200), vocab_size=350, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def pool():
    return [TextExample(t, str(y), f"demo {i}") for i, (t, y) in enumerate(sentiment_examples(40, seed=2))]


@pytest.mark.parametrize("k", [0, 1, 4, 7])
def test_demonstration_counts_and_seeds(pool, k):
    query = TextExample("처음 보는 문장", "1")
    draws = {seed: Demonstrations(pool, k, seed).for_query(query) for seed in range(5)}
    assert all(len(d) == k for d in draws.values())
    assert Demonstrations(pool, k, 3).for_query(query) == draws[3]  # a seed is a reproducible draw
    if k:
        assert len({tuple(ex.text for ex in d) for d in draws.values()}) > 1  # different seeds, different draws
        assert all(len({id(ex) for ex in d}) == k for d in draws.values())  # no example twice


@pytest.mark.parametrize("k, split", [(4, {"0": 2, "1": 2}), (3, None), (1, None)])
def test_balanced_draws_spread_labels_evenly(pool, k, split):
    for seed in range(6):
        labels = Counter(ex.label for ex in Demonstrations(pool, k, seed, balanced=True).for_query(TextExample("x", "0")))
        assert max(labels.values()) - min(labels.values(), default=0) <= 1 and sum(labels.values()) == k
        if split:
            assert labels == split


def test_query_is_never_its_own_demonstration(pool):
    twin = TextExample(pool[5].text, pool[5].label, "a duplicate row")  # the same text elsewhere in the file
    data = pool + [twin]
    for seed in range(4):
        demos = Demonstrations(data, 8, seed)
        for query in data:
            shown = demos.for_query(query)
            assert len(shown) == 8 and query.text not in {ex.text for ex in shown}
    with pytest.raises(TaesanError, match="only 41 examples"):
        Demonstrations(data, 42, 0)


def test_truncation_drops_the_oldest_demonstration_first(bpe):
    fmt = PromptFormat(instruction="감정을 분류하세요.")
    demos = [Shown(f"{i}번째 예시 문장", "긍정") for i in range(1, 5)]
    full = build_query(bpe, fmt, demos, "질문 문장", ["긍정", "부정"], None)
    two = build_query(bpe, fmt, demos[2:], "질문 문장", ["긍정", "부정"], None)
    limit = len(two.context) + max(map(len, two.continuations))  # room for exactly the newest two
    cut = build_query(bpe, fmt, demos, "질문 문장", ["긍정", "부정"], limit)
    assert cut.demonstrations == 2 and cut.context == two.context and len(full.context) > len(cut.context)
    text = bpe.decode(cut.context)
    assert "3번째" in text and "4번째" in text and "1번째" not in text and "2번째" not in text
    assert text.startswith("감정을 분류하세요.")  # the instruction stays; demonstrations go
    # no demonstration fits: the context keeps its last tokens (the query and the answer cue)
    tiny = build_query(bpe, fmt, demos, "질문 문장", ["긍정", "부정"], 12)
    assert tiny.demonstrations == 0 and len(tiny.context) + max(map(len, tiny.continuations)) <= 12


def test_the_query_scores_each_answer_as_the_demonstrations_write_it(bpe, pool, monkeypatch):
    """A demonstration reads "정답: 긍정"; the query's continuation after "정답:" must be the same " 긍정" tokens, not
    "긍정" glued to the colon (a byte-level BPE spells the two differently), in every format."""
    import taesan.tuning.in_context as icl

    rows = []
    monkeypatch.setattr(icl, "continuation_log_probs", lambda model, r, *a, **k: rows.extend(r) or [0.0] * len(r))
    words = {"0": "지루했다", "1": "재미있었다"}
    for fmt in (PromptFormat(), PromptFormat(input_prefix="", output_prefix="", separator="\n")):
        rows.clear()
        classify(torch.nn.Identity(), bpe, pool[:2], pool[2:], words, shots=1, fmt=fmt)  # the scores are stubbed
        demo = fmt.demonstration("이 영화", words["1"])
        written = bpe.encode(demo, add_special_tokens=False).ids
        assert written[-len(rows[1][1]):] == rows[1][1] == bpe.encode(" 재미있었다", add_special_tokens=False).ids
        assert rows[0][1] == bpe.encode(" 지루했다", add_special_tokens=False).ids


def test_join_never_yields_an_empty_continuation(bpe):
    # the trap: " 카페" is one BPE token, so the whole string ends in one token where the context alone ends in "Ġ"
    whole = bpe.encode("정답: 카페", add_special_tokens=False).ids
    context_alone = bpe.encode("정답: ", add_special_tokens=False).ids
    assert len(whole) == len(context_alone)  # slicing the whole at the context's length leaves nothing
    for context, word in [("정답: ", "카페"), ("정답:", "카페"), ("정답:  ", "긍정")]:
        ctx, cont = join_ids(bpe, context, word)
        assert cont and bpe.decode(cont).strip() == word and bpe.decode(ctx) == context.rstrip(" ")
    assert join_ids(bpe, "정답: ", "카페") == (bpe.encode("정답:", add_special_tokens=False).ids, whole[-1:])
    with pytest.raises(TaesanError, match="encodes to no tokens"):
        join_ids(bpe, "정답:", "")


def test_calibrated_choice_by_hand():
    # p(label|x) = [e^-1, e^-2] favours label 0 by e^1; the prompt alone ("N/A") favours it by e^2.9: label 1 wins
    assert calibrated_choice([-1.0, -2.0], [-0.1, -3.0]) == 1
    assert calibrated_choice([-1.0, -2.0], [-1.0, -1.0]) == 0  # a neutral content-free input changes nothing
    assert calibrated_choice([math.log(0.4), math.log(0.6)], [math.log(0.25), math.log(0.75)]) == 0


class CharTokenizer:
    """One id per character, assigned on first sight (enough for a stub LM)."""

    pad_id = 0

    def __init__(self):
        self.vocab = {"<pad>": 0}

    def encode(self, text, add_special_tokens=False):
        ids = [self.vocab.setdefault(c, len(self.vocab)) for c in text]
        return type("Encoding", (), {"ids": ids})()


class BiasedLM(nn.Module):
    """A hand-made LM biased toward "부정": p(긍|positive text) = .4, p(긍|negative) = .1, p(긍|"N/A") = .25."""

    def __init__(self, tok):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.tok, self.config = tok, type("Config", (), {"n_positions": 512})()
        self.ids = {c: tok.encode(c).ids[0] for c in "긍부좋N정 "}

    def forward(self, input_ids, attention_mask=None):
        B, T = input_ids.shape
        logits = torch.full((B, T, 64), -30.0)
        for b in range(B):
            row = input_ids[b].tolist()
            p = 0.25 if self.ids["N"] in row else 0.4 if self.ids["좋"] in row else 0.1
            logits[b, :, self.ids["긍"]], logits[b, :, self.ids["부"]] = math.log(p), math.log(1 - p)
            logits[b, :, self.ids[" "]] = logits[b, :, self.ids["정"]] = 0.0
        return logits


def test_calibration_on_a_hand_made_lm():
    tok = CharTokenizer()
    model = BiasedLM(tok)
    queries = [TextExample("정말 좋다", "1"), TextExample("별로다", "0"), TextExample("좋아요", "1"), TextExample("싫다", "0")]
    words = parse_verbalizer("0=부정,1=긍정", ["0", "1"])
    result = classify(model, tok, queries, queries, words, shots=0, calibrate=True)
    assert result.predictions == ["0", "0", "0", "0"]  # uncalibrated: the bias wins every time
    assert result.accuracy == 0.5 and result.accuracy_norm == 0.5
    assert result.accuracy_calibrated == 1.0  # .4/.25 > .6/.75 and .1/.25 < .9/.75
    # read against answering without the text at the same label rates: one label for all -> 0.5; calibrated 1:1 -> 0.5
    assert result.guessing == 0.5 and result.guessing_calibrated == 0.5


def test_fewshot_on_a_tiny_gpt_reports_every_seed(bpe, pool):
    import taesan

    torch.manual_seed(0)
    model = taesan.create("gpt", vocab_size=bpe.vocab_size, n_positions=96, d_model=32, n_layers=2, n_heads=2).eval()
    words = {"0": "부정", "1": "긍정"}
    few = fewshot(model, bpe, pool[:6], pool, words, 2, [0, 1, 2], balanced=True, start_id=bpe.eos_id)
    assert few["shots"] == 2 and len(few["accuracy"]["per_seed"]) == 3 and few["examples"] == 6
    assert few["accuracy"]["min"] <= few["accuracy"]["mean"] <= few["accuracy"]["max"]
    rows = [([bpe.eos_id, 5, 9, 11], [7, 3]), ([bpe.eos_id, 4], [8])]
    fast = continuation_log_probs(model, rows)  # the LM head only where a continuation token is predicted
    with torch.no_grad():
        for (ctx, cont), got in zip(rows, fast):
            logp = torch.log_softmax(model(torch.tensor([ctx + cont]))[0], -1)  # (T, V) the whole row
            assert got == pytest.approx(sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)), abs=1e-5)
    zero = fewshot(model, bpe, pool[:6], pool, words, 0, [0, 1, 2])
    assert zero["accuracy"]["std"] == 0.0 and zero["demonstrations"] == 0
    with pytest.raises(TaesanError, match="has no verbalizer word"):
        classify(model, bpe, [TextExample("문장", "2", "eval.tsv, line 3")], pool, words, 1)
