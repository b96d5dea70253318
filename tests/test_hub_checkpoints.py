"""End to end, as a Korean NLP user would: a directory laid out like a downloaded hub checkpoint (HF config.json +
model.safetensors, tiny and random, built with transformers; the model's tokenizer files as the hub ships them, built
with the `tokenizers` library) -> `taesan finetune --model DIR` for a few steps -> `taesan predict` -> `taesan convert
--to-hf` -> the export loads in transformers with the same logits, and its tokenizer cuts text as taesan's does.

One test per family: KcBERT (bert + vocab.txt), KLUE-RoBERTa (roberta + WordPiece vocab.txt and tokenizer.json with a
BertTokenizer config), KoELECTRA (electra discriminator + vocab.txt), KoBART (a bare BartModel + byte-level BPE
tokenizer.json), KoGPT2 (gpt2 + a Metaspace BPE tokenizer.json with byte_fallback) and KE-T5 (t5 + a Unigram
tokenizer.json). The tokenizer shapes are also compared with transformers' own reading of the same directory.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_files import corpus_lines, write_task_files

import taesan
from taesan.cli import main

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

FAST = ["--threads", "1", "--no-progress", "--max-steps", "3", "--batch-size", "8"]
SENTENCES = ["어제 카페 갔었어 거기 사람 많더라", "티끌 모아 태산", "배우들 연기가 훌륭하다 ㅋㅋ 😀"]
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("task_files"))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def specials_map(**named) -> dict[str, str]:
    """special_tokens_map.json as the hub has it: {"unk_token": "[UNK]", ...}."""
    return {f"{k}_token": v for k, v in named.items()}


def wordpiece(directory: Path, specials: list[str], vocab_size: int = 600) -> int:
    """A WordPiece vocab.txt (special tokens first, in the order given) trained with `tokenizers`; -> its size."""
    tok = tokenizers.BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tok.train_from_iterator(corpus_lines(), vocab_size=vocab_size, min_frequency=1, special_tokens=specials)
    tok.save_model(str(directory))
    return tok.get_vocab_size()


def save_hf(model, directory: Path) -> None:
    model.save_pretrained(directory, safe_serialization=True)
    assert (directory / "model.safetensors").is_file() and (directory / "config.json").is_file()


def run(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, (argv, captured.err)
    return captured.out


def finetune_predict_convert(capsys, hub: Path, task: str, train: Path, text: str, root: Path) -> tuple[Path, Path]:
    """`taesan finetune --model hub`, `taesan predict`, `taesan convert --to-hf`; -> (fine-tuned dir, HF export dir)."""
    out, hf_out = root / "finetuned", root / "hf_export"
    printed = run(["finetune", "--task", task, "--model", str(hub), "--train", str(train), "--out", str(out), *FAST], capsys)
    assert "3 steps of 8" in printed and (out / "task.json").is_file()
    line = run(["predict", "--model", str(out), text], capsys).rstrip("\n")
    assert line.endswith("\t" + text) and len(line) > len(text) + 1, line
    as_json = json.loads(run(["predict", "--model", str(out), "--json", text], capsys))
    assert as_json["input"] == text
    run(["convert", "--to-hf", str(out), "--out", str(hf_out)], capsys)
    return out, hf_out


def same_tokens(ours_dir: Path, theirs) -> None:
    """taesan's tokenizer read from `ours_dir` cuts SENTENCES (and a pair) into the ids `theirs` (transformers) gives."""
    ours = taesan.tokenizers.load(ours_dir)
    for text in SENTENCES:
        assert ours.encode(text).ids == theirs(text)["input_ids"], text


