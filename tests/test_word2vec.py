"""Tests for Word2Vec: sampling distributions, skip-gram pairs, training behaviour, queries, files, CLI.

Not a quality benchmark against gensim (benchmarks/word2vec.py); gensim here only reads our exported files.
"""
from __future__ import annotations

import json

import math
import random

import numpy as np
import pytest
import torch

from taesan.errors import TaesanError
from taesan.models.word2vec import Word2Vec, Word2VecConfig, spearman
from taesan.models.word2vec_train import (
    NoiseSampler,
    build_corpus,
    draw_windows,
    keep_probabilities,
    noise_distribution,
    subsample,
    train_word2vec,
    window_contexts,
)


def topic_corpus(n_sentences: int = 600, seed: int = 0) -> list[list[str]]:
    """Two topics that never share a sentence: cafe words and sport words, plus shared filler words."""
    rng = random.Random(seed)
    cafe = ["카페", "커피", "라떼", "케이크", "바리스타", "원두"]
    sport = ["축구", "야구", "골", "선수", "경기장", "감독"]
    filler = ["정말", "오늘", "그냥"]
    out = []
    for i in range(n_sentences):
        topic = cafe if i % 2 == 0 else sport
        out.append([rng.choice(topic) if rng.random() < 0.8 else rng.choice(filler) for _ in range(8)])
    return out


def small_config(**kw) -> Word2VecConfig:
    base = dict(dim=16, window=3, negative=5, min_count=1, sample=0.0, epochs=5, batch_size=64, seed=3)
    return Word2VecConfig(**{**base, **kw})


# ---- sampling distributions ----

def test_noise_words_follow_unigram_to_the_three_quarters():
    counts = np.array([1000, 300, 120, 40, 7, 1])
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    assert np.allclose(noise_distribution(counts), expected)
    n = 400_000
    draws = NoiseSampler(noise_distribution(counts), torch.Generator().manual_seed(0)).sample(n)
    freq = np.bincount(draws.numpy(), minlength=len(counts)) / n
    tolerance = 5 * np.sqrt(expected * (1 - expected) / n)  # 5 standard errors
    assert np.all(np.abs(freq - expected) < tolerance), (freq, expected)


def test_alias_sampler_is_exact_on_a_ragged_distribution():
    rng = np.random.default_rng(1)
    probs = rng.random(300) ** 4
    probs /= probs.sum()
    n = 600_000
    draws = NoiseSampler(probs, torch.Generator().manual_seed(1)).sample(n)
    freq = np.bincount(draws.numpy(), minlength=300) / n
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n) + 1e-6)


def test_subsampling_keeps_words_with_the_word2vec_c_probability():
    counts = np.array([9000, 700, 250, 20])
    t = 1e-3
    threshold = t * counts.sum()
    formula = [min(1.0, (math.sqrt(c / threshold) + 1) * threshold / c) for c in counts]
    keep = keep_probabilities(counts, t)
    assert np.allclose(keep, formula)
    assert keep[0] < keep[1] < 1.0 and keep[3] == 1.0
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)
    ids = torch.from_numpy(np.repeat(np.arange(4), counts))
    mask = subsample(ids, torch.from_numpy(keep), torch.Generator().manual_seed(0))
    kept = np.bincount(ids[mask].numpy(), minlength=4) / counts
    assert np.all(np.abs(kept - keep) < 5 * np.sqrt(keep * (1 - keep) / counts) + 1e-9), (kept, keep)


def test_dynamic_window_is_uniform_in_one_to_window():
    w = draw_windows(60_000, 5, torch.Generator().manual_seed(0))
    freq = np.bincount(w.numpy(), minlength=6)[1:] / len(w)
    assert w.min() == 1 and w.max() == 5
    assert np.all(np.abs(freq - 0.2) < 0.01)


# ---- skip-gram pairs ----

