"""GPTForSequenceClassification: HF parity (logits within 1e-5), last-real-token pooling, head swaps, round trips."""
from __future__ import annotations

import pytest
import torch

import taesan
from taesan.models import from_hf, to_hf
from taesan.models.gpt import GPT, GPTConfig
from taesan.models.gpt_heads import GPTClassifierConfig, GPTForSequenceClassification, last_token_index

TINY = dict(vocab_size=50, n_positions=16, d_model=32, n_layers=2, n_heads=4, dropout=0.0, attn_dropout=0.0)
PAD = 0


def hf_model():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4, num_labels=3, pad_token_id=PAD,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(1)
    model = transformers.GPT2ForSequenceClassification(config).eval()
    with torch.no_grad():
        model.score.weight.normal_(0, 0.5)  # make the head matter
    return model


def batch():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, PAD, PAD, PAD], [14, 15, 16, 17, PAD, PAD]])
    return ids, (ids != PAD).long()


def test_last_token_index_by_mask_pad_and_default():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1]])
    assert last_token_index(None, mask, None, 3).tolist() == [1, 2, 2]  # right and left padding
    ids = torch.tensor([[4, 0, 0], [4, 5, 6]])
    assert last_token_index(ids, None, 0, 3).tolist() == [0, 2]
    assert last_token_index(ids, None, None, 3) == -1


def test_hf_parity_after_import(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf")
    ours = from_hf(tmp_path / "hf")
    assert isinstance(ours, GPTForSequenceClassification) and ours.config.num_labels == 3
    ids, mask = batch()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).logits
        assert torch.allclose(ours(ids, attention_mask=mask), expected, atol=1e-5)
        assert torch.allclose(ours(ids), expected, atol=1e-5)  # no mask: found by pad_token_id, as HF


def test_export_loads_in_hf_with_same_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = GPTForSequenceClassification(GPTClassifierConfig(**TINY, num_labels=2, labels=["부정", "긍정"], pad_token_id=PAD)).eval()
    to_hf(model, tmp_path / "out")
    hf = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert hf.config.id2label == {0: "부정", 1: "긍정"}
    ids, mask = batch()
    with torch.no_grad():
        assert torch.allclose(hf(input_ids=ids, attention_mask=mask).logits, model(ids, attention_mask=mask), atol=1e-5)


def test_padding_does_not_change_a_rows_logits():
    model = GPTForSequenceClassification(GPTClassifierConfig(**TINY, num_labels=2)).eval()
    alone = model(torch.tensor([[11, 12, 13]]))
    padded = model(torch.tensor([[11, 12, 13, 3, 3]]), attention_mask=torch.tensor([[1, 1, 1, 0, 0]]))
    left = model(torch.tensor([[3, 3, 11, 12, 13]]), attention_mask=torch.tensor([[0, 0, 1, 1, 1]]),
                 position_ids=torch.tensor([[0, 0, 0, 1, 2]]))
    assert torch.allclose(alone, padded, atol=1e-5) and torch.allclose(alone, left, atol=1e-5)


def test_from_backbone_copies_the_backbone_and_reset_classifier():
    gpt = GPT(GPTConfig(**TINY)).eval()
    model = GPTForSequenceClassification.from_backbone(gpt, num_labels=3, labels=["a", "b", "c"]).eval()
    ids = torch.tensor([[5, 6, 7]])
    hidden_gpt, _ = gpt.forward_features(ids)
    hidden_head, _ = model.forward_features(ids)
    assert torch.equal(hidden_gpt, hidden_head)
    assert model(ids).shape == (1, 3) and model.config.labels == ["a", "b", "c"]
    again = GPTForSequenceClassification.from_backbone(model, num_labels=2)  # head to head
    assert torch.equal(again.gpt.tok_emb.weight, gpt.tok_emb.weight) and again(ids).shape == (1, 2)
    model.reset_classifier(5)
    assert model(ids).shape == (1, 5) and model.config.num_labels == 5 and model.config.labels is None


def test_save_load_round_trip(tmp_path):
    model = GPTForSequenceClassification(GPTClassifierConfig(**TINY, num_labels=2, labels=["0", "1"])).eval()
    model.save(tmp_path / "m")
    loaded = taesan.load(tmp_path / "m")
    ids = torch.tensor([[5, 6, 7, 8]])
    assert isinstance(loaded, GPTForSequenceClassification)
    assert torch.equal(model(ids), loaded(ids))


def test_gradient_reaches_backbone():
    model = GPTForSequenceClassification(GPTClassifierConfig(**TINY, num_labels=2))
    model(torch.tensor([[5, 6, 7]])).sum().backward()
    assert model.gpt.tok_emb.weight.grad is not None and model.score.weight.grad.abs().sum() > 0
