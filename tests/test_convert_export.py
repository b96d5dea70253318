"""`taesan convert --to-hf` as a transformers user meets it: AutoTokenizer on the export feeds the model exactly what
taesan fed it (a translator's source + </s>; no token_type_ids for a model without segments; at most the model's
positions), and a round trip keeps the hub checkpoint's special-token ids. Tiny random models built from configs.

Not the weight tables (test_interop_*.py) and not the loading of bare hub checkpoints (test_seq2seq_checkpoints.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_files import NLI, corpus_lines, write_task_files
from test_seq2seq_checkpoints import KOBART_SPECIALS, kobart_like, randomise

import taesan
from taesan.cli import main
from taesan.pipeline.convert import convert
from taesan.tasks import load_task

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

FAST = ["--threads", "1", "--no-progress", "--max-steps", "2", "--batch-size", "8"]
SOURCES = ["어제 카페 갔었어", "티끌 모아 태산", "고마워"]
LONG = "정말 " * 60 + "길다"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("task_files"))


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def t5_with_spiece(directory: Path) -> Path:
    """KE-T5's layout, tiny: a SentencePiece spiece.model (pad 0, </s> 1, <unk> 2, no <s>) beside a tied T5."""
    spm = pytest.importorskip("sentencepiece")
    directory.mkdir(parents=True)
    (directory / "train.txt").write_text("\n".join(corpus_lines()), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(directory / "train.txt"), model_prefix=str(directory / "spiece"),
                                   model_type="unigram", vocab_size=600, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    (directory / "train.txt").unlink()
    n = spm.SentencePieceProcessor(model_file=str(directory / "spiece.model")).get_piece_size()
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=n, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                                   num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    randomise(transformers.T5ForConditionalGeneration(config)).save_pretrained(directory)
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    (directory / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>", "unk_token": "<unk>",
                                                                   "pad_token": "<pad>"}))
    return directory


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_an_exported_translator_reads_and_writes_as_taesan(family, files, tmp_path, capsys):
    """HF's tokenizer gives the ids the task's encoder read (source + </s>), and HF's greedy generate on the export
    writes what `taesan predict` writes."""
    hub = kobart_like(tmp_path / "hub") if family == "bart" else t5_with_spiece(tmp_path / "hub")
    out, hf_out = tmp_path / "tr", tmp_path / "tr-hf"
    assert main(["finetune", "--task", "translation", "--model", str(hub), "--train", str(files["translation"]),
                 "--out", str(out), "--set", "max_target_length=8", *FAST]) == 0, capsys.readouterr().err
    assert main(["convert", "--to-hf", str(out), "--out", str(hf_out)]) == 0
    task = load_task(out, taesan.tokenizers.load(out))
    tok = transformers.AutoTokenizer.from_pretrained(hf_out)
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_out).eval()
    predict = taesan.pipeline(out)
    written = []
    for text in SOURCES:
        ids = tok(text, return_tensors="pt")["input_ids"]
        assert ids[0].tolist() == task.source_ids(text) and ids[0, -1] == task.eos_id, text
        with torch.no_grad():
            row = hf.generate(ids, max_new_tokens=8, do_sample=False, num_beams=1, forced_eos_token_id=None)[0]
        written.append(tok.decode(row, skip_special_tokens=True))
        assert predict(text)["translation"] == written[-1], text
    assert any(written)  # the comparison saw text, not only empty outputs


def roberta_like(directory: Path, model_max_length: int | None = None) -> Path:
    """KLUE-RoBERTa's layout, tiny: a WordPiece vocab.txt ([CLS] [PAD] [SEP] [UNK] [MASK] first), a pair classifier
    with one segment row (type_vocab_size 1) and 20 positions after the padding id (18 usable)."""
    directory.mkdir(parents=True)
    wp = tokenizers.BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wp.train_from_iterator(corpus_lines(), vocab_size=300, min_frequency=1,
                           special_tokens=["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"])
    wp.save_model(str(directory))
    torch.manual_seed(0)
    config = transformers.RobertaConfig(
        vocab_size=wp.get_vocab_size(), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=20, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=3,
        id2label={0: "entailment", 1: "neutral", 2: "contradiction"}, label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    randomise(transformers.RobertaForSequenceClassification(config)).save_pretrained(directory)
    tok_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False}
    if model_max_length is not None:
        tok_config["model_max_length"] = model_max_length
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_config))
    return directory


