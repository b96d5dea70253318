"""BERT against HuggingFace: tiny random HF models of every head load with the same outputs and export back; real MiniLM.

Not taesan-only behaviour (presets, padding, save/load): that is tests/test_bert.py.
"""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import taesan
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.pipeline.convert import convert

transformers = pytest.importorskip("transformers")

SENTENCES = ["어제 카페 갔었어", "티끌 모아 태산", "The quick brown fox jumps over the lazy dog."]


def hf_config(**overrides):
    fields = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64, type_vocab_size=3, hidden_act="gelu")
    return transformers.BertConfig(**{**fields, **overrides})


def batch():
    """Two rows with segments; the second row is padded after 5 tokens."""
    ids = torch.randint(1, 99, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    segments = torch.zeros(2, 9, dtype=torch.long)
    segments[:, 4:] = 1
    segments[0, 7:] = 2
    return ids, mask, segments


def hf_output(model, ids, mask, segments):
    """The HF tensor taesan's model returns: hidden states, logits, or QA start/end stacked on the last dim."""
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


HEADS = {
    "BertModel": ("BERT", {}),
    "BertForMaskedLM": ("BertForMaskedLM", {}),
    "BertForSequenceClassification": ("BertForSequenceClassification", dict(num_labels=3)),
    "BertForTokenClassification": ("BertForTokenClassification", dict(num_labels=5, hidden_act="gelu_new")),
    "BertForQuestionAnswering": ("BertForQuestionAnswering", {}),
}


@pytest.mark.parametrize("architecture", list(HEADS))
def test_random_hf_model_loads_with_same_outputs_and_exports_back(architecture, tmp_path):
    ours_name, overrides = HEADS[architecture]
    hf_cls = getattr(transformers, architecture)
    hf = hf_cls(hf_config(**overrides)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert type(model).__name__ == ours_name
    ids, mask, segments = batch()
    expected = hf_output(hf, ids, mask, segments)
    with torch.no_grad():
        got = model(ids, attention_mask=mask, token_type_ids=segments)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    to_hf(model, tmp_path / "back")
    again = hf_cls.from_pretrained(tmp_path / "back").eval()
    torch.testing.assert_close(hf_output(again, ids, mask, segments), got, atol=1e-5, rtol=0)
    exported = set(load_file(tmp_path / "back" / "model.safetensors"))
    assert exported <= set(again.state_dict()), "every exported tensor is one HF's model has"


def test_keys_load_with_or_without_the_bert_prefix_and_old_layernorm_names(tmp_path):
    hf = transformers.BertModel(hf_config()).eval()
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    renamed = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    save_file(renamed, tmp_path / "model.safetensors")
    ids, mask, segments = batch()
    with torch.no_grad():
        got = taesan.load(tmp_path)(ids, mask, segments)
    torch.testing.assert_close(got, hf_output(hf, ids, mask, segments), atol=1e-5, rtol=0)


def test_mlm_checkpoint_loads_as_bare_backbone_ignoring_the_head(tmp_path):
    hf = transformers.BertForMaskedLM(hf_config()).eval()
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = taesan.load(tmp_path)
    assert type(model).__name__ == "BERT" and model.pooler is None, "no pooler on disk -> none in the model"
    ids, mask, segments = batch()
    with torch.no_grad():
        expected = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
        torch.testing.assert_close(model(ids, mask, segments), expected, atol=1e-5, rtol=0)


def test_original_pretraining_checkpoint_loads_as_masked_lm_without_nsp(tmp_path):
    hf = transformers.BertForPreTraining(hf_config()).eval()
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    assert type(model).__name__ == "BertForMaskedLM" and model.bert.pooler is not None, "the pooler is kept for fine-tuning"
    ids, mask, segments = batch()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=segments).prediction_logits
        torch.testing.assert_close(model(ids, mask, segments), expected, atol=1e-5, rtol=0)


def test_label_names_survive_import_and_export(tmp_path):
    labels = {0: "부정", 1: "중립", 2: "긍정"}
    hf = transformers.BertForSequenceClassification(hf_config(id2label=labels, label2id={v: k for k, v in labels.items()}))
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert model.config.labels == ["부정", "중립", "긍정"] and model.config.num_labels == 3
    to_hf(model, tmp_path / "back")
    assert transformers.AutoConfig.from_pretrained(tmp_path / "back").id2label == labels


def test_convert_round_trip_through_taesan_checkpoint(tmp_path):
    hf = transformers.BertForTokenClassification(hf_config(num_labels=4)).eval()
    hf.save_pretrained(tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "ours", "from-hf")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model_type"] == "bert-token-classification"
    convert(tmp_path / "ours", tmp_path / "back", "to-hf")
    again = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "back").eval()
    ids, mask, segments = batch()
    torch.testing.assert_close(hf_output(again, ids, mask, segments), hf_output(hf, ids, mask, segments), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(position_embedding_type="relative_key"), "position_embedding_type"),
        (dict(architectures=["BertLMHeadModel"]), "architectures"),
        (dict(hidden_act="gelu_fast"), "hidden_act"),
        (dict(is_decoder=True), "is_decoder"),
    ],
)
def test_unsupported_hf_settings_give_one_line_errors(change, field, tmp_path):
    transformers.BertModel(hf_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(TaesanError) as err:
        taesan.load(tmp_path)
    message = str(err.value)
    assert "\n" not in message and field in message and "config.json" in message


def test_unexpected_or_missing_hf_tensor_is_named(tmp_path):
    transformers.BertForSequenceClassification(hf_config()).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({**state, "bert.encoder.layer.0.extra.weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="unexpected tensor 'encoder.layer.0.extra.weight'"):
        taesan.load(tmp_path)
    del state["classifier.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="'classifier.weight' is missing"):
        taesan.load(tmp_path)


def test_real_minilm_matches_hf_on_korean_and_english(minilm_dir):
    tokenizer = transformers.BertTokenizerFast.from_pretrained(minilm_dir)
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any(), "the batch must contain padding"
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    model = taesan.load(minilm_dir)
    with torch.no_grad():
        expected = hf(**enc).last_hidden_state
        got = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())
    assert model.num_parameters() == taesan.create("minilm-l6").num_parameters(), "the preset has MiniLM's shape"


def test_cli_export_tokenizer_reads_korean_in_autotokenizer(tmp_path):
    """The export carries tokenizer.json and a tokenizer_config.json with taesan's casing: without it,
    AutoTokenizer's BERT default lowercased and stripped accents, so every Hangul word became [UNK]."""
    from taesan.cli import main
    from taesan.data.embedded import korean_corpus
    from taesan.tokenizers import WordPieceTokenizer

    tok = WordPieceTokenizer.train(korean_corpus(200), vocab_size=300, min_frequency=1)
    taesan.create("bert", vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2).save(tmp_path / "ours", tokenizer=tok)
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), "--out", str(tmp_path / "hf")]) == 0
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "어제 카페 갔었어"
    assert hf_tok(text)["input_ids"] == tok.encode(text).ids
    assert tok.unk_id not in tok.encode(text).ids