def encoder_inputs(vocab: int, pad: int, specials: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of [CLS] ... [SEP], the second right-padded with `pad`."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, vocab, (2, 9), generator=g)
    ids[:, 0], ids[:, -1] = specials
    mask = torch.ones_like(ids)
    ids[1, 6:], mask[1, 6:] = pad, 0
    ids[1, 5] = specials[1]
    return ids, mask


def equal_logits(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    if mask is not None and ours.dim() == 3:  # per-token outputs: padding positions are free to differ
        keep = mask.bool()
        ours, theirs = ours[keep], theirs[keep]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# ---- encoders ------------------------------------------------------------------------------------------------------


def test_kcbert_like_bert_with_vocab_txt(files, tmp_path, capsys):
    """beomi/kcbert-base's files: config.json (BertForMaskedLM), weights, vocab.txt, tokenizer_config.json
    (do_lower_case false), special_tokens_map.json. Fine-tuned for sentiment (NSMC-style)."""
    hub = tmp_path / "kcbert-base"
    hub.mkdir()
    V = wordpiece(hub, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    torch.manual_seed(0)
    save_hf(transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=V, max_position_embeddings=64, **SMALL)), hub)
    write_json(hub / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 64, "tokenizer_class": "BertTokenizer"})
    write_json(hub / "special_tokens_map.json", specials_map(unk="[UNK]", sep="[SEP]", pad="[PAD]", cls="[CLS]", mask="[MASK]"))
    same_tokens(hub, transformers.AutoTokenizer.from_pretrained(hub))

    out, hf_out = finetune_predict_convert(capsys, hub, "classification", files["classification"], "배우들 연기가 훌륭하다", tmp_path)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "BertForSequenceClassification"
    ids, mask = encoder_inputs(V, 0, (2, 3))
    segments = torch.zeros_like(ids)
    segments[:, 5:] = 1
    ours = taesan.load(out)
    equal_logits(ours(ids, attention_mask=mask, token_type_ids=segments),
                 theirs(input_ids=ids, attention_mask=mask, token_type_ids=segments).logits.detach())
    same_tokens(hf_out, transformers.AutoTokenizer.from_pretrained(hf_out))


def test_klue_roberta_like_roberta_with_a_wordpiece_vocabulary(files, tmp_path, capsys):
    """klue/roberta-base's files: a RoBERTa (type_vocab_size 1, [PAD] = 1 that positions count from) read by a
    BertTokenizer: vocab.txt + tokenizer.json (WordPiece, [CLS] a [SEP] b [SEP]) + tokenizer_config.json. Fine-tuned
    for NLI pairs, which must not send a segment id the model has no row for."""
    hub = tmp_path / "klue-roberta-base"
    hub.mkdir()
    specials = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
    tok = tokenizers.BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tok.train_from_iterator(corpus_lines(), vocab_size=600, min_frequency=1, special_tokens=specials)
    tok.save_model(str(hub))
    tok.save(str(hub / "tokenizer.json"))
    V = tok.get_vocab_size()
    torch.manual_seed(0)
    config = transformers.RobertaConfig(vocab_size=V, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
                                        bos_token_id=0, eos_token_id=2, **SMALL)
    save_hf(transformers.RobertaForMaskedLM(config), hub)
    write_json(hub / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 64, "tokenizer_class": "BertTokenizer",
                                               "model_input_names": ["input_ids", "attention_mask"]})
    write_json(hub / "special_tokens_map.json", specials_map(bos="[CLS]", eos="[SEP]", unk="[UNK]", sep="[SEP]", pad="[PAD]",
                                                             cls="[CLS]", mask="[MASK]"))
    same_tokens(hub, transformers.AutoTokenizer.from_pretrained(hub))

    out, hf_out = finetune_predict_convert(capsys, hub, "pair-classification", files["pair-classification"],
                                           "어제 카페 갔었어 ||| 카페에 갔다", tmp_path)
    assert json.loads((out / "task.json").read_text())["type_ids"] is False  # one segment: none sent
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "RobertaForSequenceClassification"
    ids, mask = encoder_inputs(V, 1, (0, 2))
    equal_logits(taesan.load(out)(ids, attention_mask=mask), theirs(input_ids=ids, attention_mask=mask).logits.detach())
    same_tokens(hf_out, transformers.AutoTokenizer.from_pretrained(hf_out))


