"""RoBERTa against HuggingFace: tiny random HF models of every head load with the same outputs (padded on either
side, with segments, from inputs_embeds, attention weights) and export back; `taesan convert` both ways.

Not the families' shared save/load and shape checks: those are in tests/test_registry_models.py.
"""
import json

import pytest
import torch
from safetensors.torch import load_file

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.models import create, to_hf
from taesan.models.bert_heads import BertForSequenceClassification
from taesan.models.roberta import RobertaForQuestionAnswering, RobertaForSequenceClassification, padding_positions

transformers = pytest.importorskip("transformers")

PAD = 1


def hf_config(**overrides):
    fields = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=66, type_vocab_size=1, pad_token_id=PAD, layer_norm_eps=1e-5, hidden_act="gelu")
    return transformers.RobertaConfig(**{**fields, **overrides})


def batch(left: bool = False):
    """Two rows (<s> = 0 first); the second padded with PAD after 5 tokens (or before them, left=True)."""
    ids = torch.randint(3, 99, (2, 9))
    ids[:, 0] = 0
    mask = torch.ones(2, 9, dtype=torch.long)
    if left:
        ids[1] = torch.cat([torch.full((4,), PAD), ids[1, :5]])
        mask[1, :4] = 0
    else:
        ids[1, 5:] = PAD
        mask[1, 5:] = 0
    return ids, mask


def hf_output(model, **inputs):
    """The HF tensor taesan's model returns: hidden states, logits, or QA start/end stacked on the last dim."""
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


HEADS = {
    "RobertaModel": ("RoBERTa", {}),
    "RobertaForMaskedLM": ("RobertaForMaskedLM", dict(hidden_act="relu")),  # the LM head stays erf GELU
    "RobertaForSequenceClassification": ("RobertaForSequenceClassification", dict(num_labels=3)),
    "RobertaForTokenClassification": ("RobertaForTokenClassification", dict(num_labels=5, hidden_act="gelu_new")),
    "RobertaForQuestionAnswering": ("RobertaForQuestionAnswering", {}),
}


@pytest.mark.parametrize("architecture", list(HEADS))
def test_random_hf_model_loads_with_same_outputs_and_exports_back(architecture, tmp_path):
    ours_name, overrides = HEADS[architecture]
    hf_cls = getattr(transformers, architecture)
    hf = hf_cls(hf_config(**overrides)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert type(model).__name__ == ours_name
    assert model.config.n_positions == 66 - PAD - 1, "n_positions counts tokens, not the table's rows"
    ids, mask = batch()
    with torch.no_grad():
        got = model(ids, attention_mask=mask)
        unpadded = model(ids[:1])
    expected = hf_output(hf, input_ids=ids, attention_mask=mask)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(unpadded, hf_output(hf, input_ids=ids[:1]), atol=1e-5, rtol=0)

    to_hf(model, tmp_path / "back")
    again = hf_cls.from_pretrained(tmp_path / "back").eval()
    torch.testing.assert_close(hf_output(again, input_ids=ids, attention_mask=mask), got, atol=1e-5, rtol=0)
    exported = set(load_file(tmp_path / "back" / "model.safetensors"))
    assert exported <= set(again.state_dict()), "every exported tensor is one HF's model has"
    assert json.loads((tmp_path / "back" / "config.json").read_text())["max_position_embeddings"] == 66


@pytest.mark.parametrize("architecture", ["RobertaModel", "RobertaForTokenClassification"])
def test_left_padding_and_segments_match_hf(architecture, tmp_path):
    """Positions skip padding wherever it sits: a left-padded row reads the same positions as the unpadded one."""
    hf_cls = getattr(transformers, architecture)
    hf = hf_cls(hf_config(type_vocab_size=2, num_labels=3)).eval()
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    ids, mask = batch(left=True)
    segments = torch.zeros_like(ids)
    segments[:, 6:] = 1
    with torch.no_grad():
        got = model(ids, attention_mask=mask, token_type_ids=segments)
        alone = model(ids[1:, 4:], token_type_ids=segments[1:, 4:])
    torch.testing.assert_close(got, hf_output(hf, input_ids=ids, attention_mask=mask, token_type_ids=segments), atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1:, 4:], alone, atol=1e-5, rtol=0)


