"""Soft prompt tuning: the backbone stays bit-identical, only the prompt (+ head) is trained and saved, the
small file reloads onto its base and reproduces predictions, generation with the KV cache equals a plain
uncached loop, and the prompt sits where it should (GPT: first; BERT: after [CLS])."""
from __future__ import annotations

import json

import pytest
import torch

import taesan
from taesan.checkpoint import check_and_load, load_state_dict
from taesan.data.embedded import korean_corpus, sentiment_examples
from taesan.errors import TaesanError
from taesan.decoding import generate
from taesan.tasks.classification import SequenceClassification
from taesan.tasks.readers.sentiment import TextExample
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune, load_finetuned
from taesan.tuning.prompt import SoftPrompt, add_soft_prompt, initial_prompt

SMALL = dict(n_layers=2, d_model=32, n_heads=4, n_positions=64, dropout=0.0, attn_dropout=0.0)
V = 60


def _random_gpt(seed=0):
    """A GPT whose greedy outputs vary from token to token (weights larger than the init)."""
    torch.manual_seed(seed)
    model = taesan.create("gpt", vocab_size=V, **SMALL)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name and name.endswith("weight") else 0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def tokenizers():
    from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

    lines = korean_corpus(200)
    return (BPETokenizer.train(lines, vocab_size=350, special_tokens=["<|endoftext|>"]),
            WordPieceTokenizer.train(lines, vocab_size=450))  # 450: the masked verbalizer's 최고 / 최악 are whole words


@pytest.fixture(scope="module")
def sentiment():
    data = [TextExample(t, "긍정" if y else "부정", f"demo {i}") for i, (t, y) in enumerate(sentiment_examples(48, seed=1))]
    return data[:40], data[40:]


def _tune(kind, tokenizers, sentiment, root, steps=6, init=None):
    """Prompt-tune a saved tiny GPT or BERT on the sentiment examples -> (base dir, base state, result, task, out)."""
    bpe, wp = tokenizers
    tok = bpe if kind == "gpt" else wp
    name = "gpt" if kind == "gpt" else "bert-mlm"
    base = taesan.create(name, vocab_size=tok.vocab_size, **SMALL)
    base.save(root / "base", tok)
    base = taesan.load(root / "base")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    task = SequenceClassification(tokenizer=tok)
    config = TrainConfig(max_steps=steps, lr=3e-2, warmup=0, eval_every=0, save_every=0, log_every=1, progress=False)
    train, valid = sentiment
    result = finetune(task, base, train, valid, root / "out", config, batch_size=8, device="cpu", mode="prompt",
                      prompt_tokens=5, prompt_init=init)
    return state, result, task, root / "out"


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_backbone_bit_identical_and_only_prompt_and_head_saved(kind, tokenizers, sentiment, tmp_path):
    state, result, task, out = _tune(kind, tokenizers, sentiment, tmp_path)
    model = result.model
    assert isinstance(model, SoftPrompt)
    backbone = model.inner.gpt if kind == "gpt" else model.inner.bert
    prefix = "gpt." if kind == "gpt" else "bert."
    for k, v in backbone.state_dict().items():
        if "pooler" in k:
            continue  # BERT's pooler is part of the classification head (the MLM base has none)
        assert torch.equal(v, state[k if k in state else prefix + k]), k
    head = {"gpt": {"prompt.weight", "inner.score.weight"},
            "bert": {"prompt.weight", "inner.classifier.weight", "inner.classifier.bias",
                     "inner.bert.pooler.dense.weight", "inner.bert.pooler.dense.bias"}}[kind]
    assert set(load_state_dict(out / "model.safetensors")) == head
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    assert result.trainable_parameters == sum(p.numel() for n, p in model.named_parameters() if n in head)
    assert not (out / "base").exists()
    start = initial_prompt(backbone.tok_emb.weight, 5, None, task.tokenizer, seed=0)  # finetune's seed is the config's
    assert not torch.equal(model.prompt.weight.detach(), start)  # the prompt was trained


