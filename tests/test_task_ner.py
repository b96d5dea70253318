"""NER: BIO spans against seqeval, subword alignment on Korean characters and CoNLL words, predictions
mapped back to character spans, the readers and their errors, and fine-tuning end to end."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from taesan.errors import TaesanError
from taesan.objectives import IGNORE_INDEX
from taesan.tasks import load_task, task_class
from taesan.tasks.metrics.entities import bio_entities, entity_scores, prf
from taesan.tasks.ner import NerConfig, TokenClassification, align, bio_labels, unit_tags, word_spans
from taesan.tasks.readers.ner import TaggedText, read_ner
from taesan.tokenizers.wordpiece import WordPieceTokenizer

KO = ["민수는 어제 강남역 카페에 갔었어", "민수가 강남 카페 갔어", "민수도 어제 카페를 갔었어", "강남에 카페가 있어",
      "어제 민수를 만났어", "강남역에서 민수와 어제 만났어", "민수 카페 강남 어제", "카페는 강남에 있어", "민수의 카페"]
EN = ["EU rejects German call to boycott British lamb .", "Germany rejects the call", "He calls Britain",
      "The EU calls German lambs", "Peter Blackburn rejects British calls", "boycotts of lamb"]
SENT = "민수는 어제 강남역 카페에 갔었어"
#        0123456789...: 민수 = PS [0, 2), 어제 = DT [4, 6), 강남역 = LC [7, 10)
SENT_TAGS = ["B-PS", "I-PS", "O", "O", "B-DT", "I-DT", "O", "B-LC", "I-LC", "I-LC"] + ["O"] * 8


def char_example(text: str, tags: list[str]) -> TaggedText:
    return TaggedText(text, tags, [(i, i + 1) for i in range(len(text))], "char")


def word_example(words: list[str], tags: list[str]) -> TaggedText:
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return TaggedText(" ".join(words), tags, spans, "word")


@pytest.fixture(scope="module")
def ko_tok():
    return WordPieceTokenizer.train(KO, vocab_size=39, min_frequency=1)


def ner_task(tok, examples, **config) -> TokenClassification:
    task = TokenClassification(NerConfig(**config), tok)
    task.fit_labels(examples)
    return task


def labelled(task, feature) -> list[tuple[str, str]]:
    """(token, tag) for every token, '-' where the label is -100."""
    tokens = [task.tokenizer.id_to_token(i) for i in feature["input_ids"]]
    return [(t, "-" if y == IGNORE_INDEX else task.labels[y]) for t, y in zip(tokens, feature["labels"])]


# ---- entity spans and scores -------------------------------------------------------------------------------


def test_bio_entities_hand_cases():
    assert bio_entities(["B-PS", "I-PS", "O", "B-LC"]) == [("PS", 0, 2), ("LC", 3, 4)]
    assert bio_entities(["I-PS", "I-PS", "O"]) == [("PS", 0, 2)]  # I after O starts an entity (non-strict IOB2)
    assert bio_entities(["B-PS", "I-LC", "I-LC"]) == [("PS", 0, 1), ("LC", 1, 3)]  # a type change starts one too
    assert bio_entities(["B-PS", "B-PS"]) == [("PS", 0, 1), ("PS", 1, 2)]
    assert bio_entities(["O", "O"]) == [] and bio_entities([]) == []
    with pytest.raises(ValueError):
        bio_entities(["E-PS"])


def test_entity_scores_hand_computed():
    gold = [["B-PS", "I-PS", "O", "B-LC"], ["B-DT", "O"]]
    pred = [["B-PS", "I-PS", "O", "B-PS"], ["B-DT", "B-LC"]]
    s = entity_scores(gold, pred)
    # gold: PS(0,2) LC(3,4) DT(0,1); pred: PS(0,2) PS(3,4) DT(0,1) LC(1,2); 2 of 4 predicted are right, 2 of 3 found
    assert s["precision"] == pytest.approx(2 / 4) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["f1_PS"] == pytest.approx(2 / 3)  # p 1/2, r 1/1
    assert s["f1_LC"] == 0.0 and s["f1_DT"] == 1.0
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)


TAGS = st.sampled_from(["O", "B-PS", "I-PS", "B-LC", "I-LC", "B-DT", "I-DT"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(TAGS, min_size=0, max_size=12), st.lists(TAGS, min_size=12, max_size=12)),
                min_size=1, max_size=5))
def test_entity_scores_match_seqeval(pairs):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    gold = [g for g, _ in pairs]
    pred = [p[: len(g)] for g, p in pairs]
    for g in gold:
        assert bio_entities(g) == [(t, s, e + 1) for t, s, e in get_entities(g)]
    ours = entity_scores(gold, pred)
    assert ours["precision"] == pytest.approx(precision_score(gold, pred, zero_division=0))
    assert ours["recall"] == pytest.approx(recall_score(gold, pred, zero_division=0))
    assert ours["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0))
    if any(bio_entities(s) for s in gold + pred):
        from seqeval.metrics.sequence_labeling import get_entities as ge

        types = sorted({t for s in gold + pred for t, _, _ in ge(s)})
        _, _, f, _ = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
        assert {k: v for k, v in ours.items() if k.startswith("f1_")} == pytest.approx(
            {f"f1_{t}": float(x) for t, x in zip(types, f)})


# ---- alignment ---------------------------------------------------------------------------------------------


def test_labels_o_first_then_b_i_per_type():
    assert bio_labels(["B-PS", "O", "I-LC"]) == ["O", "B-LC", "I-LC", "B-PS", "I-PS"]


def test_korean_char_labels_align_by_first_character(ko_tok):
    ex = char_example(SENT, SENT_TAGS)
    task = ner_task(ko_tok, [ex])
    assert task.labels == ["O", "B-DT", "I-DT", "B-LC", "I-LC", "B-PS", "I-PS"] and task.config.unit == "char"
    [feature] = task.encode(ex)
    assert labelled(task, feature) == [
        ("[CLS]", "-"), ("민수", "B-PS"), ("##는", "O"), ("어제", "B-DT"), ("강남역", "B-LC"),
        ("카페", "O"), ("##에", "O"), ("갔었", "O"), ("##어", "O"), ("[SEP]", "-")]


def test_korean_subwords_inside_an_entity_take_their_characters_tags():
    tok = WordPieceTokenizer.train(KO, vocab_size=30, min_frequency=1)  # nearly one syllable per token
    ex = char_example(SENT, SENT_TAGS)
    [feature] = ner_task(tok, [ex]).encode(ex)
    got = labelled(ner_task(tok, [ex]), feature)
    assert got[:9] == [("[CLS]", "-"), ("민", "B-PS"), ("##수", "I-PS"), ("##는", "O"), ("어", "B-DT"),
                       ("##제", "I-DT"), ("강", "B-LC"), ("##남", "I-LC"), ("##역", "I-LC")]


def test_word_labels_only_on_first_subword(ko_tok):
    ex = word_example(SENT.split(), ["B-PS", "B-DT", "B-LC", "O", "O"])
    task = ner_task(ko_tok, [ex])
    assert task.config.unit == "word"
    [feature] = task.encode(ex)
    assert labelled(task, feature) == [
        ("[CLS]", "-"), ("민수", "B-PS"), ("##는", "-"), ("어제", "B-DT"), ("강남역", "B-LC"),
        ("카페", "O"), ("##에", "-"), ("갔었", "O"), ("##어", "-"), ("[SEP]", "-")]


def test_conll_words_align_by_word():
    tok = WordPieceTokenizer.train(EN, vocab_size=88, min_frequency=1)
    words = "EU rejects German call to boycott British lamb .".split()
    ex = word_example(words, ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"])
    task = ner_task(tok, [ex])
    [feature] = task.encode(ex)
    assert labelled(task, feature)[:7] == [("[CLS]", "-"), ("EU", "B-ORG"), ("rejects", "O"), ("G", "B-MISC"),
                                          ("##e", "-"), ("##rman", "-"), ("call", "O")]
    assert [y for y in feature["labels"] if y != IGNORE_INDEX] == [task.labels.index(t) for t in ex.tags]


def test_align_skips_specials_and_spaces():
    text = "어제 카페"
    chars = [(i, i + 1) for i in range(len(text))]
    assert align(text, chars, [(0, 0), (0, 2), (3, 4), (4, 5), (0, 0)]) == [None, 0, 3, 4, None]
    assert align(text, chars, [(2, 4)]) == [3]  # a token starting at a space (byte-level BPE) takes the next character
    assert align(text, word_spans(text), [(0, 1), (1, 2), (3, 5)]) == [0, None, 1]


def test_long_sentences_become_overlapping_windows(ko_tok):
    ex = char_example(SENT + " " + SENT, SENT_TAGS + ["O"] + SENT_TAGS)
    task = ner_task(ko_tok, [ex], max_length=6, stride=1)
    features = task.encode(ex)
    assert len(features) > 1 and all(len(f["input_ids"]) <= 6 for f in features)
    stride = 1  # windows of 4 text tokens (6 minus [CLS], [SEP]), each repeating the last token of the one before
    pairs = lambda f: list(zip(f["input_ids"][1:-1], f["labels"][1:-1]))  # noqa: E731
    joined = pairs(features[0]) + [p for f in features[1:] for p in pairs(f)[stride:]]
    assert joined == pairs(ner_task(ko_tok, [ex]).encode(ex)[0])  # every token keeps its unwindowed label


# ---- predictions back to characters ------------------------------------------------------------------------


def test_unit_tags_continue_inside_tokens_and_bridge_spaces():
    text = "서울 강남역 카페에"
    chars = [(i, i + 1) for i in range(len(text))]
    spans = [(0, 2), (3, 6), (7, 9), (9, 10)]
    tags = unit_tags(text, chars, spans, ["B-LC", "I-LC", "O", "O"])
    assert tags == ["B-LC", "I-LC", "I-LC", "I-LC", "I-LC", "I-LC", "O", "O", "O", "O"]
    tags = unit_tags(text, chars, spans, ["B-LC", "B-LC", "O", "O"])  # the next token starts a new entity
    assert bio_entities(tags) == [("LC", 0, 2), ("LC", 3, 6)]
    assert unit_tags(text, chars, spans[:1], ["B-LC"])[2:] == ["O"] * 8  # units no token reached are O
    # a byte-level BPE token carries its leading space: the space is not inside the previous entity
    assert unit_tags("어제 카페", [(i, i + 1) for i in range(5)], [(0, 2), (2, 5)], ["B-DT", "O"]) == [
        "B-DT", "I-DT", "O", "O", "O"]


class Lookup(nn.Module):
    """A context-free tagger: each token id has fixed logits (tests the decoding, not learning)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None):
        return self.table[input_ids]  # (B, T, L)


