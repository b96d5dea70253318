"""BERT on its own: presets forward/backward, padding invariance, attention weights, heads, save/load, errors.

Not the HuggingFace comparisons: those are in tests/test_interop_bert.py.
"""
import json

import pytest
import torch

import taesan
from taesan.errors import TaesanError
from taesan.models import MODEL_TYPES, create, presets
from taesan.models.bert import BERT, BertConfig
from taesan.models.bert_heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

BERT_PRESETS = sorted(name for name, (model_type, _) in presets().items() if model_type == "bert")
HEAD_TYPES = ["bert", "bert-mlm", "bert-sequence-classification", "bert-token-classification", "bert-qa"]
SMALL = dict(vocab_size=50, n_positions=32, d_model=16, n_layers=2, n_heads=4, d_ff=24, dropout=0.0, attn_dropout=0.0)


def small(model_type, **fields):
    return create(model_type, **{**SMALL, **fields}).eval()


def test_presets_and_model_types_are_registered():
    assert {"bert-tiny", "bert-base", "bert-large", "minilm-l6"} <= set(BERT_PRESETS)
    assert set(HEAD_TYPES) <= set(MODEL_TYPES)


@pytest.mark.parametrize("name, expected", [("bert-base", 109_482_240), ("bert-large", 335_141_888), ("minilm-l6", 22_713_216)])
def test_parameter_counts_of_the_published_sizes(name, expected):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = create(name)
    assert model.num_parameters() == expected


@pytest.mark.parametrize("name", ["bert-tiny", "minilm-l6"])
def test_cheap_presets_run_forward_and_backward_finite(name):
    model = create(name).train()
    ids = torch.randint(1, model.config.vocab_size, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 8:] = 0
    hidden = model(ids, attention_mask=mask)
    assert hidden.shape == (2, 12, model.config.d_model) and torch.isfinite(hidden).all()
    (hidden.square().mean() + model.pool(hidden).sum()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("model_type", HEAD_TYPES[1:])
def test_heads_on_tiny_preset_run_forward_and_backward(model_type):
    fields = presets()["bert-tiny"][1]
    model = create(model_type, **fields, num_labels=3).train()
    ids = torch.randint(1, fields["vocab_size"], (2, 10))
    out = model(ids, attention_mask=torch.ones(2, 10), token_type_ids=torch.zeros(2, 10, dtype=torch.long))
    expected = {
        "bert-mlm": (2, 10, fields["vocab_size"]),
        "bert-sequence-classification": (2, 3),
        "bert-token-classification": (2, 10, 3),
        "bert-qa": (2, 10, 2),
    }[model_type]
    assert out.shape == expected and torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert torch.isfinite(model.bert.tok_emb.weight.grad).all() and model.bert.tok_emb.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model_type", HEAD_TYPES)
def test_padding_invariance(model_type):
    """Extra pad tokens under the mask leave the real tokens' outputs unchanged."""
    model = small(model_type)
    ids = torch.randint(1, 50, (1, 6))
    segments = torch.tensor([[0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        alone = model(ids, token_type_ids=segments)
        padded_ids = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
        mask = torch.tensor([[1] * 6 + [0] * 4])
        padded = model(padded_ids, attention_mask=mask, token_type_ids=torch.cat([segments, torch.ones(1, 4, dtype=torch.long)], 1))
    if model_type == "bert-sequence-classification":
        torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(padded[:, :6], alone, atol=1e-5, rtol=0)


def test_need_weights_are_per_layer_and_zero_on_padded_keys():
    model = small("bert", n_layers=3)
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        hidden, attentions = model.forward_features(ids, mask, need_weights=True)
        fast, none = model.forward_features(ids, mask)
    assert none == [] and len(attentions) == 3
    torch.testing.assert_close(hidden, fast, atol=1e-5, rtol=0)
    for layer in attentions:
        w = layer["self"]
        assert w.shape == (2, 4, 7, 7)
        assert (w[1, :, :, 4:] == 0).all(), "padded keys get exactly zero weight"
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 7))


def test_segments_and_positions_change_outputs_and_inputs_embeds_equals_ids():
    model = small("bert")
    ids = torch.randint(1, 50, (1, 5))
    with torch.no_grad():
        base = model(ids)
        assert not torch.allclose(model(ids, token_type_ids=torch.ones(1, 5, dtype=torch.long)), base)
        assert not torch.allclose(model(ids, position_ids=torch.arange(5, 10)[None]), base)
        torch.testing.assert_close(model(inputs_embeds=model.tok_emb(ids)), base)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=torch.ones(1, 4))


def test_mlm_decoder_is_tied_and_masked_positions_select_rows():
    model = small("bert-mlm")
    assert model.mlm.decoder.weight is model.bert.tok_emb.weight
    ids = torch.randint(1, 50, (2, 6))
    chosen = torch.zeros(2, 6, dtype=torch.bool)
    chosen[0, 1], chosen[1, 4], chosen[1, 5] = True, True, True
    with torch.no_grad():
        full = model(ids)
        torch.testing.assert_close(model(ids, masked_positions=chosen), full[chosen])


@pytest.mark.parametrize("model_type", HEAD_TYPES)
def test_save_load_round_trip(model_type, tmp_path):
    model = small(model_type, labels=["O", "B-PS", "I-PS"], num_labels=3)
    model.save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == model_type
    loaded = taesan.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    ids = torch.randint(1, 50, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), atol=0, rtol=0)
    if model_type == "bert-mlm":
        assert loaded.mlm.decoder.weight is loaded.bert.tok_emb.weight, "the tie survives loading"