def test_loss_falls_with_only_the_prompt_learning():
    """A frozen LM, a fixed batch: a soft prompt alone makes the batch more likely."""
    model = add_soft_prompt(_random_gpt(), 4, "random", None, seed=0)
    ids = torch.randint(0, V, (4, 12), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = []
    for _ in range(30):
        logits = model(ids)  # (B, T, V): the prompt's positions removed
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_prompt_file_reloads_onto_base_and_reproduces_predictions(kind, tokenizers, sentiment, tmp_path):
    _, result, task, out = _tune(kind, tokenizers, sentiment, tmp_path)
    texts = [ex.text for ex in sentiment[1]] + ["어제 카페 갔었어"]
    before = task.predict(result.model.eval(), texts)
    model, loaded_task = load_finetuned(out)
    assert isinstance(model, SoftPrompt) and model.n_tokens == 5
    after = loaded_task.predict(model, texts)
    for a, b in zip(before, after):
        assert a["label"] == b["label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    # the trainer's resume path reads the same file through state_dict / check_and_load
    check_and_load(model, load_state_dict(out / "model.safetensors"), "resume")


def test_changed_or_missing_base_is_a_one_line_error(tokenizers, sentiment, tmp_path):
    _, result, _, out = _tune("gpt", tokenizers, sentiment, tmp_path, steps=1)
    base = taesan.load(tmp_path / "base")
    with torch.no_grad():
        base.tok_emb.weight[0, 0] += 1.0
    base.save(tmp_path / "base")
    with pytest.raises(TaesanError, match="differs from the one this prompt was tuned on"):
        taesan.load(out)
    config = json.loads((out / "config.json").read_text())
    config["base"] = str(tmp_path / "nowhere")
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(TaesanError, match="nowhere not found"):
        taesan.load(out)


def test_a_base_without_checkpoint_is_saved_beside_the_prompt(tmp_path):
    model = add_soft_prompt(_random_gpt(), 3, "random", None, seed=0)
    model.save(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "config.json").read_text())["base"] == "base"
    again = taesan.load(tmp_path / "p")
    ids = torch.randint(0, V, (2, 7))
    with torch.no_grad():
        assert torch.equal(again(ids), model.eval()(ids))


def test_generation_with_cache_equals_uncached_loop():
    base = _random_gpt()
    model = add_soft_prompt(base, 4, "random", None, seed=3).eval()
    ids = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(1))
    out = generate(model, ids, max_new_tokens=8, eos_token_id=[])
    x = ids
    with torch.no_grad():
        for _ in range(8):
            x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], 1)  # no cache: the whole sequence each step
    assert torch.equal(out, x)
    assert len(set(out[0, 6:].tolist())) > 1  # a real continuation, not one repeated token
    assert not torch.equal(out, generate(base, ids, max_new_tokens=8, eos_token_id=[]))  # the prompt matters
    # left padding: each row decodes as it would alone
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    batch = generate(model, ids, attention_mask=mask, max_new_tokens=5, eos_token_id=[])
    for r in range(3):
        start = 6 - int(mask[r].sum())
        alone = generate(model, ids[r:r + 1, start:], max_new_tokens=5, eos_token_id=[])
        assert torch.equal(alone[0], batch[r, start:])
    # beam search reorders the cache: still the uncached model's best beam for one step
    beams = generate(model, ids[:1], max_new_tokens=1, num_beams=3, eos_token_id=[])
    assert torch.equal(beams, x[:1, :7])


def test_the_prompt_takes_positions_from_the_window():
    model = add_soft_prompt(_random_gpt(), 10, "random", None, seed=0)
    assert model.config.n_positions == SMALL["n_positions"] - 10
    with pytest.raises(TaesanError, match="n_positions=54"):
        generate(model, torch.zeros(1, 50, dtype=torch.long), max_new_tokens=5)
    with pytest.raises(TaesanError, match="leave no room"):
        add_soft_prompt(_random_gpt(), 64, "random", None)
    with pytest.raises(TaesanError, match="already has a soft prompt"):
        add_soft_prompt(model, 2)
    seq2seq = taesan.create("transformer", src_vocab_size=V, d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1)
    with pytest.raises(TaesanError, match="reads inputs_embeds"):
        add_soft_prompt(seq2seq, 2, "random")