def lookup_for(task, token_tags: dict[str, str]) -> Lookup:
    table = torch.zeros(task.tokenizer.vocab_size, len(task.labels))
    table[:, 0] = 2.0
    for token, tag in token_tags.items():
        table[task.tokenizer.token_to_id(token)] = 0.0
        table[task.tokenizer.token_to_id(token), task.labels.index(tag)] = 2.0
    return Lookup(table)


def test_predict_maps_entities_to_character_spans(ko_tok):
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    model = lookup_for(task, {"민수": "B-PS", "어제": "B-DT", "강남역": "B-LC", "카페": "I-LC"})
    text = "오늘 민수는  강남역 카페에"  # two spaces: offsets must still point into this very string
    [out] = task.predict(model, [text])
    ents = out["entities"]
    assert [(e["label"], e["start"], e["end"], e["text"]) for e in ents] == [
        ("PS", 3, 5, "민수"), ("LC", 8, 14, "강남역 카페")]
    p = torch.tensor([2.0] + [0.0] * 6).softmax(-1)[0].item()
    assert all(e["score"] == pytest.approx(p, abs=1e-4) for e in ents)
    assert task.predict(model, [""]) == [{"entities": []}]


def test_windows_do_not_change_predictions(ko_tok):
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    model = lookup_for(task, {"민수": "B-PS", "어제": "B-DT", "강남역": "B-LC"})
    text = " ".join([SENT] * 4)
    whole = task.predict(model, [text])
    task.config.max_length, task.config.stride = 7, 2
    assert len(task.windows(text)) > 3
    assert task.predict(model, [text]) == whole and len(whole[0]["entities"]) == 12


