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
)
from taesan.util import pick_device


def tiny_gpt(vocab=50, dropout=0.1):
    torch.manual_seed(0)
    return taesan.create("gpt-tiny", vocab_size=vocab, n_layers=1, d_model=32, n_heads=2, n_positions=64, dropout=dropout, attn_dropout=dropout)


SPLIT = TokenSplit(np.random.default_rng(0).integers(0, 50, size=4000).astype(np.uint16), np.array([0, 4000]))


def make_trainer(out, resume=None, model=None, batch_size=4, **cfg):
    data = CausalWindows(SPLIT, 16, batch_size, seed=1)
    config = TrainConfig(**{"max_steps": 10, "warmup": 3, "eval_every": 4, "save_every": 4, "keep_last": 10, "progress": False,
                            "precision": "fp32", **cfg})  # fp32 unless a test asks: auto would vary with the CPU kind
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


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    import os
    import signal

    straight = make_trainer(tmp_path / "straight").fit()
    trainer = make_trainer(tmp_path / "cut")
    next_batch = trainer.data.next_batch

    def interrupting():
        if trainer.data.sampler.step == 5:  # Ctrl-C while step 6 reads its batch
            os.kill(os.getpid(), signal.SIGINT)
        return next_batch()

    trainer.data.next_batch = interrupting
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup / a background job
    first = trainer.fit()
    assert trainer.interrupted and trainer.step == 6 and len(first) == 6
    assert signal.getsignal(signal.SIGINT) == before  # the handler that was there is put back
    rest = make_trainer(tmp_path / "cut", resume=latest_checkpoint(tmp_path / "cut")).fit()
    assert first + rest == straight


def test_a_resume_with_another_schedule_is_said_and_refits_the_lr_from_its_step(tmp_path):
    """Extending a run is legitimate, but the lr jumps: the resume says where it starts and that the schedule is
    re-fitted (the checkpoint's max_steps / warmup / lr -> this run's), and this run's schedule is what steps use."""
    make_trainer(tmp_path / "run").fit(stop_at=4)
    checkpoint = latest_checkpoint(tmp_path / "run")
    same = make_trainer(tmp_path / "run", resume=checkpoint)
    assert same.resumed.step == 4 and same.resumed.changed == {}
    assert same.resumed.notes() == [f"resumed from {checkpoint} (step 4)"]  # the same command: no warning
    longer = make_trainer(tmp_path / "run", resume=checkpoint, max_steps=20, warmup=2, lr=2e-3)
    assert longer.resumed.changed == {"max_steps": (10, 20), "warmup": (3, 2), "lr": (5e-4, 2e-3)}
    notes = longer.resumed.notes()
    assert len(notes) == 2 and notes[0] == f"resumed from {checkpoint} (step 4)"
    assert notes[1].startswith("warning: the learning-rate schedule is re-fitted from step 4 to --max-steps 20 --warmup 2")
    assert "--max-steps 10 --warmup 3 --lr 0.0005" in notes[1] and "continue that run exactly" in notes[1]
    seen = []
    for _ in range(3):
        longer.train_step()
        seen.append(longer.last_lr)
    assert seen == pytest.approx([2e-3 * lr_factor(s, 2, 20, 0.1) for s in (4, 5, 6)], rel=1e-12)  # was the old lr



def test_a_resume_with_other_adamw_settings_says_so_and_uses_them(tmp_path):
    """The loaded optimizer state carried the checkpoint's betas and weight decay: a new --weight-decay or --betas
    was silently ignored. Now they are said, and they are what the steps use (decay still only where it decays)."""
    make_trainer(tmp_path / "run", weight_decay=0.0).fit(stop_at=4)
    checkpoint = latest_checkpoint(tmp_path / "run")
    other = make_trainer(tmp_path / "run", resume=checkpoint, weight_decay=0.1, betas=(0.9, 0.99))
    assert other.resumed.changed == {"betas": ([0.9, 0.98], (0.9, 0.99)), "weight_decay": (0.0, 0.1)}
    [_, warning] = other.resumed.notes()
    assert warning.startswith("warning: AdamW's settings change from step 4 to --betas 0.9,0.99 --weight-decay 0.1")
    decay, plain = other.optimizer.param_groups
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.1, 0.0)
    assert decay["betas"] == plain["betas"] == (0.9, 0.99)