def test_bert_prompt_goes_after_cls(tokenizers):
    from taesan.models.bert_heads import BertForSequenceClassification, BertForTokenClassification

    _, wp = tokenizers
    torch.manual_seed(0)
    cls_model = BertForSequenceClassification(taesan.create("bert", vocab_size=wp.vocab_size, num_labels=2, **SMALL).config).eval()
    model = add_soft_prompt(cls_model, 3, "random", wp, seed=0).eval()
    assert model.prompt_config.insert_at == 1
    ids = torch.tensor([wp.encode("어제 카페 갔었어").ids])  # [CLS] ... [SEP]
    assert ids[0, 0] == wp.cls_id
    emb = cls_model.bert.tok_emb(ids)
    by_hand = torch.cat([emb[:, :1], model.prompt.weight[None], emb[:, 1:]], 1)  # [CLS] p1 p2 p3 tokens [SEP]
    with torch.no_grad():
        assert torch.allclose(model(ids), cls_model(inputs_embeds=by_hand), atol=1e-6)
        # a per-token head comes back with one output per real token, the prompt's positions removed
        tagger = add_soft_prompt(BertForTokenClassification(cls_model.config).eval(), 3, "random", wp)
        assert tagger(ids, attention_mask=torch.ones_like(ids)).shape == (1, ids.shape[1], 2)


def test_initialisations(tokenizers):
    bpe, _ = tokenizers
    table = torch.randn(bpe.vocab_size, 8)
    ids = bpe.encode("긍정 부정", add_special_tokens=False).ids
    from_text = initial_prompt(table, len(ids) * 2 + 1, "긍정 부정", bpe, seed=0)
    assert torch.equal(from_text, table[torch.tensor(ids * 2 + ids[:1])])  # repeated to N
    assert torch.equal(initial_prompt(table, 2, "긍정 부정", bpe, 0), table[torch.tensor(ids[:2])])  # truncated to N
    vocab = initial_prompt(table, 6, None, bpe, seed=5)
    rows = [int((table == r).all(1).nonzero()[0]) for r in vocab]
    assert bpe.eos_id not in rows and torch.equal(vocab, initial_prompt(table, 6, "vocab", bpe, seed=5))
    assert not torch.equal(vocab, initial_prompt(table, 6, None, bpe, seed=6))
    random_rows = initial_prompt(table, 500, "random", bpe, seed=0)
    assert random_rows.std().item() == pytest.approx(table.std().item(), rel=0.15)
    with pytest.raises(TaesanError, match="has no tokens"):
        initial_prompt(table, 3, "", bpe, 0)


ENCODER_BASES = {"bert": "bert-mlm", "roberta": "roberta-mlm", "electra": "electra-discriminator"}
CLASSIFIER_HEADS = {  # what each family's sequence classifier trains beside the prompt
    "bert": {"inner.classifier.weight", "inner.classifier.bias", "inner.bert.pooler.dense.weight", "inner.bert.pooler.dense.bias"},
    "roberta": {f"inner.classifier.{m}.{p}" for m in ("dense", "out_proj") for p in ("weight", "bias")},
    "electra": {f"inner.classifier.{m}.{p}" for m in ("dense", "out_proj") for p in ("weight", "bias")},
}


