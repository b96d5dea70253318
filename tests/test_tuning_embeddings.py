"""Token embeddings started from word vectors (taesan.tuning.embeddings): word2vec trained on a tokenizer's pieces
(`taesan word2vec train --tokenizer`), copied row by row into a fresh preset (`taesan finetune --embeddings`,
`taesan pretrain --embeddings`)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from taesan.cli import main
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.models.registry import create_for
from taesan.models.word2vec import Word2Vec, Word2VecConfig
from taesan.models.word2vec_train import train_word2vec
from taesan.tokenizers import WordPieceTokenizer, load
from taesan.tuning.embeddings import EMBEDDING_STD, piece_words, start_embeddings

FAST = ["--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("emb") / "tok.json"
    WordPieceTokenizer.train(korean_corpus(300), vocab_size=300, min_frequency=1).save(path)
    return path


@pytest.fixture(scope="module")
def cli_vectors(tok_file, tmp_path_factory):
    """(corpus, vectors dir): `taesan word2vec train --tokenizer` over the embedded corpus, 128 dimensions (bert-tiny's)."""
    d = tmp_path_factory.mktemp("w2v")
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(korean_corpus(300)) + "\n", encoding="utf-8")
    w2v = d / "w2v"
    assert main(["word2vec", "train", "--corpus", str(corpus), "--tokenizer", str(tok_file), "--out", str(w2v),
                 "--dim", "128", "--min-count", "1", "--epochs", "1", *FAST]) == 0
    return corpus, w2v


def _vectors(tok_file, dim: int) -> Word2Vec:
    config = Word2VecConfig(dim=dim, min_count=1, epochs=1, seed=1)
    model, _ = train_word2vec(korean_corpus(300), config, tokenize=piece_words(load(tok_file)))
    return model


def test_rows_are_the_vectors_rescaled_and_other_rows_keep_their_init(tok_file):
    tokenizer = load(tok_file)
    vectors = _vectors(tok_file, 16)
    torch.manual_seed(0)
    model = create_for("bert-tiny", tokenizer.vocab_size, tokenizer.pad_id, d_model=16, n_heads=2, d_ff=32)
    before = model.tok_emb.weight.detach().clone()
    start = start_embeddings(model, tokenizer, vectors)
    after = model.tok_emb.weight.detach()
    scale = EMBEDDING_STD / vectors.vectors.std()
    known = [i for i in range(tokenizer.vocab_size) if tokenizer.id_to_token(i) in vectors]
    assert start.rows_set == len(known) > 0.5 * tokenizer.vocab_size and start.rows == tokenizer.vocab_size
    for i in known:
        assert torch.allclose(after[i], vectors.vector(tokenizer.id_to_token(i)) * scale)
    cls = tokenizer.token_to_id("[CLS]")  # a special token: never a word2vec word
    assert cls not in known and torch.equal(after[cls], before[cls])
    assert "rows from the word vectors in w2v (scaled to std 0.1)" in start.line("w2v")


def test_a_tied_lm_head_gets_the_same_rows(tok_file):
    tokenizer = load(tok_file)
    model = create_for("gpt-tiny", tokenizer.vocab_size, d_model=16, n_heads=2, n_layers=1)
    start = start_embeddings(model, tokenizer, _vectors(tok_file, 16))
    assert start.tables == 1
    token = tokenizer.token_to_id("좋")
    assert torch.equal(model.lm_head.weight[token], model.tok_emb.weight[token])
    assert model.lm_head.weight[token].std() > 0.05  # the rescaled vector, not the 0.02 init


def test_wrong_vectors_are_one_line_errors(tok_file):
    tokenizer = load(tok_file)
    model = create_for("bert-tiny", tokenizer.vocab_size, tokenizer.pad_id, d_model=16, n_heads=2, d_ff=32)
    with pytest.raises(TaesanError, match=r"the word vectors have 8 dimensions, the model's token embeddings 16 \(train them with --dim 16\)"):
        start_embeddings(model, tokenizer, _vectors(tok_file, 8))
    english, _ = train_word2vec(["the cat sat on the mat", "a dog ran"] * 5, Word2VecConfig(dim=16, min_count=1, epochs=1))
    with pytest.raises(TaesanError, match=r"only 0 of the \d+ words with vectors are tokens of this tokenizer; train them on its pieces"):
        start_embeddings(model, tokenizer, english)
    words, _ = train_word2vec(korean_corpus(300), Word2VecConfig(dim=16, min_count=1, epochs=1))  # whitespace words
    with pytest.raises(TaesanError, match=r"words with vectors are tokens of this tokenizer"):
        start_embeddings(model, tokenizer, words)  # 카페 is a token, 갔었어 is not: the easy mistake