def test_a_resume_with_another_grad_clip_or_accumulation_says_so(tmp_path):
    """A new --grad-clip or --accumulation took effect from the resumed step without a word; the schedule and
    AdamW's settings were said. Now all three are."""
    make_trainer(tmp_path / "run").fit(stop_at=4)
    checkpoint = latest_checkpoint(tmp_path / "run")
    other = make_trainer(tmp_path / "run", resume=checkpoint, grad_clip=0.5, accumulation=2)
    assert other.resumed.changed == {"grad_clip": (1.0, 0.5), "accumulation": (1, 2)}
    [_, warning] = other.resumed.notes()
    assert warning.startswith("warning: the gradient's clipping / accumulation change from step 4 to --grad-clip 0.5 "
                              "--accumulation 2 (the checkpoint's run: --grad-clip 1 --accumulation 1)")
    assert (other.config.grad_clip, other.config.accumulation) == (0.5, 2)


def test_a_resume_with_max_steps_at_or_below_the_checkpoint_is_an_error_before_anything_is_touched(tmp_path):
    from taesan.errors import TaesanError

    make_trainer(tmp_path).fit(stop_at=4)
    (tmp_path / ".metrics.jsonl.123.tmp").write_text("cut short")  # a resume would clean this up
    before = sorted(p.name for p in tmp_path.iterdir())
    for max_steps in (4, 3):
        with pytest.raises(TaesanError, match=f"checkpoint-0000004 is at step 4; --max-steps {max_steps} leaves nothing"):
            make_trainer(tmp_path, resume=latest_checkpoint(tmp_path), max_steps=max_steps)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_masked_lm_resume_is_exact_too(tmp_path):
    """The masking generator and the packed-row sampler are part of the saved state."""
    from taesan.data import PackedDocuments
    from taesan.objectives import MaskedLM

    rng = np.random.default_rng(1)
    docs = [np.append(rng.integers(5, 60, size=int(n)), 3) for n in rng.integers(3, 20, size=120)]
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    split = TokenSplit(np.concatenate(docs).astype(np.uint16), offsets)

    def run(out, resume=None, stop_at=None):
        torch.manual_seed(0)
        model = taesan.create("bert-mlm", vocab_size=60, n_layers=1, d_model=32, n_heads=2, n_positions=32, d_ff=64)
        data = PackedDocuments(split, 32, 4, cls_id=2, sep_id=3, pad_id=0, seed=2)
        config = TrainConfig(max_steps=8, warmup=2, eval_every=0, save_every=0, progress=False)
        trainer = Trainer(model, MaskedLM(4, 60, [0, 1, 2, 3]), data, config, out, device="cpu", resume_from=resume)
        return trainer.fit(stop_at=stop_at)

    straight = run(tmp_path / "a")
    first = run(tmp_path / "b", stop_at=3)
    assert first + run(tmp_path / "b", resume=latest_checkpoint(tmp_path / "b")) == straight


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
    assert all(0 <= r["data_share"] < 1 for r in rows if "data_share" in r)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    model = taesan.load(tmp_path)
    assert isinstance(model, torch.nn.Module)


def test_a_task_may_summarize_its_summed_metrics(tmp_path):
    """The fine-tuning seam: metrics summed over batches, then a task-specific summary (F1-like)."""

    class Counting(CausalLM):
        def metrics(self, logits, labels):
            hits = (logits.argmax(-1) == labels).sum().item()
            return {"hits": (hits, 1), "total": (labels.numel(), 1)}

        def summarize(self, totals):
            return {"hit_rate": totals["hits"][0] / totals["total"][0], "batches": totals["total"][1]}

    data = CausalWindows(SPLIT, 16, 4, seed=1)
    trainer = Trainer(tiny_gpt(), Counting(), data, TrainConfig(max_steps=1, progress=False), tmp_path,
                      eval_data=lambda: data.eval_batches(3, 4), device="cpu")
    scores = trainer.evaluate()
    assert set(scores) == {"eval_hit_rate", "eval_batches"} and scores["eval_batches"] == 3
    assert 0 <= scores["eval_hit_rate"] <= 1


