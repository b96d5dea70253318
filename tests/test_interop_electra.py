"""ELECTRA against HuggingFace: tiny random HF models of every head (discriminator, generator, classifiers, QA) load
with the same outputs, with and without the embedding projection, and export back; `taesan convert` both ways.

Not the families' shared save/load and shape checks: those are in tests/test_registry_models.py.
"""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.models import create, to_hf
from taesan.models.bert_heads import BertForTokenClassification
from taesan.models.electra import ElectraForPreTraining, ElectraForTokenClassification

transformers = pytest.importorskip("transformers")


def hf_config(**overrides):
    fields = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64, type_vocab_size=3, hidden_act="gelu")
    return transformers.ElectraConfig(**{**fields, **overrides})


def batch():
    """Two rows with segments; the second is padded (id 0) after 5 tokens."""
    ids = torch.randint(1, 99, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    segments = torch.zeros(2, 9, dtype=torch.long)
    segments[:, 4:] = 1
    segments[0, 7:] = 2
    return ids, mask, segments


def hf_output(model, **inputs):
    """The HF tensor taesan's model returns: hidden states, logits, or QA start/end stacked on the last dim."""
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


HEADS = {
    "ElectraModel": ("ELECTRA", {}),
    "ElectraForPreTraining": ("ElectraForPreTraining", dict(hidden_act="relu")),  # the discriminator follows hidden_act
    "ElectraForMaskedLM": ("ElectraForMaskedLM", dict(hidden_act="relu")),  # the generator head stays erf GELU
    "ElectraForSequenceClassification": ("ElectraForSequenceClassification", dict(num_labels=3, hidden_act="relu")),
    "ElectraForTokenClassification": ("ElectraForTokenClassification", dict(num_labels=5)),
    "ElectraForQuestionAnswering": ("ElectraForQuestionAnswering", {}),
}


@pytest.mark.parametrize("embedding_size", [16, 32], ids=["projected", "same-width"])
@pytest.mark.parametrize("architecture", list(HEADS))
def test_random_hf_model_loads_with_same_outputs_and_exports_back(architecture, embedding_size, tmp_path):
    ours_name, overrides = HEADS[architecture]
    hf_cls = getattr(transformers, architecture)
    hf = hf_cls(hf_config(embedding_size=embedding_size, **overrides)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert type(model).__name__ == ours_name
    backbone = model if ours_name == "ELECTRA" else model.electra
    assert (backbone.emb_proj is None) == (embedding_size == 32)
    ids, mask, segments = batch()
    with torch.no_grad():
        got = model(ids, attention_mask=mask, token_type_ids=segments)
        unpadded = model(ids[:1])
    expected = hf_output(hf, input_ids=ids, attention_mask=mask, token_type_ids=segments)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(unpadded, hf_output(hf, input_ids=ids[:1]), atol=1e-5, rtol=0)

    to_hf(model, tmp_path / "back")
    again = hf_cls.from_pretrained(tmp_path / "back").eval()
    torch.testing.assert_close(hf_output(again, input_ids=ids, attention_mask=mask, token_type_ids=segments), got, atol=1e-5, rtol=0)
    exported = set(load_file(tmp_path / "back" / "model.safetensors"))
    assert exported <= set(again.state_dict()), "every exported tensor is one HF's model has"


def test_inputs_embeds_are_embedding_size_wide_and_attention_weights_match_hf(tmp_path):
    hf = transformers.ElectraForPreTraining(hf_config()).eval()
    hf.save_pretrained(tmp_path)
    eager = transformers.ElectraForPreTraining.from_pretrained(tmp_path, attn_implementation="eager").eval()
    model = taesan.load(tmp_path)
    ids, mask, segments = batch()
    embeds = model.electra.tok_emb(ids).detach()
    assert embeds.shape[-1] == 16
    with torch.no_grad():
        from_embeds = model(inputs_embeds=embeds, attention_mask=mask, token_type_ids=segments)
        _, attentions = model.forward_features(ids, mask, segments, need_weights=True)
        theirs = eager(input_ids=ids, attention_mask=mask, token_type_ids=segments, output_attentions=True)
    torch.testing.assert_close(from_embeds, hf_output(hf, inputs_embeds=embeds, attention_mask=mask, token_type_ids=segments),
                               atol=1e-5, rtol=0)
    assert len(attentions) == len(theirs.attentions) == 2
    for ours, hf_weights in zip(attentions, theirs.attentions):
        torch.testing.assert_close(ours["self"], hf_weights, atol=1e-5, rtol=0)


def test_generator_decoder_is_tied_to_the_narrow_embeddings(tmp_path):
    generator = create("electra-generator", vocab_size=50, embedding_size=8, d_model=16, n_layers=1, n_heads=2)
    assert generator.mlm.decoder.weight is generator.electra.tok_emb.weight
    assert generator.mlm.decoder.weight.shape == (50, 8) and generator.mlm.transform.weight.shape == (8, 16)
    generator.save(tmp_path)
    assert "mlm.decoder.weight" not in load_file(tmp_path / "model.safetensors")
    loaded = taesan.load(tmp_path)
    assert loaded.mlm.decoder.weight is loaded.electra.tok_emb.weight, "the tie survives loading"


def test_discriminator_heads_swap_within_the_family():
    discriminator = create("electra-tiny")
    discriminator = ElectraForPreTraining.from_backbone(discriminator)
    tagger = ElectraForTokenClassification.from_backbone(discriminator, num_labels=3, labels=["O", "B-PS", "I-PS"])
    for key, value in discriminator.electra.state_dict().items():
        torch.testing.assert_close(tagger.electra.state_dict()[key], value, atol=0, rtol=0)
    with pytest.raises(TaesanError, match="needs a BERT backbone, got ELECTRA"):
        BertForTokenClassification.from_backbone(tagger)


def test_convert_both_ways_on_the_command_line(tmp_path):
    hf = transformers.ElectraForPreTraining(hf_config()).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ours")]) == 0
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "electra-discriminator" and saved["embedding_size"] == 16
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "back")]) == 0
    again = transformers.AutoModelForPreTraining.from_pretrained(tmp_path / "back").eval()
    assert type(again).__name__ == "ElectraForPreTraining"
    ids, mask, segments = batch()
    inputs = dict(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    torch.testing.assert_close(hf_output(again, **inputs), hf_output(hf, **inputs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["electra-small-discriminator", "electra-base-discriminator", "electra-base-generator"])
def test_preset_parameter_counts_equal_hf(name):
    model_type, fields = taesan.models.PRESETS[name]
    config = transformers.ElectraConfig(vocab_size=fields["vocab_size"], embedding_size=fields["embedding_size"],
                                        hidden_size=fields["d_model"], num_hidden_layers=fields["n_layers"],
                                        num_attention_heads=fields["n_heads"], intermediate_size=fields["d_ff"])
    hf_cls = transformers.ElectraForPreTraining if model_type == "electra-discriminator" else transformers.ElectraForMaskedLM
    with torch.device("meta"):  # shapes only
        theirs = hf_cls(config)
        ours = create(name)
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


def test_unexpected_or_missing_hf_tensor_is_named(tmp_path):
    transformers.ElectraForPreTraining(hf_config()).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({**state, "electra.pooler.dense.weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="unexpected tensor 'pooler.dense.weight'"):
        taesan.load(tmp_path)
    del state["electra.embeddings_project.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="'embeddings_project.weight' is missing"):
        taesan.load(tmp_path)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(architectures=["ElectraForMultipleChoice"]), "architectures"),
        (dict(is_decoder=True), "is_decoder"),
        (dict(embedding_size=0), "embedding_size"),
    ],
)
def test_unsupported_hf_settings_give_one_line_errors(change, field, tmp_path):
    transformers.ElectraModel(hf_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TaesanError) as err:
        taesan.load(tmp_path)
    message = str(err.value)
    assert "\n" not in message and field in message and "config.json" in message
