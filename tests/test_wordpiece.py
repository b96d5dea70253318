"""WordPiece: ids and offsets equal HF's BertTokenizerFast on the shared data with MiniLM's vocab.txt; offsets
slice the original text; score-based training (count(ab) / count(a)·count(b)) differs from frequency where it should."""
from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taesan.errors import TaesanError
from taesan.tokenizers import WordPieceTokenizer, load
from taesan.tokenizers.wordpiece import BertNormalizer
from taesan.tokenizers.wordpiece_train import learn

EDGE_LINES = [
    "", " ", "   runs   of \t\t spaces  \n and\r\nnewlines  ", "어제 카페 갔었어", "어제 카페 갔었는데요!!",
    "티끌 모아 태산 😀😀 👍🏽 ❤️ 🇰🇷", "Héllo WÖRLD, naïve café — ‘quotes’ “double” …", "中文字符和日本語のテキスト",
    "ctrl\x00chars\x01here\x7f and\u200bzero\ufeffwidth\ufffd", "nbsp\xa0ideographic\u3000space\u2028line",
    "a" * 150 + " short", "don't stop, it's 3.14 $100 (ok) [x] {y} <z> ~^|`", "İstanbul ΣΊΣΥΦΟΣ straße",
    "ㅋㅋㅋㅋ ㅠㅠ ㄱㄴㄷ", "3·1운동 4·19 ‘민주’", "tab\tseparated\tcolumns\t1",
]


@pytest.fixture(scope="module")
def bert_pair(minilm_dir, tmp_path_factory):
    """(taesan, HF) tokenizers from the same vocab.txt; HF builds its fast tokenizer from vocab.txt + config."""
    from transformers import BertTokenizerFast

    d = tmp_path_factory.mktemp("vocab_only")
    shutil.copy(minilm_dir / "vocab.txt", d / "vocab.txt")
    shutil.copy(minilm_dir / "tokenizer_config.json", d / "tokenizer_config.json")
    lower = json.loads((minilm_dir / "tokenizer_config.json").read_text())["do_lower_case"]
    hf = BertTokenizerFast.from_pretrained(str(d))
    ours = WordPieceTokenizer.from_vocab_txt(d / "vocab.txt", lowercase=lower)
    return ours, hf


def _shared_lines(root: Path) -> list[str]:
    lines: list[str] = []
    for sub, cap in [("corpus", 250), ("sentiment", 250), ("nli", 250), ("translation", 250), ("english", 250)]:
        for f in sorted((root / sub).iterdir()):
            if f.suffix == ".gz":
                continue
            raw = f.read_text(encoding="utf-8").split("\n")
            if f.suffix == ".jsonl":
                lines += [json.loads(x)["text"][:3000] for x in raw[:12] if x.strip()]
            else:
                lines += raw[:cap]
    return lines


def _compare(ours, hf, lines):
    ref = hf(lines, return_offsets_mapping=True)
    for n, line in enumerate(lines):
        enc = ours.encode(line)
        assert enc.ids == ref["input_ids"][n], (line[:80], enc.tokens)
        assert enc.offsets == [tuple(o) for o in ref["offset_mapping"][n]], line[:80]
        assert enc.word_ids == ref.word_ids(n), line[:80]


def test_ids_offsets_word_ids_equal_hf_on_shared_data(bert_pair, shared_data):
    ours, hf = bert_pair
    lines = _shared_lines(shared_data) + EDGE_LINES
    assert any("😀" in x for x in lines) and any("  " in x for x in lines)
    assert sum(1 for x in lines if any("가" <= c <= "힣" for c in x)) > 500
    _compare(ours, hf, lines)


def test_cased_mode_and_pairs_equal_hf(minilm_dir, tmp_path):
    from transformers import BertTokenizerFast

    shutil.copy(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}))
    hf = BertTokenizerFast.from_pretrained(str(tmp_path))
    ours = WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt", lowercase=False)
    _compare(ours, hf, EDGE_LINES)
    ref = hf("Who wrote it?", "Hamlet was WRITTEN by Shakespeare.")
    enc = ours.encode("Who wrote it?", "Hamlet was WRITTEN by Shakespeare.")
    assert enc.ids == ref["input_ids"] and enc.type_ids == ref["token_type_ids"]