def test_max_minutes_stops_on_the_clock_and_still_saves(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=10_000, max_minutes=1e-4)
    losses = trainer.fit()
    assert 1 <= len(losses) < 10_000
    assert latest_checkpoint(tmp_path).name == f"checkpoint-{trainer.step:07d}"


def test_training_steps_never_build_the_logits_but_evaluation_does(tmp_path):
    """The product path is the fused LM loss: the LM head (a Linear) runs only in evaluation."""
    trainer = make_trainer(tmp_path, max_steps=2, save_every=0, eval_every=0)
    calls = []
    trainer.raw_model.lm_head.register_forward_hook(lambda *a: calls.append(1))
    loss, _ = trainer.train_step()
    assert math.isfinite(loss) and calls == []
    assert "eval_loss" in trainer.evaluate() and calls


def test_device_and_precision_defaults(monkeypatch):
    from taesan import util

    assert pick_device("cpu") == torch.device("cpu")
    for native, picked in ((False, None), (True, torch.bfloat16)):  # auto: bf16 only where the CPU has it natively
        monkeypatch.setattr(util, "native_bf16", lambda native=native: native)
        assert autocast_dtype(torch.device("cpu"), "auto") is picked
    assert autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    assert autocast_dtype(torch.device("cpu"), "fp32") is None


def test_bf16_autocast_runs_on_cpu_with_fp32_master_weights_and_loss(tmp_path):
    """--precision bf16 on CPU (slow where bf16 is emulated): the blocks compute in bf16, the weights, the
    optimizer state and the loss stay fp32."""
    trainer = make_trainer(tmp_path, max_steps=2, precision="bf16", save_every=0, eval_every=0)
    seen = []
    trainer.raw_model.blocks[0].mlp.up.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    losses = trainer.fit()
    assert all(math.isfinite(x) for x in losses) and seen and set(seen) == {torch.bfloat16}
    assert trainer.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in trainer.raw_model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in trainer.optimizer.state.values())
    inputs, labels = trainer.objective.prepare(next(iter(trainer.eval_data())))
    with trainer.autocast():
        outputs = trainer.objective.run_model(trainer.model, inputs, labels)
    assert trainer.objective.loss(outputs, labels).dtype == torch.float32


# ---- `taesan pretrain` end to end ----------------------------------------------------------------------------

SENTENCES = ["티끌 모아 태산", "어제 카페 갔었어", "난폭 운전은 위험하다", "가는 말이 고와야 오는 말이 곱다", "오늘 도서관에 갔다"]


@pytest.fixture
def corpus_and_tokenizer(tmp_path):
    from taesan.tokenizers import BPETokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n", encoding="utf-8")
    tok = BPETokenizer.train(str(corpus), vocab_size=300, special_tokens=["<|endoftext|>"])
    return corpus, tok.save(tmp_path / "tok.json")


def pretrain(*args):
    from taesan.cli import main

    return main(["pretrain", "--no-progress", "--batch-size", "8", "--block-size", "32", "--eval-batches", "2", *map(str, args)])


def test_cli_pretrain_overfits_a_tiny_corpus_then_resumes(tmp_path, corpus_and_tokenizer, capsys):
    corpus, tok = corpus_and_tokenizer
    out = tmp_path / "gpt"
    common = ["--model", "gpt-tiny", "--objective", "causal", "--corpus", corpus, "--tokenizer", tok, "--out", out,
              "--lr", "3e-3", "--warmup", "5", "--eval-every", "20", "--save-every", "20"]
    assert pretrain(*common, "--max-steps", "60") == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in rows if "loss" in r]
    assert train[-1] < 0.5 * train[0]  # the loss falls: it learns the corpus
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert evals[-1] < evals[0]
    model = taesan.load(out)
    assert model.config.vocab_size == 300 and (out / "tokenizer.json").is_file()
    assert json.loads((out / "training.json").read_text())["objective"] == "causal"
    assert "reused the cache" not in capsys.readouterr().out
    assert pretrain(*common, "--max-steps", "80", "--resume") == 0  # continues from step 60, reusing the cache
    assert "reused the cache" in capsys.readouterr().out
    assert json.loads((out / "checkpoint-0000080" / "trainer_state.json").read_text())["step"] == 80


