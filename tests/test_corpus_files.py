"""Corpus files as `pretrain --corpus`, `tokenizer train --input` and `word2vec train --corpus` read them (one rule,
tokenizers/corpus.py): a data table gives its text column only, a JSON list its "text" fields, anything else that is
JSON is one clear error, plain text its lines; the token cache is rebuilt when the rule reads a file differently."""
from __future__ import annotations

import json

import pytest

from taesan.cli import main as cli_main
from taesan.data.cache import build_token_cache
from taesan.errors import TaesanError
from taesan.models.word2vec import Word2Vec
from taesan.tokenizers import CharTokenizer
from taesan.tokenizers.corpus import corpus_format, describe, iter_texts

REVIEWS = ["아 더빙 진짜 짜증나네요 목소리", "흠 포스터보고 초딩영화줄 오버연기조차 가볍지 않구나", "너무재밓었다그래서보는것을추천한다"]
NSMC = "".join(f"{row}\n" for row in [  # NSMC's ratings_train.txt: a header, ids, labels, an empty review
    "id\tdocument\tlabel", f"9976970\t{REVIEWS[0]}\t0", f"3819312\t{REVIEWS[1]}\t1", "10265843\t\t0", f"9045019\t{REVIEWS[2]}\t0"])


@pytest.mark.parametrize("name, prefix, newline", [("ratings_train.txt", "", "\n"), ("ratings_bom_crlf.txt", "\ufeff", "\r\n"),
                                                   ("ratings.tsv", "", "\n")])
def test_a_table_gives_its_text_column_and_nothing_else(tmp_path, name, prefix, newline):
    path = tmp_path / name
    path.write_bytes((prefix + NSMC.replace("\n", newline)).encode("utf-8"))
    assert corpus_format(path) == ("table", "document")
    assert list(iter_texts(path)) == REVIEWS  # no header, no id, no label, the empty review skipped
    assert describe(path) == f"corpus: {name} is a table; reading its 'document' column (3 rows)"


def test_a_csv_is_read_for_its_text_column_with_quotes(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,text,label\n1,"좋다, 정말 좋다",1\n2,"두 줄\n리뷰 ""인용""",0\n', encoding="utf-8")
    assert list(iter_texts(path)) == ["좋다, 정말 좋다", '두 줄\n리뷰 "인용"']


def test_plain_text_and_jsonl_read_as_before(tmp_path):
    plain = tmp_path / "corpus.txt"
    plain.write_text("text\n첫 줄\t탭이 있는 줄\n\n끝\n", encoding="utf-8")  # "text" alone is not a table header
    assert corpus_format(plain) == ("text", None) and describe(plain) is None
    assert list(iter_texts(plain)) == ["text", "첫 줄\t탭이 있는 줄", "", "끝"]
    tabs = tmp_path / "pairs.txt"
    tabs.write_text("사과\tapple\n배\tpear\n", encoding="utf-8")  # tab-separated, but no text column named
    assert list(iter_texts(tabs)) == ["사과\tapple", "배\tpear"]
    lines = tmp_path / "c.jsonl"
    lines.write_text('{"text": "하나"}\n\n{"text": "둘", "id": 2}\n', encoding="utf-8")
    assert list(iter_texts(lines)) == ["하나", "둘"] and describe(lines) is None


def test_a_json_list_gives_its_text_fields(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"text": "하나", "id": 1}, {"text": "둘"}], ensure_ascii=False), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 1, "data": [{"text": "셋"}]}, ensure_ascii=False), encoding="utf-8")
    assert list(iter_texts([listed, wrapped])) == ["하나", "둘", "셋"]
    assert describe(listed) == "corpus: list.json is a JSON list; reading each record's 'text' (2 records)"


