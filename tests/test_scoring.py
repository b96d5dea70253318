"""Sentence scoring: the chain rule and the pseudo-log-likelihood against token-by-token loops; `taesan score`."""
from __future__ import annotations

import pytest
import torch

import taesan
from taesan.errors import TaesanError
from taesan.scoring import sentence_log_probs

SEQS = [[5, 9, 7, 11], [8], [12, 6, 6, 10, 9, 13]]


def tiny_gpt():
    torch.manual_seed(0)
    return taesan.create("gpt-tiny", vocab_size=20, n_layers=2, d_model=32, n_heads=2, n_positions=16).eval()


@torch.no_grad()
def chain_rule_by_hand(model, start, ids):
    total, prefix = 0.0, [start]
    for tok in ids:
        logp = torch.log_softmax(model(torch.tensor([prefix]))[0, -1], -1)
        total += logp[tok].item()
        prefix.append(tok)
    return total


def test_causal_scores_are_the_chain_rule_and_batching_does_not_change_them():
    model = tiny_gpt()
    batched = sentence_log_probs(model, SEQS, "causal", start_id=0, batch_size=8)
    one_by_one = sentence_log_probs(model, SEQS, "causal", start_id=0, batch_size=1)
    by_hand = [chain_rule_by_hand(model, 0, s) for s in SEQS]
    assert batched == pytest.approx(by_hand, abs=1e-4)
    assert one_by_one == pytest.approx(by_hand, abs=1e-4)
    assert all(x < 0 for x in batched)


def test_backward_scores_read_the_sentence_right_to_left():
    model = tiny_gpt()
    scores = sentence_log_probs(model, SEQS, "backward", start_id=0)
    assert scores == pytest.approx([chain_rule_by_hand(model, 0, s[::-1]) for s in SEQS], abs=1e-4)


def tiny_mlm(model_type, pad):
    """A masked LM of each family: BERT's, RoBERTa's (positions counted from its padding id), ELECTRA's generator
    (embeddings narrower than the blocks)."""
    torch.manual_seed(0)
    extra = {"embedding_size": 16} if model_type == "electra-generator" else {}
    return taesan.create(model_type, vocab_size=20, n_layers=2, d_model=32, n_heads=2, n_positions=16, d_ff=64,
                         pad_token_id=pad, **extra).eval()


@pytest.mark.parametrize("model_type,pad", [("bert-mlm", 0), ("roberta-mlm", 1), ("electra-generator", 0)])
def test_masked_scores_are_the_pseudo_log_likelihood(model_type, pad):
    """Batched rows are padded (with the model's own padding id), one by one they are not: the same sums."""
    model = tiny_mlm(model_type, pad)
    cls, sep, mask = 2, 3, 4
    scores = sentence_log_probs(model, SEQS, "masked", cls_id=cls, sep_id=sep, mask_id=mask, pad_id=pad, batch_size=3)
    expected = []
    with torch.no_grad():
        for s in SEQS:
            total = 0.0
            for i, tok in enumerate(s):
                row = [cls, *s[:i], mask, *s[i + 1 :], sep]
                total += torch.log_softmax(model(torch.tensor([row]))[0, i + 1], -1)[tok].item()
            expected.append(total)
    assert scores == pytest.approx(expected, abs=1e-4)


def test_scoring_errors():
    model = tiny_gpt()
    with pytest.raises(TaesanError, match="positions"):
        sentence_log_probs(model, [list(range(1, 19))], "causal", start_id=0)
    with pytest.raises(TaesanError, match="unknown objective"):
        sentence_log_probs(model, SEQS, "sideways", start_id=0)
    with pytest.raises(TaesanError, match=r"\[MASK\]"):
        sentence_log_probs(model, SEQS, "masked")


