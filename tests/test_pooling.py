"""Mean pooling for BERT-shaped sentence classifiers (issue 17): padding never reaches the sentence vector, the
choice survives save/load, HF export refuses it in one line, and `taesan finetune` picks it for models whose
[CLS] / pooler never learned (a fresh preset, a taesan masked-LM checkpoint) but keeps [CLS] for a HF checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

import taesan
from taesan.cli import main
from taesan.config import write_json
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.models.bert import BertConfig
from taesan.models.bert_heads import BertForMaskedLM, BertForSequenceClassification
from taesan.models.electra import ElectraConfig, ElectraForSequenceClassification
from taesan.models.roberta import RobertaConfig, RobertaForSequenceClassification
from taesan.modules import masked_mean
from taesan.tokenizers import WordPieceTokenizer
from taesan.tokenizers import load as load_tokenizer
from taesan.tuning.pooling import default_pooling

from task_files import QA, squad_json  # noqa: E402

SMALL = dict(vocab_size=50, n_positions=32, d_model=16, n_layers=2, n_heads=2, num_labels=3)
CLASSIFIERS = [(BertForSequenceClassification, BertConfig), (RobertaForSequenceClassification, RobertaConfig),
               (ElectraForSequenceClassification, ElectraConfig)]


def test_masked_mean_averages_real_tokens_only():
    hidden = torch.arange(24, dtype=torch.float).reshape(2, 3, 4)  # (B, T, C)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = masked_mean(hidden, mask)
    assert torch.equal(out[0], hidden[0, :2].mean(0)) and torch.equal(out[1], hidden[1].mean(0))
    assert torch.equal(masked_mean(hidden), hidden.mean(1))
    assert torch.equal(masked_mean(hidden, torch.zeros(2, 3)), torch.zeros(2, 4))  # no real token: zeros, not NaN


@pytest.mark.parametrize("cls, config_class", CLASSIFIERS)
def test_mean_pooling_ignores_padding(cls, config_class):
    torch.manual_seed(0)
    model = cls(config_class(**SMALL, pooling="mean")).eval()
    ids = torch.randint(5, 50, (1, 7))
    padded = torch.cat([ids, torch.full((1, 5), 1)], dim=1)  # garbage ids after the end, masked out
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], dim=1).long()
    with torch.no_grad():
        alone = model(ids, attention_mask=torch.ones(1, 7, dtype=torch.long))
        beside = model(padded, attention_mask=mask)
        unmasked = model(padded)  # the same ids read as real tokens: the sentence vector must change
    torch.testing.assert_close(beside, alone, atol=1e-5, rtol=0)
    assert not torch.allclose(unmasked, alone, atol=1e-4)


def test_mean_pooling_reads_the_mean_not_cls_and_keeps_no_pooler():
    torch.manual_seed(0)
    mean = BertForSequenceClassification(BertConfig(**SMALL, pooling="mean")).eval()
    assert mean.backbone.pooler is None and not mean.config.pooler
    ids = torch.randint(5, 50, (2, 6))
    with torch.no_grad():
        hidden = mean.backbone(ids)
        expected = mean.classifier(hidden.mean(1))
        assert torch.allclose(mean(ids), expected, atol=1e-6)
    cls = BertForSequenceClassification(BertConfig(**SMALL))
    assert cls.config.pooling == "cls" and cls.backbone.pooler is not None  # the HF-shaped default is unchanged


@pytest.mark.parametrize("cls, config_class", CLASSIFIERS)
def test_pooling_survives_save_and_load(cls, config_class, tmp_path):
    torch.manual_seed(0)
    model = cls(config_class(**SMALL, pooling="mean")).eval()
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["pooling"] == "mean"
    again = taesan.load(tmp_path / "m")
    assert type(again) is cls and again.config.pooling == "mean"
    ids, mask = torch.randint(5, 50, (2, 6)), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with torch.no_grad():
        assert torch.equal(again(ids, attention_mask=mask), model(ids, attention_mask=mask))


@pytest.mark.parametrize("cls, config_class", CLASSIFIERS)
def test_hf_export_refuses_a_mean_pooled_classifier_in_one_line(cls, config_class, tmp_path):
    model = cls(config_class(**SMALL, pooling="mean"))
    with pytest.raises(TaesanError, match="pooling='mean' has no HuggingFace equivalent") as caught:
        to_hf(model, tmp_path / "hf")
    assert "\n" not in str(caught.value)
    to_hf(cls(config_class(**SMALL)), tmp_path / "hf-cls")  # [CLS] still exports
    assert (tmp_path / "hf-cls" / "config.json").is_file()


def test_a_wrong_pooling_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="field 'pooling' is 'max'"):
        BertConfig(**SMALL, pooling="max")
    model = BertForSequenceClassification(BertConfig(**SMALL))
    model.save(tmp_path / "m")
    data = json.loads((tmp_path / "m" / "config.json").read_text())
    write_json(tmp_path / "m" / "config.json", {**data, "pooling": "max"})
    with pytest.raises(TaesanError, match="pooling"):
        taesan.load(tmp_path / "m")


# ---- the CLI's default -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    tok = WordPieceTokenizer.train(korean_corpus(300), vocab_size=300, min_frequency=1)
    tok.save(d / "tok.json")
    rows = "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(sentiment_examples(40)))
    (d / "sent.tsv").write_text("id\tdocument\tlabel\n" + rows, encoding="utf-8")
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**{**SMALL, "vocab_size": tok.vocab_size}))
    mlm.save(d / "mlm", tokenizer=tok)
    write_json(d / "mlm" / "training.json", {"objective": "masked", "separator_id": tok.sep_id, "block_size": 32})
    return d


def _finetune(files, out, model, *extra):
    args = ["finetune", "--task", "classification", "--model", str(model), "--train", str(files / "sent.tsv"),
            "--out", str(out), "--max-steps", "2", "--threads", "1", "--no-progress", *extra]
    if model == "bert-tiny":
        args += ["--tokenizer", str(files / "tok.json")]
    return main(args)


@pytest.mark.parametrize("model, expected, why", [
    ("bert-tiny", "mean", "a fresh preset"),
    ("mlm", "mean", "masked objective alone"),
])
def test_finetune_chooses_mean_for_an_untrained_pooler_and_says_why(files, tmp_path, capsys, model, expected, why):
    source = model if model == "bert-tiny" else files / model
    assert _finetune(files, tmp_path / "o", source) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("defaults: pooling"))
    assert line.startswith(f"defaults: pooling {expected} -- ") and why in line and "--set pooling=cls|mean" in line
    assert json.loads((tmp_path / "o" / "config.json").read_text())["pooling"] == expected
    assert json.loads((tmp_path / "o" / "task.json").read_text())["pooling"] == expected


def test_a_qa_checkpoint_from_an_untrained_pooler_passes_mean_on_to_a_classifier(files, tmp_path, capsys):
    """MLM -> QA -> classifier: the QA head never reads [CLS] or the pooler, so the classifier after it gets the mean
    too (it got 'cls -- the checkpoint carries pooler weights' before); a QA run from a HF BERT keeps cls."""
    (files / "qa.json").write_text(squad_json(QA * 4), encoding="utf-8")
    qa = ["finetune", "--task", "qa", "--train", str(files / "qa.json"), "--max-length", "32", "--max-steps", "2",
          "--threads", "1", "--no-progress"]
    assert main([*qa, "--model", str(files / "mlm"), "--out", str(tmp_path / "qa")]) == 0
    assert json.loads((tmp_path / "qa" / "config.json").read_text())["pooling"] == "mean"
    assert "defaults: sentence_prior 4, echo_penalty 4 -- " in capsys.readouterr().out  # a minutes-old reader
    assert _finetune(files, tmp_path / "cls", tmp_path / "qa") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("defaults: pooling"))
    assert line.startswith("defaults: pooling mean -- fine-tuned by taesan from a start")
    transformers = pytest.importorskip("transformers")
    vocab = load_tokenizer(files / "tok.json").vocab_size
    hf = transformers.BertModel(transformers.BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    hf.save_pretrained(tmp_path / "hf")
    assert main([*qa, "--model", str(tmp_path / "hf"), "--tokenizer", str(files / "tok.json"), "--out", str(tmp_path / "hf-qa")]) == 0
    assert json.loads((tmp_path / "hf-qa" / "config.json").read_text())["pooling"] == "cls"
    # a reader from HuggingFace decodes as HF's do, however small (the lexical priors are for minutes-old readers)
    assert "defaults: sentence_prior 0, echo_penalty 0 -- a checkpoint from elsewhere" in capsys.readouterr().out


def test_set_pooling_overrides_the_default(files, tmp_path, capsys):
    assert _finetune(files, tmp_path / "o", files / "mlm", "--set", "pooling=cls") == 0
    assert "defaults: pooling" not in capsys.readouterr().out
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["pooling"] == "cls" and config["pooler"] is True
    assert _finetune(files, tmp_path / "x", "bert-tiny", "--set", "pooling=max") == 2
    err = capsys.readouterr().err.strip()
    assert "field 'pooling' is 'max'" in err and "\n" not in err
    # evaluate reads the file differently but cannot change what the classifier was trained to read
    assert main(["evaluate", "--model", str(tmp_path / "o"), "--data", str(files / "sent.tsv"), "--set", "pooling=mean"]) == 2


def test_a_hf_bert_with_pooler_weights_keeps_cls(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                                                        num_attention_heads=4, intermediate_size=37))
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert default_pooling(model, "classification", str(tmp_path / "hf"))[0] == "cls"
    hf_mlm = transformers.BertForMaskedLM(hf.config)  # no pooler, but HF's classifier reads [CLS]: keep it exportable
    hf_mlm.save_pretrained(tmp_path / "hf-mlm")
    choice = default_pooling(taesan.load(tmp_path / "hf-mlm"), "classification", str(tmp_path / "hf-mlm"))
    assert choice[0] == "cls" and "convert --to-hf" in choice[1]
    assert default_pooling(model, "ner", str(tmp_path / "hf")) is None  # only sentence classifiers pool
