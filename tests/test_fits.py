"""Does it fit the model (issue 14, consistency)? A tokenizer whose ids pass the embedding table or share an id, a
task.json whose labels are not the head's outputs, a length past the model's positions, a RoBERTa whose padding id is
not the tokenizer's, a text task on an image checkpoint: each is one line naming the file, in Python and the CLI."""
from __future__ import annotations

import json

import pytest

import taesan
from taesan.cli import main
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.tokenizers import WordPieceTokenizer

SMALL = dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, n_positions=64)
FAST = ["--threads", "1", "--no-progress", "--max-steps", "1"]


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer.train(korean_corpus(200), vocab_size=300, min_frequency=1)


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    path = tmp_path_factory.mktemp("fits") / "sent.tsv"
    path.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(sentiment_examples(20))),
                    encoding="utf-8")
    return path


def one_line(argv, capsys, message):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    return err


def edited_vocabulary(tok, directory, edit):
    """A BERT checkpoint whose tokenizer.json's vocabulary was changed by `edit(vocab)`."""
    taesan.create("bert-mlm", vocab_size=tok.vocab_size, **SMALL).save(directory, tok)
    data = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    edit(data["model"]["vocab"])
    (directory / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return directory


def test_tokenizer_ids_past_the_embedding_table(tok, sent, tmp_path, capsys):
    """The vocabulary's size fits (300 tokens, 300 rows) but one id lies past the last row: an index error later."""
    def far(vocab):
        vocab["카페"] = 10**6

    d = edited_vocabulary(tok, tmp_path / "far", far)
    message = r"tokenizer.json: the tokenizer's ids reach 1000000 \('카페'\) but the model's vocab_size is 300"
    with pytest.raises(TaesanError, match=message):
        Bundle.load(d)
    one_line(["finetune", "--task", "classification", "--model", str(d), "--train", str(sent), "--out", str(tmp_path / "o"), *FAST],
             capsys, "ids reach 1000000")
    one_line(["generate", "--model", str(d), "--prompt", "카페"], capsys, "ids reach 1000000")


def test_a_vocabulary_whose_ids_are_all_zero(tok, tmp_path, capsys):
    def zero(vocab):
        for token in vocab:
            vocab[token] = 0

    d = edited_vocabulary(tok, tmp_path / "zero", zero)
    err = one_line(["score", "--model", str(d), "티끌 모아"], capsys, "both have id 0")
    assert f"({tok.vocab_size - 1} tokens share an id): a corrupted vocabulary" in err


def test_task_json_labels_must_be_the_heads_outputs(tok, sent, tmp_path, capsys):
    out = tmp_path / "cls"
    assert main(["finetune", "--task", "classification", "--model", "bert-tiny", "--tokenizer", str(tok_file(tok, tmp_path)),
                 "--train", str(sent), "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    task = json.loads((out / "task.json").read_text())
    task["labels"] = [str(i) for i in range(10_000)]  # a 2-way head
    (out / "task.json").write_text(json.dumps(task))
    one_line(["predict", "--model", str(out), "좋다"], capsys, "task.json: 10,000 labels but the model's head has 2 outputs")
    task["labels"], task["max_length"] = ["0", "1"], 10**6
    (out / "task.json").write_text(json.dumps(task))
    one_line(["predict", "--model", str(out), "좋다"], capsys,
             "reads 1000000 tokens per example but the model (bert-sequence-classification) has 256 positions")


def tok_file(tok, directory):
    path = directory / "tok.json"
    tok.save(path)
    return path


def test_an_asked_max_length_must_fit_the_positions(tok, sent, tmp_path, capsys):
    """--max-length longer than the model reads was cut silently; a default length is still cut to the model."""
    args = ["finetune", "--task", "classification", "--model", "bert-tiny", "--tokenizer", str(tok_file(tok, tmp_path)),
            "--train", str(sent), "--out", str(tmp_path / "o"), *FAST]
    one_line([*args, "--max-length", "1000"], capsys, "--max-length: the classification task reads 1000 tokens per example "
             "but the model (bert) has 256 positions (n_positions)")
    one_line([*args, "--max-length", "250", "--mode", "prompt", "--prompt-tokens", "10"], capsys,
             "has 246 positions after the 10 prompt tokens")
    assert main([*args, "--max-length", "256"]) == 0


def test_a_roberta_must_pad_with_the_tokenizers_padding_id(tok):
    """RoBERTa counts positions from its pad_token_id: a tokenizer padding with another id shifts every position."""
    from taesan.tasks.classification import SequenceClassification

    task = SequenceClassification(tokenizer=tok)
    task.fit_labels([type("E", (), {"label": "a"})(), type("E", (), {"label": "b"})()])
    assert tok.pad_id == 0
    with pytest.raises(TaesanError, match="the padding token is id 0 but the model's pad_token_id is 1"):
        task.build_model(taesan.create("roberta", vocab_size=tok.vocab_size, pad_token_id=1, **SMALL))
    assert task.build_model(taesan.create("roberta", vocab_size=tok.vocab_size, pad_token_id=0, **SMALL)) is not None


def test_a_text_task_on_an_image_checkpoint_names_it(sent, tmp_path, capsys):
    """It said "no tokenizer.json ..." (the ViT has none): the task needs a text model."""
    taesan.create("vit-tiny").save(tmp_path / "vit")
    for task in ("ner", "classification", "qa", "generation"):
        argv = ["finetune", "--task", task, "--model", str(tmp_path / "vit"), "--train", str(sent), "--out", str(tmp_path / "o")]
        one_line(argv, capsys, f"the {task} task needs a text model (BERT, RoBERTa, ELECTRA, GPT, T5, ...); "
                               f"{tmp_path / 'vit'} is a 'vit' checkpoint")
