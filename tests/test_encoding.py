"""A text file that is not UTF-8 is one line naming the file and, where it can tell, what it is instead and how to
convert it: Korean text from Windows is often CP949 (EUC-KR)."""
from __future__ import annotations

import pytest

from taesan.cli import main as cli_main
from taesan.encoding import SAMPLE_BYTES, looks_like

ROWS = "id\tdocument\tlabel\n" + "".join(f"{i}\t{'정말 재미있었다' if i % 2 else '너무 지루했다'}\t{i % 2}\n" for i in range(20))


def test_looks_like_names_cp949_utf16_and_nothing_else(tmp_path):
    cases = {"cp949.txt": ROWS.encode("cp949"), "utf16.txt": ROWS.encode("utf-16"),
             "latin.txt": "café crème\n".encode("latin-1"), "binary.bin": bytes(range(256))}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
    assert looks_like(tmp_path / "cp949.txt") == "CP949"
    assert looks_like(tmp_path / "utf16.txt") == "UTF-16"
    assert looks_like(tmp_path / "latin.txt") is None  # no Hangul: no guess
    assert looks_like(tmp_path / "binary.bin") is None
    assert looks_like(tmp_path / "missing.txt") is None


def test_a_long_cp949_file_is_sampled_on_whole_lines(tmp_path):
    """The 64 KB sample may end inside a two-byte character: the guess reads whole lines only."""
    line = "가" * 7 + "\n"  # 15 bytes in CP949, so some line straddles the sample's end
    path = tmp_path / "long.txt"
    path.write_bytes((line * (SAMPLE_BYTES // 15 + 10)).encode("cp949"))
    assert looks_like(path) == "CP949"


@pytest.mark.parametrize("encoding, says", [
    ("cp949", "it reads as CP949 (EUC-KR), as Korean text saved on Windows often is: convert it, e.g. iconv -f cp949 "
              "-t utf-8"),
    ("utf-16", "it is UTF-16"),
])
def test_commands_name_the_encoding_in_one_line(tmp_path, capsys, encoding, says):
    data = tmp_path / "train.tsv"
    data.write_bytes(ROWS.encode(encoding))
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(ROWS.encode(encoding))
    good = tmp_path / "good.txt"
    good.write_text(ROWS, encoding="utf-8")
    assert cli_main(["tokenizer", "train", "--kind", "char", "--vocab-size", "50", "--input", str(corpus),
                     "--output", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert f"{corpus}, line {1 if encoding == 'utf-16' else 2}: not UTF-8 text" in err  # the line that fails, as finetune's
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "bad.json").exists()
    assert cli_main(["tokenizer", "train", "--kind", "char", "--vocab-size", "50", "--input", str(good),
                     "--output", str(tmp_path / "tok.json")]) == 0
    capsys.readouterr()
    assert cli_main(["finetune", "--task", "classification", "--model", "bert-tiny", "--tokenizer", str(tmp_path / "tok.json"),
                     "--train", str(data), "--out", str(tmp_path / "out"), "--max-steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{data}, line {1 if encoding == 'utf-16' else 2}: not UTF-8 text" in err  # CP949's header line is ASCII
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
