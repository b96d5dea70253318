"""`taesan compare-modes` and `taesan fewshot` end to end on a tiny GPT and BERT and the embedded sentiment
examples: every mode runs, the table / JSON / chart are written, trainable-parameter counts are what each
mode trains, and user errors are one line with exit code 2."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

import taesan
from taesan.cli import main as cli_main
from taesan.data.embedded import korean_corpus, sentiment_examples

SMALL = dict(n_layers=2, d_model=32, n_heads=2, n_positions=96)


def _tsv(path, rows):
    path.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t{t}\t{l}\n" for i, (t, l) in enumerate(rows)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("modes")
    lines = korean_corpus(300)
    bpe = BPETokenizer.train(lines + ["정답: 긍정", "정답: 부정"] * 10, vocab_size=400, special_tokens=["<|endoftext|>"])
    wp = WordPieceTokenizer.train(lines, vocab_size=400)
    gpt = taesan.create("gpt", vocab_size=bpe.vocab_size, d_ff=64, **SMALL).eval()
    gpt.save(root / "gpt", bpe)
    bert = taesan.create("bert-mlm", vocab_size=wp.vocab_size, d_ff=64, **SMALL).eval()
    bert.save(root / "bert", wp)
    data = sentiment_examples(80, seed=3)
    return root, _tsv(root / "train.tsv", data[:60]), _tsv(root / "eval.tsv", data[60:])


def test_compare_modes_writes_table_json_and_chart(setup, capsys):
    root, train, evaluate = setup
    out = root / "out"
    code = cli_main(["compare-modes", "--model", str(root / "gpt"), "--bert", str(root / "bert"), "--train", str(train),
                     "--eval", str(evaluate), "--out", str(out), "--shots", "0,2", "--seeds", "2", "--prompt-tokens", "4",
                     "--max-steps", "3", "--batch-size", "8", "--verbalizer", "0=부정,1=긍정", "--no-progress", "--device", "cpu", "--threads", "1"])
    assert code == 0
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    rows = {(r["model"], r["mode"]): r for r in data["rows"]}
    assert set(rows) == {("GPT", "full fine-tuning"), ("GPT", "prompt tuning (4 tokens)"), ("BERT", "full fine-tuning"),
                         ("BERT", "prompt tuning (4 tokens)"), ("GPT", "0-shot in-context"), ("GPT", "2-shot in-context")}
    d, V = SMALL["d_model"], 400
    # what each mode trains: everything / the prompt + the head / nothing
    gpt_full = rows[("GPT", "full fine-tuning")]["trainable_parameters"]
    assert rows[("GPT", "prompt tuning (4 tokens)")]["trainable_parameters"] == 4 * d + 2 * d  # prompt + score (no bias)
    assert rows[("BERT", "prompt tuning (4 tokens)")]["trainable_parameters"] == 4 * d + (d * d + d) + (2 * d + 2)  # + pooler + classifier
    assert gpt_full > V * d and rows[("GPT", "2-shot in-context")]["trainable_parameters"] == 0
    assert rows[("GPT", "2-shot in-context")]["labelled_examples"] == 2
    assert rows[("GPT", "full fine-tuning")]["labelled_examples"] == 60
    for r in data["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["seconds"] > 0
    assert len(rows[("GPT", "2-shot in-context")]["extra"]["per_seed"]) == 2
    examples = sentiment_examples(80, seed=3)
    top = Counter(label for _, label in examples[:60]).most_common(1)[0][0]
    assert data["majority_accuracy"] == pytest.approx(sum(label == top for _, label in examples[60:]) / 20)
    table = (out / "comparison.md").read_text(encoding="utf-8")
    assert table.count("\n") == 2 + 6 + 1 and "| 2-shot in-context | GPT |" in table
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the prompt-tuned output is small and loads back onto its base
    prompt_dir = out / "gpt-prompt"
    assert not (prompt_dir / "base").exists()  # the base is named, not copied
    base = json.loads((prompt_dir / "config.json").read_text())["base"]  # relative: the two directories move together
    assert not Path(base).is_absolute() and (prompt_dir / base).resolve() == (root / "gpt").resolve()
    assert taesan.load(prompt_dir).n_tokens == 4
    assert "majority class" in capsys.readouterr().out


def test_fewshot_cli_reports_mean_and_spread(setup, capsys):
    root, train, evaluate = setup
    report = root / "fewshot.json"
    code = cli_main(["fewshot", "--model", str(root / "gpt"), "--task", "classification", "--shots", "2", "--seeds", "3",
                     "--train", str(train), "--eval", str(evaluate), "--verbalizer", "0=부정,1=긍정", "--balanced",
                     "--calibrate", "--max-eval", "6", "--out", str(report)])
    assert code == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("2-shot, 3 seed(s), 6 examples: accuracy") and "±" in line and "calibrated" in line
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["verbalizer"] == {"0": "부정", "1": "긍정"}
    acc = data["accuracy"]["per_seed"]
    assert len(acc) == 3 and data["accuracy"]["mean"] == pytest.approx(sum(acc) / 3)


@pytest.mark.parametrize("args, message", [
    (["--verbalizer", "0=부정"], "no word for label '1'"),
    (["--verbalizer", "0:부정"], "LABEL=WORD"),
    (["--shots", "500"], "only 60 examples"),
    (["--seeds", "0"], "--seeds must be >= 1"),
])
def test_fewshot_user_errors_are_one_line(setup, capsys, args, message):
    root, train, evaluate = setup
    code = cli_main(["fewshot", "--model", str(root / "gpt"), "--train", str(train), "--eval", str(evaluate), "--max-eval", "2", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_fewshot_needs_a_gpt(setup, capsys):
    root, train, evaluate = setup
    assert cli_main(["fewshot", "--model", str(root / "bert"), "--train", str(train), "--eval", str(evaluate)]) == 2
    assert "needs a GPT language model" in capsys.readouterr().err


def test_a_training_mode_reruns_to_the_same_result(setup):
    from taesan.tasks.classification import SequenceClassification
    from taesan.tuning.compare import CompareConfig, train_mode

    root, train, evaluate = setup
    task = SequenceClassification()
    examples, held_out = task.read(train)[:24], task.read(evaluate)
    config = CompareConfig(max_steps=3, batch_size=8, prompt_tokens=3, device="cpu")
    runs = [train_mode(root / "gpt", "GPT", "prompt", examples, held_out, root / f"rerun{i}", config) for i in range(2)]
    assert runs[0].accuracy == runs[1].accuracy
    assert json.loads((root / "rerun0" / "eval_results.json").read_text())["loss"] == \
        json.loads((root / "rerun1" / "eval_results.json").read_text())["loss"]