def test_cli_pretrain_says_where_it_resumed_warns_on_a_refitted_schedule_and_refuses_no_steps(
        tmp_path, corpus_and_tokenizer, capsys):
    corpus, tok = corpus_and_tokenizer
    out = tmp_path / "gpt"
    common = ["--model", "gpt-tiny", "--objective", "causal", "--corpus", corpus, "--tokenizer", tok, "--out", out,
              "--set", "n_layers=1", "d_model=32", "n_heads=2", "--save-every", "4", "--eval-every", "0"]
    assert pretrain(*common, "--max-steps", "12") == 0
    capsys.readouterr()
    __import__("shutil").rmtree(out / "checkpoint-0000012")  # as if killed after step 8's checkpoint
    assert pretrain(*common, "--max-steps", "12", "--resume") == 0  # the same command: exact, no warning
    printed = capsys.readouterr().out
    assert f"resumed from {out / 'checkpoint-0000008'} (step 8)" in printed.splitlines()
    assert "warning" not in printed

    listing = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for steps in ("12", "5"):  # at or below the checkpoint's step: printed "step 12: " and rewrote the model
        assert pretrain(*common, "--max-steps", steps, "--resume") == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
        assert f"checkpoint-0000012 is at step 12; --max-steps {steps} leaves nothing to train" in captured.err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == listing  # nothing written

    assert pretrain(*common, "--max-steps", "16", "--resume") == 0  # extending: warned, not refused
    lines = capsys.readouterr().out.splitlines()
    assert f"resumed from {out / 'checkpoint-0000012'} (step 12)" in lines
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "re-fitted from step 12 to --max-steps 16" in warnings[0]
    assert "(--max-steps 12)" in warnings[0]  # the default warmup (5%) is 1 for both
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "lr" in r] == [10, 12, 16]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--corpus": "missing.txt"}, "corpus file not found"),
        ({"--corpus": "missing"}, "a directory, not a corpus file"),  # was "corpus file not found"
        ({"--tokenizer": "missing.json"}, "tokenizer file not found"),
        ({"--tokenizer": "garbage.json"}, "garbage.json"),
        ({"--model": "gpt-nonexistent"}, "unknown model or preset"),
        ({"--model": "bert-tiny"}, "needs a decoder"),
        ({"--model": "vit-tiny"}, "preset 'vit-tiny' is not a language model"),
        ({"--model": "vitdir"}, "a vit checkpoint is not a language model"),  # was an AttributeError traceback
        ({"--objective": "masked"}, r"\[MASK\]"),
        ({"--block-size": "100000"}, "longer than the model"),
        ({"--max-steps": "0"}, "max_steps must be >= 1"),  # 0 silently meant the default 1000
        ({"--lr": "-1"}, "lr must be > 0"),  # was the optimizer's traceback
        ({"--batch-size": "0"}, "--batch-size must be >= 1"),
        ({"--max-minutes": "0"}, "max_minutes must be > 0"),
        ({"--valid-every": "-1"}, "--valid-every must be >= 0"),  # silently held nothing out
        ({"--threads": "-1"}, "--threads must be >= 1"),  # torch's traceback
        ({"--set": "n_layer=2"}, "unknown field 'n_layer' for GPTConfig"),
        ({"--set": "n_heads=3"}, "not divisible"),
        ({"--betas": "0.9"}, "--betas '0.9'"),
        ({"--valid-fraction": "1.5"}, "--valid-fraction must be in"),
        ({"--config": "missing.json"}, "--config .*missing.json: file not found"),
    ],
)
def test_cli_pretrain_user_errors_are_one_line_exit_2(tmp_path, corpus_and_tokenizer, capsys, change, message):
    corpus, tok = corpus_and_tokenizer
    args = {"--model": "gpt-tiny", "--objective": "causal", "--corpus": corpus, "--tokenizer": tok, "--out": tmp_path / "o", "--max-steps": "1"}
    (tmp_path / "garbage.json").write_text("{not a tokenizer", encoding="utf-8")
    if change.get("--corpus") == "missing":
        (tmp_path / "missing").mkdir()
    args.update({k: (tmp_path / v if v.startswith(("missing", "garbage")) else v) for k, v in change.items()})
    if change.get("--model") == "vitdir":
        args["--model"] = taesan.create("vit-tiny").save(tmp_path / "vitdir")
    assert pretrain(*[x for kv in args.items() for x in kv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("taesan pretrain: error:")
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "o").exists()  # nothing written before the error


def test_cli_pretrain_knobs_a_reproduction_needs(tmp_path, corpus_and_tokenizer, capsys):
    """--config FILE and --set over the preset, --betas, --valid-fraction (the corpus' last tokens held out)."""
    corpus, tok = corpus_and_tokenizer
    (tmp_path / "shape.json").write_text(json.dumps({"n_layers": 1, "d_model": 32, "n_heads": 4}), encoding="utf-8")
    out = tmp_path / "gpt"
    assert pretrain("--model", "gpt-tiny", "--objective", "causal", "--corpus", corpus, "--tokenizer", tok, "--out", out,
                    "--config", tmp_path / "shape.json", "--set", "n_heads=2", "n_positions=40", "dropout=0",
                    "--betas", "0.9,0.99", "--valid-fraction", "0.1", "--max-steps", "2") == 0
    printed = capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["n_layers"], config["d_model"], config["n_heads"], config["n_positions"], config["dropout"]) == (1, 32, 2, 40, 0)
    state = json.loads((out / "checkpoint-0000002" / "trainer_state.json").read_text())
    assert state["config"]["betas"] == [0.9, 0.99]
    found = __import__("re").search(r"corpus: ([\d,]+) training tokens, ([\d,]+) held out \(the last 0.1", printed)
    train, held = (int(x.replace(",", "")) for x in found.groups())
    total = json.loads((out / "data" / "manifest.json").read_text())["tokens"]["train"]  # cached whole, cut at load
    assert train + held == total and held == round(total * 0.1)
    assert "precision: fp32" in printed or "precision: bf16" in printed
    assert pretrain("--model", out, "--objective", "causal", "--corpus", corpus, "--tokenizer", tok, "--out",
                    tmp_path / "again", "--set", "n_layers=2", "--max-steps", "1") == 2
    assert "a checkpoint or a model in memory keeps its own" in capsys.readouterr().err


