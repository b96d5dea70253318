"""The denoising objective (BART text infilling, taesan/denoising.py): the noise layout's properties, the infilled
source and the full target, its fused loss equal to the logits' loss, a tiny encoder-decoder's loss dropping, and
`taesan pretrain --objective denoising` -> checkpoint -> `taesan finetune --task translation` from it."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from taesan.cli import main as cli_main
from taesan.denoising import Denoising, infill, noise_spans, random_segmentation
from taesan.errors import TaesanError
from taesan.models import create
from taesan.objectives import IGNORE_INDEX, PreLogits
from taesan.pipeline.pretrain import Recipe
from taesan.tokenizers import BPETokenizer, WordTokenizer
from taesan.tuning.finetune import load_finetuned
from taesan.tuning.load import load

PAD, START, EOS, MASK = 0, 1, 2, 3


def _runs(mask: list[bool]) -> int:
    """How many maximal runs of True."""
    return sum(1 for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1]))


@given(st.integers(1, 200), st.data())
def test_random_segmentation_gives_positive_lengths_that_sum_up(n, data):
    k = data.draw(st.integers(1, n))
    parts = random_segmentation(n, k, torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    assert len(parts) == k and sum(parts) == n and min(parts) >= 1


@settings(max_examples=200)
@given(st.integers(2, 300), st.floats(0.05, 0.9), st.floats(1.0, 8.0), st.integers(0, 10**6))
def test_noise_spans_hide_the_asked_share_in_the_asked_number_of_spans(length, density, mean_span, seed):
    hidden = noise_spans(length, density, mean_span, torch.Generator().manual_seed(seed)).tolist()
    n_noise = min(max(1, round(length * density)), length - 1)
    assert len(hidden) == length and sum(hidden) == n_noise  # exactly the share asked, one token always kept
    assert _runs(hidden) == max(1, min(round(n_noise / mean_span), n_noise, length - n_noise))


def test_noise_spans_vary_with_the_generator_and_repeat_with_its_seed():
    draws = [tuple(noise_spans(40, 0.3, 3.0, torch.Generator().manual_seed(s)).tolist()) for s in range(20)]
    assert len(set(draws)) > 10
    assert draws[3] == tuple(noise_spans(40, 0.3, 3.0, torch.Generator().manual_seed(3)).tolist())
    starts = {d.index(True) for d in draws}
    assert 0 in starts and len(starts) > 3  # a span may open the row, and often does not


@given(st.lists(st.integers(10, 99), min_size=1, max_size=40), st.integers(0, 10**6))
def test_infill_replaces_each_hidden_run_by_one_mask_and_keeps_the_rest_in_order(ids, seed):
    hidden = noise_spans(len(ids), 0.3, 3.0, torch.Generator().manual_seed(seed))
    out = infill(ids, hidden, MASK)
    assert out.count(MASK) == _runs(hidden.tolist())
    assert [t for t in out if t != MASK] == [t for t, h in zip(ids, hidden.tolist()) if not h]
    assert len(out) == len(ids) - int(hidden.sum()) + _runs(hidden.tolist())


def test_prepare_feeds_the_infilled_row_and_teaches_the_whole_original():
    ids = torch.tensor([[10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [20, 21, 22, 23, 24, 25, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    obj = Denoising(MASK, START, PAD, noise_density=0.3)
    inputs, labels = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(0))
    assert labels.tolist() == [list(range(10, 20)), [20, 21, 22, 23, 24, 25] + [IGNORE_INDEX] * 4]  # padding not predicted
    assert inputs["tgt_ids"][:, 0].tolist() == [START, START] and inputs["tgt_ids"][0, 1:].tolist() == list(range(10, 19))
    for row, real, original in zip(inputs["src_ids"].tolist(), inputs["src_mask"].tolist(), [ids[0, :10], ids[1, :6]]):
        source = [t for t, r in zip(row, real) if r]
        assert MASK in source and 0 not in source  # noised, and the padding never became a source token
        kept = [t for t in source if t != MASK]
        assert len(kept) == len(original) - max(1, round(len(original) * 0.3))
        assert set(kept) <= set(original.tolist()) and kept == sorted(kept)  # the kept tokens, in their order


def test_the_fused_loss_equals_the_loss_on_the_logits_and_a_tiny_model_learns():
    torch.manual_seed(0)
    model = create("transformer-tiny", src_vocab_size=40, n_positions=32, d_model=32, n_heads=2, d_ff=64, dropout=0.0)
    obj = Denoising(MASK, START, PAD)
    rows = torch.randint(10, 40, (4, 12), generator=torch.Generator().manual_seed(1))
    data = {"input_ids": rows}
    inputs, labels = obj.prepare(data, torch.Generator().manual_seed(2))
    out = obj.run_model(model, inputs)
    assert isinstance(out, PreLogits)  # training runs the chunked fp32 loss, never the (N, V) logits
    with torch.no_grad():
        logits = model(**inputs)
        expected = F.cross_entropy(logits.reshape(-1, 40), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(obj.loss(out, labels), expected, atol=1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)
    first = None
    for step in range(150):
        inputs, labels = obj.prepare(data, g)
        loss = obj.loss(obj.run_model(model, inputs), labels)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first  # it learns to write the four rows back from their noised copies


def test_the_recipe_and_objective_check_their_arguments(tmp_path):
    with pytest.raises(TaesanError, match="noise-density"):
        Recipe(objective="denoising", corpus=[], out=tmp_path / "x", noise_density=1.0)
    with pytest.raises(ValueError, match="noise_density"):
        Denoising(MASK, START, PAD, noise_density=0.0)


SENTENCES = ["나는 학교에 간다.", "I go to school.", "고양이가 좋아요.", "I like cats.", "비가 온다.", "It is raining.",
             "이것은 내 책이야.", "This is my book.", "톰은 집에 있다.", "Tom is at home."] * 12


def test_pretrain_denoising_then_finetune_translation_from_the_checkpoint(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    tok = BPETokenizer.train([corpus], vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<mask>"])
    tok.save(tmp_path / "tok.json")
    pre = tmp_path / "pre"
    small = ["--set", "d_model=32", "n_heads=2", "d_ff=64", "n_positions=32", "dropout=0"]
    code = cli_main(["pretrain", "--model", "transformer-tiny", *small, "--objective", "denoising", "--corpus", str(corpus),
                     "--tokenizer", str(tmp_path / "tok.json"), "--out", str(pre), "--max-steps", "40", "--batch-size", "8",
                     "--block-size", "16", "--lr", "3e-3", "--eval-every", "20", "--valid-every", "10", "--no-progress"])
    assert code == 0
    rows = [json.loads(line) for line in (pre / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) == 2 and evals[-1] < evals[0]
    training = json.loads((pre / "training.json").read_text())
    assert training["objective"] == "denoising" and training["decoder_start_id"] == tok.cls_id
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{SENTENCES[i]}\t{SENTENCES[i + 1]}\n" for i in range(0, 10, 2)), encoding="utf-8")
    capsys.readouterr()
    code = cli_main(["finetune", "--task", "translation", "--model", str(pre), "--train", str(pairs), "--valid", str(pairs),
                     "--out", str(tmp_path / "ft"), "--max-steps", "3", "--no-progress"])
    assert code == 0
    model, _ = load_finetuned(tmp_path / "ft")
    pretrained = load(pre)
    assert model.config.d_model == 32 and model.config.src_vocab_size == tok.vocab_size
    assert pretrained.config.decoder_start_token_id == model.config.decoder_start_token_id == tok.cls_id
    capsys.readouterr()
    code = cli_main(["score", "--model", str(pre), "I go to school."])  # an encoder-decoder scores nothing alone
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not score sentences" in err


def test_denoising_refuses_a_model_that_is_not_an_encoder_decoder(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    tok = BPETokenizer.train([corpus], vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<mask>"])
    tok.save(tmp_path / "tok.json")
    code = cli_main(["pretrain", "--model", "gpt-tiny", "--objective", "denoising", "--corpus", str(corpus), "--tokenizer",
                     str(tmp_path / "tok.json"), "--out", str(tmp_path / "o"), "--max-steps", "1", "--no-progress"])
    assert code == 2 and "encoder-decoder" in capsys.readouterr().err
    words = WordTokenizer({w: i for i, w in enumerate(["[PAD]", "[UNK]", "[SEP]", "a", "b"])},
                          special_tokens=["[PAD]", "[UNK]", "[SEP]"])
    words.save(tmp_path / "w.json")
    code = cli_main(["pretrain", "--model", "transformer-tiny", "--objective", "denoising", "--corpus", str(corpus),
                     "--tokenizer", str(tmp_path / "w.json"), "--out", str(tmp_path / "o2"), "--max-steps", "1", "--no-progress"])
    assert code == 2 and "<mask>" in capsys.readouterr().err
