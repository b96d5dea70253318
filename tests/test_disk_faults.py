"""Disk and interruption: a full disk (ENOSPC, injected at the write) during pretraining or fine-tuning is one line
naming the directory and the bytes, exit 2, the previous checkpoint whole; what a kill leaves behind (half-written
temp files, a checkpoint without its trainer_state.json) is removed when the Trainer starts or resumes."""
from __future__ import annotations

import errno
import json
import os
import re

import numpy as np
import pytest
import torch
from safetensors import SafetensorError

import taesan
import taesan.checkpoint
import taesan.config
import taesan.train.trainer
from taesan.data import CausalWindows, TokenSplit
from taesan.errors import TaesanError
from taesan.objectives import CausalLM
from taesan.train import TrainConfig, Trainer, latest_checkpoint

SPLIT = TokenSplit(np.random.default_rng(0).integers(0, 50, size=2000).astype(np.uint16), np.array([0, 2000]))
FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def make_trainer(out, resume=None, **cfg):
    torch.manual_seed(0)
    model = taesan.create("gpt-tiny", vocab_size=50, n_layers=1, d_model=32, n_heads=2, n_positions=32)
    data = CausalWindows(SPLIT, 16, 4, seed=1)
    config = TrainConfig(**{"max_steps": 8, "warmup": 2, "eval_every": 0, "save_every": 4, "keep_last": 5,
                            "log_every": 1, "progress": False, **cfg})
    return Trainer(model, CausalLM(), data, config, out, device="cpu", resume_from=resume)


def _fail_on(monkeypatch, target, name, after: int, error: Exception = FULL):
    """`target.name` works `after` times, then raises `error` (the disk is full from then on)."""
    real = getattr(target, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)


def _temp_files(root):
    return sorted(p for p in root.rglob("*.tmp"))


@pytest.mark.parametrize("error", [FULL, SafetensorError('Error while serializing: IoError(Os { code: 28, kind: '
                                                         'StorageFull, message: "No space left on device" })')])
def test_a_full_disk_at_the_checkpoint_is_one_line_and_the_previous_checkpoint_stays(error, tmp_path, monkeypatch):
    """It ended with SafetensorError ... No space left on device, a traceback and exit 1."""
    trainer = make_trainer(tmp_path)
    # 3 safetensors files per checkpoint (model, optimizer, rng) + the latest model in out: the 5th write is step 8's
    _fail_on(monkeypatch, taesan.checkpoint, "save_file", after=4, error=error)
    with pytest.raises(TaesanError) as e:
        trainer.fit()
    message = str(e.value)
    assert "\n" not in message
    assert re.search(r"checkpoint-0000008: no space left on the device \(the checkpoint and the latest model: about "
                     r"[\d.]+ KB needed, [\d.]+ [KMG]?B free\); the last checkpoint, checkpoint-0000004, is intact", message), message
    assert latest_checkpoint(tmp_path).name == "checkpoint-0000004"
    assert not (tmp_path / "checkpoint-0000008").exists()  # the half-written one is gone
    assert _temp_files(tmp_path) == []
    monkeypatch.undo()
    resumed = make_trainer(tmp_path, resume=tmp_path / "checkpoint-0000004")  # whole: it resumes
    assert resumed.step == 4
    resumed.fit()
    assert latest_checkpoint(tmp_path).name == "checkpoint-0000008"


def test_a_full_disk_at_the_metrics_leaves_no_half_line(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, save_every=0)
    real_open = open
    lines = {"n": 0}

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def tell(self):
            return self.f.tell()

        def truncate(self, n):
            return self.f.truncate(n)

        def write(self, text):
            lines["n"] += 1
            if lines["n"] > 3:
                self.f.write(text[:7])  # part of the line reached the disk, then it was full
                raise FULL
            return self.f.write(text)

        def flush(self):
            self.f.flush()

    def opener(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if str(path).endswith("metrics.jsonl") and "a" in mode else f

    monkeypatch.setattr("builtins.open", opener)
    with pytest.raises(TaesanError, match=r": no space left on the device \(metrics.jsonl: about \d+ bytes needed"):
        trainer.fit()
    monkeypatch.undo()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]


def test_a_full_disk_at_the_plot_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    trainer = make_trainer(tmp_path, max_steps=4)
    _fail_on(monkeypatch, taesan.train.trainer, "save_png", after=0)
    with pytest.raises(TaesanError, match=r"no space left on the device \(loss.png: about 97.7 KB needed.*"
                                          r"the last checkpoint, checkpoint-0000004, is intact"):
        trainer.fit()