def test_evaluate_scores_original_units(ko_tok):
    ex = char_example(SENT, SENT_TAGS)
    task = ner_task(ko_tok, [ex])
    model = lookup_for(task, {"민수": "B-PS", "어제": "B-DT", "강남역": "B-PS"})  # LC predicted as PS
    s = task.evaluate(model, [ex])
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1_LC"] == 0.0 and s["f1_DT"] == 1.0 and s["f1_PS"] == pytest.approx(2 / 3)
    assert s["tag_accuracy"] == pytest.approx(15 / 18)


def test_word_mode_predicts_whole_words():
    tok = WordPieceTokenizer.train(EN, vocab_size=88, min_frequency=1)
    ex = word_example(EN[0].split(), ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"])
    task = ner_task(tok, [ex])
    model = lookup_for(task, {"EU": "B-ORG", "G": "B-MISC", "##e": "O", "##rman": "O"})  # later subwords ignored
    [out] = task.predict(model, ["The EU and German lamb"])
    assert [(e["text"], e["label"], e["start"], e["end"]) for e in out["entities"]] == [
        ("EU", "ORG", 4, 6), ("German", "MISC", 11, 17)]


# ---- readers -----------------------------------------------------------------------------------------------

KLUE = """## 토큰, 레이블 구분자 : \\t
## 컬럼명 : CHAR\tNE_TAG
## s1\t<민수:PS>는 <어제:DT>
민\tB-PS
수\tI-PS
는\tO
 \tO
어\tB-DT
제\tI-DT

## s2\t<서울:LC>
서\tB-LC
울\tI-LC
"""


def test_klue_reader(tmp_path):
    p = tmp_path / "klue.tsv"
    p.write_text(KLUE, encoding="utf-8")
    a, b = read_ner(p)
    assert (a.text, a.id, a.unit, a.tags[:3]) == ("민수는 어제", "s1", "char", ["B-PS", "I-PS", "O"])
    assert a.units[3] == " " and a.lines[0] == 4 and (b.text, b.id, b.lines) == ("서울", "s2", [12, 13])


def test_conll_reader(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nLONDON NNP B-NP B-LOC\n", encoding="utf-8")
    a, b = read_ner(p)
    assert (a.text, a.tags, a.spans, a.unit) == ("EU rejects", ["B-ORG", "O"], [(0, 2), (3, 10)], "word")
    assert (b.text, b.lines) == ("LONDON", [6])


@pytest.mark.parametrize("content, message", [
    ("## s\n민\tB-PS\n수 I-PS\n", "line 3: expected 'character<TAB>tag'"),
    ("## s\n민수\tB-PS\n", "line 2: expected one character"),
    ("## s\n민\tPER\n", "line 2: tag 'PER' is not BIO"),
    ("EU B-ORG\nrejects\n", "line 2: expected 'word ... tag'"),
    ("EU NNP E-ORG\n", "line 1: tag 'E-ORG' is not BIO"),
    ("\n\n", "the file is empty"),
    ("-DOCSTART- -X- O\n", "no tagged sentences"),
])
def test_reader_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "bad.tsv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(TaesanError, match=message) as e:
        read_ner(p)
    assert str(p) in str(e.value)


def test_reader_missing_and_non_utf8(tmp_path):
    with pytest.raises(TaesanError, match="no such file"):
        read_ner(tmp_path / "nope.tsv")
    p = tmp_path / "latin.txt"
    p.write_bytes("EU B-ORG\nM\xfcller B-PER\n".encode("latin-1"))
    with pytest.raises(TaesanError, match="line 2: not UTF-8"):
        read_ner(p)


def test_unknown_label_names_its_line(tmp_path, ko_tok):
    p = tmp_path / "k.tsv"
    p.write_text("## s\t민\n민\tB-XX\n", encoding="utf-8")
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    with pytest.raises(TaesanError, match=r"k.tsv, line 2: unknown label 'B-XX'"):
        task.encode(read_ner(p)[0])


def test_bad_config_values():
    with pytest.raises(TaesanError, match="unit 'token'"):
        NerConfig(unit="token")


def test_real_files(shared_data):
    klue = read_ner(shared_data / "ner" / "klue-ner-v1.1_dev.shared.tsv")
    assert len(klue) == 4000 and klue[0].id == "klue-ner-v1_dev_00000-wikitree"
    assert klue[0].text.startswith("경찰은 또 성매매") and klue[0].tags[:3] == ["B-OG", "I-OG", "O"]
    assert bio_labels([t for ex in klue for t in ex.tags]) == [
        "O", "B-DT", "I-DT", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT", "B-TI", "I-TI"]
    conll = read_ner(shared_data / "english" / "conll2003_valid.txt")
    assert len(conll) == 3250 and sum(len(ex.tags) for ex in conll) == 51362
    assert conll[0].units[2] == "LEICESTERSHIRE" and conll[0].tags[2] == "B-ORG"


# ---- end to end --------------------------------------------------------------------------------------------


def test_finetune_end_to_end_and_round_trip(tmp_path, ko_tok):
    from taesan.models import create
    from taesan.train import TrainConfig
    from taesan.tuning.finetune import finetune, load_finetuned

    examples = [char_example(SENT, SENT_TAGS),
                char_example("민수가 강남 카페 갔어", ["B-PS", "I-PS", "O", "O", "B-LC", "I-LC"] + ["O"] * 6),
                char_example("어제 민수를 만났어", ["B-DT", "I-DT", "O", "B-PS", "I-PS"] + ["O"] * 5),
                char_example("카페는 강남에 있어", ["O"] * 4 + ["B-LC", "I-LC"] + ["O"] * 4)]
    backbone = create("bert", vocab_size=ko_tok.vocab_size, n_positions=32, d_model=32, n_layers=2, n_heads=2, d_ff=64)
    task = TokenClassification(NerConfig(max_length=32), ko_tok)
    cfg = TrainConfig(max_steps=30, lr=3e-3, warmup=3, eval_every=0, save_every=0, log_every=5, progress=False)
    out = tmp_path / "ner"
    result = finetune(task, backbone, examples, examples, out, cfg, batch_size=4)
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert result.metrics["f1"] > 0.5 and "f1_PS" in result.metrics
    evals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "eval_entity_f1" in r]
    assert evals and 0.0 <= evals[-1]["eval_entity_f1"] <= 1.0 and "eval_accuracy" in evals[-1]
    [pred] = task.predict(result.model, [SENT])
    assert set(pred) == {"entities"} and all(set(e) == {"text", "label", "start", "end", "score"} for e in pred["entities"])
    assert all(SENT[e["start"]:e["end"]] == e["text"] for e in pred["entities"])
    model, loaded = load_finetuned(out)
    assert isinstance(loaded, TokenClassification) and loaded.labels == task.labels and loaded.config.unit == "char"
    assert loaded.predict(model, [SENT, "강남 카페"]) == task.predict(result.model, [SENT, "강남 카페"])
    assert load_task(out, ko_tok).to_dict() == task.to_dict() and task_class("ner") is TokenClassification


def test_build_model_rejects_a_decoder(ko_tok):
    from taesan.models import create

    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    with pytest.raises(TaesanError, match="needs a BERT, RoBERTa or ELECTRA model"):
        task.build_model(create("gpt", vocab_size=64, n_positions=16, d_model=16, n_layers=1, n_heads=2))
    with pytest.raises(TaesanError, match="ids reach 38"):
        task.build_model(create("bert", vocab_size=20, n_positions=16, d_model=16, n_layers=1, n_heads=2, d_ff=32))


def test_describe_is_one_readable_line(ko_tok):
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    pred = {"entities": [{"text": "민수", "label": "PS", "start": 0, "end": 2, "score": 0.9123}]}
    assert task.describe(pred) == "민수 PS (0.912)" and task.describe({"entities": []}) == "no entities"


def test_prompt_tuning_keeps_one_output_per_token(tmp_path, ko_tok):
    from taesan.models import create
    from taesan.train import TrainConfig
    from taesan.tuning.finetune import finetune

    examples = [char_example(SENT, SENT_TAGS)]
    backbone = create("bert", vocab_size=ko_tok.vocab_size, n_positions=32, d_model=32, n_layers=1, n_heads=2, d_ff=64)
    task = TokenClassification(NerConfig(max_length=32), ko_tok)
    cfg = TrainConfig(max_steps=3, lr=1e-2, warmup=0, eval_every=0, save_every=0, progress=False)
    result = finetune(task, backbone, examples, examples, tmp_path / "p", cfg, batch_size=1, mode="prompt", prompt_tokens=4)
    assert task.config.max_length == 28  # the prompt takes 4 of the 32 positions
    [pred] = task.predict(result.model, [SENT])
    assert all(SENT[e["start"]:e["end"]] == e["text"] for e in pred["entities"]) and "f1" in result.metrics


def oracle_tags(task, ex: TaggedText) -> list[str]:
    """Gold tags put on the tokens that learn them, then decoded back to units: what alignment can keep."""
    enc = task.tokenizer.encode(ex.text)
    spans = [tuple(o) for o, special in zip(enc.offsets, enc.special_tokens_mask) if not special and o[1] > o[0]]
    owners = align(ex.text, ex.spans, spans)
    return unit_tags(ex.text, ex.spans, spans, ["O" if u is None else ex.tags[u] for u in owners])


@pytest.mark.parametrize("vocab_size", [30, 39])
def test_gold_tags_survive_alignment_and_decoding(vocab_size):
    tok = WordPieceTokenizer.train(KO, vocab_size=vocab_size, min_frequency=1)
    ex = char_example(SENT, SENT_TAGS)
    assert oracle_tags(ner_task(tok, [ex]), ex) == SENT_TAGS
    words = word_example(SENT.split(), ["B-PS", "B-DT", "B-LC", "O", "O"])
    assert oracle_tags(ner_task(tok, [words]), words) == words.tags


def test_alignment_ceiling_on_real_klue(shared_data):
    klue = read_ner(shared_data / "ner" / "klue-ner-v1.1_dev.shared.tsv")
    tok = WordPieceTokenizer.train([ex.text for ex in klue], vocab_size=3000, min_frequency=2)
    part = klue[:300]
    task = ner_task(tok, part)
    # lost only where an entity boundary falls inside a token (박씨의 as one token) or a word is [UNK]
    assert entity_scores([ex.tags for ex in part], [oracle_tags(task, ex) for ex in part])["f1"] > 0.99


def test_training_metrics_count_labelled_tokens_only(ko_tok):
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])  # O B-DT I-DT B-LC I-LC B-PS I-PS
    labels = torch.tensor([[IGNORE_INDEX, 5, 6, 0, 1, IGNORE_INDEX], [IGNORE_INDEX, 3, 4, IGNORE_INDEX, 0, 0]])
    pred = torch.tensor([[3, 5, 0, 0, 1, 3], [0, 3, 4, 5, 0, 0]])  # wrong only at the I-PS and on ignored tokens
    logits = torch.nn.functional.one_hot(pred, len(task.labels)).float() * 5  # (B, T, L)
    totals = task.metrics(logits, labels)
    assert totals["accuracy"] == (7, 8)
    # gold entities PS(0,2) DT(3,4) | LC(0,2); predicted PS(0,1) DT(3,4) | LC(0,2) -> tp 2 of 3 and 3
    assert (totals["entity_tp"], totals["entity_pred"], totals["entity_gold"]) == ((2.0, 1), (3.0, 1), (3.0, 1))
    s = task.summarize(totals)
    assert s["accuracy"] == 7 / 8 and s["entity_f1"] == pytest.approx(2 / 3) and s["loss"] == pytest.approx(totals["loss"][0] / 8)