TEXT = st.text(alphabet=st.sampled_from(list("어제카페갔었는데요 \t\nabcXYZ éü,.!?'中😀🇰\x00\u200b\xa0ㅋ")), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_random_text_equals_hf(bert_pair, text):
    ours, hf = bert_pair
    _compare(ours, hf, [text])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_offsets_slice_the_original_text(bert_pair, text):
    """What holds: normalize(text[start:end]) contains the token without its ## prefix (a token may cover
    part of a character's normalized form, e.g. one jamo of a syllable, and [UNK] covers its whole word)."""
    ours, _ = bert_pair
    norm = BertNormalizer(lowercase=True)
    enc = ours.encode(text, add_special_tokens=False)
    for tok, (s, e) in zip(enc.tokens, enc.offsets):
        assert 0 <= s < e <= len(text)
        if tok == "[UNK]" or tok in ours.special_tokens:  # a special token written in the text is matched as is
            assert tok == "[UNK]" or text[s:e] == tok
        else:
            assert tok.removeprefix("##") in norm.normalize(text[s:e])[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_fast_path_equals_the_generic_pipeline(bert_pair, text):
    from taesan.tokenizers.base import Tokenizer

    ours, _ = bert_pair
    for add in (True, False):
        assert ours.encode(text, add_special_tokens=add) == Tokenizer.encode(ours, text, add_special_tokens=add)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.characters(), max_size=50))
def test_any_input_including_surrogates_never_crashes(text):
    tok = WordPieceTokenizer({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "##b": 4})
    enc = tok.encode(text + "\ud800" + text)
    assert enc.tokens[0] == "[CLS]" and len(enc.ids) == len(enc.offsets)


def test_long_words_become_unk_and_long_texts_work(bert_pair):
    ours, hf = bert_pair
    word = "abc" * 40  # 120 characters > max_input_chars_per_word = 100
    assert ours.encode(word, add_special_tokens=False).tokens == ["[UNK]"]
    assert ours.encode(word, add_special_tokens=False).offsets == [(0, 120)]
    long_text = "어제 카페 갔었어. The cafe was full! " * 2000
    assert ours.encode(long_text).ids == hf(long_text)["input_ids"]


# ---- training ------------------------------------------------------------------------------------------
def test_score_choice_differs_from_frequency_hand_computed():
    """Words ab x4, ac x4, xy x1. Symbols: a=8, ##b=4, ##c=4, x=1, ##y=1.
    Pair counts: (a,##b)=4, (a,##c)=4, (x,##y)=1 -> frequency picks (a,##b); scores: 4/(8*4)=0.125 twice,
    1/(1*1)=1 -> WordPiece picks (x,##y). Then (a,##b) wins the 0.125 tie (equal counts; ##b is older), after
    which a=4, so (a,##c) scores 4/(4*4)=0.25."""
    seen = []
    vocab, merges = learn({"ab": 4, "ac": 4, "xy": 1}, vocab_size=5 + 5 + 3, min_frequency=1,
                          special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                          on_merge=lambda step, pair, new, score, count: seen.append((step, pair, new, score, count)))
    assert merges == [("x", "##y"), ("a", "##b"), ("a", "##c")]
    assert seen == [(1, ("x", "##y"), "xy", 1.0, 1), (2, ("a", "##b"), "ab", 0.125, 4), (3, ("a", "##c"), "ac", 0.25, 4)]
    assert list(vocab)[-3:] == ["xy", "ab", "ac"] and len(vocab) == 13


def test_hf_course_example_first_merges():
    """hug 10, pug 5, pun 12, bun 4, hugs 5: every pair with ##u scores 1/36 but (##g,##s) = 5/(20*5) = 1/20,
    although (##u,##g) is the most frequent pair (20). Next, all pairs tie at 1/36 and the most frequent,
    (p,##u) = 17, wins."""
    counts = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    _, merges = learn(counts, vocab_size=1 + 7 + 2, min_frequency=1, special_tokens=["[UNK]"])
    assert merges == [("##g", "##s"), ("p", "##u")]
    _, strict = learn(counts, vocab_size=1 + 7 + 1, min_frequency=6, special_tokens=["[UNK]"])
    # min_frequency=6 rules out (##g,##s) (seen 5 times); every other pair scores 1/36, and before any merge
    # the most frequent of them is (##u,##g) = 20
    assert strict == [("##u", "##g")]


def test_frequency_rule_merges_the_most_frequent_pair_hand_computed():
    """The same words under merge_rule="frequency" (BPE's criterion): (a,##b)=4 and (a,##c)=4 tie and ##b is older,
    then (a,##c)=4 (a's count does not matter here), and the rare (x,##y)=1 comes last. On the course example the
    most frequent pair (##u,##g)=20 goes first, then (##u,##n)=16 (pun 12 + bun 4)."""
    _, merges = learn({"ab": 4, "ac": 4, "xy": 1}, vocab_size=5 + 5 + 3, min_frequency=1,
                      special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], merge_rule="frequency")
    assert merges == [("a", "##b"), ("a", "##c"), ("x", "##y")]
    counts = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    _, merges = learn(counts, vocab_size=1 + 7 + 2, min_frequency=1, special_tokens=["[UNK]"], merge_rule="frequency")
    assert merges == [("##u", "##g"), ("##u", "##n")]
    with pytest.raises(TaesanError, match="merge rule"):
        learn(counts, vocab_size=20, merge_rule="bpe")


