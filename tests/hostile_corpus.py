"""A generated corpus of hostile checkpoint files, and a runner that opens each one the ways a user would
(taesan.load, and the CLI commands that open a checkpoint) and records what happened: one TaesanError line
(exit 2), a traceback, a load that should have been refused; seconds; peak memory.

Not a test by itself: tests/test_hostile_corpus.py runs it in a subprocess under a memory cap (RLIMIT_AS), so a
regression fails instead of eating the machine. `python tests/hostile_corpus.py` prints the tally (RESULTS).
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SENTENCES = ["티끌 모아 태산", "어제 카페 갔었어", "가는 말이 고와야 오는 말이 곱다"]
MAX_TENSORS = 50_000  # taesan.safetensors_header.MAX_TENSORS (test_hostile_corpus checks they agree)


@dataclass
class Case:
    name: str
    directory: Path
    ways: tuple[str, ...] = ("load", "generate")  # how it is opened (see WAYS)
    expect: str = ""  # a piece of the one-line message


@dataclass
class Outcome:
    case: str
    way: str
    result: str  # "error" (one line, exit 2), "traceback", "accepted", "not one line"
    message: str
    seconds: float
    peak_mb: float
    extra: dict = field(default_factory=dict)


# ---- building the corpus ---------------------------------------------------------------------------------------


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _safetensors(path: Path, header: dict, data_bytes: int, raw: bytes | None = None) -> None:
    blob = raw if raw is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + data_bytes)  # sparse: the data takes no disk


def _entries(shapes: dict[str, list[int]]) -> tuple[dict, int]:
    """F32 tensors of these shapes, laid end to end -> (header entries, data bytes)."""
    entries, offset = {}, 0
    for name, shape in shapes.items():
        n = 4
        for s in shape:
            n *= s
        entries[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    return entries, offset


def build(root: Path) -> list[Case]:
    """Write every hostile directory under `root` -> the cases."""
    from safetensors import safe_open

    import taesan
    from taesan.models import to_hf
    from taesan.tokenizers import BPETokenizer
    from taesan.tuning.prompt import add_soft_prompt

    root.mkdir(parents=True, exist_ok=True)
    tok = BPETokenizer.train(SENTENCES * 5, vocab_size=280, special_tokens=["<|endoftext|>"])
    good = root / "good"
    taesan.create("gpt-tiny", vocab_size=tok.vocab_size, n_layers=2, d_model=32, n_heads=2, n_positions=32).save(good, tok)
    with safe_open(str(good / "model.safetensors"), framework="pt") as f:  # not taesan's reader: it is under test
        shapes = {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}
    cases: list[Case] = [Case("control-a-good-checkpoint", good, ("load",))]  # must load: the harness sees acceptance

    def variant(name: str, expect: str = "", ways=("load", "generate"), **config) -> Path:
        d = root / name
        shutil.copytree(good, d)
        if config:
            data = json.loads((d / "config.json").read_text())
            data.update(config)
            _write_json(d / "config.json", data)
        cases.append(Case(name, d, tuple(ways), expect))
        return d

    # config.json: JSON itself
    (variant("config-nested-3000", "nested more than") / "config.json").write_text("[" * 3000 + "]" * 3000)
    (variant("config-int-5000-digits", "digits") / "config.json").write_text('{"n_layers": ' + "9" * 5000 + "}")
    (variant("config-int-60-digits", "digits") / "config.json").write_text('{"model_type": "gpt", "taesan_version": 1, "n_layers": ' + "9" * 60 + "}")
    text = (good / "config.json").read_text()
    (variant("config-cut-short", "invalid JSON") / "config.json").write_text(text[: text.index('"gpt"') + 3])
    (variant("config-empty", "empty") / "config.json").write_text("")
    (variant("config-binary", "UTF-8") / "config.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    (variant("config-array", "JSON object") / "config.json").write_text("[1, 2, 3]")
    with open(variant("config-64mb", "over the limit") / "config.json", "wb") as f:
        f.truncate(64 * 2**20)
    d = variant("config-is-a-directory", "directory")
    (d / "config.json").unlink()
    (d / "config.json").mkdir()
    # config.json: sizes and fields
    variant("n-layers-1e6", "limit of 512 layers", n_layers=10**6)
    variant("d-model-1e9", "d_model|too large|limit", d_model=10**9, n_heads=2)
    variant("vocab-1e11", "over taesan's limit", vocab_size=10**11)
    variant("n-positions-1e12", "over taesan's limit", n_positions=10**12)
    variant("n-heads-0", "n_heads", n_heads=0)
    variant("dropout-nan", "dropout", dropout=float("nan"))
    variant("n-layers-string", "'n_layers'", n_layers="many")
    variant("model-type-unknown", "unknown model_type", model_type="llama")
    variant("model-type-list", "model_type", model_type=["gpt"])
    d = variant("model-type-missing", "'model_type' is missing")
    data = json.loads((d / "config.json").read_text())
    del data["model_type"]
    _write_json(d / "config.json", data)
    bert = root / "_bert"
    taesan.create("bert-tiny").save(bert)
    shutil.copy(bert / "model.safetensors", variant("weights-of-bert", "holds a 'bert' model's tensors") / "model.safetensors")
    vit = root / "_vit"
    taesan.create("vit-tiny").save(vit)
    shutil.copy(vit / "model.safetensors", variant("weights-of-vit", "holds a 'vit' model's tensors") / "model.safetensors")
    variant("config-wider-than-weights", "the config expects", d_model=64)
    variant("layers-more-than-tensors", "holds only", n_layers=400)
    # HuggingFace configs (no taesan_version): the dry run on the meta device
    hf = root / "_hf-gpt2"
    to_hf(taesan.load(good), hf)
    tok.save(hf / "tokenizer.json")

    def hf_variant(name: str, expect: str, **config) -> None:
        d = root / name
        shutil.copytree(hf, d)
        data = json.loads((d / "config.json").read_text())
        data.update(config)
        _write_json(d / "config.json", data)
        cases.append(Case(name, d, ("load", "generate"), expect))

    hf_variant("hf-gpt2-n-layer-1e6", "limit of 512 layers", n_layer=10**6)
    hf_variant("hf-gpt2-n-embd-1e9", "too large|limit|shape|n_head", n_embd=10**9)
    hf_variant("hf-gpt2-vocab-1e11", "over taesan's limit|shape", vocab_size=10**11)
    hf_variant("hf-unknown-family", "neither a taesan checkpoint", model_type="llama")
    hf_variant("hf-bert-layers-1e6", "limit of 512 layers", model_type="bert", num_hidden_layers=10**6)
    hf_variant("hf-bert-on-gpt2-weights", "unexpected tensor", model_type="bert", architectures=["BertModel"],
               num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=128)
    # model.safetensors
    def weights(name: str, expect: str, ways=("load", "generate")) -> Path:
        return variant(name, expect, ways) / "model.safetensors"

    with open(weights("header-90mb", "over the limit of"), "wb") as f:
        f.write(struct.pack("<Q", 90_000_000))
        f.truncate(8 + 90_000_000)
    entries_text = "{" + ",".join(f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}' for i in range(1_200_000)) + "}"
    _safetensors(weights("header-1.2m-entries", "over the limit of"), {}, 1_200_000, raw=entries_text.encode())
    del entries_text
    many = {f"{i:x}": {"dtype": "U8", "shape": [], "data_offsets": [i, i + 1]} for i in range(MAX_TENSORS + 1)}
    _safetensors(weights("header-too-many-entries", "tensors, over the limit", ways=("load",)), many, MAX_TENSORS + 1)
    del many
    with open(weights("header-longer-than-file", "truncated"), "wb") as f:
        f.write(struct.pack("<Q", 1000) + b"{}")
    weights("file-of-5-bytes", "shorter than the 8-byte").write_bytes(b"\x01\x02\x03\x04\x05")
    _safetensors(weights("header-not-json", "not a safetensors file|invalid JSON"), {}, 0, raw=b"{not json at all")
    _safetensors(weights("header-not-utf8", "not UTF-8"), {}, 0, raw=b"{\xff\xfe}")
    _safetensors(weights("header-nested", "nested more than"), {}, 0, raw=b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    entries, data_bytes = _entries(shapes)
    first = sorted(entries)[0]
    _safetensors(weights("dtype-unknown", "dtype"), {**entries, first: {**entries[first], "dtype": "Q64"}}, data_bytes)
    _safetensors(weights("shape-negative", "shape"), {**entries, first: {**entries[first], "shape": [-1]}}, data_bytes)
    _safetensors(weights("data-cut-short", "truncated"), entries, data_bytes // 2)
    t = entries[first]
    _safetensors(weights("tensors-overlap", "overlaps|gap"), {**entries, first: {**t, "data_offsets": [t["data_offsets"][0] + 4, t["data_offsets"][1] + 4]}},
                 data_bytes)
    _safetensors(weights("metadata-not-strings", "__metadata__"), {**entries, "__metadata__": {"format": 7}}, data_bytes)
    _safetensors(weights("header-empty", "missing|other tensors|holds only"), {}, 0)
    _safetensors(weights("sparse-12gb-tensor", r"has shape \(3000000000,\)"), *_entries({**shapes, "tok_emb.weight": [3 * 10**9]}))
    vocab = 12 * 10**9 // (4 * 32)
    d = variant("sparse-12gb-model-that-fits-its-config", "of memory", vocab_size=vocab)
    _safetensors(d / "model.safetensors", *_entries({**shapes, "tok_emb.weight": [vocab, 32]}))
    weights("weights-missing", "not found").unlink()
    w = weights("weights-a-directory", "not found|directory")
    w.unlink()
    w.mkdir()
    # soft prompts
    base = root / "_base"
    shutil.copytree(good, base)
    prompt = root / "_prompt"
    add_soft_prompt(taesan.load(base), 3, "random").save(prompt, tok)
    prompt_config = json.loads((prompt / "config.json").read_text())

    def prompt_variant(name: str, expect: str, **config) -> Path:
        d = root / name
        shutil.copytree(prompt, d)
        _write_json(d / "config.json", {**prompt_config, "base": "../_base", **config})
        cases.append(Case(name, d, ("load", "generate"), expect))
        return d

    prompt_variant("prompt-base-dot", "is this soft prompt", base=".")
    prompt_variant("prompt-a-names-b", "is another soft prompt", base="../prompt-b-names-a")
    prompt_variant("prompt-b-names-a", "is another soft prompt", base="../prompt-a-names-b")
    prompt_variant("prompt-no-fingerprint", "base_fingerprint", base_fingerprint="")
    prompt_variant("prompt-wrong-fingerprint", "differs from the one", base_fingerprint="0" * 64)
    prompt_variant("prompt-base-name-too-long", "cannot be opened|not found", base="x" * 5000)
    prompt_variant("prompt-base-missing", "not found", base="../nowhere")
    prompt_variant("prompt-inner-1e6-layers", "limit of 512 layers|differs", inner={**prompt_config["inner"], "n_layers": 10**6})
    prompt_variant("prompt-n-tokens-1e9", "prompt tokens|positions", n_tokens=10**9)
    # files beside the weights that commands read
    (variant("task-json-nested", "nested more than", ways=("predict",)) / "task.json").write_text('{"task": ' + "[" * 3000 + "]" * 3000 + "}")
    (variant("training-json-5000-digits", "digits", ways=("generate",)) / "training.json").write_text('{"separator_id": ' + "1" * 5000 + "}")
    (variant("training-json-cut", "invalid JSON", ways=("generate",)) / "training.json").write_text('{"objective": "caus')
    return cases


# ---- opening each one ------------------------------------------------------------------------------------------


def _cli(*argv: str) -> Callable[[Path, Path], tuple[int, str]]:
    def run(directory: Path, scratch: Path) -> tuple[int, str]:
        from taesan.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([a.replace("{dir}", str(directory)).replace("{scratch}", str(scratch)) for a in argv])
        return code, err.getvalue().strip()
    return run


def _load(directory: Path, scratch: Path) -> tuple[int, str]:
    import taesan
    from taesan.errors import TaesanError

    try:
        taesan.load(directory)
    except TaesanError as e:
        return 2, f"taesan.load: error: {e}"
    return 0, ""


WAYS: dict[str, Callable[[Path, Path], tuple[int, str]]] = {
    "load": _load,
    "generate": _cli("generate", "--model", "{dir}", "--prompt", "티끌 모아", "--max-new-tokens", "2"),
    "predict": _cli("predict", "--model", "{dir}", "어제 카페 갔었어"),
    "score": _cli("score", "--model", "{dir}", "티끌 모아 태산"),
    "convert": _cli("convert", "--to-hf", "{dir}", "--out", "{scratch}"),
}


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: the peak RSS (VmHWM) starts again from the current RSS


def run(cases: list[Case], scratch: Path) -> list[Outcome]:
    outcomes = []
    for case in cases:
        for way in case.ways:
            _reset_peak()
            start = time.perf_counter()
            try:
                code, message = WAYS[way](case.directory, scratch / f"{case.name}-{way}")
                result = "error" if code == 2 and len(message.splitlines()) == 1 else ("accepted" if code == 0 else "not one line")
            except BaseException as e:  # noqa: BLE001 - a traceback is exactly what this corpus looks for
                if isinstance(e, KeyboardInterrupt):
                    raise
                code, message, result = 1, "".join(traceback.format_exception_only(type(e), e)).strip(), "traceback"
            outcomes.append(Outcome(case.name, way, result, message, time.perf_counter() - start, _peak_mb(),
                                    {"expect": case.expect}))
    return outcomes


def main(root: str, out: str | None = None) -> None:
    """Build under `root`, run, write one JSON line per outcome to `out` (or stdout)."""
    import taesan.cli  # noqa: F401 - imported before the first case so its import is not the first case's peak

    cases = build(Path(root))
    outcomes = run([c for c in cases if not c.name.startswith("_")], Path(root) / "_scratch")
    lines = "".join(json.dumps(o.__dict__, ensure_ascii=False) + "\n" for o in outcomes)
    if out:
        Path(out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def tally(outcomes: list[dict]) -> str:
    """The RESULTS table: inputs tried, clean errors, tracebacks, hangs, the worst file's peak memory."""
    inputs = {o["case"] for o in outcomes}
    clean = sum(o["result"] == "error" for o in outcomes)
    tracebacks = sum(o["result"] == "traceback" for o in outcomes)
    worst = max(outcomes, key=lambda o: o["peak_mb"])
    slowest = max(outcomes, key=lambda o: o["seconds"])
    return (f"| hostile files | openings (load + CLI) | clean one-line errors | tracebacks | accepted | hangs | "
            f"peak memory of the worst file | slowest |\n|---|---|---|---|---|---|---|---|\n"
            f"| {len(inputs)} | {len(outcomes)} | {clean} | {tracebacks} | "
            f"{sum(o['result'] in ('accepted', 'not one line') for o in outcomes)} | 0 | "
            f"{worst['peak_mb']:.0f} MB RSS ({worst['case']}, {worst['way']}) | "
            f"{slowest['seconds']:.2f} s ({slowest['case']}) |")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        main(tmp, str(Path(tmp) / "outcomes.jsonl"))
        rows = [json.loads(line) for line in (Path(tmp) / "outcomes.jsonl").read_text().splitlines()]
    for row in rows:
        print(f"{row['result']:<10} {row['seconds']:6.2f}s {row['peak_mb']:7.0f} MB  {row['case']:<38} {row['way']:<9} {row['message'][:150]}")
    print(tally(rows))