@pytest.mark.parametrize("task_name", ["classification", "ner"])
@pytest.mark.parametrize("family", list(ENCODER_BASES))
def test_prompt_tuning_on_each_encoder(family, task_name, tokenizers, sentiment, tmp_path):
    """BERT, RoBERTa and ELECTRA: the prompt goes after [CLS], only it and the family's head learn and are saved, the
    backbone stays bit-identical, and the small file reloads onto its base with the same predictions."""
    from taesan.tasks.ner import TokenClassification
    from taesan.tasks.readers.ner import TaggedText

    _, wp = tokenizers
    extra = {"embedding_size": 16} if family == "electra" else {}
    base = taesan.create(ENCODER_BASES[family], vocab_size=wp.vocab_size, pad_token_id=wp.pad_id, **SMALL, **extra)
    base.save(tmp_path / "base", wp)
    base = taesan.load(tmp_path / "base")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    if task_name == "classification":
        task, (train, valid), texts = SequenceClassification(tokenizer=wp), sentiment, ["어제 카페 갔었어", "영화가 좋다"]
    else:
        text = "민수는 어제 카페 갔었어"
        tags = ["B-PS", "I-PS"] + ["O"] * (len(text) - 2)
        train = valid = [TaggedText(text, tags, [(i, i + 1) for i in range(len(text))])] * 8
        task, texts = TokenClassification(tokenizer=wp), [text]
    config = TrainConfig(max_steps=4, lr=3e-2, warmup=0, eval_every=0, save_every=0, log_every=1, progress=False)
    result = finetune(task, base, train, valid, tmp_path / "out", config, batch_size=8, device="cpu", mode="prompt",
                      prompt_tokens=4)
    model = result.model
    assert isinstance(model, SoftPrompt) and model.prompt_config.insert_at == 1
    for k, v in model.inner.backbone.state_dict().items():
        if "pooler" not in k:  # BERT's pooler belongs to its classifier head
            assert torch.equal(v, state[f"{model.inner.backbone_prefix}.{k}"]), k
    head = CLASSIFIER_HEADS[family] if task_name == "classification" else {"inner.classifier.weight", "inner.classifier.bias"}
    assert set(load_state_dict(tmp_path / "out" / "model.safetensors")) == {"prompt.weight"} | head
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"prompt.weight"} | head
    before = task.predict(model.eval(), texts)
    again, loaded = load_finetuned(tmp_path / "out")
    after = loaded.predict(again, texts)
    if task_name == "ner":
        assert after == before  # entities with scores rounded to 4 places
    else:
        assert [a["label"] for a in after] == [b["label"] for b in before]
        assert [a["probability"] for a in after] == pytest.approx([b["probability"] for b in before], abs=1e-6)


# ---- prompt-lm: only the prompt learns, the label is read through the frozen LM head -----------------------------


LM_BASES = {"gpt": "gpt", "bert": "bert-mlm", "roberta": "roberta-mlm", "electra": "electra-generator"}
WORDS = {"gpt": {"부정": "부정", "긍정": "긍정"}, "masked": {"부정": "최악", "긍정": "최고"}}  # first tokens differ in these vocabularies


def _tune_lm(family, tokenizers, sentiment, root, steps=6, lr=3e-2, wide=False):
    """prompt-lm on a saved tiny LM (wide: weights larger than the init, so its outputs vary) -> (base state, result,
    task, out)."""
    bpe, wp = tokenizers
    tok = bpe if family == "gpt" else wp
    extra = {"embedding_size": 16} if family == "electra" else {}
    torch.manual_seed(0)
    base = taesan.create(LM_BASES[family], vocab_size=tok.vocab_size, **SMALL, **extra)
    if family == "roberta":
        base = taesan.create(LM_BASES[family], vocab_size=tok.vocab_size, pad_token_id=tok.pad_id, **SMALL)
    if wide:
        with torch.no_grad():
            for name, p in base.named_parameters():
                if not ("norm" in name and name.endswith("weight")):
                    p.copy_(0.3 * torch.randn_like(p))
    base.save(root / "base", tok)
    base = taesan.load(root / "base")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    task = SequenceClassification(tokenizer=tok)
    config = TrainConfig(max_steps=steps, lr=lr, warmup=0, eval_every=0, save_every=0, log_every=1, progress=False)
    train, valid = sentiment
    result = finetune(task, base, train, valid, root / "out", config, batch_size=8, device="cpu", mode="prompt-lm",
                      prompt_tokens=5, verbalizer=WORDS["gpt" if family == "gpt" else "masked"])
    return state, result, task, root / "out"


