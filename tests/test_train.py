"""The Trainer: schedule, weight-decay groups, accumulation, checkpoints, exact resume; `taesan pretrain` end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import taesan
from taesan.data import CausalWindows, TokenSplit
from taesan.objectives import CausalLM
from taesan.train import (
    TrainConfig,
    Trainer,
    autocast_dtype,
    latest_checkpoint,
    lr_factor,
    no_decay_names,
    pick_device,
)


def tiny_gpt(vocab=50, dropout=0.1):
    torch.manual_seed(0)
    return taesan.create("gpt-tiny", vocab_size=vocab, n_layers=1, d_model=32, n_heads=2, n_positions=64, dropout=dropout, attn_dropout=dropout)


SPLIT = TokenSplit(np.random.default_rng(0).integers(0, 50, size=4000).astype(np.uint16), np.array([0, 4000]))


def make_trainer(out, resume=None, model=None, batch_size=4, **cfg):
    data = CausalWindows(SPLIT, 16, batch_size, seed=1)
    config = TrainConfig(**{"max_steps": 10, "warmup": 3, "eval_every": 4, "save_every": 4, "keep_last": 10, "progress": False, **cfg})
    return Trainer(model or tiny_gpt(), CausalLM(), data, config, out, eval_data=lambda: data.eval_batches(2, 4), device="cpu", resume_from=resume)


def test_lr_follows_warmup_then_cosine_step_by_step(tmp_path):
    assert lr_factor(0, 9, 100, 0.1) == pytest.approx(0.1) and lr_factor(8, 9, 100, 0.1) == pytest.approx(0.9)
    assert lr_factor(9, 9, 100, 0.1) == pytest.approx(1.0) and lr_factor(100, 9, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9 + 91 // 2, 9, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 91)))
    trainer = make_trainer(tmp_path, max_steps=8, warmup=3, lr=1e-3, save_every=0, eval_every=0)
    seen = []
    for _ in range(8):
        trainer.train_step()
        seen.append(trainer.last_lr)
    expected = [1e-3 * lr_factor(s, 3, 8, 0.1) for s in range(8)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert len(set(seen)) == 8  # the rate really changes at every step


def test_no_weight_decay_on_biases_norms_and_embeddings(tmp_path):
    model = tiny_gpt()
    skip = no_decay_names(model)
    assert "tok_emb.weight" in skip and "pos_emb.weight" in skip and "norm.weight" in skip
    assert any(n.endswith("bias") for n in skip)
    assert "blocks.0.attn.qkv.weight" not in skip and "blocks.0.mlp.up.weight" not in skip
    trainer = make_trainer(tmp_path, model=model, weight_decay=0.1)
    decay, plain = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in plain["params"]} == skip
    assert all(p.ndim == 2 for p in decay["params"])


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    full = make_trainer(tmp_path / "a", model=tiny_gpt(dropout=0.0), batch_size=4)
    half = make_trainer(tmp_path / "b", model=tiny_gpt(dropout=0.0), batch_size=2, accumulation=2)
    full.train_step()
    half.train_step()
    for (n, a), (_, b) in zip(full.raw_model.named_parameters(), half.raw_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one_exactly(tmp_path):
    straight = make_trainer(tmp_path / "straight").fit()
    first = make_trainer(tmp_path / "interrupted").fit(stop_at=4)
    checkpoint = latest_checkpoint(tmp_path / "interrupted")
    assert checkpoint.name == "checkpoint-0000004"
    rest = make_trainer(tmp_path / "interrupted", resume=checkpoint).fit()
    assert len(straight) == 10 and first + rest == straight  # bit for bit, compared with ==
    a = taesan.load(tmp_path / "straight").state_dict()
    b = taesan.load(tmp_path / "interrupted").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_json_and_safetensors_and_only_the_last_k_are_kept(tmp_path):
    make_trainer(tmp_path, max_steps=9, save_every=2, keep_last=2).fit()
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert kept == ["checkpoint-0000008", "checkpoint-0000009"]
    for f in (tmp_path / "checkpoint-0000009").iterdir():
        assert f.suffix in (".json", ".safetensors"), f  # no pickle anywhere
    state = json.loads((tmp_path / "checkpoint-0000009" / "trainer_state.json").read_text())
    assert state["step"] == 9 and state["data"]["step"] == 9 and state["scheduler"]["last_epoch"] == 9
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_perplexity" in r for r in rows) and any("tokens_per_s" in r for r in rows)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    model = taesan.load(tmp_path)
    assert isinstance(model, torch.nn.Module)


def test_max_minutes_stops_on_the_clock_and_still_saves(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=10_000, max_minutes=1e-4)
    losses = trainer.fit()
    assert 1 <= len(losses) < 10_000
    assert latest_checkpoint(tmp_path).name == f"checkpoint-{trainer.step:07d}"


def test_device_and_precision_defaults():
    assert pick_device("cpu") == torch.device("cpu")
    assert autocast_dtype(torch.device("cpu"), "auto") is None  # fp32 by default on CPU
    assert autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16


def test_bf16_autocast_runs_on_cpu(tmp_path):
    losses = make_trainer(tmp_path, max_steps=2, precision="bf16", save_every=0, eval_every=0).fit()
    assert all(math.isfinite(x) for x in losses)