def test_koelectra_like_electra_discriminator_with_vocab_txt(files, tmp_path, capsys):
    """monologg/koelectra-base-v3-discriminator's files: config.json (ElectraForPreTraining, embedding_size below
    hidden_size), weights, vocab.txt, tokenizer_config.json. Fine-tuned for character-BIO NER (KLUE-NER-style)."""
    hub = tmp_path / "koelectra-small-v3-discriminator"
    hub.mkdir()
    V = wordpiece(hub, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    torch.manual_seed(0)
    config = transformers.ElectraConfig(vocab_size=V, embedding_size=16, max_position_embeddings=64, **SMALL)
    save_hf(transformers.ElectraForPreTraining(config), hub)
    write_json(hub / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 64, "tokenizer_class": "ElectraTokenizer"})
    write_json(hub / "special_tokens_map.json", specials_map(unk="[UNK]", sep="[SEP]", pad="[PAD]", cls="[CLS]", mask="[MASK]"))
    same_tokens(hub, transformers.AutoTokenizer.from_pretrained(hub))

    out, hf_out = finetune_predict_convert(capsys, hub, "ner", files["ner"], "민수는 어제 서울에 갔다", tmp_path)
    theirs = transformers.AutoModelForTokenClassification.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "ElectraForTokenClassification"
    assert theirs.config.id2label == dict(enumerate(json.loads((out / "task.json").read_text())["labels"]))
    ids, mask = encoder_inputs(V, 0, (2, 3))
    equal_logits(taesan.load(out)(ids, attention_mask=mask), theirs(input_ids=ids, attention_mask=mask).logits.detach(), mask)
    same_tokens(hf_out, transformers.AutoTokenizer.from_pretrained(hf_out))


# ---- writers -------------------------------------------------------------------------------------------------------


def seq2seq_inputs(vocab: int, pad: int, eos: int, start: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    src = torch.randint(10, vocab, (2, 7), generator=g)
    src[:, -1] = eos
    src_mask = torch.ones_like(src)
    src[1, 4:], src_mask[1, 4:] = pad, 0
    src[1, 3] = eos
    tgt = torch.randint(10, vocab, (2, 5), generator=g)
    tgt[:, 0] = start
    return {"src": src, "src_mask": src_mask, "tgt": tgt}


def test_kobart_like_bare_bart_with_byte_level_bpe(files, tmp_path, capsys):
    """gogamza/kobart-base-v2's files: config.json of a bare BartModel (no LM head: the tied one is added for
    writing), weights, a byte-level BPE tokenizer.json (<s> </s> <usr> <pad> <sys> <unk> <mask> first),
    tokenizer_config.json, special_tokens_map.json. Fine-tuned to write a target from a prompt (seq2seq generation)."""
    hub = tmp_path / "kobart-base-v2"
    hub.mkdir()
    specials = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"]
    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator(corpus_lines(), vocab_size=700, min_frequency=1, special_tokens=specials)
    tok.save(str(hub / "tokenizer.json"))
    V = tok.get_vocab_size()
    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                     decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                     max_position_embeddings=64, pad_token_id=3, bos_token_id=0, eos_token_id=1,
                                     decoder_start_token_id=1, forced_eos_token_id=1)
    save_hf(transformers.BartModel(config), hub)
    assert json.loads((hub / "config.json").read_text())["architectures"] == ["BartModel"]
    write_json(hub / "tokenizer_config.json", {"model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(hub / "special_tokens_map.json", specials_map(bos="<s>", eos="</s>", unk="<unk>", pad="<pad>", mask="<mask>"))
    theirs_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hub / "tokenizer.json"))
    same_tokens(hub, theirs_tok)

    out, hf_out = finetune_predict_convert(capsys, hub, "generation", files["generation"], "티끌 모아", tmp_path)
    assert json.loads((out / "task.json").read_text())["seq2seq"] is True
    theirs = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "BartForConditionalGeneration"
    ours = taesan.load(out)
    x = seq2seq_inputs(V, 3, 1, ours.config.decoder_start_token_id)
    equal_logits(ours(x["src"], x["tgt"], src_mask=x["src_mask"]),
                 theirs(input_ids=x["src"], attention_mask=x["src_mask"], decoder_input_ids=x["tgt"]).logits.detach())
    same_tokens(hf_out, transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_out / "tokenizer.json")))


