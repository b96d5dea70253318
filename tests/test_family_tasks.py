"""Every family plugs into the workflow: `taesan finetune --task classification|pair-classification|ner|qa` on RoBERTa
and ELECTRA puts that family's own head on (tasks/heads.py) and predicts; RoBERTa's one segment never gets a segment
id; `--task translation|generation` on T5 (decoder start = its pad token) trains, predicts and writes; a bare
encoder-decoder gets its tied output layer; T5 learns to translate four sentences through finetune()."""
from __future__ import annotations

import json

import pytest
import torch
from task_files import corpus_lines, write_task_files

import taesan
from taesan.cli import main
from taesan.errors import TaesanError
from taesan.tasks.heads import FAMILIES, head_class, takes_segments, with_lm_head
from taesan.tokenizers import WordPieceTokenizer

FAST = ["--threads", "1", "--no-progress", "--max-steps", "2", "--batch-size", "8"]
INPUTS = {"classification": "배우들 연기가 훌륭하다", "pair-classification": "어제 카페 갔었어 ||| 카페에 갔다",
          "ner": "민수는 어제 서울에 갔다", "qa": "누가 훈민정음을 만들었나? ||| 세종대왕은 1443년에 훈민정음을 만들었다.",
          "translation": "고마워", "generation": "티끌 모아"}
