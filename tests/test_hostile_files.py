"""Files from somewhere else: a checkpoint directory is untrusted input. Each hostile file gives one TaesanError line,
fast, before anything large is allocated (its size is known from config.json and the safetensors header first).
The whole generated corpus, under a memory cap, is tests/test_hostile_corpus.py."""
from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import taesan
from taesan.config import MAX_INT_DIGITS, MAX_JSON_DEPTH, parse_json, read_json
from taesan.errors import TaesanError
from taesan.models import size
from taesan.safetensors_header import MAX_HEADER_BYTES, MAX_TENSORS, read_header
from taesan.tasks import load_task
from taesan.tuning.prompt import add_soft_prompt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "gpt"
    taesan.create("gpt-tiny", n_layers=2, d_model=32, n_heads=2, vocab_size=50, n_positions=16).save(d)
    return d


def _copy(src: Path, dst: Path, **config) -> Path:
    shutil.copytree(src, dst)
    if config:
        data = json.loads((dst / "config.json").read_text())
        data.update(config)
        (dst / "config.json").write_text(json.dumps(data))
    return dst


def _write_safetensors(path: Path, header: dict, data_bytes: int, sparse: bool = True) -> None:
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_bytes)  # sparse: no disk used for the zeros


@contextlib.contextmanager
def _memory_cap(extra: int = 1536 * 2**20):
    """This process's address space capped at what it uses now + `extra`, for the block: a loader that tries to
    allocate gigabytes (as the code before these checks did) fails with MemoryError instead of eating the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    cap = used + extra if hard == resource.RLIM_INFINITY else min(used + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _refused(directory: Path, match: str, seconds: float = 3.0) -> str:
    start = time.perf_counter()
    with pytest.raises(TaesanError, match=match) as e, _memory_cap():
        taesan.load(directory)
    assert time.perf_counter() - start < seconds
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- JSON ------------------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_one_line_naming_the_cap(tmp_path):
    """json.loads raised RecursionError at ~1,000 levels (a 6 KB file)."""
    path = tmp_path / "config.json"
    path.write_text("[" * 3000 + "]" * 3000)
    with pytest.raises(TaesanError, match=f"nested more than {MAX_JSON_DEPTH} levels"):
        read_json(path)
    path.write_text('{"a": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}")  # under Python's limit too
    with pytest.raises(TaesanError, match="nested more than"):
        read_json(path)
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "ok") is not None


def test_huge_integers_are_one_line(tmp_path):
    """int() refused 5,000 digits with a ValueError that escaped as a traceback."""
    path = tmp_path / "config.json"
    path.write_text('{"n_layers": ' + "7" * 5000 + "}")
    with pytest.raises(TaesanError, match=f"an integer of over 4,300 digits \\(the limit is {MAX_INT_DIGITS}\\)"):
        read_json(path)
    path.write_text('{"n_layers": ' + "7" * 50 + ', "name": "' + "7" * 50 + '"}')  # digits in a string are text
    with pytest.raises(TaesanError, match=f"an integer of 50 digits \\(the limit is {MAX_INT_DIGITS}\\)"):
        read_json(path)
    assert parse_json('{"seed": -12345678901234567890}', "x") == {"seed": -12345678901234567890}


def test_oversized_json_is_refused_before_reading(tmp_path):
    path = tmp_path / "task.json"
    with open(path, "wb") as f:
        f.truncate(64 * 2**20)
    with pytest.raises(TaesanError, match="over the limit"):
        read_json(path)


@pytest.mark.parametrize("text", ['{"model_type": "gpt", "d_model": 3', '{"model_type": "gp', '{"a": tru', ""])
def test_a_corrupted_config_is_a_whole_sentence(text, tmp_path):
    """json's "Unterminated string starting at" ended the message mid-sentence."""
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(TaesanError) as e:
        read_json(tmp_path / "config.json")
    message = str(e.value)
    assert not message.rstrip().endswith((" at", ":", "starting")), message
    assert "column" in message or "empty" in message


def test_task_json_goes_through_the_same_reader(tmp_path):
    (tmp_path / "task.json").write_text('{"task": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(TaesanError, match="nested more than"):
        load_task(tmp_path)


# ---- the safetensors header ------------------------------------------------------------------------------------


def test_a_huge_header_is_refused_at_once_naming_the_cap(tmp_path):
    """A 90 MB header with 1.2M entries took 30 s and 1.9 GB before being refused."""
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 90_000_000))
        f.truncate(8 + 90_000_000)
    start = time.perf_counter()
    with pytest.raises(TaesanError, match=f"over the limit of {MAX_HEADER_BYTES:,}"):
        read_header(path)
    assert time.perf_counter() - start < 0.5


def test_too_many_entries_are_refused_naming_the_cap(tmp_path):
    header = {f"{i:x}": {"dtype": "U8", "shape": [], "data_offsets": [i, i + 1]} for i in range(MAX_TENSORS + 1)}
    _write_safetensors(tmp_path / "model.safetensors", header, MAX_TENSORS + 1)
    with pytest.raises(TaesanError, match=f"{MAX_TENSORS + 1:,} tensors, over the limit of {MAX_TENSORS:,}"):
        read_header(tmp_path / "model.safetensors")