def klue_file(path, examples: list[TaggedText]) -> None:
    blocks = [f"## s{i}\t{ex.text}\n" + "".join(f"{c}\t{t}\n" for c, t in zip(ex.text, ex.tags)) for i, ex in enumerate(examples)]
    path.write_text("## 컬럼명 : CHAR\tNE_TAG\n" + "\n".join(blocks), encoding="utf-8")


def test_cli_finetune_predict_evaluate(tmp_path, ko_tok, capsys):
    from taesan.cli import main
    from taesan.models import create

    base = tmp_path / "base"
    create("bert", vocab_size=ko_tok.vocab_size, n_positions=32, d_model=32, n_layers=1, n_heads=2, d_ff=64).save(base)
    ko_tok.save(base / "tokenizer.json")
    examples = [char_example(SENT, SENT_TAGS), char_example("어제 민수를 만났어", ["B-DT", "I-DT", "O", "B-PS", "I-PS"] + ["O"] * 5)] * 5
    klue_file(tmp_path / "klue.tsv", examples)
    out = tmp_path / "out"
    assert main(["finetune", "--task", "ner", "--model", str(base), "--train", str(tmp_path / "klue.tsv"), "--out", str(out),
                 "--max-steps", "20", "--lr", "3e-3", "--threads", "1", "--no-progress"]) == 0
    assert json.loads((out / "task.json").read_text())["unit"] == "char"
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", SENT]) == 0
    [line] = capsys.readouterr().out.splitlines()
    pred = json.loads(line)
    assert pred["input"] == SENT and all(SENT[e["start"]:e["end"]] == e["text"] for e in pred["entities"])
    assert main(["predict", "--model", str(out), SENT]) == 0
    assert capsys.readouterr().out.endswith(f"\t{SENT}\n")
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "klue.tsv")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == 10 and scores["units"] == 5 * (18 + 10) and 0 <= scores["f1"] <= 1
    (tmp_path / "bad.tsv").write_text("## s\n민\tB-PS\n수 I-PS\n", encoding="utf-8")
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "bad.tsv")]) == 2
    assert capsys.readouterr().err.strip().endswith("line 3: expected 'character<TAB>tag' (KLUE-NER layout), found no tab")


