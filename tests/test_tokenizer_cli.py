"""`taesan tokenizer train / encode / compare`: files written, output printed, and user errors as exit code 2
with one line and no traceback."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taesan.cli import main
from taesan.tokenizers import load

ROOT = Path(__file__).resolve().parents[1]
LINES = ["어제 카페 갔었어", "어제 카페 갔었는데요", "오늘 카페 갔었다", "티끌 모아 태산", "카페 라떼 맛있어",
         "내일 카페 갈 거야", "Hello world", "먹었어 먹었는데요 먹었다"]


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(f"{line} {i % 7}" for i in range(40) for line in LINES) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["word", "char", "bpe", "wordpiece"])
def test_train_then_encode(kind, corpus, tmp_path, capsys):
    out = tmp_path / f"{kind}.json"
    assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", "300", "--min-frequency", "2",
                 "--input", str(corpus), "--output", str(out)]) == 0
    tok = load(out)
    assert tok.kind == kind and 0 < tok.vocab_size <= 300
    capsys.readouterr()
    assert main(["tokenizer", "encode", "--tokenizer", str(out), "어제 카페 갔었어"]) == 0
    printed = capsys.readouterr().out
    enc = tok.encode("어제 카페 갔었어")
    assert f"ids: {' '.join(map(str, enc.ids))}" in printed
    assert f"({enc.offsets[1][0]}, {enc.offsets[1][1]})" in printed
    covered = [repr("어제 카페 갔었어"[s:e]) for s, e in enc.offsets if e > s]
    assert all(c in printed for c in covered)  # the covered text of each token, not byte symbols (Ġì¹´íİĺ) alone


@pytest.mark.parametrize("kind, ran_out", [("wordpiece", "no pair of pieces left to merge"), ("word", "the corpus has no more distinct words")])
def test_a_vocabulary_short_of_vocab_size_says_why(kind, ran_out, corpus, tmp_path, capsys):
    """--vocab-size is a ceiling: a small corpus runs out of merges (or words) first, and the user is told so
    rather than left to wonder why 32,000 became a few hundred; a vocabulary that fills it says nothing more."""
    out = tmp_path / "short.json"
    assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", "32000", "--input", str(corpus),
                 "--output", str(out)]) == 0
    got = load(out).vocab_size
    printed = capsys.readouterr().out
    assert got < 32000
    assert f"note: {got:,} tokens of the 32,000 asked: {ran_out}" in printed
    assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", str(got - 1), "--input", str(corpus),
                 "--output", str(out)]) == 0
    assert load(out).vocab_size == got - 1 and "note:" not in capsys.readouterr().out


def test_train_special_tokens_option(corpus, tmp_path):
    out = tmp_path / "w.json"
    assert main(["tokenizer", "train", "--kind", "word", "--vocab-size", "50", "--special-tokens", "[UNK]", "<s>",
                 "--input", str(corpus), "--output", str(out)]) == 0
    assert load(out).special_tokens == ["[UNK]", "<s>"]


def test_merge_rule_option_reaches_the_wordpiece_trainer(corpus, tmp_path, capsys):
    """With room for one merge, --merge-rule frequency merges 카+##페 (200 times in the corpus, the most frequent
    pair); the default likelihood rule merges a rarer pair that always occurs together (티+##끌 scores 40/(40*40)
    against 200/(200*200)). Another kind refuses the option in one line."""
    words = corpus.read_text(encoding="utf-8").split()
    alphabet = {w[0] for w in words} | {"##" + c for w in words for c in w[1:]}
    size = str(5 + len(alphabet) + 1)
    first = {}
    for rule in ("likelihood", "frequency"):
        out = tmp_path / f"{rule}.json"
        args = ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", size, "--input", str(corpus), "--output", str(out)]
        assert main(args + (["--merge-rule", rule] if rule == "frequency" else [])) == 0
        first[rule] = load(out).encode("카페", add_special_tokens=False).tokens
    assert first == {"likelihood": ["카", "##페"], "frequency": ["카페"]}
    capsys.readouterr()
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--merge-rule", "frequency",
                 "--input", str(corpus), "--output", str(tmp_path / "b.json")]) == 2
    assert "--merge-rule is a wordpiece option" in capsys.readouterr().err


def test_morphemes_option_reaches_the_wordpiece_trainer(corpus, tmp_path, capsys):
    """--morphemes cuts 갔었는데요 at kiwipiepy's units before merging, so the vocabulary holds 갔었 and ##는데요, never
    갔었는데요 whole (which plain frequency training learns: it occurs 40 times); another kind refuses it."""
    pytest.importorskip("kiwipiepy")
    pieces = {}
    for flag in ([], ["--morphemes"]):
        out = tmp_path / f"m{len(flag)}.json"
        assert main(["tokenizer", "train", "--kind", "wordpiece", "--merge-rule", "frequency", "--vocab-size", "300",
                     "--input", str(corpus), "--output", str(out), "--no-progress"] + flag) == 0
        assert "morphemes:" not in capsys.readouterr().err  # --no-progress: no bar in a log
        pieces[bool(flag)] = load(out).encode("갔었는데요", add_special_tokens=False).tokens
    assert pieces == {False: ["갔었는데요"], True: ["갔었", "##는데요"]}
    capsys.readouterr()
    assert main(["tokenizer", "train", "--kind", "char", "--vocab-size", "300", "--morphemes",
                 "--input", str(corpus), "--output", str(tmp_path / "c.json")]) == 2
    assert "--morphemes is a wordpiece option" in capsys.readouterr().err


def test_user_errors_exit_2_in_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    for args in (["tokenizer", "encode", "--tokenizer", str(tmp_path / "missing.json"), "x"],
                 ["tokenizer", "encode", "--tokenizer", str(broken), "x"],
                 ["tokenizer", "train", "--kind", "word", "--vocab-size", "10", "--input", str(tmp_path / "no.txt"),
                  "--output", str(tmp_path / "o.json")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("taesan tokenizer: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_train_refuses_empty_files_directories_and_vocab_sizes_below_1(corpus, tmp_path, capsys):
    """Each of these used to write a tokenizer of special tokens only, with exit code 0."""
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    cases = [(["--input", str(tmp_path / "empty.txt")], "empty.txt: the file is empty"),
             (["--input", str(tmp_path / "folder")], "folder: is a directory"),
             (["--input", str(corpus), "--vocab-size", "0"], "--vocab-size must be >= 1, got 0"),
             (["--input", str(corpus), "--vocab-size", "-5"], "--vocab-size must be >= 1, got -5")]
    for extra, message in cases:
        out = tmp_path / "o.json"
        assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", *extra, "--output", str(out)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1 and captured.out == "", captured
        assert not out.exists()
    assert main(["tokenizer", "compare", "--input", str(tmp_path / "folder"), "--out", str(tmp_path / "c")]) == 2
    assert "is a directory" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_cli_process_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "taesan", "tokenizer", "encode", "--tokenizer", str(tmp_path / "nope.json"), "x"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nope.json" in proc.stderr


def test_compare_prints_table_and_writes_chart(corpus, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["tokenizer", "compare", "--input", str(corpus), "--vocab-size", "120", "--kinds", "word", "char",
                 "bpe", "wordpiece", "--variants", "갔었어", "갔었는데요", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for kind in ("word", "char", "bpe", "wordpiece"):
        assert f"\n{kind} " in printed
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["kind"]: r for r in json.loads((out / "compare.json").read_text(encoding="utf-8"))}
    assert rows["char"]["variants"]["갔었는데요"] == ["갔", "었", "는", "데", "요"]
    assert rows["word"]["tokens_per_sentence"] < rows["char"]["tokens_per_sentence"]
    assert rows["bpe"]["unk_rate"] == 0.0 and 0 <= rows["word"]["unk_rate"] <= 1
    numbered = any(re.search(r"\(\d+/\d+\)$", p) for r in rows.values() for v in r["variants"].values() for p in v)
    assert numbered and "byte-level BPE spelled" in printed  # a 120-token BPE splits syllables; the "(k/n)" is explained
    assert "bpe: note: 257 tokens, more than the 120 asked: its base alphabet (256 bytes)" in printed


def test_compare_refuses_a_wordpiece_size_train_refuses(corpus, tmp_path, capsys):
    """compare trained a 10-token WordPiece (specials and a few characters, 88% [UNK]) where train says no."""
    assert main(["tokenizer", "compare", "--input", str(corpus), "--vocab-size", "10", "--kinds", "bpe", "wordpiece",
                 "--out", str(tmp_path / "c")]) == 2
    assert "--vocab-size 10 is below the alphabet plus the special tokens" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_shows_wordpiece_merged_within_morphemes_beside_plain_wordpiece(corpus, tmp_path, capsys):
    """The kind wordpiece-morphemes is WordPiece trained with --merge-rule frequency --morphemes: it keeps the ending
    apart (갔었 + 는데요) where plain frequency merging would not; compare.json and the table name it."""
    pytest.importorskip("kiwipiepy")
    out = tmp_path / "cmp"
    assert main(["tokenizer", "compare", "--input", str(corpus), "--vocab-size", "300", "--kinds", "wordpiece",
                 "wordpiece-morphemes", "--variants", "갔었는데요", "--out", str(out)]) == 0
    assert "\nwordpiece-morphemes " in capsys.readouterr().out
    rows = {r["kind"]: r for r in json.loads((out / "compare.json").read_text(encoding="utf-8"))}
    assert rows["wordpiece-morphemes"]["variants"]["갔었는데요"] == ["갔었", "는데요"]


def test_a_closed_pipe_ends_quietly(corpus, tmp_path):
    """`taesan ... | head` closes the pipe early: that was a BrokenPipeError traceback."""
    tok = tmp_path / "tok.json"
    assert main(["tokenizer", "train", "--kind", "char", "--vocab-size", "100", "--input", str(corpus), "--output", str(tok)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "taesan", "tokenizer", "encode", "--tokenizer", str(tok), "어제 카페 " * 4000],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert proc.stdout.readline().startswith(b"CharTokenizer")
    proc.stdout.close()  # like head -1
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err


def test_byte_level_pieces_of_one_syllable_are_numbered_not_doubled():
    """The compare table showed 갔었어 as "갔 + 갔 + 었 + 어": two byte tokens of 갔 looked like a doubled 갔."""
    from taesan.tokenizers import BPETokenizer
    from taesan.tokenizers.compare import surface_pieces

    bytes_only = BPETokenizer.train(["가"], vocab_size=257, special_tokens=["<|endoftext|>"])  # no merges: 3 bytes a syllable
    assert surface_pieces(bytes_only, "갔어") == ["갔(1/3)", "갔(2/3)", "갔(3/3)", "어(1/3)", "어(2/3)", "어(3/3)"]
    merged = BPETokenizer.train(["갔어 " * 50], vocab_size=300, special_tokens=["<|endoftext|>"])
    assert surface_pieces(merged, "갔어") == ["갔어"]
