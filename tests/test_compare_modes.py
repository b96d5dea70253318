"""`taesan compare-modes` and `taesan fewshot` end to end on a tiny GPT and BERT and the embedded sentiment
examples: every mode runs, the table / JSON / chart are written, trainable-parameter counts are what each
mode trains, and user errors are one line with exit code 2."""
from __future__ import annotations

import dataclasses
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
    wp = WordPieceTokenizer.train(lines + ["정답: 긍정", "정답: 부정"] * 10, vocab_size=400)
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
    lm_head = "prompt tuning via the LM head (4 tokens)"
    assert set(rows) == {("GPT", "full fine-tuning"), ("GPT", "prompt tuning (4 tokens)"), ("BERT", "full fine-tuning"),
                         ("BERT", "prompt tuning (4 tokens)"), ("GPT", lm_head), ("BERT", lm_head),
                         ("GPT", "0-shot in-context"), ("GPT", "2-shot in-context")}
    d, V = SMALL["d_model"], 400
    # what each mode trains: everything / the prompt + the head / the prompt alone / nothing
    gpt_full = rows[("GPT", "full fine-tuning")]["trainable_parameters"]
    assert rows[("GPT", "prompt tuning (4 tokens)")]["trainable_parameters"] == 4 * d + 2 * d  # prompt + score (no bias)
    assert rows[("BERT", "prompt tuning (4 tokens)")]["trainable_parameters"] == 4 * d + (d * d + d) + (2 * d + 2)  # + pooler + classifier
    for model in ("GPT", "BERT"):
        assert rows[(model, lm_head)]["trainable_parameters"] == 4 * d and rows[(model, lm_head)]["labelled_examples"] == 60
        assert rows[(model, lm_head)]["extra"]["words"] == ["부정", "긍정"] and not rows[(model, lm_head)]["skipped"]
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
    assert table.startswith("| mode |") and table.count("\n| ") == 8 + 1 and "| 2-shot in-context | GPT |" in table
    assert "In-context learning (0-shot, 2-shot)" in table and data["in_context"] in table
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the prompt-tuned output is small and loads back onto its base
    prompt_dir = out / "gpt-prompt"
    assert not (prompt_dir / "base").exists()  # the base is named, not copied
    base = json.loads((prompt_dir / "config.json").read_text())["base"]  # relative: the two directories move together
    assert not Path(base).is_absolute() and (prompt_dir / base).resolve() == (root / "gpt").resolve()
    assert taesan.load(prompt_dir).n_tokens == 4
    printed = capsys.readouterr().out
    assert "majority class" in printed and data["in_context"] in printed
    assert taesan.load(out / "bert-prompt-lm").inner.config.words == ["부정", "긍정"]
    # each training mode ran with what `taesan finetune` chooses for a model this small (only the batch was given)
    chosen = {mode: rows[("GPT", name)]["extra"] for mode, name in (("full", "full fine-tuning"),
              ("prompt", "prompt tuning (4 tokens)"), ("prompt-lm", lm_head))}
    assert [chosen[m]["lr"] for m in ("full", "prompt", "prompt-lm")] == [1e-3, 3e-3, 3e-2]
    assert {e["batch_size"] for e in chosen.values()} == {8}
    assert chosen["full"]["rdrop"] == 3.0 and chosen["prompt"]["rdrop"] == 0.0  # R-Drop: a small classifier, fully tuned
    assert "lr 0.001, batch 8, R-Drop 3" in table


def test_fewshot_cli_reports_mean_and_spread(setup, capsys):
    root, train, evaluate = setup
    report = root / "fewshot.json"
    code = cli_main(["fewshot", "--model", str(root / "gpt"), "--task", "classification", "--shots", "2", "--seeds", "3",
                     "--train", str(train), "--eval", str(evaluate), "--verbalizer", "0=부정,1=긍정", "--balanced",
                     "--calibrate", "--max-eval", "6", "--out", str(report)])
    assert code == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("2-shot, 3 seed(s), 6 examples: accuracy") and "±" in line and "calibrated" in line
    assert line.count("; guessing at the same label rates") == 2  # beside the plain and the calibrated accuracy
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["verbalizer"] == {"0": "부정", "1": "긍정"}
    acc = data["accuracy"]["per_seed"]
    assert len(acc) == 3 and data["accuracy"]["mean"] == pytest.approx(sum(acc) / 3)
    assert "--verbalizer" not in capsys.readouterr().err  # words given: no note


def test_numbered_labels_without_words_get_a_note(setup, capsys):
    """NSMC's labels are 0 / 1: without --verbalizer the LM is asked whether " 0" or " 1" follows the text, which
    runs but reads nothing of what the labels mean, so one line on stderr says how to give words."""
    from taesan.tuning.in_context import numbered_labels_note

    root, train, evaluate = setup
    assert cli_main(["fewshot", "--model", str(root / "gpt"), "--task", "classification", "--shots", "0", "--seeds", "1",
                     "--train", str(train), "--eval", str(evaluate), "--max-eval", "4", "--no-progress"]) == 0
    assert "note: the answer words are the label names 0, 1; --verbalizer 0=WORD,1=WORD" in capsys.readouterr().err
    assert numbered_labels_note("0=부정,1=긍정", ["0", "1"]) is None and numbered_labels_note(None, ["부정", "긍정"]) is None