def test_prompt_lm_gpt_scores_the_next_token_after_prompt_text_and_pattern(tokenizers, sentiment, tmp_path):
    """By hand: [prompt] text + "\\n정답:" through the frozen GPT; the next-token logits of " 부정", " 긍정" are the logits."""
    bpe, _ = tokenizers
    _, result, task, _ = _tune_lm("gpt", tokenizers, sentiment, tmp_path, steps=2)
    model = result.model.eval()
    lm = model.inner.lm
    pattern = bpe.encode("\n정답:", add_special_tokens=False).ids
    words = [bpe.encode(" " + WORDS["gpt"][label], add_special_tokens=False).ids[0] for label in task.labels]
    texts = ["어제 카페 갔었어", "영화가 정말 좋다 최고", "별로"]  # different lengths: one batch, right padding
    batch = task.collate([f for t in texts for f in task.encode(TextExample(t, None, "x"))])
    with torch.no_grad():
        got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])  # (3, 2)
        for row, text in enumerate(texts):
            ids = torch.tensor([bpe.encode(text, add_special_tokens=False).ids + pattern])
            x = torch.cat([model.prompt.weight[None], lm.tok_emb(ids)], 1)  # [prompt] text pattern
            expected = lm(inputs_embeds=x)[0, -1, words]
            torch.testing.assert_close(got[row], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_prompt_lm_masked_lm_scores_the_words_at_the_mask(family, tokenizers, sentiment, tmp_path):
    """By hand: [CLS] [prompt] text [SEP] 정답: [MASK] [SEP] (pattern as segment B where the family has one) through the
    frozen masked LM; the [MASK]'s logits of the label words are the logits."""
    _, wp = tokenizers
    _, result, task, _ = _tune_lm(family, tokenizers, sentiment, tmp_path, steps=2)
    model = result.model.eval()
    assert model.prompt_config.insert_at == 1
    lm = model.inner.lm
    pattern = wp.encode("정답: [MASK]", add_special_tokens=False).ids + [wp.sep_id]
    words = [wp.encode(WORDS["masked"][label], add_special_tokens=False).ids[0] for label in task.labels]
    texts = ["어제 카페 갔었어", "영화가 정말 좋다 최고", "별로"]
    batch = task.collate([f for t in texts for f in task.encode(TextExample(t, None, "x"))])
    segments = lm.config.type_vocab_size > 1
    assert ("token_type_ids" in batch) == segments
    with torch.no_grad():
        got = model(**{k: v for k, v in batch.items() if k != "labels"})
        for row, text in enumerate(texts):
            ids = wp.encode(text).ids  # [CLS] text [SEP]
            full = torch.tensor([ids + pattern])
            emb = lm.backbone.tok_emb(full)
            x = torch.cat([emb[:, :1], model.prompt.weight[None], emb[:, 1:]], 1)
            types = torch.tensor([[0] * (len(ids) + 5) + [int(segments)] * len(pattern)])
            logits = lm(inputs_embeds=x, token_type_ids=types)[0]  # (T, V)
            at = 5 + full[0].tolist().index(wp.mask_id)
            torch.testing.assert_close(got[row], logits[at, words], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_prompt_lm_trains_and_saves_only_the_prompt_and_reloads(family, tokenizers, sentiment, tmp_path):
    state, result, task, out = _tune_lm(family, tokenizers, sentiment, tmp_path)
    model = result.model
    assert isinstance(model, SoftPrompt)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"prompt.weight"}
    assert set(load_state_dict(out / "model.safetensors")) == {"prompt.weight"}
    assert result.trainable_parameters == 5 * SMALL["d_model"]
    lm_state = model.inner.lm.state_dict()
    assert lm_state.keys() == state.keys() and all(torch.equal(lm_state[k], state[k]) for k in state)  # LM head too
    config = json.loads((out / "config.json").read_text())
    inner = config["inner"]
    assert config["base"] == "../base" and inner["model_type"] == "lm-verbalizer" and inner["labels"] == task.labels
    assert inner["words"] == [WORDS["gpt" if family == "gpt" else "masked"][x] for x in task.labels]
    texts = [ex.text for ex in sentiment[1]] + ["어제 카페 갔었어"]
    before = task.predict(model.eval(), texts)
    loaded, loaded_task = load_finetuned(out)
    after = loaded_task.predict(loaded, texts)
    assert [a["probability"] for a in after] == pytest.approx([b["probability"] for b in before], abs=1e-6)
    assert loaded_task.evaluate(loaded, sentiment[1])["accuracy"] == result.metrics["accuracy"]


def test_prompt_lm_loss_falls_with_only_the_prompt(tokenizers, sentiment, tmp_path):
    """A random LM has no sentiment to find, but the prompt alone can move what its head says: on a 9:1 training set
    the loss falls from ~ln 2 toward the labels' entropy (0.33)."""
    train, valid = sentiment
    skewed = [ex for ex in train if ex.label == "긍정"] * 2
    skewed = skewed[:36] + [ex for ex in train if ex.label == "부정"][:4]
    _, result, _, out = _tune_lm("gpt", tokenizers, (skewed, valid), tmp_path, steps=30, lr=3e-2, wide=True)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"lr"' in line]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_prompt_lm_errors_are_one_line(tokenizers, sentiment, tmp_path):
    from taesan.tuning.verbalizer import verbalized_lm

    bpe, wp = tokenizers
    gpt = taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL)
    bert = taesan.create("bert-mlm", vocab_size=wp.vocab_size, **SMALL)
    labels = ["부정", "긍정"]
    with pytest.raises(TaesanError, match="start with the same token"):
        verbalized_lm(bert, wp, labels, {"부정": "최고", "긍정": "최고다"})  # 최 + ##고 ...
    with pytest.raises(TaesanError, match="unknown to the tokenizer"):
        verbalized_lm(bert, wp, labels, {"부정": "긍정", "긍정": "최고"})
    with pytest.raises(TaesanError, match="no word for label '긍정'"):
        verbalized_lm(gpt, bpe, labels, {"부정": "부정"})
    with pytest.raises(TaesanError, match=r"reads the label at \{mask\}"):
        verbalized_lm(bert, wp, labels, WORDS["masked"], "정답:")
    with pytest.raises(TaesanError, match=r"\{mask\} is for masked LMs"):
        verbalized_lm(gpt, bpe, labels, WORDS["gpt"], "정답: {mask}")
    backbone = taesan.create("bert", vocab_size=wp.vocab_size, **SMALL)  # no LM head to read
    with pytest.raises(TaesanError, match="needs a GPT or a masked LM"):
        verbalized_lm(backbone, wp, labels, WORDS["masked"])