# ---- the file must be tagged as the model tags; predict --file takes a tagged file's sentences ----------------

CONLL = "-DOCSTART- -X- O\n\n민수는 B-PS\n어제 B-DT\n갔었어 O\n\n강남역 B-LC\n카페 O\n"


def test_ner_layout_tells_tagged_files_from_plain_text(tmp_path):
    from taesan.tasks.readers.ner import ner_layout

    cases = {"klue.tsv": (KLUE, "char"), "conll.txt": (CONLL, "word"), "plain.txt": (f"{SENT}\n강남 카페 O\n", None),
             "heading.txt": (f"## 오늘의 문장\n{SENT}\n", None), "blank.txt": ("\n\n", None)}
    for name, (content, layout) in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert ner_layout(tmp_path / name) == layout, name


def test_input_texts_are_the_sentences_of_a_tagged_file(tmp_path, ko_tok):
    """predict --file used to predict every '##' comment and every 'char<TAB>tag' line as an input of its own."""
    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    (tmp_path / "klue.tsv").write_text(KLUE, encoding="utf-8")
    (tmp_path / "conll.txt").write_text(CONLL, encoding="utf-8")
    (tmp_path / "plain.txt").write_text(f"{SENT}\n", encoding="utf-8")
    assert task.input_texts(tmp_path / "klue.tsv") == ["민수는 어제", "서울"]
    assert task.input_texts(tmp_path / "conll.txt") == ["민수는 어제 갔었어", "강남역 카페"]  # word mode splits them again
    assert task.input_texts(tmp_path / "plain.txt") is None  # one input per line, as before