def metaspace_bpe_with_byte_fallback(path: Path, specials: list[str]) -> int:
    """A KoGPT2-shaped tokenizer.json: BPE under a Metaspace pre-tokenizer ("▁" for spaces), <0x00>..<0xFF> byte
    tokens for what the vocabulary lacks (byte_fallback), the SentencePiece decoder chain. Trained with `tokenizers`;
    the byte tokens are appended to the trained vocabulary (as SentencePiece keeps them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(corpus_lines(), trainers.BpeTrainer(vocab_size=600, min_frequency=1, special_tokens=specials))
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return len(vocab)


def test_kogpt2_like_gpt2_with_a_metaspace_bpe(files, tmp_path, capsys):
    """skt/kogpt2-base-v2's files: config.json (GPT2LMHeadModel), weights, a SentencePiece-style BPE tokenizer.json
    (Metaspace, byte_fallback; </s> <unk> <pad> <mask> among its specials), tokenizer_config.json,
    special_tokens_map.json. Fine-tuned to continue a prompt (causal generation)."""
    hub = tmp_path / "kogpt2-base-v2"
    hub.mkdir()
    specials = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"]
    V = metaspace_bpe_with_byte_fallback(hub / "tokenizer.json", specials)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                                     eos_token_id=1, pad_token_id=3)
    save_hf(transformers.GPT2LMHeadModel(config), hub)
    write_json(hub / "tokenizer_config.json", {"model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(hub / "special_tokens_map.json", specials_map(bos="</s>", eos="</s>", unk="<unk>", pad="<pad>", mask="<mask>"))
    theirs_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hub / "tokenizer.json"))
    assert "<0xF0>" in theirs_tok.convert_ids_to_tokens(theirs_tok("😀")["input_ids"])  # not in the vocabulary: bytes
    same_tokens(hub, theirs_tok)

    out, hf_out = finetune_predict_convert(capsys, hub, "generation", files["generation"], "티끌 모아", tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "GPT2LMHeadModel"
    ids, mask = encoder_inputs(V, 3, (1, 1))
    equal_logits(taesan.load(out)(ids, attention_mask=mask), theirs(input_ids=ids, attention_mask=mask).logits.detach(), mask)
    same_tokens(hf_out, transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_out / "tokenizer.json")))


def unigram_t5_tokenizer(path: Path, specials: list[str]) -> int:
    """A KE-T5-shaped tokenizer.json: SentencePiece Unigram (NFKC, Metaspace) trained with `tokenizers`, <pad> </s>
    <unk> first, and T5's template (`$A </s>`)."""
    from tokenizers import processors

    tok = tokenizers.SentencePieceUnigramTokenizer()
    tok.train_from_iterator(corpus_lines(), vocab_size=600, special_tokens=specials, unk_token="<unk>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    tok.save(str(path))
    return tok.get_vocab_size()


def test_ke_t5_like_t5_with_a_unigram_tokenizer(files, tmp_path, capsys):
    """KETI-AIR/ke-t5-small's files: config.json (T5ForConditionalGeneration, v1.1: gated-GELU, untied head,
    a vocabulary padded past the tokenizer's), weights, a Unigram tokenizer.json, tokenizer_config.json,
    special_tokens_map.json. Fine-tuned to translate (the decoder starts from <pad>)."""
    hub = tmp_path / "ke-t5-small"
    hub.mkdir()
    n = unigram_t5_tokenizer(hub / "tokenizer.json", ["<pad>", "</s>", "<unk>"])
    V = n + 28  # T5's embedding table is padded beyond the tokenizer (32128 rows for 32100 tokens)
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=V, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                                   feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                                   eos_token_id=1, decoder_start_token_id=0)
    save_hf(transformers.T5ForConditionalGeneration(config), hub)
    write_json(hub / "tokenizer_config.json", {"model_max_length": 512, "tokenizer_class": "T5Tokenizer", "extra_ids": 0})
    write_json(hub / "special_tokens_map.json", specials_map(eos="</s>", unk="<unk>", pad="<pad>"))
    theirs_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hub / "tokenizer.json"))
    same_tokens(hub, theirs_tok)

    out, hf_out = finetune_predict_convert(capsys, hub, "translation", files["translation"], "고마워", tmp_path)
    assert json.loads((out / "task.json").read_text())["decoder_start_id"] == 0  # T5 starts from <pad>
    theirs = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_out).eval()
    assert type(theirs).__name__ == "T5ForConditionalGeneration"
    x = seq2seq_inputs(n, 0, 1, 0)
    equal_logits(taesan.load(out)(x["src"], x["tgt"], src_mask=x["src_mask"]),
                 theirs(input_ids=x["src"], attention_mask=x["src_mask"], decoder_input_ids=x["tgt"]).logits.detach())
    same_tokens(hf_out, transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_out / "tokenizer.json")))