def test_a_masked_lm_reads_each_word_as_it_stands_at_the_mask(tmp_path):
    """RoBERTa's byte-level BPE writes the word after "정답: " as one Ġ-token (" 재미있었다"), while the word alone is
    byte pieces: the label is read as the first token the text with the word at the mask would have, as HF's
    tokenizer writes it. (A WordPiece spells both alike.)"""
    hf = pytest.importorskip("tokenizers")
    from taesan import tokenizers as T
    from taesan.tuning.verbalizer import verbalized_lm

    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                     initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(korean_corpus(300) + ["정답: 재미있었다", "정답: 지루했다"] * 20, trainer)
    tok.add_special_tokens([hf.AddedToken("<mask>", lstrip=True)])
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = T.load(tmp_path / "tokenizer.json")
    assert ours.encode("재미있었다", add_special_tokens=False).ids[0] != ours.encode(" 재미있었다", add_special_tokens=False).ids[0]
    bert = taesan.create("bert-mlm", vocab_size=ours.vocab_size, **SMALL)
    words = {"부정": "지루했다", "긍정": "재미있었다"}
    model = verbalized_lm(bert, ours, ["부정", "긍정"], words, "정답: {mask}")
    at_mask = [tok.encode(f"정답: {words[x]}", add_special_tokens=False).ids[2] for x in ("부정", "긍정")]  # 정답 : WORD
    assert model.config.label_ids == at_mask
