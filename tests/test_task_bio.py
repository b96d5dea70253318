"""BIO-constrained decoding (Viterbi over allowed transitions) and strict IOB2 entity scoring, against brute force
and seqeval's strict mode; the NER task decodes only valid tag sequences."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from taesan.tasks.bio import allowed_transitions, viterbi
from taesan.tasks.metrics.entities import (
    bio_entities,
    entity_counts,
    entity_scores,
    scores_from_counts,
    split_tag,
)
from taesan.tasks.ner import NerConfig, TokenClassification
from taesan.tasks.readers.ner import TaggedText
from taesan.tokenizers.wordpiece import WordPieceTokenizer

LABELS = ["O", "B-LC", "I-LC", "B-PS", "I-PS"]


def valid(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        p, k = split_tag(t)
        if p == "I" and (prev == "O" or split_tag(prev)[1] != k):
            return False
        prev = t
    return True


def test_allowed_transitions_hand_case():
    start, trans = allowed_transitions(["O", "B-PS", "I-PS", "B-LC", "I-LC"])
    assert start.tolist() == [True, True, False, True, False]
    assert trans[0].tolist() == [True, True, False, True, False]  # after O: no I-
    assert trans[1].tolist() == [True, True, True, True, False]  # after B-PS: I-PS, not I-LC
    assert trans[2].tolist() == [True, True, True, True, False]  # after I-PS likewise
    assert trans[3].tolist() == [True, True, False, True, True]


def test_viterbi_fixes_the_docstring_case():
    lp = torch.tensor([[0.6, 0.1, 0.3], [0.2, 0.1, 0.7]]).log()
    start, trans = allowed_transitions(["O", "B-PS", "I-PS"])
    assert lp.argmax(-1).tolist() == [0, 2]  # O I-PS: invalid
    assert viterbi(lp, start, trans) == [0, 0]
    lp2 = torch.tensor([[0.3, 0.4, 0.3], [0.2, 0.1, 0.7]]).log()
    assert viterbi(lp2, start, trans) == [1, 2]  # B-PS I-PS = .28 beats O O = .06
    assert viterbi(torch.zeros(0, 3), start, trans) == []


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 4), st.integers(0, 10_000))
def test_viterbi_is_the_best_valid_path_by_brute_force(n, seed):
    lp = torch.randn(n, len(LABELS), generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    start, trans = allowed_transitions(LABELS)
    path = viterbi(lp, start, trans)
    assert valid([LABELS[i] for i in path])
    best = max((p for p in itertools.product(range(len(LABELS)), repeat=n) if valid([LABELS[i] for i in p])),
               key=lambda p: sum(float(lp[t, i]) for t, i in enumerate(p)))
    assert sum(float(lp[t, i]) for t, i in enumerate(path)) == pytest.approx(sum(float(lp[t, i]) for t, i in enumerate(best)))


TAGS = st.sampled_from(["O", "B-PS", "I-PS", "B-LC", "I-LC", "B-DT", "I-DT"])


class Lookup(nn.Module):
    """A context-free tagger: fixed logits per token id."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None):
        return self.table[input_ids]  # (B, T, L)


def test_strict_entities_drop_stray_inside_tags():
    tags = ["B-PS", "I-PS", "O", "I-LC", "B-LC", "I-DT"]
    assert bio_entities(tags, strict=True) == [("PS", 0, 2), ("LC", 4, 5)]
    assert bio_entities(["I-PS", "I-PS"], strict=True) == []
    assert bio_entities(["B-PS", "I-LC", "I-LC"], strict=True) == [("PS", 0, 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(TAGS, min_size=1, max_size=12), st.lists(TAGS, min_size=12, max_size=12)),
                min_size=1, max_size=5))
def test_strict_scores_match_seqeval_strict_iob2(pairs):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    gold = [g for g, _ in pairs]
    pred = [p[: len(g)] for g, p in pairs]
    ours = entity_scores(gold, pred)  # default mode, for contrast
    strict = scores_from_counts(entity_counts(gold, pred, strict=True))
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    assert strict["precision"] == pytest.approx(precision_score(gold, pred, **kw))
    assert strict["recall"] == pytest.approx(recall_score(gold, pred, **kw))
    assert strict["f1"] == pytest.approx(f1_score(gold, pred, **kw))
    if all(valid(s) for s in gold + pred):
        assert strict["f1"] == pytest.approx(ours["f1"])


def test_ner_decodes_only_valid_sequences_and_both_modes_then_agree():

    text = "민수는 어제 강남역 카페에 갔었어"
    tags = ["B-PS", "I-PS", "O", "O", "B-DT", "I-DT", "O", "B-LC", "I-LC", "I-LC"] + ["O"] * 8
    ex = TaggedText(text, tags, [(i, i + 1) for i in range(len(text))], "char")
    tok = WordPieceTokenizer.train([text] * 3, vocab_size=40, min_frequency=1)
    for decode in ("argmax", "viterbi"):
        task = TokenClassification(NerConfig(decode=decode), tok)
        task.fit_labels([ex])
        torch.manual_seed(0)
        table = torch.randn(tok.vocab_size, len(task.labels)) * 3  # a noisy tagger that emits stray I- tags

        model = Lookup(table)
        predicted = task.tag_units(model, [text, "강남역 카페 민수"], [ex.spans, [(i, i + 1) for i in range(9)]])
        s = task.evaluate(model, [ex])
        if decode == "viterbi":
            assert all(valid(t) for t, _ in predicted)
            assert s["strict_f1"] == pytest.approx(s["f1"])
        else:
            assert not all(valid(t) for t, _ in predicted)  # the noisy table does emit invalid sequences
    with pytest.raises(Exception, match="decode"):
        NerConfig(decode="beam")
