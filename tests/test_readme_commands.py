"""The README's commands run as printed after its own set-up: `taesan` is on the PATH once the set-up says to activate
the environment the install script made, and every `taesan ...` line of "Use it" names a command and flags the
parser accepts (documented options such as finetune's --max-minutes and --mode prompt-lm, evaluate's --set)."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from taesan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _use_it_commands() -> list[list[str]]:
    """The `taesan ...` lines of the "Use it" block, continuations joined, comments and `&& next` split off."""
    block = re.search(r"```bash\n(.*?)```", _section("Use it"), re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            if words[0] == "taesan":
                commands.append(words[1:cut])
            words = words[cut + 1:]
    return commands


def test_the_set_up_puts_taesan_on_the_path_before_any_bare_taesan_command():
    setup = _section("Set up (two commands, on a fresh machine)")
    install = (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert "python3 -m venv .venv" in install  # the script leaves taesan in .venv/bin ...
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["taesan"] == "taesan.cli:main"
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    run = [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.split("#")[0].strip()]
    activate = run.index(". .venv/bin/activate")  # ... so the set-up says, once, to put it on the PATH
    for line in run[:activate]:  # before that, only .venv/bin/... spelled out
        assert not re.search(r"(^|&&\s*)taesan\b", line), line


@pytest.mark.parametrize("argv", _use_it_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_use_it_command_parses(argv):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # a refused flag or choice raises (the CLI's one-line error)
    assert not extra, f"unknown arguments {extra}"
    assert callable(args._run)


def test_the_documented_new_options_are_there():
    commands = [" ".join(c) for c in _use_it_commands()]
    assert any("finetune" in c and "--mode prompt-lm" in c and "--verbalizer" in c for c in commands)
    assert any(c.startswith("evaluate") and "--set source_column=" in c for c in commands)
    assert "--max-minutes" in _section("Use it") and "defaults: lr" in README