def skipgram_pairs(ids: torch.Tensor, sentence: torch.Tensor, windows: torch.Tensor) -> list[tuple[int, int]]:
    """All (centre position, context position) pairs, centre i with effective window windows[i], sorted:
    the pairs training's window_contexts() yields, read one by one."""
    pairs: list[tuple[int, int]] = []
    for r in torch.unique(windows).tolist():
        centres = (windows == r).nonzero().squeeze(1)
        offsets = torch.cat([torch.arange(-r, 0), torch.arange(1, r + 1)])
        _, mask = window_contexts(ids, sentence, centres, r)
        for c, row in zip(centres.tolist(), mask.tolist()):
            pairs += [(c, c + int(o)) for o, ok in zip(offsets, row) if ok]
    return sorted(pairs)


def test_skipgram_pairs_of_a_known_sentence():
    corpus = build_corpus(["어제 카페 갔었어 거기 사람 많더라"], min_count=1)
    ids, sentence = torch.from_numpy(corpus.ids.astype(np.int64)), torch.from_numpy(corpus.sentence)
    pairs = skipgram_pairs(ids, sentence, torch.full((6,), 2))
    words = [(corpus.words[ids[c]], corpus.words[ids[o]]) for c, o in pairs]
    assert words == [
        ("어제", "카페"), ("어제", "갔었어"),
        ("카페", "어제"), ("카페", "갔었어"), ("카페", "거기"),
        ("갔었어", "어제"), ("갔었어", "카페"), ("갔었어", "거기"), ("갔었어", "사람"),
        ("거기", "카페"), ("거기", "갔었어"), ("거기", "사람"), ("거기", "많더라"),
        ("사람", "갔었어"), ("사람", "거기"), ("사람", "많더라"),
        ("많더라", "거기"), ("많더라", "사람"),
    ]


def test_skipgram_windows_differ_per_centre_and_never_cross_sentences():
    corpus = build_corpus(["a b c", "d e"], min_count=1)
    ids, sentence = torch.from_numpy(corpus.ids.astype(np.int64)), torch.from_numpy(corpus.sentence)
    pairs = skipgram_pairs(ids, sentence, torch.tensor([1, 2, 2, 5, 1]))
    assert pairs == [(0, 1), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)]


def test_rare_words_are_dropped_before_windows_and_vocab_is_by_frequency():
    corpus = build_corpus(["x a b a", "b a rare"], min_count=2)
    assert corpus.words == ["a", "b"] and corpus.counts.tolist() == [3, 2]
    assert corpus.ids.tolist() == [0, 1, 0, 1, 0] and corpus.sentence.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(TaesanError, match="min_count"):
        build_corpus(["a b"], min_count=5)


def test_epoch_pair_count_matches_the_dynamic_window_expectation():
    # one long sentence, no subsampling: each centre has 2·b contexts with b uniform in 1..5, mean 2·3 = 6
    words = [f"w{i % 50}" for i in range(20_000)]
    _, history = train_word2vec([words], small_config(window=5, epochs=1, dim=8, batch_size=4096))
    assert abs(history.epoch_pairs[0] / len(words) - 6.0) < 0.05


# ---- training ----

def test_loss_falls_and_topics_separate():
    model, history = train_word2vec(topic_corpus(), small_config())
    losses = history.epoch_loss
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.9 * losses[0]
    assert 0 < losses[-1] < 10 and len(history.curve) > 0
    cafe = {"커피", "라떼", "케이크", "바리스타", "원두"}
    neighbours = [w for w, _ in model.most_similar("카페", topn=5)]
    assert set(neighbours) == cafe, neighbours
    assert model.similarity("카페", "커피") > model.similarity("카페", "축구") + 0.3


def test_loss_of_an_untrained_model_is_the_chance_value():
    # output vectors start at zero, so every score is 0 and each term costs log 2: one for the context,
    # one per noise word unless it equals the centre (skipped; here 1 chance in 1000, all words equally common)
    words = [f"w{i}" for i in range(1000)] * 5
    random.Random(0).shuffle(words)
    corpus = [words[i:i + 10] for i in range(0, len(words), 10)]
    _, history = train_word2vec(corpus, small_config(epochs=1, lr_start=1e-9, lr_end=1e-9, negative=4))
    assert history.epoch_loss[0] == pytest.approx(math.log(2) * (1 + 4 * (1 - 1 / 1000)), rel=5e-4)