def test_inputs_embeds_and_attention_weights_match_hf(tmp_path):
    hf = transformers.RobertaModel(hf_config()).eval()
    hf.save_pretrained(tmp_path)
    eager = transformers.RobertaModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    model = taesan.load(tmp_path)
    ids, mask = batch()
    embeds = model.tok_emb(ids).detach()
    with torch.no_grad():
        from_embeds = model(inputs_embeds=embeds)
        hidden, attentions = model.forward_features(ids, mask, need_weights=True)
        theirs = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(from_embeds, hf_output(hf, inputs_embeds=embeds), atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden, theirs.last_hidden_state, atol=1e-5, rtol=0)
    assert len(attentions) == len(theirs.attentions) == 2
    for ours, hf_weights in zip(attentions, theirs.attentions):
        torch.testing.assert_close(ours["self"], hf_weights, atol=1e-5, rtol=0)


def test_padding_positions_count_real_tokens_only():
    ids = torch.tensor([[5, 6, 1, 1], [1, 7, 8, 1]])
    assert padding_positions(ids, pad_token_id=1).tolist() == [[0, 1, -1, -1], [-1, 0, 1, -1]]
    # HF's rule, written out: real tokens count from pad + 1, padding sits on pad
    expected = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(ids, 1)
    assert (padding_positions(ids, 1) + 2).tolist() == expected.tolist()


def test_too_long_input_is_refused_at_the_last_position():
    model = create("roberta", vocab_size=20, n_positions=8, d_model=16, n_layers=1, n_heads=2).eval()
    assert model.pos_emb.weight.shape[0] == 8 + PAD + 1
    model(torch.full((1, 8), 5))
    with pytest.raises(ValueError, match="beyond the model's 8 positions"):
        model(torch.full((1, 9), 5))


def test_pretrained_checkpoint_with_pooler_keeps_it_and_heads_swap_within_the_family(tmp_path):
    hf = transformers.RobertaModel(hf_config()).eval()  # RobertaModel has a pooler, as roberta-base's files
    hf.save_pretrained(tmp_path)
    backbone = taesan.load(tmp_path)
    assert backbone.pooler is not None
    ids, _ = batch()
    with torch.no_grad():
        torch.testing.assert_close(backbone.pool(backbone(ids)), hf(input_ids=ids).pooler_output, atol=1e-5, rtol=0)
    classifier = RobertaForSequenceClassification.from_backbone(backbone, num_labels=4, labels=list("abcd"))
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(classifier.roberta.state_dict()[key], value, atol=0, rtol=0)
    qa = RobertaForQuestionAnswering.from_backbone(classifier)
    assert qa.backbone is qa.roberta and qa.config.num_labels == 2
    with pytest.raises(TaesanError, match="BertForSequenceClassification needs a BERT backbone, got RoBERTa"):
        BertForSequenceClassification.from_backbone(classifier)


def test_convert_both_ways_on_the_command_line(tmp_path):
    hf = transformers.RobertaForSequenceClassification(hf_config(num_labels=2, id2label={0: "부정", 1: "긍정"},
                                                                 label2id={"부정": 0, "긍정": 1})).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ours")]) == 0
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "roberta-sequence-classification" and saved["labels"] == ["부정", "긍정"]
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "back")]) == 0
    again = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "back").eval()
    assert type(again).__name__ == "RobertaForSequenceClassification" and again.config.id2label == {0: "부정", 1: "긍정"}
    ids, mask = batch()
    torch.testing.assert_close(hf_output(again, input_ids=ids, attention_mask=mask),
                               hf_output(hf, input_ids=ids, attention_mask=mask), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["roberta-base", "klue-roberta-base"])
def test_preset_parameter_counts_equal_hf(name):
    _, fields = taesan.models.PRESETS[name]
    config = hf_config(vocab_size=fields["vocab_size"], hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=514)
    with torch.device("meta"):  # shapes only
        theirs = transformers.RobertaForMaskedLM(config)
        ours = create("roberta-mlm", **fields)
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(position_embedding_type="relative_key"), "position_embedding_type"),
        (dict(architectures=["RobertaForCausalLM"]), "architectures"),
        (dict(is_decoder=True), "is_decoder"),
        (dict(pad_token_id=None), "pad_token_id"),
        (dict(max_position_embeddings=2), "max_position_embeddings"),
    ],
)
def test_unsupported_hf_settings_give_one_line_errors(change, field, tmp_path):
    transformers.RobertaModel(hf_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TaesanError) as err:
        taesan.load(tmp_path)
    message = str(err.value)
    assert "\n" not in message and field in message and "config.json" in message