@pytest.mark.parametrize("name, data, says", [
    ("klue-nli.json", [{"guid": "x", "premise": "흡연은 가능합니다.", "hypothesis": "금지됩니다.", "gold_label": "contradiction"}],
     "no string field \"text\" (the first has fields guid, premise, hypothesis, gold_label)"),
    ("squad.json", {"version": "v1", "data": [{"title": "t", "paragraphs": [{"context": "본문"}]}]}, "fields title, paragraphs"),
    ("object.json", {"text": "하나"}, 'expected a JSON list of objects (or {"data": [...]})'),
])
def test_json_of_another_shape_is_one_clear_error(tmp_path, name, data, says):
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    with pytest.raises(TaesanError) as e:
        list(iter_texts(path))
    message = str(e.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message
    assert "a corpus needs plain text (one text per line), JSON Lines with \"text\", or a table" in message


def test_a_table_without_a_text_column_is_an_error(tmp_path):
    path = tmp_path / "ner.tsv"
    path.write_text("token\ttag\n이순신\tB-PS\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"ner\.tsv: no text column: .*one of document, text, sentence .*'token', 'tag'"):
        list(iter_texts(path))
    short = tmp_path / "short.txt"
    short.write_text("id\tdocument\tlabel\n1\t좋다\t1\n2\t0\n", encoding="utf-8")  # the review is missing
    with pytest.raises(TaesanError, match=r"short\.txt, line 3: expected 3 tab-separated fields"):
        list(iter_texts(short))


def test_a_cp949_file_is_reported_at_the_line_that_fails(tmp_path, capsys):
    path = tmp_path / "ratings_cp949.txt"
    path.write_bytes(("id\tdocument\tlabel\n" + "1\t재미있다\t1\n" * 3).encode("cp949"))
    plain = tmp_path / "plain_cp949.txt"
    plain.write_bytes(("ascii first line\n" * 3 + "한국어\n").encode("cp949"))
    with pytest.raises(TaesanError, match=r"ratings_cp949\.txt, line 2: not UTF-8 text"):
        list(iter_texts(path))
    with pytest.raises(TaesanError, match=r"plain_cp949\.txt, line 4: not UTF-8 text"):
        list(iter_texts(plain))
    assert cli_main(["tokenizer", "train", "--kind", "char", "--vocab-size", "50", "--input", str(path),
                     "--output", str(tmp_path / "t.json")]) == 2
    assert f"{path}, line 2: not UTF-8 text" in capsys.readouterr().err


def test_the_commands_read_the_column_and_say_so_once(tmp_path, capsys):
    table = tmp_path / "ratings_train.txt"
    table.write_text("id\tdocument\tlabel\n" + "".join(f"{7142164 + i}\t영화 정말 재밌다 {w}\t{i % 2}\n"
                                                        for i, w in enumerate(["배우", "연기", "감독"] * 20)), encoding="utf-8")
    said = "corpus: ratings_train.txt is a table; reading its 'document' column (60 rows)"
    assert cli_main(["tokenizer", "train", "--kind", "word", "--vocab-size", "100", "--min-frequency", "1",
                     "--input", str(table), "--output", str(tmp_path / "tok.json")]) == 0
    out = capsys.readouterr().out
    assert out.count(said) == 1
    vocab = json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert "영화" in vocab and not {"document", "label", "7142164", "0", "1"} & set(vocab)
    assert cli_main(["word2vec", "train", "--corpus", str(table), "--out", str(tmp_path / "w2v"), "--dim", "8",
                     "--min-count", "1", "--epochs", "1", "--no-progress"]) == 0
    assert capsys.readouterr().out.count(said) == 1
    words = Word2Vec.load(tmp_path / "w2v").words
    assert "영화" in words and not any(w.isdigit() for w in words) and "document" not in words
    nli = tmp_path / "klue-nli.json"
    nli.write_text(json.dumps([{"premise": "가", "hypothesis": "나"}]), encoding="utf-8")
    assert cli_main(["word2vec", "train", "--corpus", str(nli), "--out", str(tmp_path / "w2")]) == 2
    err = capsys.readouterr().err
    assert "a corpus needs plain text" in err and err.count("\n") == 1


def test_the_token_cache_reads_the_column_and_is_rebuilt_for_an_old_fingerprint(tmp_path):
    table = tmp_path / "ratings_train.txt"
    table.write_text(NSMC, encoding="utf-8")
    tok = CharTokenizer.train(REVIEWS + ["0123456789 idocumentlabel"], vocab_size=200, min_frequency=1)
    cache = build_token_cache([table], tok, tmp_path / "cache", tok.sep_id, valid_every=0)
    assert cache.train.n_docs == 3
    assert tok.decode(cache.train.tokens.tolist()).replace(" ", "") == "".join(REVIEWS).replace(" ", "")
    manifest_path = tmp_path / "cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["fingerprint"]["files"][0]["read_as"] == "table:document"
    del manifest["fingerprint"]["files"][0]["read_as"]  # a cache written when the file was read as lines
    manifest_path.write_text(json.dumps(manifest))
    assert not build_token_cache([table], tok, tmp_path / "cache", tok.sep_id, valid_every=0).reused
    assert build_token_cache([table], tok, tmp_path / "cache", tok.sep_id, valid_every=0).reused