def test_evaluate_refuses_another_unit_or_unknown_tags(tmp_path, ko_tok):
    """A word-level file on a character-level model scored f1 0 everywhere and exited 0, without a word."""
    chars = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)])
    model = lookup_for(chars, {"민수": "B-PS"})
    (tmp_path / "conll.txt").write_text(CONLL, encoding="utf-8")
    with pytest.raises(TaesanError, match=r"conll.txt: the file is tagged per word \(CoNLL layout\) but the model per "
                                          r"character \(KLUE-NER layout, task.json unit 'char'\)"):
        chars.evaluate(model, read_ner(tmp_path / "conll.txt"))
    words = ner_task(ko_tok, [word_example(["민수는", "어제"], ["B-PS", "B-DT"])])
    (tmp_path / "klue.tsv").write_text(KLUE, encoding="utf-8")
    with pytest.raises(TaesanError, match=r"klue.tsv: the file is tagged per character \(KLUE-NER layout\) but the model "
                                          r"per word"):
        words.evaluate(lookup_for(words, {}), read_ner(tmp_path / "klue.tsv"))
    (tmp_path / "other.tsv").write_text("## s\t민수\n민\tB-PER\n수\tI-PER\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"other.tsv, line 2: unknown label 'B-PER' \(known: O, B-DT"):
        chars.evaluate(model, read_ner(tmp_path / "other.tsv"))


def test_cli_evaluate_says_which_unit_is_which(tmp_path, ko_tok, capsys):
    from taesan.cli import main
    from taesan.models import create

    task = ner_task(ko_tok, [char_example(SENT, SENT_TAGS)], max_length=32)
    out = tmp_path / "ner"
    task.build_model(create("bert", vocab_size=ko_tok.vocab_size, n_positions=32, d_model=16, n_layers=1, n_heads=2,
                            d_ff=32)).save(out)
    task.save(out)
    ko_tok.save(out / "tokenizer.json")
    (tmp_path / "conll.txt").write_text(CONLL, encoding="utf-8")
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "conll.txt"), "--no-progress"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "tagged per word (CoNLL layout) but the model per character" in line
    # --set unit=word would have read the file in the model's place: the unit is fixed by the training data
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "conll.txt"), "--no-progress",
                 "--set", "unit=word"]) == 2
    assert "--set unit: fixed by what the model was trained on" in capsys.readouterr().err