def test_swap_head_keeps_backbone_weights_and_reset_classifier():
    mlm = small("bert-mlm")
    classifier = BertForSequenceClassification.from_backbone(mlm, num_labels=4)
    assert classifier.config.num_labels == 4 and classifier.bert.pooler is not None
    for key, value in mlm.bert.state_dict().items():
        torch.testing.assert_close(classifier.bert.state_dict()[key], value, atol=0, rtol=0)
    tagger = BertForTokenClassification.from_backbone(classifier, num_labels=2, labels=["O", "B"])
    torch.testing.assert_close(tagger.bert.pooler.dense.weight, classifier.bert.pooler.dense.weight, atol=0, rtol=0)
    tagger.reset_classifier(5)
    assert tagger.classifier.out_features == 5 and tagger.config.num_labels == 5 and tagger.config.labels is None
    assert tagger.eval()(torch.randint(1, 50, (1, 3))).shape == (1, 3, 5)
    qa = BertForQuestionAnswering.from_backbone(small("bert"))
    assert qa.config.num_labels == 2
    bare_mlm = BertForMaskedLM.from_backbone(small("bert"))
    assert bare_mlm.mlm.decoder.weight is bare_mlm.bert.tok_emb.weight


def test_shape_mismatch_and_unknown_model_type_give_one_clear_error(tmp_path):
    small("bert").save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_ff": 32}))
    with pytest.raises(TaesanError, match=r"model\.safetensors: tensor 'blocks\.0\.mlp\.(up|down)\.weight' has shape .*24.*the config expects .*32"):
        taesan.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bert-nsp"}))
    with pytest.raises(TaesanError, match="unknown model_type 'bert-nsp'"):
        taesan.load(tmp_path)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(d_model=30, n_heads=4), "not divisible"),
        (dict(activation="swish"), "activation"),
        (dict(pad_token_id=99, vocab_size=50), "pad_token_id"),
        (dict(num_labels=2, labels=["a", "b", "c"]), "labels"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_config_validation(fields, message):
    with pytest.raises(TaesanError, match=message):
        create("bert", **fields)
    with pytest.raises(ValueError, match=message):
        BertConfig(**fields)


def test_bare_backbone_without_pooler_says_so():
    model = BERT(BertConfig(**SMALL, pooler=False))
    assert not any(k.startswith("pooler") for k in model.state_dict())
    with pytest.raises(TaesanError, match="no pooler"):
        model.pool(torch.zeros(1, 2, 16))
