"""The generated corpus of hostile checkpoint files (tests/hostile_corpus.py), opened with taesan.load and the CLI
commands that open a checkpoint, in a subprocess under a memory cap (RLIMIT_AS): each file gives one TaesanError
line (exit 2), no traceback, no hang, and none costs more than a little memory beyond a good checkpoint's."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import hostile_corpus  # tests/hostile_corpus.py (pytest puts tests/ on the path)
import pytest

from taesan.safetensors_header import MAX_TENSORS

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 3 * 2**30  # the child's whole virtual memory: torch takes ~0.7 GB, a 12 GB tensor would not fit
EXTRA_RSS_MB = 250  # over a good checkpoint's load, per hostile file
SECONDS_PER_FILE = 5.0


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[dict]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the memory cap and peak-memory readings are Linux's (RLIMIT_AS, /proc/self/status)")
    root = tmp_path_factory.mktemp("hostile")
    out = root / "outcomes.jsonl"
    code = f"import hostile_corpus; hostile_corpus.main({str(root / 'corpus')!r}, {str(out)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env,
                              preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail("the hostile corpus did not finish in 240 s: some file hangs a loader")
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_every_hostile_file_is_one_clean_error(outcomes):
    hostile = [o for o in outcomes if not o["case"].startswith("control")]
    assert len({o["case"] for o in hostile}) >= 50
    bad = [f"{o['case']} ({o['way']}): {o['result']}: {o['message'][:300]}" for o in hostile if o["result"] != "error"]
    assert not bad, "\n".join(bad)
    for o in hostile:
        assert o["message"].startswith(("taesan.load: error: ", f"taesan {o['way']}: error: ")), o
        expect = o["extra"]["expect"]
        assert not expect or __import__("re").search(expect, o["message"]), f"{o['case']}: {o['message']}"


def test_the_corpus_tries_one_over_the_entry_cap():
    assert hostile_corpus.MAX_TENSORS == MAX_TENSORS


def test_the_control_loads(outcomes):
    """The harness would notice a file that loads: a good checkpoint does."""
    assert [o["result"] for o in outcomes if o["case"].startswith("control")] == ["accepted"]


def test_no_file_hangs_or_costs_memory(outcomes):
    baseline = next(o["peak_mb"] for o in outcomes if o["case"].startswith("control"))
    slow = [(o["case"], o["way"], round(o["seconds"], 2)) for o in outcomes if o["seconds"] > SECONDS_PER_FILE]
    assert not slow
    heavy = [(o["case"], o["way"], round(o["peak_mb"])) for o in outcomes if o["peak_mb"] > baseline + EXTRA_RSS_MB]
    assert not heavy, f"baseline {baseline:.0f} MB"