@pytest.mark.parametrize("entry, data, match", [
    ({"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}, 8, "dtype 'F99'"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, 8, "shape"),
    ({"dtype": "F32", "shape": [2, "x"], "data_offsets": [0, 8]}, 8, "shape"),
    ({"dtype": "F32", "shape": [1] * 20, "data_offsets": [0, 4]}, 4, "at most 8"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, 4, "needs 8 bytes"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, 8, "data_offsets"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, 4, "truncated"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}, 12, "gap"),
    ({"dtype": "F32", "shape": [2]}, 8, "exactly the fields"),
])
def test_header_entries_are_checked(entry, data, match, tmp_path):
    _write_safetensors(tmp_path / "model.safetensors", {"w": entry}, data)
    with pytest.raises(TaesanError, match=match):
        read_header(tmp_path / "model.safetensors")


def test_overlapping_tensors_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    _write_safetensors(tmp_path / "model.safetensors", header, 12)
    with pytest.raises(TaesanError, match="overlaps"):
        read_header(tmp_path / "model.safetensors")


def test_a_12_gb_sparse_tensor_is_refused_before_it_is_read(gpt_dir, tmp_path):
    """A sparse 12 GB tensor gave a MemoryError: its shape disagrees with the config, known from the header alone."""
    d = _copy(gpt_dir, tmp_path / "sparse")
    header = read_header(d / "model.safetensors")
    entries, offset = {}, 0
    for name, t in header.tensors.items():
        shape = [3 * 10**9] if name == "tok_emb.weight" else list(t.shape)
        n = 4 * int(torch.Size(shape).numel())
        entries[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    _write_safetensors(d / "model.safetensors", entries, offset)
    _refused(d, "tok_emb.weight' has shape \\(3000000000,\\), the config expects \\(50, 32\\)")


def test_weights_the_memory_cannot_hold_are_refused_naming_the_bytes(gpt_dir, tmp_path, monkeypatch):
    """Config and header agree on a model larger than the memory left: refused before the allocation."""
    import taesan.safetensors_header as header_module

    monkeypatch.setattr(header_module, "available_memory", lambda: 10_000)
    msg = _refused(gpt_dir, "of memory, 9.8 KB available")
    assert "needs" in msg


# ---- size before allocation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, match", [
    ("n_layers", 10**6, "'n_layers'=1,000,000 is over taesan's limit of 512 layers"),
    ("d_model", 10**9, "too large to exist|over taesan's limit of"),
    ("vocab_size", 10**11, "tok_emb.weight' alone has shape \\(100000000000, 32\\)"),
    ("n_positions", 10**12, "pos_emb.weight' alone has shape \\(1000000000000, 32\\)"),
])
def test_config_sizes_are_known_before_allocation(field, value, match, gpt_dir, tmp_path):
    """n_layers 10**6 climbed to 7.5 GB in 87 s; the others gave allocation tracebacks."""
    extra = {"n_heads": 2} if field == "d_model" else {}
    _refused(_copy(gpt_dir, tmp_path / field, **{field: value, **extra}), match, seconds=2.0)


def test_a_config_that_disagrees_with_the_header_is_named_before_reading(gpt_dir, tmp_path):
    d = _copy(gpt_dir, tmp_path / "wide", d_model=64, n_heads=2)
    _refused(d, "has shape \\(32,\\), the config expects \\(64,\\)")
    d = _copy(gpt_dir, tmp_path / "deep", n_layers=40)
    _refused(d, "40 layers, but model.safetensors holds only 28 tensors")


def test_an_hf_bert_with_a_million_layers_fails_fast(tmp_path):
    transformers = pytest.importorskip("transformers")
    d = tmp_path / "hfbert"
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37)
    transformers.BertModel(cfg).save_pretrained(d)
    data = json.loads((d / "config.json").read_text())
    data["num_hidden_layers"] = 10**6
    (d / "config.json").write_text(json.dumps(data))
    _refused(d, "'num_hidden_layers'=1,000,000 is over taesan's limit", seconds=1.0)
    data["num_hidden_layers"], data["hidden_size"] = 2, 64  # a config the weights do not fit: the dry run says so
    (d / "config.json").write_text(json.dumps(data))
    _refused(d, "shape")


def test_a_config_of_another_family_is_named(gpt_dir, tmp_path):
    """It said "tensor 'tok_emb.weight' is missing (52 missing in all)"."""
    bert = tmp_path / "bert"
    taesan.create("bert-tiny").save(bert)
    d = _copy(gpt_dir, tmp_path / "mixed")
    shutil.copy(bert / "model.safetensors", d / "model.safetensors")
    shutil.copy(bert / "config.json", tmp_path / "bert-config.json")
    msg = _refused(d, "model_type 'gpt', but model.safetensors holds a 'bert' model's tensors")
    assert "different models" in msg
    vit = tmp_path / "vit"
    taesan.create("vit-tiny").save(vit)
    shutil.copy(vit / "model.safetensors", d / "model.safetensors")
    _refused(d, "holds a 'vit' model's tensors")