HEADS = {"classification": "sequence-classification", "pair-classification": "sequence-classification",
         "ner": "token-classification", "qa": "qa"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("family")
    WordPieceTokenizer.train(corpus_lines(), vocab_size=400, min_frequency=1).save(d / "tok.json")
    return {**write_task_files(d), "tok": d / "tok.json"}


def finetune(files, task, model, out, *extra):
    assert main(["finetune", "--task", task, "--model", model, "--tokenizer", str(files["tok"]), "--train", str(files[task]),
                 "--out", str(out), *FAST, *extra]) == 0


@pytest.mark.parametrize("task", list(HEADS))
@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_roberta_and_electra_fine_tune_and_predict_every_encoder_task(family, task, files, tmp_path, capsys):
    out = tmp_path / "out"
    finetune(files, task, f"{family}-tiny", out)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == f"{family}-{HEADS[task]}"  # the family's own head, not BERT's
    if task != "ner":  # NER sends no segments at all
        assert json.loads((out / "task.json").read_text())["type_ids"] is (family == "electra")
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", INPUTS[task]]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["input"] == INPUTS[task] and len(row) > 1


def test_a_roberta_never_reads_a_segment_id(files, monkeypatch):
    """RoBERTa's pairs are told apart by </s></s> (or [SEP]): its single segment row would be indexed with 1."""
    from taesan.tasks.classification import PairClassification
    from taesan.tasks.qa import ExtractiveQA

    tok = taesan.tokenizers.load(files["tok"])
    seen = []
    for cls, path in ((PairClassification, files["pair-classification"]), (ExtractiveQA, files["qa"])):
        task = cls(tokenizer=tok)
        examples = task.read(path)
        task.fit_labels(examples)
        model = task.build_model(taesan.create("roberta-tiny", vocab_size=tok.vocab_size, pad_token_id=tok.pad_id))
        assert not takes_segments(model) and model.config.type_vocab_size == 1
        monkeypatch.setattr(type(model.backbone), "embed", lambda self, ids, types=None, *a, **k: seen.append(types) or
                            torch.zeros(ids.shape[0], ids.shape[1], self.config.d_model))
        features = [f for ex in examples[:2] for f in task.encode(ex)]
        inputs, _ = task.prepare(task.collate(features))
        assert "token_type_ids" not in inputs
        model(**inputs)
        monkeypatch.undo()
    assert seen == [None, None]


def test_the_head_table_covers_each_family_and_refuses_the_rest():
    for family in FAMILIES:  # each head sits on its own family's backbone; GPT has a sequence classifier only
        heads = [getattr(family, kind) for kind in ("sequence", "token", "qa")]
        if family.name == "GPT":
            assert heads[0].__name__ == "GPTForSequenceClassification" and heads[1:] == [None, None]
        else:
            assert all(cls.backbone_class is family.backbone for cls in heads)
    with pytest.raises(TaesanError, match="the ner task needs a BERT, RoBERTa or ELECTRA model with a token classification "
                                          "head, got 'gpt'"):
        head_class(taesan.create("gpt", vocab_size=50, n_layers=1, d_model=16, n_heads=2), "token", "ner")
    with pytest.raises(TaesanError, match="needs a text model .*got 'vit'"):
        head_class(taesan.create("vit-tiny"), "sequence", "classification")
    # an ELECTRA discriminator's backbone takes ELECTRA's classifier, not BERT's
    disc = taesan.create("electra-discriminator", vocab_size=50, n_layers=1, d_model=32, n_heads=2, embedding_size=16)
    assert head_class(disc, "sequence", "classification").__name__ == "ElectraForSequenceClassification"


# ---- T5 ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["translation", "generation"])
def test_t5_fine_tunes_for_translation_and_generation(task, files, tmp_path, capsys):
    out = tmp_path / "t5"
    finetune(files, task, "t5-tiny", out)
    tok = taesan.tokenizers.load(files["tok"])
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "t5" and config["decoder_start_token_id"] == tok.pad_id == 0  # T5 starts from pad
    assert (config["pad_token_id"], config["eos_token_id"]) == (tok.pad_id, tok.eos_id)
    saved = json.loads((out / "task.json").read_text())
    assert saved["decoder_start_id"] == 0 and saved.get("seq2seq", True)
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", INPUTS[task]]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) == {"input", "translation" if task == "translation" else "text"}
    assert main(["generate", "--model", str(out), "--prompt", INPUTS[task], "--max-new-tokens", "3"]) == 0


def test_t5_learns_to_translate_four_sentences(tmp_path):
    """finetune() on T5 (teacher forcing behind <pad>, then greedy decoding through taesan.generate): the four pairs."""
    from taesan.tasks.readers.parallel import ParallelExample
    from taesan.tasks.translation import Translation, TranslationConfig
    from taesan.tokenizers import WordTokenizer
    from taesan.train import TrainConfig
    from taesan.tuning.finetune import finetune as run
    from taesan.tuning.finetune import load_finetuned

    pairs = [ParallelExample("어제 카페 갔었어", "i went to a cafe yesterday"), ParallelExample("비 온다", "it is raining"),
             ParallelExample("티끌 모아 태산", "many a little makes a mickle"), ParallelExample("고마워", "thank you")]
    specials = ["<pad>", "</s>", "<unk>"]
    words = sorted({w for p in pairs for w in f"{p.source} {p.target}".split()})
    tok = WordTokenizer({w: i for i, w in enumerate(specials + words)}, special_tokens=specials, unk_token="<unk>")
    torch.manual_seed(0)
    model = taesan.create("t5-tiny", vocab_size=tok.vocab_size + 5, dropout=0.0)  # a padded table, as T5's
    task = Translation(TranslationConfig(max_length=12, max_target_length=12), tok)
    config = TrainConfig(max_steps=80, lr=1e-2, warmup=0, eval_every=0, save_every=0, log_every=1000, progress=False)
    result = run(task, model, pairs, pairs, tmp_path / "t5", config, batch_size=4, device="cpu")
    assert task.start_id == tok.pad_id == 0 and result.metrics["bleu"] == pytest.approx(100.0)
    again, loaded = load_finetuned(tmp_path / "t5", tokenizer=tok)
    assert [p["translation"] for p in loaded.predict(again, [p.source for p in pairs])] == [p.target for p in pairs]


def test_a_bare_encoder_decoder_gets_its_tied_output_layer():
    """HF T5Model / BartModel (lm_head=False) write through the token embeddings, as *ForConditionalGeneration."""
    bare = taesan.create("t5-tiny", lm_head=False)
    writer = with_lm_head(bare)
    assert writer.lm_head.weight is writer.shared.weight and torch.equal(writer.shared.weight, bare.shared.weight)
    hidden = torch.randn(1, 3, bare.config.d_model)
    torch.testing.assert_close(writer.head(hidden), (hidden * bare.config.d_model**-0.5) @ bare.shared.weight.T)
    assert with_lm_head(writer) is writer
    s2s = taesan.create("transformer-tiny", src_vocab_size=40, lm_head=False, n_positions=16, d_model=16, n_heads=2, d_ff=32)
    out = with_lm_head(s2s)
    assert out.config.lm_head and out.lm_head.weight is out.tgt_emb.weight and not out.final_logits_bias.any()
    with pytest.raises(TaesanError, match="ties none"):
        with_lm_head(taesan.create("transformer-tiny", src_vocab_size=40, lm_head=False, tie_output=False, n_positions=16,
                                   d_model=16, n_heads=2, d_ff=32))


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_prompt_mode_through_the_cli(family, files, tmp_path, capsys):
    out = tmp_path / "prompt"
    finetune(files, "pair-classification", f"{family}-tiny", out, "--mode", "prompt", "--prompt-tokens", "3")
    printed = capsys.readouterr().out
    trainable = int(printed.split("; trained ")[1].split(" parameters")[0].replace(",", ""))
    prompt = 3 * (64 if family == "electra" else 128)  # 3 vectors as wide as the token embeddings (ELECTRA's: 64)
    head = 128 * 128 + 128 + 128 * 3 + 3  # the first-token head: dense, then out_proj to the 3 NLI labels
    assert trainable == prompt + head
    assert json.loads((out / "config.json").read_text())["model_type"] == "soft-prompt"
    assert main(["predict", "--model", str(out), INPUTS["pair-classification"]]) == 0
    assert capsys.readouterr().out.endswith("\t" + INPUTS["pair-classification"] + "\n")


def test_a_roberta_pair_uses_its_own_template(files, tmp_path, capsys):
    """A RoBERTa with its byte-level BPE (RobertaProcessing): a pair is `<s> a </s></s> b </s>`, exactly as the
    `tokenizers` library cuts it, and fine-tunes and predicts with no segment ids."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import processors

    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(corpus_lines(), vocab_size=500, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    hf.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    d = tmp_path / "roberta"
    d.mkdir()
    hf.save(str(d / "tokenizer.json"))
    tok = taesan.tokenizers.load(d)
    a, b = "어제 카페 갔었어", "카페에 갔다"
    expected = hf.encode(a, b).ids
    assert tok.encode(a, pair=b).ids == expected and expected[0] == 0 and expected.count(2) == 3
    taesan.create("roberta-mlm", vocab_size=tok.vocab_size, pad_token_id=1, n_layers=1, d_model=32, n_heads=2, d_ff=64,
                  n_positions=64).save(d, tok)
    assert main(["finetune", "--task", "pair-classification", "--model", str(d), "--train", str(files["pair-classification"]),
                 "--out", str(tmp_path / "nli"), *FAST]) == 0
    assert main(["predict", "--model", str(tmp_path / "nli"), INPUTS["pair-classification"]]) == 0


def test_masked_pretraining_presets_of_each_family():
    """`taesan pretrain --objective masked --model roberta-tiny | electra-tiny` builds the family's masked LM."""
    from taesan.pipeline.pretrain import check_fits, new_model

    tok = WordPieceTokenizer.train(corpus_lines(50), vocab_size=200)
    for preset, model_type in (("bert-tiny", "bert-mlm"), ("roberta-tiny", "roberta-mlm"), ("electra-tiny", "electra-generator")):
        model = new_model(preset, "masked", tok)
        assert model.model_type == model_type and model.config.vocab_size == tok.vocab_size
        check_fits(model, "masked", 64)
        with pytest.raises(TaesanError, match="the causal objective needs a decoder"):
            check_fits(model, "causal", 64)
    with pytest.raises(TaesanError, match="preset 't5-tiny' is not a language model to pretrain"):
        new_model("t5-tiny", "masked", tok)