def test_cli_pretrain_refuses_empty_corpus_vocab_mismatch_and_accidental_overwrite(tmp_path, corpus_and_tokenizer, capsys):
    from taesan.tokenizers import BPETokenizer

    corpus, tok = corpus_and_tokenizer
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    base = ["--model", "gpt-tiny", "--objective", "causal", "--tokenizer", tok, "--max-steps", "2", "--save-every", "2"]
    assert pretrain(*base, "--corpus", empty, "--out", tmp_path / "e") == 2
    assert "no text" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # no empty run directory left behind
    out = tmp_path / "run"
    assert pretrain(*base, "--corpus", corpus, "--out", out) == 0
    assert pretrain(*base, "--corpus", corpus, "--out", out) == 2
    assert "already holds a run (checkpoint-0000002); pass --resume to continue it" in capsys.readouterr().err
    converted = taesan.create("gpt-tiny", vocab_size=300, n_layers=1, d_model=32, n_heads=2).save(tmp_path / "converted")
    assert pretrain(*base, "--corpus", corpus, "--out", converted) == 2  # a model without checkpoints: overwritten
    err = capsys.readouterr().err
    assert "already holds a run (model.safetensors); choose another --out, or remove it" in err and "--resume" not in err
    other = BPETokenizer.train(str(corpus), vocab_size=280, special_tokens=["<|endoftext|>"]).save(tmp_path / "other.json")
    resume = ["--model", "gpt-tiny", "--objective", "causal", "--tokenizer", other, "--max-steps", "4", "--corpus", corpus, "--out", out, "--resume"]
    assert pretrain(*resume) == 2
    assert "does not match the tokenizer" in capsys.readouterr().err