def test_same_seed_same_vectors_other_seed_other_vectors():
    corpus = topic_corpus(200)
    a, _ = train_word2vec(corpus, small_config(seed=7, sample=1e-2, epochs=2))
    b, _ = train_word2vec(corpus, small_config(seed=7, sample=1e-2, epochs=2))
    c, _ = train_word2vec(corpus, small_config(seed=8, sample=1e-2, epochs=2))
    assert torch.equal(a.input_embeddings, b.input_embeddings) and torch.equal(a.output_embeddings, b.output_embeddings)
    assert not torch.equal(a.input_embeddings, c.input_embeddings)


def test_two_workers_train_as_well():
    model, history = train_word2vec(topic_corpus(), small_config(), workers=2)
    assert history.epoch_loss[-1] < 0.9 * history.epoch_loss[0]
    assert model.similarity("카페", "커피") > model.similarity("카페", "축구")


def test_config_and_queries_reject_bad_input():
    with pytest.raises(TaesanError, match="dim"):
        Word2VecConfig(dim=0)
    with pytest.raises(TaesanError, match="sample"):
        Word2VecConfig(sample=1.5)
    with pytest.raises(TaesanError, match="whitespace"):
        build_corpus([["a b", "c"]], min_count=1)
    model, _ = train_word2vec(topic_corpus(40), small_config(epochs=1))
    with pytest.raises(TaesanError, match="'없는말' is not in the vocabulary"):
        model.most_similar("없는말")
    with pytest.raises(TaesanError, match="dim=16"):
        model.most_similar(torch.zeros(3))


# ---- queries and evaluation on hand-set vectors ----

def hand_model() -> Word2Vec:
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vecs = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0.1, 1], [0, 0.1, 0, 1]], dtype=torch.float32)
    model = Word2Vec(Word2VecConfig(dim=4, min_count=1), words, [6, 5, 4, 3, 2, 1])
    model.input_embeddings.data.copy_(vecs)
    model.output_embeddings.data.normal_()
    return model


def test_most_similar_by_word_and_by_vector_and_analogy():
    model = hand_model()
    assert model.most_similar("apple", topn=1)[0][0] == "pear"
    assert [w for w, _ in model.most_similar(torch.tensor([1.0, 1, 1, 0]), topn=2)] == ["queen", "woman"]
    assert "queen" not in dict(model.most_similar("queen", topn=5))
    assert model.analogy("king", "man", "woman")[0][0] == "queen"  # king − man + woman
    assert model.similarity("king", "king") == pytest.approx(1.0)


def test_evaluate_analogies_and_similarity(tmp_path):
    model = hand_model()
    q = tmp_path / "questions-words.txt"
    q.write_text(": royal\nman woman king queen\nman king woman queen\nman woman king apple\n: oov\nman woman king 없는말\n", encoding="utf-8")
    result = model.evaluate_analogies(q)
    assert (result["correct"], result["total"], result["skipped_oov"]) == (2, 3, 1)
    assert result["sections"][0] == {"section": "royal", "correct": 2, "total": 3}
    s = tmp_path / "sim.tsv"
    s.write_text("# word1 word2 score\nking\tqueen\t9\napple\tpear\t8\nking\tapple\t1\nman\tpear\t0.5\n없는말\tking\t3\n", encoding="utf-8")
    result = model.evaluate_similarity(s)
    assert result["pairs"] == 4 and result["skipped_oov"] == 1
    ours = [model.similarity(a, b) for a, b in [("king", "queen"), ("apple", "pear"), ("king", "apple"), ("man", "pear")]]
    assert result["spearman"] == pytest.approx(spearman(ours, [9, 8, 1, 0.5]))
    bad = tmp_path / "bad.txt"
    bad.write_text("man woman king\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="bad.txt:1"):
        model.evaluate_analogies(bad)


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 40).astype(float), rng.normal(size=40)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


# ---- files ----