def test_the_export_says_how_long_an_input_may_be(tmp_path):
    """model_max_length: the model's usable positions when the tokenizer names none (RoBERTa: 20 - 2), so HF's
    truncation keeps a long text inside them instead of an IndexError; a tokenizer's own limit is kept."""
    hub = roberta_like(tmp_path / "hub")
    convert(hub, tmp_path / "ours", "from-hf")
    convert(tmp_path / "ours", tmp_path / "hf", "to-hf")
    assert read(tmp_path / "hf" / "tokenizer_config.json")["model_max_length"] == 18
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    enc = tok(LONG, truncation=True, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 18
    with torch.no_grad():
        torch.testing.assert_close(hf(**enc).logits, taesan.load(hub)(enc["input_ids"]), atol=1e-5, rtol=0)
    own = roberta_like(tmp_path / "hub16", model_max_length=16)
    convert(own, tmp_path / "hf16", "to-hf")
    assert read(tmp_path / "hf16" / "tokenizer_config.json")["model_max_length"] == 16


def test_a_roberta_pair_classifier_export_runs_in_hfs_pipeline(tmp_path):
    """RoBERTa has one segment row: the exported tokenizer gives no token_type_ids (a pair's 1s overflow it), and
    HF's text-classification pipeline scores a pair as taesan's model does."""
    hub = roberta_like(tmp_path / "hub")
    convert(hub, tmp_path / "hf", "to-hf")
    assert read(tmp_path / "hf" / "tokenizer_config.json")["model_input_names"] == ["input_ids", "attention_mask"]
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    premise, hypothesis = NLI[0][:2]
    enc = tok(premise, hypothesis, return_tensors="pt")
    assert "token_type_ids" not in enc
    classify = transformers.pipeline("text-classification", model=str(tmp_path / "hf"), tokenizer=tok, top_k=None)
    scores = {s["label"]: s["score"] for s in classify({"text": premise, "text_pair": hypothesis})}
    with torch.no_grad():
        ours = taesan.load(hub)(enc["input_ids"])[0].softmax(-1)
    assert scores == pytest.approx({"entailment": float(ours[0]), "neutral": float(ours[1]),
                                    "contradiction": float(ours[2])}, abs=1e-5)


def kogpt2_like(directory: Path) -> Path:
    """skt/kogpt2-base-v2's layout, tiny: tokenizer.json alone (<s> </s> <usr> <pad> ... first) and a GPT2LMHeadModel
    whose config names bos 0, eos 1, pad 3."""
    directory.mkdir(parents=True)
    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator(corpus_lines(), vocab_size=300, min_frequency=1, special_tokens=KOBART_SPECIALS)
    tok.save(str(directory / "tokenizer.json"))
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=1, pad_token_id=3)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def test_a_round_trip_keeps_the_hub_special_ids(tmp_path, capsys):
    """convert --from-hf then --to-hf: KoGPT2's bos 0 and pad 3 (taesan's GPT config keeps only eos) and KoBART's
    bos_token come back as the hub had them."""
    for name, build in (("kogpt2", kogpt2_like), ("kobart", kobart_like)):
        hub = build(tmp_path / name)
        assert main(["convert", "--from-hf", str(hub), "--out", str(tmp_path / f"{name}-ts")]) == 0
        assert main(["convert", "--to-hf", str(tmp_path / f"{name}-ts"), "--out", str(tmp_path / f"{name}-hf")]) == 0
        theirs, back = read(hub / "config.json"), read(tmp_path / f"{name}-hf" / "config.json")
        for field in ("bos_token_id", "eos_token_id", "pad_token_id"):
            assert back.get(field) == theirs[field], (name, field)
        tok = transformers.AutoTokenizer.from_pretrained(tmp_path / f"{name}-hf")
        assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>"), name


def test_a_bare_bart_exports_as_its_writer(tmp_path):
    """KoBART (a bare BartModel) exports as the BartForConditionalGeneration taesan runs: the same logits as that
    class reads from the hub directory, and AutoModel still finds the hub's BartModel in it."""
    hub = kobart_like(tmp_path / "hub")
    convert(hub, tmp_path / "hf", "to-hf")
    assert read(tmp_path / "hf" / "config.json")["architectures"] == ["BartForConditionalGeneration"]
    src, tgt = torch.randint(7, 300, (2, 9)), torch.randint(7, 300, (2, 5))
    with torch.no_grad():
        for auto, output in ((transformers.AutoModelForSeq2SeqLM, "logits"), (transformers.AutoModel, "last_hidden_state")):
            hub_model, exported = (auto.from_pretrained(d).eval() for d in (hub, tmp_path / "hf"))
            torch.testing.assert_close(getattr(exported(input_ids=src, decoder_input_ids=tgt), output),
                                       getattr(hub_model(input_ids=src, decoder_input_ids=tgt), output), atol=1e-5, rtol=0)
