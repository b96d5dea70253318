"""pipeline/pretrain.py: `taesan pretrain` and the demo run one recipe, so the same settings give the same run
(every weight and every logged loss); the recipe records the separator as the model's end-of-text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import taesan
from taesan.cli import main as cli_main
from taesan.data.embedded import korean_corpus
from taesan.demo.tour import DemoConfig, pretrain_lm
from taesan.errors import TaesanError
from taesan.pipeline.pretrain import Recipe, new_model
from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

TINY = dict(d_model=32, n_layers=1, n_heads=2, n_positions=32)


def _losses(directory: Path) -> list[float]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [r[k] for r in rows for k in sorted(r) if "loss" in k]


@pytest.mark.parametrize("objective", ["causal", "masked"])
def test_the_cli_and_the_demo_give_the_same_run(tmp_path, objective):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(korean_corpus(200)) + "\n", encoding="utf-8")
    kind = BPETokenizer if objective == "causal" else WordPieceTokenizer
    tok = kind.train([corpus], vocab_size=300)
    tok.save(tmp_path / "tok.json")
    preset = "gpt-tiny" if objective == "causal" else "bert-tiny"
    cfg = DemoConfig(out=tmp_path / "demo", seed=3, progress=False, model=TINY, block_size=16, batch_size=4, lm_steps=8,
                     lm_minutes=5.0, lr=2e-3)
    torch.manual_seed(cfg.seed)
    model = new_model(preset, objective, tok, **TINY)  # as the demo builds it
    model.save(tmp_path / "start", tok)  # the same starting weights for the command line
    demo = pretrain_lm(cfg, model, tok, objective, corpus, tmp_path / "demo")
    code = cli_main(["pretrain", "--model", str(tmp_path / "start"), "--objective", objective, "--corpus", str(corpus),
                     "--tokenizer", str(tmp_path / "tok.json"), "--out", str(tmp_path / "cli"), "--max-steps", "8",
                     "--max-minutes", "5", "--lr", "2e-3", "--warmup", "1", "--eval-every", "2", "--eval-batches", "4",
                     "--save-every", "0", "--keep-last", "1", "--batch-size", "4", "--block-size", "16",
                     "--valid-every", "10", "--workers", "1", "--seed", "3", "--mask-prob", str(cfg.mask_prob), "--no-progress"])
    assert code == 0 and demo.trainer.step == 8
    cli = taesan.load(tmp_path / "cli")
    ours = demo.model.state_dict()
    assert set(cli.state_dict()) == set(ours)
    for k, v in cli.state_dict().items():
        assert torch.equal(v, ours[k]), k
    assert _losses(tmp_path / "cli") == _losses(tmp_path / "demo") and len(_losses(tmp_path / "cli")) > 2
    start = taesan.load(tmp_path / "start").state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in ours.items())  # and it did train
    trained = json.loads((tmp_path / "cli" / "training.json").read_text())
    assert trained["objective"] == objective and trained["separator_id"] == (tok.sep_id if objective == "masked" else tok.eos_id)
    if objective == "causal":  # the end-of-text recorded in the config: taesan.generate stops there by default
        assert cli.config.eos_token_id == tok.eos_id and demo.model.config.eos_token_id == tok.eos_id
        assert demo.baseline_perplexity is not None and demo.baseline_perplexity > 1


def test_the_recipe_checks_its_arguments_before_writing(tmp_path):
    with pytest.raises(TaesanError, match="--block-size must be >= 1"):
        Recipe("causal", [], tmp_path / "out", block_size=0)
    with pytest.raises(TaesanError, match="unknown objective 'sideways'"):
        Recipe("sideways", [], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mask_prob_sets_the_share_of_masked_tokens_and_is_checked(tmp_path):
    from taesan.objectives import objective_for

    tok = WordPieceTokenizer.train(korean_corpus(200), vocab_size=300)
    ids = torch.randint(len(tok.special_tokens) + 5, tok.vocab_size, (64, 128))  # ordinary tokens only
    for share in (0.15, 0.3):
        _, labels = objective_for("masked", tok, mask_prob=share).prepare({"input_ids": ids}, torch.Generator().manual_seed(0))
        assert abs(labels.numel() / ids.numel() - share) < 0.01  # the chosen rows only, ~share of the tokens
    with pytest.raises(TaesanError, match="--mask-prob"):
        Recipe("masked", [tmp_path / "c.txt"], tmp_path / "out", mask_prob=0.0)


def test_a_held_out_split_shorter_than_a_block_is_said_and_training_data_scored(tmp_path, capsys):
    """Every 50th document is held out: here two one-word ones, 3 tokens. The masked LM's held-out row masked none
    of them, and the run ended on an empty "step 2: " line; the causal LM already fell back to training data with
    a note. Both now do, and the last line has scores."""
    lines = [" ".join(korean_corpus(8)) for _ in range(60)]
    lines[0] = lines[49] = lines[50] = "태산"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = WordPieceTokenizer.train(korean_corpus(200), vocab_size=300)
    tok.save(tmp_path / "wp.json")
    code = cli_main(["pretrain", "--model", "bert-tiny", "--objective", "masked", "--corpus", str(corpus),
                     "--tokenizer", str(tmp_path / "wp.json"), "--out", str(tmp_path / "out"), "--max-steps", "2",
                     "--block-size", "16", "--no-progress", "--set", "n_layers=1", "d_model=32", "n_heads=2"])
    out = capsys.readouterr().out
    assert code == 0 and "note: the held-out split is shorter than one block; evaluating on training data" in out
    assert "step 2: loss " in out


def test_the_default_block_is_cut_to_the_models_positions_and_an_asked_one_is_not(tmp_path, capsys):
    """The README's own `pretrain ... --set n_positions=64` (no --block-size) failed: "--block-size 128 is longer
    than the model's 64 positions". A default row is cut to the model, as fine-tuning's default length is; a
    --block-size given that does not fit is still refused."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(korean_corpus(200)) + "\n", encoding="utf-8")
    tok = WordPieceTokenizer.train(korean_corpus(200), vocab_size=300)
    tok.save(tmp_path / "wp.json")
    common = ["pretrain", "--model", "gpt-tiny", "--objective", "causal", "--corpus", str(corpus), "--tokenizer",
              str(tmp_path / "wp.json"), "--max-steps", "2", "--no-progress", "--batch-size", "4",
              "--set", "n_layers=1", "d_model=32", "n_heads=2", "n_positions=64"]
    assert cli_main(common + ["--out", str(tmp_path / "cut")]) == 0
    assert json.loads((tmp_path / "cut" / "training.json").read_text())["block_size"] == 64
    capsys.readouterr()
    assert cli_main(common + ["--out", str(tmp_path / "asked"), "--block-size", "128"]) == 2
    assert "--block-size 128 is longer than the model's 64 positions" in capsys.readouterr().err


def test_a_checkpoint_pretrains_further_with_its_own_tokenizer(tmp_path, capsys):
    """`pretrain --model DIR` insisted on --tokenizer though DIR holds one (finetune reads it); a preset has none."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(korean_corpus(200)) + "\n", encoding="utf-8")
    WordPieceTokenizer.train(korean_corpus(200), vocab_size=300).save(tmp_path / "wp.json")
    common = ["pretrain", "--objective", "masked", "--corpus", str(corpus), "--max-steps", "2", "--no-progress",
              "--batch-size", "4", "--block-size", "32"]
    tiny = ["--set", "n_layers=1", "d_model=32", "n_heads=2"]
    assert cli_main(common + ["--model", "bert-tiny", "--tokenizer", str(tmp_path / "wp.json"), "--out", str(tmp_path / "a"), *tiny]) == 0
    assert cli_main(common + ["--model", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "tokenizer.json").read_text() == (tmp_path / "a" / "tokenizer.json").read_text()
    capsys.readouterr()
    assert cli_main(common + ["--model", "bert-tiny", "--out", str(tmp_path / "c")]) == 2
    assert "--tokenizer is needed: bert-tiny is a preset, with no tokenizer of its own" in capsys.readouterr().err