def test_save_load_round_trip(tmp_path):
    model, _ = train_word2vec(topic_corpus(60), small_config(epochs=1))
    model.save(tmp_path / "w2v")
    assert sorted(p.name for p in (tmp_path / "w2v").iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    loaded = Word2Vec.load(tmp_path / "w2v")
    assert loaded.words == model.words and loaded.counts.tolist() == model.counts.tolist()
    assert loaded.config == model.config
    assert torch.equal(loaded.input_embeddings, model.input_embeddings)
    assert torch.equal(loaded.output_embeddings, model.output_embeddings)
    assert loaded.most_similar("카페", topn=3) == model.most_similar("카페", topn=3)
    (tmp_path / "w2v" / "vocab.txt").write_text("카페\t3\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="input_embeddings"):
        Word2Vec.load(tmp_path / "w2v")


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_loads_in_gensim_with_identical_vectors(tmp_path, binary):
    keyed = pytest.importorskip("gensim.models").KeyedVectors
    model, _ = train_word2vec(topic_corpus(60), small_config(epochs=1))
    path = model.save_word2vec_format(tmp_path / ("v.bin" if binary else "v.txt"), binary=binary)
    kv = keyed.load_word2vec_format(str(path), binary=binary)
    assert list(kv.index_to_key) == model.words
    assert np.array_equal(kv.vectors, model.vectors.numpy())
    assert kv.most_similar("카페", topn=3)[0][0] == model.most_similar("카페", topn=3)[0][0]


# ---- command line ----

def test_cli_train_then_similar(tmp_path, capsys):
    from taesan.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in topic_corpus(300)) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    code = main(["word2vec", "train", "--corpus", str(corpus), "--out", str(out), "--dim", "16", "--window", "3",
                 "--min-count", "2", "--epochs", "4", "--sample", "0", "--batch-size", "64", "--no-progress",
                 "--export", str(tmp_path / "v.txt")])
    assert code == 0
    printed = capsys.readouterr()
    assert "epoch 4/4: loss" in printed.err + printed.out
    for name in ("config.json", "model.safetensors", "vocab.txt", "loss.png", "history.json"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "v.txt").read_text(encoding="utf-8").startswith(f"{len(Word2Vec.load(out))} 16\n")
    assert main(["word2vec", "similar", "--model", str(out), "카페", "--topn", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "카페" and len(lines) == 4
    assert lines[1].split()[1] in {"커피", "라떼", "케이크", "바리스타", "원두"}
    assert main(["word2vec", "similar", "--model", str(out), "카페", "없는말"]) == 2
    captured = capsys.readouterr()
    assert "'없는말' is not in the vocabulary" in captured.err and captured.out == ""  # the word was printed first
    assert main(["word2vec", "train", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "m2")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
    assert main(["word2vec", "train", "--corpus", str(tmp_path), "--out", str(tmp_path / "m3")]) == 2
    assert "a directory, not a text file" in capsys.readouterr().err  # was "file not found"
    # nothing scored: the JSON says null (it wrote NaN, which is not JSON) and one line says why
    (tmp_path / "q.txt").write_text(": oov\n카페 없는말 커피 모르는말\n", encoding="utf-8")
    (tmp_path / "s.tsv").write_text("카페\t없는말\t3\n", encoding="utf-8")
    assert main(["word2vec", "evaluate", "--model", str(out), "--analogies", str(tmp_path / "q.txt"),
                 "--similarity", str(tmp_path / "s.tsv")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert result["analogies"]["accuracy"] is None and result["similarity"]["spearman"] is None
    assert "q.txt: accuracy is undefined: nothing scored (1 skipped for words the vectors do not know)" in captured.err
    assert "s.tsv: spearman is undefined" in captured.err
    # a command that runs models, given the vectors: said so (its vocab.txt was read as a broken WordPiece)
    assert main(["attention", "--model", str(out), "카페"]) == 2
    assert "word vectors (taesan word2vec train), not a model to run" in capsys.readouterr().err


def test_cli_morphemes_without_kiwipiepy_is_one_clear_line(monkeypatch):
    import sys

    from taesan.cli.word2vec import morpheme_tokenizer

    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # import fails as if not installed
    with pytest.raises(TaesanError, match=r"pip install 'taesan\[korean\]'"):
        morpheme_tokenizer()


@pytest.mark.slow  # loading Kiwi's model takes a few seconds
def test_cli_morphemes_split_korean_words():
    pytest.importorskip("kiwipiepy")
    from taesan.cli.word2vec import morpheme_tokenizer

    tokens = morpheme_tokenizer()("어제 카페 갔었어")
    assert "카페" in tokens and "어제" in tokens and len(tokens) > 3