def test_same_family_other_sizes_keeps_the_exact_tensor_message(gpt_dir, tmp_path):
    d = _copy(gpt_dir, tmp_path / "bigger")
    taesan.create("gpt-tiny", n_layers=3, d_model=32, n_heads=2, vocab_size=50, n_positions=16).save(tmp_path / "three")
    shutil.copy(tmp_path / "three" / "model.safetensors", d / "model.safetensors")
    _refused(d, "unexpected tensor 'blocks.2")


def test_planning_on_meta_is_fast_and_imports_no_compiler(tmp_path):
    """torch computes meta results through code that imports torch._dynamo (~3 s) on first use; the planning
    avoids it, so checking a checkpoint's size costs milliseconds (a fresh process, as the CLI runs)."""
    for name in ("gpt-tiny", "bert-tiny", "vit-tiny", "transformer-tiny"):
        taesan.create(name).save(tmp_path / name)
    code = ("import sys, taesan\n"
            f"for name in ('gpt-tiny', 'bert-tiny', 'vit-tiny', 'transformer-tiny'): taesan.load({str(tmp_path)!r} + '/' + name)\n"
            "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_planned_shapes_equal_the_built_ones():
    for name in ("gpt-tiny", "bert-tiny", "vit-tiny", "transformer-tiny"):
        planned = size.plan(lambda: taesan.create(name), name)
        built = taesan.create(name)
        shapes = lambda m: {k: (tuple(v.shape), v.dtype) for k, v in [*m.state_dict().items(), *m.named_buffers()]}  # noqa: E731
        assert shapes(planned) == shapes(built)
        assert all(p.is_meta for p in planned.parameters())


# ---- soft prompts ----------------------------------------------------------------------------------------------


def _prompt(root: Path) -> tuple[Path, Path]:
    base = root / "base"
    taesan.create("gpt-tiny", n_layers=1, d_model=32, n_heads=2, vocab_size=50, n_positions=32).save(base)
    prompt = root / "prompt"
    add_soft_prompt(taesan.load(base), 3, "random").save(prompt)
    return base, prompt


def test_a_prompt_names_its_base_relative_to_itself_and_moves_with_it(tmp_path):
    """The saved base was an absolute path: the directory could not be moved."""
    _, prompt = _prompt(tmp_path / "a")
    assert json.loads((prompt / "config.json").read_text())["base"] == "../base"
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        before = taesan.load(prompt)(ids)
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = taesan.load(tmp_path / "b" / "prompt")
    with torch.no_grad():
        assert torch.equal(moved(ids), before)
    moved.save(tmp_path / "elsewhere" / "p")  # saved again elsewhere: still names the same base
    assert json.loads((tmp_path / "elsewhere" / "p" / "config.json").read_text())["base"] == "../../b/base"
    assert isinstance(taesan.load(tmp_path / "elsewhere" / "p"), type(moved))


def test_an_old_absolute_base_still_loads(tmp_path):
    base, prompt = _prompt(tmp_path)
    data = json.loads((prompt / "config.json").read_text())
    data["base"] = str(base.resolve())
    (prompt / "config.json").write_text(json.dumps(data))
    assert taesan.load(prompt).n_tokens == 3


@pytest.mark.parametrize("fingerprint", ["", None])
def test_the_base_fingerprint_is_required(fingerprint, tmp_path):
    """An empty base_fingerprint skipped the identity check."""
    _, prompt = _prompt(tmp_path)
    data = json.loads((prompt / "config.json").read_text())
    if fingerprint is None:
        del data["base_fingerprint"]
    else:
        data["base_fingerprint"] = fingerprint
    (prompt / "config.json").write_text(json.dumps(data))
    with pytest.raises(TaesanError, match="'base_fingerprint' is missing or empty"):
        taesan.load(prompt)


def test_no_prompt_onto_a_prompt(tmp_path):
    """`"base": "."` recursed, and two prompts naming each other gave "File name too long"."""
    _, prompt = _prompt(tmp_path)
    data = json.loads((prompt / "config.json").read_text())
    (prompt / "config.json").write_text(json.dumps({**data, "base": "."}))
    with pytest.raises(TaesanError, match="is this soft prompt; a prompt loads onto a model checkpoint"):
        taesan.load(prompt)
    other = tmp_path / "other"
    shutil.copytree(prompt, other)
    (prompt / "config.json").write_text(json.dumps({**data, "base": "../other"}))
    (other / "config.json").write_text(json.dumps({**data, "base": "../prompt"}))
    with pytest.raises(TaesanError, match="is another soft prompt"):
        taesan.load(prompt)
    (prompt / "config.json").write_text(json.dumps({**data, "base": "x" * 5000}))
    with pytest.raises(TaesanError, match="cannot be opened|not found"):
        taesan.load(prompt)