def test_score_ranks_a_trained_sentence_above_its_scramble(tmp_path, capsys):
    from taesan.cli import main
    from taesan.tokenizers import BPETokenizer

    seen = "난폭 운전은 위험하다"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join([seen, "티끌 모아 태산", "어제 카페 갔었어", "오늘 도서관에 갔다"] * 25) + "\n", encoding="utf-8")
    tok = BPETokenizer.train(str(corpus), vocab_size=300, special_tokens=["<|endoftext|>"]).save(tmp_path / "tok.json")
    out = tmp_path / "gpt"
    code = main(["pretrain", "--model", "gpt-tiny", "--objective", "causal", "--corpus", str(corpus), "--tokenizer", str(tok),
                 "--out", str(out), "--max-steps", "40", "--batch-size", "8", "--block-size", "32", "--lr", "3e-3",
                 "--warmup", "4", "--eval-every", "0", "--save-every", "0", "--no-progress"])
    assert code == 0
    capsys.readouterr()
    scrambled = "위험하다 운전은 난폭"
    assert main(["score", "--model", str(out), scrambled, seen]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert [line.split(None, 1)[1] for line in lines] == [seen, scrambled]  # highest first
    values = [float(line.split()[0]) for line in lines]
    assert values[0] > values[1]


def test_score_cli_errors_are_one_line(tmp_path, capsys):
    from taesan.cli import main

    assert main(["score", "--model", str(tmp_path / "nope"), "티끌 모아 태산"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such checkpoint directory" in err


def test_score_cli_empty_sentence_and_wrong_tokenizer_are_one_line(tmp_path, capsys):
    """An empty sentence scored 0.000 (log 1) and a tokenizer bigger than the model was a traceback."""
    from taesan.cli import main
    from taesan.tokenizers import CharTokenizer

    small = CharTokenizer.train(["티끌 모아 태산"], vocab_size=100, min_frequency=1, special_tokens=["<|endoftext|>"])
    big = CharTokenizer.train(["".join(chr(0xAC00 + i) for i in range(50))], vocab_size=100, min_frequency=1)
    model = taesan.create("gpt-tiny", vocab_size=small.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=16)
    model.save(tmp_path / "gpt", tokenizer=small)
    big.save(tmp_path / "big.json")
    cases = [(["티끌 모아", " "], "sentence 2 is empty"),
             (["티끌", "--tokenizer", str(tmp_path / "big.json")], "not this model's tokenizer"),
             (["티끌", "--batch-size", "0"], "--batch-size must be >= 1"),  # was a traceback
             (["티끌", "--objective", "masked"],  # a traceback
              "the masked objective scores with a masked LM (BERT, RoBERTa, ELECTRA generator)")]
    for extra, message in cases:
        assert main(["score", "--model", str(tmp_path / "gpt"), *extra]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert len(err.splitlines()) == 1 and message in err and captured.out == "", err
    assert main(["score", "--model", str(tmp_path / "gpt"), "티끌 모아"]) == 0
    bert = taesan.create("bert-mlm", vocab_size=small.vocab_size, n_layers=1, d_model=32, n_heads=2, d_ff=64, n_positions=16)
    bert.save(tmp_path / "bert", tokenizer=small)
    assert main(["score", "--model", str(tmp_path / "bert"), "티끌", "--objective", "causal"]) == 2  # it printed a number
    assert "the causal objective scores with a GPT; this model is 'bert-mlm'" in capsys.readouterr().err


@pytest.mark.parametrize("model_type", ["roberta-mlm", "electra-generator"])
def test_score_cli_on_roberta_and_electra_generator_is_their_pseudo_log_likelihood(model_type, tmp_path, capsys):
    """A masked LM of another family scores by PLL with no training.json to say so: `taesan score` prints what
    sentence_log_probs gives for the tokenizer's ids, and ELECTRA's discriminator (no LM head) is refused."""
    from taesan.cli import main
    from taesan.data.embedded import korean_corpus
    from taesan.tokenizers import WordPieceTokenizer

    tok = WordPieceTokenizer.train(korean_corpus(200), vocab_size=300, min_frequency=1)
    sizes = dict(vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, n_positions=32, d_ff=64, pad_token_id=tok.pad_id)
    if model_type == "electra-generator":
        sizes["embedding_size"] = 16
    taesan.create(model_type, **sizes).save(tmp_path / "mlm", tokenizer=tok)
    texts = ["티끌 모아 태산", "어제 카페 갔었어"]
    assert main(["score", "--model", str(tmp_path / "mlm"), *texts]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# pseudo-log-likelihood")
    printed = {line.split(None, 1)[1]: float(line.split()[0]) for line in out[1:]}
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    expected = sentence_log_probs(taesan.load(tmp_path / "mlm"), ids, "masked", cls_id=tok.cls_id, sep_id=tok.sep_id,
                                  mask_id=tok.mask_id, pad_id=tok.pad_id)
    assert [printed[t] for t in texts] == pytest.approx(expected, abs=2e-3)  # printed with three decimals
    if model_type == "electra-generator":
        taesan.create("electra-discriminator", **sizes).save(tmp_path / "disc", tokenizer=tok)
        assert main(["score", "--model", str(tmp_path / "disc"), "티끌", "--objective", "masked"]) == 2
        assert "this model is 'electra-discriminator'" in capsys.readouterr().err
        # without --objective: said at once that no objective fits (it asked for one, and each then failed)
        assert main(["score", "--model", str(tmp_path / "disc"), "티끌"]) == 2
        err = capsys.readouterr().err
        assert "'electra-discriminator' model does not score sentences alone" in err and "--objective" not in err
