"""One-line errors everywhere: a flag value the parser refuses is one line naming the flag (and its choices), exit 2,
for every command; `tokenizer train`'s --output and WordPiece's smallest vocabulary."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from taesan.cli import COMMANDS, build_parser, main
from taesan.tokenizers import load


def _choice_options():
    """(argv prefix, option, choices) for every option with choices in every command and sub-command."""
    found = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*prefix, name])
            elif action.option_strings and action.choices:
                found.append((prefix, action.option_strings[-1], list(action.choices)))

    walk(build_parser(), [])
    return found


CHOICES = _choice_options()


def test_every_command_has_been_walked():
    commands = {prefix[0] for prefix, _, _ in CHOICES}
    assert {"tokenizer", "pretrain", "finetune"} <= commands  # --kind, --objective, --task ...
    assert len(CHOICES) >= 8


@pytest.mark.parametrize("prefix, option, choices", CHOICES, ids=[f"{' '.join(p)} {o}" for p, o, _ in CHOICES])
def test_a_bad_choice_is_one_line_naming_the_flag_and_its_choices(prefix, option, choices, capsys):
    """`--kind bogus` printed a usage block."""
    assert main([*prefix, option, "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"taesan {' '.join(prefix)}: error: argument {option}")
    assert all(repr(c) in err or str(c) in err for c in choices), err
    assert "usage:" not in err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unknown_flags_and_missing_arguments_are_one_line_for_every_command(command, capsys):
    assert main([command, "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"taesan {command}"), err
    assert "usage:" not in err


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    ([], "the following arguments are required: COMMAND"),
    (["generate", "--model", "m", "--prompt", "x", "--top-k", "many"], "argument --top-k: invalid int value: 'many'"),
    (["tokenizer", "train", "--kind", "bpe"], "the following arguments are required: --vocab-size"),
])
def test_other_parser_errors_are_one_line_too(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_help_still_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        main(["tokenizer", "train", "--help"])
    assert e.value.code == 0 and "--vocab-size" in capsys.readouterr().out


# ---- tokenizer train ------------------------------------------------------------------------------------------


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("어제 카페 갔었어\n오늘 카페 갔었다\nhello world\n" * 20, encoding="utf-8")
    return path


def test_output_in_a_missing_directory_is_created_and_said(corpus, tmp_path, capsys):
    """It created /missing/dir silently; now it says so (README: `tokenizer train --output`)."""
    out = tmp_path / "new" / "dir" / "t.json"
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "280", "--input", str(corpus), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"-> {out} (created the directory {tmp_path / 'new'})" in printed
    assert load(out).vocab_size > 0
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "280", "--input", str(corpus), "--output", str(out)]) == 0
    assert "created" not in capsys.readouterr().out  # nothing new to say the second time


def test_a_file_where_the_directory_goes_is_refused_before_training(corpus, tmp_path, capsys):
    out = corpus / "t.json"
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "280", "--input", str(corpus), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"taesan tokenizer: error: --output {out}: {corpus} is a file, not a directory"


@pytest.mark.parametrize("size", ["3", "5", "20"])
def test_wordpiece_refuses_a_size_below_the_alphabet_plus_the_special_tokens(size, corpus, tmp_path, capsys):
    """--vocab-size 3 wrote a 5-token vocabulary without a word."""
    out = tmp_path / "wp.json"
    assert main(["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", size, "--input", str(corpus),
                 "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    alphabet = len(set("어제카페갔었오늘다helowrd"))
    assert len(err.splitlines()) == 1
    assert re.search(f"--vocab-size {size} is below the alphabet plus the special tokens: the corpus has {alphabet} "
                     f"distinct characters and there are 5 special tokens; use at least {alphabet + 5}", err), err
    assert not out.exists()
    assert main(["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", str(alphabet + 5), "--min-frequency", "1",
                 "--input", str(corpus), "--output", str(out)]) == 0
    tok = load(out)
    assert tok.encode("어제 카페").tokens[1:-1] != ["[UNK]"] * len(tok.encode("어제 카페").tokens[1:-1])
