"""Translation: teacher forcing position by position, a tiny encoder-decoder learning four pairs with finetune(),
decoding equal to taesan.generate (greedy and beam), save/load, corpus BLEU by hand, the parallel readers."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from taesan.errors import TaesanError
from taesan.decoding import generate
from taesan.models import create
from taesan.objectives import IGNORE_INDEX
from taesan.tasks import task_class
from taesan.tasks.metrics.bleu import corpus_bleu
from taesan.tasks.readers.parallel import ParallelExample as Pair
from taesan.tasks.readers.parallel import read_parallel
from taesan.tasks.translation import Translation, TranslationConfig
from taesan.tokenizers import WordTokenizer
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune, load_finetuned

PAIRS = [
    Pair("어제 카페 갔었어", "i went to a cafe yesterday"),
    Pair("티끌 모아 태산", "many a little makes a mickle"),
    Pair("비 온다", "it is raining"),
    Pair("고마워", "thank you"),
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
PAD, START, EOS = 0, 2, 3
WORDS = sorted({w for p in PAIRS for w in (p.source + " " + p.target).split()})
TOK = WordTokenizer({w: i for i, w in enumerate(SPECIALS + WORDS)}, special_tokens=SPECIALS)
ID = TOK.vocab


def tiny_transformer(**changes):
    fields = dict(src_vocab_size=TOK.vocab_size, n_positions=32, d_model=32, n_encoder_layers=2, n_decoder_layers=2,
                  n_heads=2, d_ff=64, dropout=0.0)
    return create("transformer-tiny", **{**fields, **changes})


def make_task(**changes) -> Translation:
    return Translation(TranslationConfig(max_length=16, max_target_length=12, **changes), TOK)


# ---- teacher forcing --------------------------------------------------------------------------------------


def test_encode_collate_prepare_by_position():
    task = make_task()
    assert (task.start_id, task.eos_id, task.pad_id) == (START, EOS, PAD)  # [CLS] starts, [SEP] ends
    batch = task.collate(task.encode(PAIRS[2]) + task.encode(PAIRS[3]))
    assert batch["input_ids"].tolist() == [[ID["비"], ID["온다"], EOS], [ID["고마워"], EOS, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    inputs, labels = task.prepare(batch)
    it, rain = ID["it"], ID["raining"]
    # the decoder reads [start] + target[:-1]; the shorter row's last input is its eos, whose label is padding
    assert inputs["tgt_ids"].tolist() == [[START, it, ID["is"], rain], [START, ID["thank"], ID["you"], EOS]]
    assert inputs["tgt_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert labels.tolist() == [[it, ID["is"], rain, EOS], [ID["thank"], ID["you"], EOS, IGNORE_INDEX]]
    assert inputs["src_ids"] is batch["input_ids"] and inputs["src_mask"] is batch["attention_mask"]


def test_loss_counts_real_target_tokens_only():
    task = make_task()
    inputs, labels = task.prepare(task.collate(task.encode(PAIRS[2]) + task.encode(PAIRS[3])))
    logits = torch.randn(2, 4, TOK.vocab_size, requires_grad=True)
    loss = task.loss(logits, labels)
    counted = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]
    by_hand = torch.stack([-F.log_softmax(logits[b, t], -1)[labels[b, t]] for b, t in counted]).mean()
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    assert logits.grad[1, 3].abs().sum() == 0 and logits.grad[1, 2].abs().sum() > 0


def test_cut_sentences_get_no_end_of_text():
    task = Translation(TranslationConfig(max_length=2, max_target_length=3), TOK)
    [f] = task.encode(PAIRS[0])
    assert f["input_ids"] == [ID["어제"], ID["카페"]] and f["target_ids"] == [ID["i"], ID["went"], ID["to"]]
    [g] = task.encode(PAIRS[3])
    assert g["input_ids"] == [ID["고마워"], EOS] and g["target_ids"] == [ID["thank"], ID["you"], EOS]


# ---- training, decoding, save/load ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("mt")
    task, model = make_task(), tiny_transformer()
    before = task.evaluate(model, PAIRS)
    config = TrainConfig(max_steps=60, lr=5e-3, warmup=2, eval_every=0, save_every=0, progress=False)
    result = finetune(task, model, PAIRS, PAIRS, out, config, batch_size=4, device="cpu")
    return before, result, task, out


def test_finetune_learns_the_pairs(trained):
    before, result, task, _ = trained
    assert result.metrics["loss"] < 0.2 * before["loss"]
    assert result.metrics["tokens"] == sum(len(p.target.split()) + 1 for p in PAIRS)
    assert before["bleu"] < 10 and result.metrics["bleu"] == pytest.approx(100.0)
    assert task.predict(result.model, [p.source for p in PAIRS]) == [{"translation": p.target} for p in PAIRS]


@pytest.mark.parametrize("beams", [1, 3])
def test_decoding_is_taesan_generate(trained, beams):
    _, result, task, _ = trained
    task = make_task(num_beams=beams)
    sources = ["고마워", "티끌 모아 어제 비 온다", "카페"]  # unseen mixes too: the decoder's own guesses
    preds = task.predict(result.model, sources, batch_size=2)
    for source, pred in zip(sources, preds):
        ids = TOK.encode(source, add_special_tokens=False).ids + [EOS]
        out = generate(result.model, torch.tensor([ids]), max_new_tokens=12, num_beams=beams, eos_token_id=EOS,
                       decoder_start_token_id=START)[0].tolist()
        assert out[0] == START
        new = out[1:out.index(EOS)] if EOS in out else out[1:]
        assert pred == {"translation": TOK.decode(new)}


def test_save_and_load_round_trip(trained):
    _, result, task, out = trained
    model, loaded = load_finetuned(out)
    assert isinstance(loaded, Translation) and loaded.config == task.config
    assert (model.config.pad_token_id, model.config.eos_token_id, model.config.decoder_start_token_id) == (PAD, EOS, START)
    assert loaded.evaluate(model, PAIRS) == pytest.approx(task.evaluate(result.model, PAIRS))


def test_registered_and_model_checks():
    assert task_class("translation") is Translation
    task = make_task()
    with pytest.raises(TaesanError, match="encoder-decoder"):
        task.build_model(create("gpt-tiny", vocab_size=64, d_model=32, n_layers=1, n_heads=2))
    with pytest.raises(TaesanError, match="ids reach 27 .* vocab_size is 8"):
        task.build_model(tiny_transformer(src_vocab_size=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))
    task.build_model(tiny_transformer(n_positions=8))
    assert (task.config.max_length, task.config.max_target_length) == (8, 8)  # cut to the model's positions
    task = make_task()
    with pytest.raises(TaesanError, match="BLEU tokenize 'moses'"):
        task_class("translation").from_dict({"task": "translation", "bleu_tokenize": "moses"})
    built = task.build_model("transformer-tiny")  # a preset name is built for this tokenizer
    assert built.config.src_vocab_size == TOK.vocab_size and built.config.decoder_start_token_id == START
    assert built.src_emb.padding_idx == built.tgt_emb.padding_idx == PAD
    no_pad = Translation(TranslationConfig(), WordTokenizer({"[UNK]": 0, "</s>": 1, "a": 2}, special_tokens=["[UNK]", "</s>"]))
    bare = no_pad.build_model(tiny_transformer(src_vocab_size=3, pad_token_id=0, bos_token_id=None, eos_token_id=1,
                                               decoder_start_token_id=1))
    # no pad token: </s> pads, starts and ends, and still learns (no frozen embedding row)
    assert (bare.config.pad_token_id, bare.config.decoder_start_token_id) == (1, 1) and bare.src_emb.padding_idx is None


# ---- BLEU -------------------------------------------------------------------------------------------------


def test_bleu_hand_computed_cases():
    assert corpus_bleu(["i went to a cafe yesterday"], ["i went to a cafe yesterday"]) == pytest.approx(100.0)
    assert corpus_bleu(["x y z w v"], ["a b c d e"]) == 0.0
    # 1- to 4-gram precisions 4/5, 3/4, 2/3, 1/2; equal lengths, so no brevity penalty
    assert corpus_bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # every n-gram matches but the hypothesis is 4 tokens for 5: brevity penalty exp(1 - 5/4)
    assert corpus_bleu(["a b c d"], ["a b c d e"]) == pytest.approx(100 * math.exp(1 - 5 / 4))
    # a corpus sums n-gram counts before the geometric mean: (5+3)/(5+4), (4+2)/(4+3), (3+1)/(3+2), (2+0)/(2+1),
    # so the second sentence's missing 4-gram match does not zero the score
    two = corpus_bleu(["a b c d e", "f g h i"], ["a b c d e", "f g h j"])
    assert two == pytest.approx(100 * (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25)
    with pytest.raises(TaesanError, match="one reference per hypothesis"):
        corpus_bleu(["a"], ["a", "b"])


# ---- readers ----------------------------------------------------------------------------------------------


def test_read_tsv_columns_and_aligned_files(tmp_path):
    (tmp_path / "p.tsv").write_text("Go.\t가.\tCC-BY\nThanks!\t고마워!\tCC-BY\n", encoding="utf-8")
    assert read_parallel(tmp_path / "p.tsv") == [Pair("Go.", "가."), Pair("Thanks!", "고마워!")]
    ko_en = make_task(source_column=1, target_column=0).read(tmp_path / "p.tsv")
    assert ko_en == [Pair("가.", "Go."), Pair("고마워!", "Thanks!")]
    (tmp_path / "a.ko").write_text("가.\n\n고마워\u2028!\n", encoding="utf-8")  # U+2028 is inside a sentence
    (tmp_path / "a.en").write_text("Go.\r\n\r\nThanks!\r\n", encoding="utf-8")
    assert read_parallel(f"{tmp_path / 'a.ko'},{tmp_path / 'a.en'}") == [Pair("가.", "Go."), Pair("고마워\u2028!", "Thanks!")]


def test_reader_errors_name_file_and_line(tmp_path):
    (tmp_path / "a.ko").write_text("가\n나\n다\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"a\.ko, line 3: .*a\.en ends at line 2: the files are not aligned"):
        read_parallel(f"{tmp_path / 'a.ko'},{tmp_path / 'a.en'}")
    (tmp_path / "b.en").write_text("a\n\nc\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"b\.en, line 2: empty line where the other file has a sentence"):
        read_parallel(f"{tmp_path / 'a.ko'},{tmp_path / 'b.en'}")
    with pytest.raises(TaesanError, match=r"missing\.en: no such file"):
        read_parallel(f"{tmp_path / 'a.ko'},{tmp_path / 'missing.en'}")
    (tmp_path / "short.tsv").write_text("Go.\t가.\tCC\nRun!\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"short\.tsv, line 2: expected at least 2 tab-separated fields"):
        read_parallel(tmp_path / "short.tsv")
    with pytest.raises(TaesanError, match=r"short\.tsv, line 1: expected at least 4"):
        read_parallel(tmp_path / "short.tsv", source_column=3, target_column=0)
    (tmp_path / "empty.tsv").write_text("Go.\t\n", encoding="utf-8")
    with pytest.raises(TaesanError, match=r"empty\.tsv, line 1: empty target column"):
        read_parallel(tmp_path / "empty.tsv")


# ---- real data --------------------------------------------------------------------------------------------


def test_real_tatoeba_and_aligned_files_smoke(shared_data, tmp_path):
    """Tatoeba kor-eng (English<TAB>Korean<TAB>attribution) read ko->en; the JHE files read as an aligned pair."""
    from taesan.tokenizers import CharTokenizer

    d = shared_data / "translation"
    task = Translation(TranslationConfig(max_length=24, max_target_length=24, source_column=1, target_column=0,
                                         bleu_tokenize="13a"), None)
    pairs = task.read(d / "tatoeba_kor-eng.shared.tsv")
    assert len(pairs) == 5055 and pairs[0] == Pair("가.", "Go.")
    jhe = read_parallel(f"{d / 'jhe-koen-dev.ko'},{d / 'jhe-koen-dev.en'}")
    assert len(jhe) == 720 and jhe[0].source.startswith("당신은 과일을")
    task.tokenizer = CharTokenizer.train([t for p in pairs[:200] for t in (p.source, p.target)], vocab_size=300)
    model = task.build_model("transformer-tiny")
    config = TrainConfig(max_steps=3, lr=1e-3, warmup=1, eval_every=0, save_every=0, progress=False)
    result = finetune(task, model, pairs[:32], pairs[32:40], tmp_path, config, batch_size=8, device="cpu")
    assert 0.0 <= result.metrics["bleu"] <= 100.0 and result.metrics["loss"] > 0
    [pred] = load_finetuned(tmp_path)[1].predict(result.model, ["고마워!"])
    assert isinstance(pred["translation"], str)


def test_cli_finetune_evaluate_predict_on_aligned_files(tmp_path, capsys):
    """taesan finetune --task translation --train SRC,TGT from a preset; evaluate prints BLEU; predict --json."""
    import json

    from taesan.cli import main

    (tmp_path / "t.ko").write_text("".join(p.source + "\n" for p in PAIRS), encoding="utf-8")
    (tmp_path / "t.en").write_text("".join(p.target + "\n" for p in PAIRS), encoding="utf-8")
    pair = f"{tmp_path / 't.ko'},{tmp_path / 't.en'}"
    TOK.save(tmp_path / "tok.json")
    out = tmp_path / "out"
    code = main(["finetune", "--task", "translation", "--model", "transformer-tiny", "--tokenizer", str(tmp_path / "tok.json"),
                 "--train", pair, "--valid", pair, "--out", str(out), "--max-steps", "2", "--no-progress"])
    assert code == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", pair]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {"loss", "perplexity", "accuracy", "bleu"} and 0 <= scores["bleu"] <= 100
    assert main(["predict", "--model", str(out), "--json", "고마워"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["translation"], str)
    (tmp_path / "short.en").write_text("thank you\n", encoding="utf-8")
    assert main(["evaluate", "--model", str(out), "--data", f"{tmp_path / 't.ko'},{tmp_path / 'short.en'}"]) == 2
    err = capsys.readouterr().err
    assert "t.ko, line 2" in err and "not aligned" in err and "Traceback" not in err


# ---- what the outputs look like, which way round a file is read ------------------------------------------------


def test_training_records_the_scripts_and_evaluate_reports_copies_and_empties(trained, monkeypatch):
    from taesan.tuning.checks import evaluation_warnings

    _, result, task, _ = trained
    assert (task.config.source_script, task.config.target_script) == ("hangul", "latin")
    metrics = task.evaluate(result.model, PAIRS)
    assert metrics["empty_outputs"] == 0.0 and metrics["outputs_in_source_script"] == 0.0
    assert evaluation_warnings(task, metrics) == []
    monkeypatch.setattr(task, "translate", lambda model, sources, batch_size=32: list(sources))  # a model that copies
    copied = task.evaluate(result.model, PAIRS)
    assert copied["outputs_in_source_script"] == 1.0
    [line] = evaluation_warnings(task, copied)
    assert line.startswith("warning: 100% of the translations are written in hangul, the source's script, not in latin")
    monkeypatch.setattr(task, "translate", lambda model, sources, batch_size=32: ["", "  ", "", "thank you"])
    empty = task.evaluate(result.model, PAIRS)
    assert empty["empty_outputs"] == 0.75
    assert any("75% outputs are empty or only whitespace" in w for w in evaluation_warnings(task, empty))


def test_evaluate_warns_about_swapped_columns_and_set_reads_them_right(trained, tmp_path, capsys):
    """Trained Korean -> English; a file in Tatoeba's original English<TAB>Korean order scored a silent BLEU ~0."""
    import json

    from taesan.cli import main

    _, _, _, out = trained
    english_first = tmp_path / "en_ko.tsv"
    english_first.write_text("".join(f"{p.target}\t{p.source}\tCC-BY\n" for p in PAIRS), encoding="utf-8")
    assert main(["evaluate", "--model", str(out), "--data", str(english_first)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["bleu"] < 10
    assert ("column 0 (source) reads latin text and column 1 (target) hangul, but the model was trained from hangul "
            "to latin: the columns look swapped; pass --set source_column=1 target_column=0") in captured.err
    assert main(["evaluate", "--model", str(out), "--data", str(english_first), "--set", "source_column=1",
                 "--set", "target_column=0"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["bleu"] == pytest.approx(100.0) and "warning" not in captured.err
    aligned = f"{tmp_path / 'x.en'},{tmp_path / 'x.ko'}"
    (tmp_path / "x.en").write_text("".join(p.target + "\n" for p in PAIRS), encoding="utf-8")
    (tmp_path / "x.ko").write_text("".join(p.source + "\n" for p in PAIRS), encoding="utf-8")
    assert main(["evaluate", "--model", str(out), "--data", aligned]) == 0
    assert "the files look swapped; give the two files in the other order" in capsys.readouterr().err


def test_scripts_of_texts():
    from taesan.tasks.outputs import dominant_script, empty_share, script_of, share_in_script, top_share

    assert script_of("I went to a 카페") == "latin" and script_of("어제 cafe 갔었어") == "hangul"
    assert script_of("123 !?") is None and script_of("東京") == "han" and script_of("Привет") == "cyrillic"
    assert dominant_script(["가나", "abc", "다라", "..."]) == "hangul"
    assert share_in_script(["가나", "abc", "", "다라"], "hangul") == pytest.approx(2 / 3)
    assert empty_share(["a", " \n", ""]) == pytest.approx(2 / 3) and empty_share([]) == 0.0
    assert top_share([1, 1, 1, 0]) == 0.75


# ---- warm start from a pretrained BERT (BERT2BERT) ---------------------------------------------------------


def _bert():
    from taesan.models.bert import BertConfig
    from taesan.models.bert_heads import BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=TOK.vocab_size, n_positions=32, d_model=32, n_layers=2, n_heads=2,
                                      d_ff=64, pad_token_id=PAD)).eval()


def test_warm_start_encodes_exactly_as_the_bert_and_copies_the_decoder_layers():
    from taesan.tasks.warm_start import warm_start_seq2seq

    mlm = _bert()
    model = warm_start_seq2seq(mlm, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START, bos_token_id=None).eval()
    ids = torch.tensor([[ID["비"], ID["온다"], EOS], [ID["고마워"], EOS, PAD]])
    mask = (ids != PAD).long()
    memory, _ = model.encode(ids, mask)
    torch.testing.assert_close(memory, mlm.bert(ids, attention_mask=mask), atol=1e-5, rtol=1e-5)
    assert model.lm_head.weight is model.src_emb.weight and torch.equal(model.src_emb.weight, mlm.bert.tok_emb.weight)
    dec = model.decoder[1].state_dict()
    for k, v in mlm.bert.blocks[1].state_dict().items():
        assert torch.equal(dec[k], v)
    assert any(k.startswith("cross_attn.") for k in dec)  # fresh: BERT has none


def test_translation_builds_a_warm_started_model_from_a_bert_and_trains_it(tmp_path):
    task = make_task()
    mlm = _bert()
    model = task.build_model(mlm.bert)
    from taesan.models.transformer import Seq2SeqTransformer

    assert isinstance(model, Seq2SeqTransformer)
    assert model.config.decoder_start_token_id == START and model.config.eos_token_id == EOS
    config = TrainConfig(max_steps=60, lr=5e-3, warmup=2, eval_every=0, save_every=0, progress=False)
    before = task.evaluate(model, PAIRS)
    result = finetune(task, mlm, PAIRS, PAIRS, tmp_path / "mt", config, batch_size=4, device="cpu")
    assert result.metrics["loss"] < 0.2 * before["loss"]
    loaded, _ = load_finetuned(tmp_path / "mt")
    assert isinstance(loaded, Seq2SeqTransformer)