def test_cli_word2vec_on_pieces_then_finetune_from_them(tok_file, cli_vectors, tmp_path, capsys):
    _, w2v = cli_vectors
    words = Word2Vec.load(w2v).words
    assert any(w.startswith("##") for w in words) and "[CLS]" not in words  # pieces, specials left out
    rows = "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(sentiment_examples(40)))
    train = tmp_path / "sent.tsv"
    train.write_text("id\tdocument\tlabel\n" + rows, encoding="utf-8")
    runs = []
    for name in ("a", "b"):
        capsys.readouterr()
        assert main(["finetune", "--task", "classification", "--model", "bert-tiny", "--tokenizer", str(tok_file),
                     "--embeddings", str(w2v), "--train", str(train), "--out", str(tmp_path / name), "--max-steps", "2",
                     "--seed", "3", *FAST]) == 0
        assert f"rows from the word vectors in {w2v} (scaled to std 0.1)" in capsys.readouterr().out
        runs.append(load_file(tmp_path / name / "model.safetensors"))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])  # the same --seed, the same run
    assert main(["predict", "--model", str(tmp_path / "a"), "어제 카페 갔었어", *FAST]) == 0  # a plain classifier


def test_cli_embeddings_refused_where_they_do_not_apply(tok_file, tmp_path, capsys):
    train = tmp_path / "sent.tsv"
    train.write_text("id\tdocument\tlabel\n0\t좋다\t1\n1\t싫다\t0\n", encoding="utf-8")
    ckpt = tmp_path / "ckpt"
    tokenizer = load(tok_file)
    create_for("bert-tiny", tokenizer.vocab_size, tokenizer.pad_id).save(ckpt, tokenizer)
    assert main(["finetune", "--task", "classification", "--model", str(ckpt), "--embeddings", str(tmp_path),
                 "--train", str(train), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "--embeddings starts a fresh preset's token embeddings; " in capsys.readouterr().err
    assert main(["finetune", "--task", "classification", "--model", "bert-tiny", "--tokenizer", str(tok_file),
                 "--embeddings", str(tmp_path / "none"), "--train", str(train), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "none: no such checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written
    assert main(["word2vec", "train", "--corpus", str(train), "--out", str(tmp_path / "w"), "--morphemes",
                 "--tokenizer", str(tok_file)]) == 2
    assert "argument --tokenizer: not allowed with argument --morphemes" in capsys.readouterr().err


def test_cli_pretrain_starts_a_preset_from_word_vectors(tok_file, cli_vectors, tmp_path, capsys):
    corpus, w2v = cli_vectors
    out = tmp_path / "bert"
    pretrain = ["pretrain", "--model", "bert-tiny", "--objective", "masked", "--corpus", str(corpus), "--tokenizer",
                str(tok_file), "--embeddings", str(w2v), "--out", str(out), "--block-size", "32", "--batch-size", "4",
                "--lr", "1e-9", "--warmup", "1", *FAST]
    capsys.readouterr()
    assert main([*pretrain, "--max-steps", "1"]) == 0
    assert f"rows from the word vectors in {w2v} (scaled to std 0.1)" in capsys.readouterr().out
    vectors, tokenizer = Word2Vec.load(w2v), load(tok_file)
    rows = load_file(out / "model.safetensors")["bert.tok_emb.weight"]
    token = tokenizer.token_to_id("좋")
    assert torch.allclose(rows[token], vectors.vector("좋") * EMBEDDING_STD / vectors.vectors.std(), atol=1e-6)
    assert json.loads((out / "training.json").read_text())["embeddings"] == str(w2v.resolve())
    assert main([*pretrain, "--max-steps", "2", "--resume"]) == 0  # the same command resumes (the rows are trained ones)
    assert json.loads((out / "training.json").read_text())["embeddings"] == str(w2v.resolve())
    assert main([*pretrain[:2], str(out), *pretrain[3:], "--out", str(tmp_path / "again"), "--max-steps", "1"]) == 2
    assert "--embeddings starts a fresh preset's token embeddings" in capsys.readouterr().err