def test_fewshot_counts_the_rows_with_an_empty_text(setup, tmp_path, capsys):
    """An NSMC file's empty reviews are left out of the demonstrations and the queries, and said, as finetune says."""
    root, train, evaluate = setup
    rows = evaluate.read_text(encoding="utf-8").splitlines()
    gaps = tmp_path / "gaps.tsv"
    gaps.write_text("\n".join([*rows, "900\t\t0"]) + "\n", encoding="utf-8")
    assert cli_main(["fewshot", "--model", str(root / "gpt"), "--shots", "0", "--seeds", "1", "--train", str(train),
                     "--eval", str(gaps), "--verbalizer", "0=부정,1=긍정", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"{gaps}: skipped 1 of {len(rows)} rows with an empty text" in err and str(train) not in err


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


def test_a_given_rate_and_batch_win_over_the_defaults(setup, tmp_path):
    from taesan.tasks.classification import SequenceClassification
    from taesan.tuning.compare import CompareConfig, train_mode

    root, train, evaluate = setup
    task = SequenceClassification()
    config = CompareConfig(max_steps=2, batch_size=4, lr_full=5e-4, warmup=0, device="cpu")
    row = train_mode(root / "gpt", "GPT", "full", task.read(train)[:8], task.read(evaluate)[:4], tmp_path / "given", config)
    assert (row.extra["lr"], row.extra["batch_size"]) == (5e-4, 4)
    assert any(line.startswith("defaults: rdrop 3") for line in row.extra["defaults"])


def test_the_lm_head_row_says_why_it_could_not_run(setup, tmp_path):
    """A BERT saved without its masked-LM head has no LM head to read: that row is not run and says why."""
    from taesan.tasks.classification import SequenceClassification
    from taesan.tokenizers import load as load_tokenizer
    from taesan.tuning.compare import CompareConfig, compare_modes

    root, train, evaluate = setup
    bare = taesan.load(root / "bert").backbone
    bare.save(tmp_path / "bare", load_tokenizer(root / "bert" / "tokenizer.json"))
    task = SequenceClassification()
    config = CompareConfig(shots=[0], seeds=1, max_steps=1, batch_size=8, prompt_tokens=2, device="cpu",
                           verbalizer={"0": "부정", "1": "긍정"})
    rows = compare_modes(root / "gpt", task.read(train)[:16], task.read(evaluate)[:8], tmp_path / "out", config,
                         bert_dir=tmp_path / "bare")
    [skipped] = [r for r in rows if r.skipped]
    assert (skipped.model, skipped.mode) == ("BERT", "prompt tuning via the LM head (2 tokens)")
    assert "needs a GPT or a masked LM" in skipped.skipped
    assert "| prompt tuning via the LM head (2 tokens) | BERT | - |" in (tmp_path / "out" / "comparison.md").read_text()
    # run again into the same --out with other steps: each mode's directory holds this run's files alone (an old
    # run's checkpoint-N stayed beside the new one, and keep_last pruned the newer one as older)
    stale = tmp_path / "out" / "gpt-full" / "checkpoint-0009999"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")  # complete, as a finished run leaves it (a partial one is cleaned)
    compare_modes(root / "gpt", task.read(train)[:16], task.read(evaluate)[:8], tmp_path / "out",
                  dataclasses.replace(config, max_steps=2), bert_dir=tmp_path / "bare")
    assert not stale.exists() and (tmp_path / "out" / "gpt-full" / "model.safetensors").is_file()


def test_calibration_is_read_against_guessing_at_the_same_label_rates():
    """Calibration splits a one-label LM's answers across labels; on a set whose majority is under half that alone
    beats the majority class. The verdict compares it with guessing at the same rates instead."""
    from taesan.tuning.compare import ModeResult, in_context_verdict
    from taesan.tuning.in_context import beats, guessing_accuracy

    assert guessing_accuracy(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.5)
    assert guessing_accuracy(["a"] * 4, ["a", "b", "b", "b"]) == pytest.approx(0.25)
    assert not beats(0.522, 0.5, 500) and beats(0.6, 0.5, 500) and not beats(0.6, 0.5, 20)
    row = ModeResult("0-shot in-context", "GPT", 0.475, 0.0, 0, 0, 1.0,
                     {"guessing": 0.475, "accuracy_calibrated": 0.51, "guessing_calibrated": 0.5,
                      "model_parameters": 1_850_368})
    text = in_context_verdict([row], baseline=0.475, n_eval=400)
    assert "no better within chance on 400 examples" in text and "a 1.9M-parameter GPT does not learn" in text
    assert "Calibrated (0-shot in-context): 0.510, against 0.500 for guessing at the same label rates: no better" in text
    learned = ModeResult("4-shot in-context", "GPT", 0.70, 0.01, 0, 4, 1.0, {"guessing": 0.5, "model_parameters": 10**9})
    assert "above answering without reading the text" in in_context_verdict([row, learned], 0.475, 400)
