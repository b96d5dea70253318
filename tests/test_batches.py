"""Fine-tuning and inference batches: length-bucketed shuffling (every feature once an epoch, similar lengths in a
batch, exact resume), inference longest first with results back in input order and the same predictions as
one input at a time, and SDPA on every encoder's attention."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import taesan
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.tasks.batches import INFERENCE_TOKENS, FeatureBatches, by_length, feature_length, restore_order
from taesan.tasks.classification import SequenceClassification
from taesan.tasks.readers.sentiment import TextExample
from taesan.tokenizers import WordPieceTokenizer


def _features(n=640, seed=0):
    rng = np.random.default_rng(seed)
    return [{"input_ids": list(range(int(k))), "labels": i} for i, k in enumerate(rng.integers(1, 120, size=n))]


def _collate(features):
    return {"labels": torch.tensor([f["labels"] for f in features]), "lengths": torch.tensor([feature_length(f) for f in features])}


def test_bucketed_batches_see_every_feature_once_per_epoch_with_similar_lengths():
    features = _features()
    batches = FeatureBatches(features, _collate, 16, seed=3)
    assert batches.mega == 10  # 40 batches an epoch: at least 4 mega-batches
    epoch = [batches.next_batch() for _ in range(40)]
    seen = torch.cat([b["labels"] for b in epoch]).tolist()
    assert sorted(seen) == list(range(640))  # every feature once
    spread = np.mean([int(b["lengths"].max() - b["lengths"].min()) for b in epoch])
    shuffled = FeatureBatches(features, _collate, 16, seed=3, mega=1)  # plain shuffling, for comparison
    plain = np.mean([int(b["lengths"].max() - b["lengths"].min()) for b in (shuffled.next_batch() for _ in range(40))])
    assert spread < plain / 4  # padding to the longest wastes far less
    lengths_in_order = [float(b["lengths"].float().mean()) for b in epoch[:10]]
    assert lengths_in_order != sorted(lengths_in_order)  # the batches of a mega-batch come in random order
    second = torch.cat([batches.next_batch()["labels"] for _ in range(40)])
    assert sorted(second.tolist()) == list(range(640)) and second.tolist() != seen  # a new order each epoch


@pytest.mark.parametrize("stop", [3, 10, 17])
def test_bucketed_batches_resume_exactly_mid_mega_batch(stop):
    features = _features(320)
    a = FeatureBatches(features, _collate, 8, seed=1)
    for _ in range(stop):
        a.next_batch()
    b = FeatureBatches(features, _collate, 8, seed=1)
    b.load_state_dict(a.state_dict())
    for _ in range(25):
        assert torch.equal(a.next_batch()["labels"], b.next_batch()["labels"])


def test_inference_batches_go_longest_first_within_the_token_budget_and_come_back_in_order():
    features = _features(300)
    pieces = []
    for positions, batch in by_length(features, _collate):
        assert len(positions) * int(batch["lengths"].max()) <= INFERENCE_TOKENS
        pieces.append((positions, batch["labels"]))
    assert max(len(p) for p, _ in pieces) > 2 * len(pieces[0][0])  # short rows fill a batch: far more rows than long ones
    assert restore_order(pieces).tolist() == list(range(300))
    fixed = list(by_length(features, _collate, batch_size=7))
    assert {len(p) for p, _ in fixed[:-1]} == {7} and restore_order([(p, b["labels"]) for p, b in fixed]).tolist() == list(range(300))


@pytest.fixture(scope="module")
def classifier():
    tok = WordPieceTokenizer.train(korean_corpus(300), vocab_size=300, min_frequency=1)
    task = SequenceClassification(tokenizer=tok)
    examples = [TextExample(t, str(y), "demo") for t, y in sentiment_examples(64)]
    task.fit_labels(examples)
    torch.manual_seed(0)
    backbone = taesan.create("bert", vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=2, n_positions=64)
    return task, task.build_model(backbone).eval(), examples


def test_predictions_are_in_input_order_and_equal_one_input_at_a_time(classifier):
    task, model, examples = classifier
    texts = [ex.text for ex in examples]
    texts = texts[::2] + ["티끌 모아 태산 " * 6] + texts[1::2]  # one long input among short ones
    bucketed = task.predict(model, texts)  # as many rows as fit, longest first
    alone = [task.predict(model, [t], batch_size=1)[0] for t in texts]  # no padding at all
    assert [p["label"] for p in bucketed] == [p["label"] for p in alone]
    for p, q in zip(bucketed, alone):
        assert p["probabilities"] == pytest.approx(q["probabilities"], abs=1e-5)
    shuffled = task.predict(model, texts, batch_size=5)
    assert [p["probability"] for p in shuffled] == pytest.approx([p["probability"] for p in alone], abs=1e-5)
    scores = task.evaluate(model, examples)
    assert scores["examples"] == len(examples) and scores == pytest.approx(task.evaluate(model, examples, batch_size=1), abs=1e-5)


@pytest.mark.parametrize("name", ["bert-tiny", "roberta-tiny", "electra-tiny", "vit-tiny", "t5-tiny"])
def test_every_encoder_attends_through_sdpa_unless_weights_are_asked_for(name, monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    torch.manual_seed(0)
    model = taesan.create(name).eval()
    if name.startswith("vit"):
        inputs = {"pixel_values": torch.randn(2, model.config.channels, model.config.image_size, model.config.image_size)}
        encoder = model
    elif name.startswith("t5"):
        inputs = {"input_ids": torch.randint(0, 100, (2, 9)), "attention_mask": torch.tensor([[1] * 9, [1] * 5 + [0] * 4])}
        encoder = taesan.create("t5-encoder", **{k: v for k, v in model.config.__dict__.items()}).eval()
    else:
        inputs = {"input_ids": torch.randint(5, 100, (2, 9)), "attention_mask": torch.tensor([[1] * 9, [1] * 5 + [0] * 4])}
        encoder = model
    with torch.inference_mode():
        encoder(**inputs)
        assert calls  # every layer through SDPA
        n = len(calls)
        encoder.forward_features(**inputs, need_weights=True)
    assert len(calls) == n  # the weights come from the explicit path


def test_precision_bf16_runs_an_encoder_under_autocast_and_a_gpt_in_its_decode_weights(classifier, monkeypatch):
    """`--precision` of predict/evaluate/serve/generate: bf16 works on any CPU (slowly where it is emulated), auto
    follows the CPU's flags, and the choice is said in one line."""
    from taesan import util
    from taesan.pipeline.precision import use_precision

    task, model, examples = classifier
    texts = [ex.text for ex in examples[:12]]
    fp32 = task.predict(model, texts)
    precision = use_precision(model, "bf16")
    assert precision.autocast and precision.note == "precision: bf16 (asked for)"
    seen = []
    hook = model.classifier.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with precision.context():
        bf16 = task.predict(model, texts)
    hook.remove()
    assert set(seen) == {torch.bfloat16}
    assert [p["probability"] for p in bf16] == pytest.approx([p["probability"] for p in fp32], abs=0.03)
    gpt = taesan.create("gpt-tiny", n_layers=1, d_model=32, n_heads=2)
    assert not use_precision(gpt, "bf16").autocast and gpt.decode_dtype == torch.bfloat16
    for native, chosen in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(util, "native_bf16", lambda native=native: native)
        assert use_precision(gpt, "auto").chosen == chosen and gpt.decode_dtype == getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[chosen])
        assert use_precision(model, "auto").note.startswith(f"precision: {chosen} (auto: this CPU")