def test_cli_pretrain_on_a_full_disk_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from taesan.cli import main
    from taesan.tokenizers import BPETokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("티끌 모아 태산\n어제 카페 갔었어\n" * 40, encoding="utf-8")
    tok = BPETokenizer.train(str(corpus), vocab_size=280, special_tokens=["<|endoftext|>"]).save(tmp_path / "tok.json")
    _fail_on(monkeypatch, taesan.checkpoint, "save_file", after=0)
    code = main(["pretrain", "--no-progress", "--model", "gpt-tiny", "--objective", "causal", "--corpus", str(corpus),
                 "--tokenizer", str(tok), "--out", str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "4",
                 "--block-size", "16", "--eval-batches", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1
    assert re.match(r"taesan pretrain: error: .*checkpoint-0000002: no space left on the device \(.*: about "
                    r"[\d.]+ MB needed, .* free\); no checkpoint was written yet$", err), err


def test_finetune_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    from taesan.data.embedded import korean_corpus, sentiment_examples
    from taesan.tasks.classification import SequenceClassification
    from taesan.tasks.readers.sentiment import TextExample
    from taesan.tokenizers import WordPieceTokenizer
    from taesan.tuning.finetune import finetune

    tok = WordPieceTokenizer.train(korean_corpus(100), vocab_size=200)
    data = [TextExample(t, "긍정" if y else "부정", f"x{i}") for i, (t, y) in enumerate(sentiment_examples(16, seed=1))]
    base = taesan.create("bert-tiny", vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=64)
    _fail_on(monkeypatch, taesan.checkpoint, "save_file", after=0)
    config = TrainConfig(max_steps=2, warmup=0, eval_every=0, save_every=0, progress=False)
    with pytest.raises(TaesanError, match="no space left on the device"):
        finetune(SequenceClassification(tokenizer=tok), base, data, [], tmp_path / "ft", config, batch_size=4, device="cpu")
    assert _temp_files(tmp_path) == [] and latest_checkpoint(tmp_path / "ft") is None


# ---- what a kill leaves behind -------------------------------------------------------------------------------------


def _leave_leftovers(out):
    """What `kill -9` during writes leaves: temp files up to a model's size, and a checkpoint without trainer_state.json."""
    (out / ".metrics.jsonl.a1b2c3d4.tmp").write_text('{"step": 9, "lo')
    (out / ".loss.png.zz9_yy8x.tmp").write_bytes(b"\x89PNG")
    (out / ".model.safetensors.q1w2e3r4.tmp").write_bytes(b"\0" * 1000)
    (out / "checkpoint-0000004" / ".optimizer.safetensors.k9j8h7g6.tmp").write_bytes(b"\0" * 1000)
    half = out / "checkpoint-0000006"
    half.mkdir()
    (half / "model.safetensors").write_bytes((out / "checkpoint-0000004" / "model.safetensors").read_bytes())
    (half / ".rng.safetensors.abcdefgh.tmp").write_bytes(b"\0" * 10)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 3.')  # the last line cut mid-way
    (out / "notes.tmp").write_text("mine")  # not a temp name atomic writes use: kept
    (out / "checkpoint-0000004" / "extra.txt").write_text("mine")


def test_resume_removes_what_a_kill_left(tmp_path):
    make_trainer(tmp_path).fit(stop_at=4)
    _leave_leftovers(tmp_path)
    assert latest_checkpoint(tmp_path).name == "checkpoint-0000004"  # the half one was never a candidate
    trainer = make_trainer(tmp_path, resume=latest_checkpoint(tmp_path))
    assert _temp_files(tmp_path) == [tmp_path / "notes.tmp"]
    assert not (tmp_path / "checkpoint-0000006").exists()
    assert (tmp_path / "checkpoint-0000004" / "extra.txt").is_file()
    assert {p.name for p in trainer.cleaned} >= {".metrics.jsonl.a1b2c3d4.tmp", "checkpoint-0000006"}
    trainer.fit()  # and the cut metrics line does not break the resume or the plot
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_start_up_removes_them_too(tmp_path):
    make_trainer(tmp_path).fit(stop_at=4)
    _leave_leftovers(tmp_path)
    make_trainer(tmp_path / "." )  # a new run in the same directory (the CLI refuses one over checkpoints)
    assert _temp_files(tmp_path) == [tmp_path / "notes.tmp"]
    assert not (tmp_path / "checkpoint-0000006").exists() and (tmp_path / "checkpoint-0000004" / "trainer_state.json").is_file()


def test_a_full_disk_outside_training_is_one_line_too(tmp_path, monkeypatch, capsys):
    """`taesan tokenizer train` (or convert) on a full disk: the CLI names the file, exit 2."""
    from taesan.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("티끌 모아 태산\n" * 20, encoding="utf-8")
    _fail_on(monkeypatch, taesan.config, "atomic_write_text", after=0,
             error=OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "t.json")))
    assert main(["tokenizer", "train", "--kind", "char", "--vocab-size", "50", "--input", str(corpus),
                 "--output", str(tmp_path / "t.json")]) == 2
    assert capsys.readouterr().err.strip() == f"taesan tokenizer: error: {tmp_path / 't.json'}: no space left on the device"