def test_frequency_rule_merges_common_korean_syllables_first():
    """영화 x20, 영어 x10, 국화 x10, 갸뱌 x2: the likelihood score ranks the rare pair first (2 / (2*2) = 0.5 against
    20 / (30*30) for 영+##화), so common syllable pairs wait; the frequency rule merges 영+##화 (20) first.
    Both tokenizers decode back to the text."""
    lines = ["영화"] * 20 + ["영어"] * 10 + ["국화"] * 10 + ["갸뱌"] * 2
    likely = WordPieceTokenizer.train(lines, vocab_size=100, min_frequency=2, workers=1)
    frequent = WordPieceTokenizer.train(lines, vocab_size=100, min_frequency=2, workers=1, merge_rule="frequency")
    assert likely.merges[0] == ("갸", "##뱌") and frequent.merges[0] == ("영", "##화")
    for tok in (likely, frequent):
        assert tok.decode(tok.encode("영화 국화").ids) == "영화 국화"


def test_continuation_units_start_as_continuation_characters_and_never_merge_across():
    """A word given as "##는데" (a unit that continues a word) starts as ##는 ##데: its characters join the alphabet in
    their ## form only, and no merge joins it to the unit before it, because the units are separate words."""
    vocab, merges = learn({"갔었": 6, "##는데": 6, "##요": 6}, vocab_size=100, min_frequency=1, merge_rule="frequency")
    assert {"##는", "##데", "##요"} <= set(vocab) and "는" not in vocab and "요" not in vocab
    assert "갔었" in vocab and "##는데" in vocab
    assert all(not a.endswith("었") or b != "##는" for a, b in merges)  # no 갔었 + ##는: the boundary holds


def test_morpheme_aware_training_keeps_particles_apart(tmp_path):
    """Trained on 이순신은 / 이순신이 / 이순신을 …, the frequency rule alone merges name and particle (이순신은 is one
    piece); with morphemes=True every merge stays inside a kiwipiepy unit, so the name keeps its edge (이순신 ##은).
    The result is a plain WordPiece vocabulary: it saves, loads and decodes as any other."""
    pytest.importorskip("kiwipiepy")
    lines = ["이순신은 장군이다", "이순신이 이겼다", "이순신을 기억한다", "세종은 왕이다", "세종이 만들었다"] * 10
    plain = WordPieceTokenizer.train(lines, vocab_size=200, min_frequency=2, workers=1, merge_rule="frequency")
    split = WordPieceTokenizer.train(lines, vocab_size=200, min_frequency=2, workers=1, merge_rule="frequency",
                                     morphemes=True)
    assert plain.encode("이순신은", add_special_tokens=False).tokens == ["이순신은"]
    assert split.encode("이순신은", add_special_tokens=False).tokens == ["이순신", "##은"]
    assert split.encode("세종이", add_special_tokens=False).tokens == ["세종", "##이"]
    split.save(tmp_path / "t.json")
    again = load(tmp_path / "t.json")
    assert again.vocab == split.vocab and again.decode(again.encode("이순신은 세종이").ids) == "이순신은 세종이"
    hf = pytest.importorskip("tokenizers").Tokenizer.from_file(str(tmp_path / "t.json"))
    assert hf.encode("이순신은 세종이 장군을").ids == split.encode("이순신은 세종이 장군을").ids


def test_train_on_text_reaches_vocab_size_and_encodes():
    lines = ["어제 카페 갔었어", "어제 카페 갔었는데요", "오늘 카페 갔었다", "내일 카페 갈 거야", "hello world", "hello there"] * 20
    merges = []
    tok = WordPieceTokenizer.train(lines, vocab_size=45, min_frequency=2, on_merge=lambda *a: merges.append(a[1]), workers=1)
    alphabet = {w[0] for w in " ".join(lines).split()} | {"##" + c for w in " ".join(lines).split() for c in w[1:]}
    assert tok.vocab_size == 45 and merges == tok.merges and len(merges) == 45 - 5 - len(alphabet)
    enc = tok.encode("어제 카페 갔었어")
    assert "[UNK]" not in enc.tokens and enc.tokens[0] == "[CLS]"
    assert tok.decode(enc.ids) == "어제 카페 갔었어"
    assert tok.encode("냥").tokens == ["[CLS]", "[UNK]", "[SEP]"]
    # with room to spare, merging stops when every word is one token
    full = WordPieceTokenizer.train(lines, vocab_size=1000, min_frequency=2, workers=1)
    assert all(w in full.vocab for w in " ".join(lines).split()) and full.vocab_size < 1000


def test_normalizer_is_characterwise():
    n = BertNormalizer(lowercase=True)
    text, origin = n.normalize("É中\x00가")
    assert text == "e 中 " + unicodedata.normalize("NFD", "가")
    assert origin == [0, 1, 1, 1, 3, 3]
