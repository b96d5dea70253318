"""The upstream objectives: next-token shift, backward reversal with padding, BERT masking, teacher forcing."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taesan.errors import TaesanError
from taesan.objectives import (
    IGNORE_INDEX,
    BackwardLM,
    CausalLM,
    MaskedLM,
    Seq2SeqLM,
    objective_for,
    reverse_real_tokens,
    shift_for_next_token,
    shift_right,
)


def test_causal_inputs_predict_the_next_token_and_ignore_padding():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    inputs, labels = CausalLM().prepare({"input_ids": ids, "attention_mask": mask})
    assert inputs["input_ids"].tolist() == [[5, 6, 7], [9, 10, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert labels.tolist() == [[6, 7, 8], [10, IGNORE_INDEX, IGNORE_INDEX]]
    x, m, y = shift_for_next_token(torch.tensor([[5, 6, 7]]))
    assert x.tolist() == [[5, 6]] and m is None and y.tolist() == [[6, 7]]


def test_reverse_real_tokens_keeps_padding_in_place_on_either_side():
    right = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    mask_r = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert reverse_real_tokens(right, mask_r).tolist() == [[3, 2, 1, 0, 0], [8, 7, 6, 5, 4]]
    left = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 9]])
    mask_l = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert reverse_real_tokens(left, mask_l).tolist() == [[0, 0, 3, 2, 1], [0, 0, 0, 0, 9]]
    assert reverse_real_tokens(torch.tensor([[1, 2, 3]])).tolist() == [[3, 2, 1]]


def test_backward_lm_predicts_the_previous_token():
    ids = torch.tensor([[11, 12, 13, 14, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    inputs, labels = BackwardLM().prepare({"input_ids": ids, "attention_mask": mask})
    assert inputs["input_ids"].tolist() == [[14, 13, 12, 11]]  # reading right to left
    assert labels.tolist() == [[13, 12, 11, IGNORE_INDEX]]  # each position predicts the token before it


SPECIALS = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASK_ID, VOCAB = 4, 1000


def _mlm_batch(B=64, T=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    ids[:, 0] = 2
    ids[:, T // 2] = 3  # a [SEP] in the middle
    ids[:, -1] = 3
    mask = torch.ones(B, T, dtype=torch.long)
    mask[: B // 2, -T // 4 :] = 0  # half the rows padded
    ids[mask == 0] = 0
    return ids, mask


def test_masked_lm_chooses_15_percent_then_80_10_10_and_never_a_special_token():
    ids, mask = _mlm_batch()
    obj = MaskedLM(MASK_ID, VOCAB, SPECIALS)
    inputs, labels = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(1))
    x = inputs["input_ids"]
    chosen = labels != IGNORE_INDEX
    eligible = (ids >= 5) & mask.bool()
    assert not bool((chosen & ~eligible).any())  # specials and padding are never chosen
    rate = chosen.sum().item() / eligible.sum().item()
    assert abs(rate - 0.15) < 0.01
    assert bool((labels[chosen] == ids[chosen]).all())
    n = chosen.sum().item()
    masked = (x == MASK_ID) & chosen
    kept = (x == ids) & chosen
    replaced = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(replaced.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02  # (a random replacement redraws the same id 1 time in 995)
    assert bool((x[replaced] >= 5).all())  # a random replacement is never a special token
    assert bool((x[~chosen] == ids[~chosen]).all())  # nothing else changes
    assert inputs["attention_mask"] is mask


def test_masked_lm_is_reproducible_from_its_generator():
    ids, mask = _mlm_batch(B=4, T=64)
    obj = MaskedLM(MASK_ID, VOCAB, SPECIALS)
    a = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(3))
    b = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(3))
    c = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(4))
    assert torch.equal(a[0]["input_ids"], b[0]["input_ids"]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_loss_and_metrics_count_only_labelled_positions():
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, IGNORE_INDEX, 4], [IGNORE_INDEX, 6, IGNORE_INDEX]])
    obj = CausalLM()
    keep = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(obj.loss(logits, labels), expected)
    m = obj.metrics(logits, labels)
    assert m["loss"][1] == 3 and abs(m["loss"][0] / 3 - expected.item()) < 1e-5
    correct = (logits[keep].argmax(-1) == labels[keep]).sum().item()
    assert m["accuracy"] == (correct, 3)
    none = torch.full((2, 3), IGNORE_INDEX)
    assert obj.loss(logits, none).item() == 0.0  # a batch with nothing to predict gives 0, not NaN


def test_teacher_forcing_shifts_the_target_right_and_scores_real_tokens_only():
    assert shift_right(torch.tensor([[7, 8, 9]]), decoder_start_id=1, pad_id=0).tolist() == [[1, 7, 8]]
    target = torch.tensor([[7, 8, 9, 2], [5, 2, 0, 0]])  # 2 = eos, 0 = pad
    tmask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    src = torch.tensor([[3, 4, 5], [6, 0, 0]])
    smask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    inputs, labels = Seq2SeqLM(decoder_start_id=1, pad_id=0).prepare(
        {"input_ids": src, "attention_mask": smask, "target_ids": target, "target_mask": tmask}
    )
    assert inputs["tgt_ids"].tolist() == [[1, 7, 8, 9], [1, 5, 2, 0]]
    assert inputs["tgt_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert labels.tolist() == [[7, 8, 9, 2], [5, 2, IGNORE_INDEX, IGNORE_INDEX]]
    assert inputs["src_ids"] is src and inputs["src_mask"] is smask


def test_teacher_forcing_drives_the_seq2seq_transformer():
    import taesan

    model = taesan.create("transformer-tiny", src_vocab_size=40, dropout=0.0).eval()
    target = torch.tensor([[7, 8, 9, 2], [5, 2, 0, 0]])
    batch = {"input_ids": torch.tensor([[3, 4, 5], [6, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
             "target_ids": target, "target_mask": (target != 0).long()}
    obj = Seq2SeqLM(decoder_start_id=1, pad_id=0)
    inputs, labels = obj.prepare(batch)
    logits = model(**inputs)
    assert logits.shape == (2, 4, 40)
    loss = obj.loss(logits, labels)
    loss.backward()
    assert torch.isfinite(loss)


def test_objective_for_names_and_requirements():
    assert isinstance(objective_for("causal"), CausalLM) and isinstance(objective_for("backward"), BackwardLM)
    with pytest.raises(TaesanError, match="unknown objective"):
        objective_for("sideways")
    with pytest.raises(TaesanError, match=r"\[MASK\]"):
        objective_for("masked", tokenizer=None)


# ---- the fused LM loss on the training path -----------------------------------------------------------------


def _lm_cases():
    """(name, model, objective, batch): every language-model objective on a model whose output layer it fuses."""
    import taesan
    from taesan.models.bert_heads import BertForMaskedLM

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 60, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -4:] = 0
    gpt = taesan.create("gpt-tiny", vocab_size=60, n_layers=1, d_model=32, n_heads=2, n_positions=32, dropout=0.0, attn_dropout=0.0)
    bert = taesan.create("bert-tiny", vocab_size=60, n_layers=1, d_model=32, n_heads=2, dropout=0.0, attn_dropout=0.0)
    mlm = BertForMaskedLM.from_backbone(bert)
    with torch.no_grad():
        mlm.mlm.decoder.bias.normal_()  # a bias that matters
    marian = taesan.create("transformer-tiny", src_vocab_size=60, dropout=0.0, final_logits_bias=True)
    with torch.no_grad():
        marian.final_logits_bias.normal_()
    t5 = taesan.create("t5-tiny", vocab_size=60, dropout=0.0)
    target = torch.randint(5, 60, (3, 7), generator=g)
    tmask = torch.ones_like(target)
    tmask[2, -3:] = 0
    s2s = {"input_ids": ids, "attention_mask": mask, "target_ids": target, "target_mask": tmask}
    return [
        ("causal", gpt, CausalLM(), {"input_ids": ids, "attention_mask": mask}),
        ("backward", gpt, BackwardLM(), {"input_ids": ids, "attention_mask": mask}),
        ("masked", mlm, MaskedLM(4, 60, [0, 1, 2, 3]), {"input_ids": ids, "attention_mask": mask}),
        ("seq2seq", marian, Seq2SeqLM(decoder_start_id=1, pad_id=0), s2s),
        ("seq2seq-t5", t5, Seq2SeqLM(decoder_start_id=0, pad_id=0), s2s),
    ]


@pytest.mark.parametrize("case", range(5), ids=["causal", "backward", "masked", "seq2seq", "seq2seq-t5"])
def test_training_loss_skips_the_logits_and_equals_the_plain_loss_with_gradients(case):
    """What the Trainer runs (run_model: hidden states + output layer, chunked loss) gives the loss and every
    parameter's gradient of logits + cross-entropy; evaluation (no gradient) still gets the logits."""
    from taesan.objectives import Objective, PreLogits

    _, model, obj, batch = _lm_cases()[case]
    model.train()
    inputs, labels = obj.prepare(batch, torch.Generator().manual_seed(5))
    assert (labels != IGNORE_INDEX).sum() > 0
    outputs = obj.run_model(model, inputs, labels)
    assert isinstance(outputs, PreLogits) and outputs.dtype is None
    fused = obj.loss(outputs, labels)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()), allow_unused=True)
    plain = Objective.loss(obj, model(**inputs), labels)  # the full logits, every position
    plain_grads = torch.autograd.grad(plain, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    for (name, _), a, b in zip(model.named_parameters(), fused_grads, plain_grads):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():
        logits = obj.run_model(model, inputs, labels)
        assert not isinstance(logits, PreLogits)
        metrics = obj.metrics(logits, labels)
    assert metrics["loss"][1] == int((labels != IGNORE_INDEX).sum())
    assert metrics["loss"][0] / metrics["loss"][1] == pytest.approx(float(plain.detach()), rel=1e-5)
    assert obj.metrics(outputs, labels)["accuracy"] == metrics["accuracy"]


def test_under_bf16_autocast_the_loss_multiplies_in_bf16_and_stays_fp32():
    from taesan.objectives import PreLogits

    _, model, obj, batch = _lm_cases()[0]
    inputs, labels = obj.prepare(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = obj.run_model(model, inputs, labels)
        plain_logits = model(**inputs)
    assert isinstance(outputs, PreLogits) and outputs.dtype == torch.bfloat16
    loss = obj.loss(outputs, labels)
    assert loss.dtype == torch.float32 and model.lm_head.weight.dtype == torch.float32
    plain = obj.loss(plain_logits, labels)  # the bf16 logits, cross-entropy in fp32
    torch.testing.assert_close(loss, plain, atol=2e-2, rtol=0)
    loss.backward()
    assert model.lm_head.weight.grad.dtype == torch.float32 and torch.isfinite(model.lm_head.weight.grad).all()


def test_a_wrapped_model_that_lends_no_output_layer_gives_logits():
    """A DDP wrapper hides `output_layer` (its reducer must see every parameter in its own forward): logits, as before."""
    _, model, obj, batch = _lm_cases()[0]

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kw):
            return self.module(**kw)

    inputs, labels = obj.prepare(batch)
    outputs = obj.run_model(Wrapper(model), inputs, labels)
    assert isinstance(outputs, torch.Tensor) and outputs.shape == (*labels.shape, 60)


# ---- whole-word masking, scoring masked rows only --------------------------------------------------------


def test_whole_word_masking_takes_every_piece_of_a_chosen_word_and_only_whole_words():
    ids, mask = _mlm_batch(B=32, T=256, seed=5)
    starts = torch.ones(VOCAB, dtype=torch.bool)
    starts[500:] = False  # ids 500..999 continue a word (WordPiece's ##pieces)
    obj = MaskedLM(MASK_ID, VOCAB, SPECIALS, word_starts=starts)
    _, labels = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(2))
    chosen = labels != IGNORE_INDEX
    eligible = (ids >= 5) & mask.bool()
    assert not bool((chosen & ~eligible).any())
    word = torch.zeros_like(ids)  # each position's word number: a new one at every start or special
    for b in range(ids.shape[0]):
        w = 0
        for t in range(ids.shape[1]):
            if t == 0 or bool(starts[ids[b, t]]) or ids[b, t] < 5:
                w += 1
            word[b, t] = w
    for b in range(ids.shape[0]):  # inside one word, every real piece is chosen or none is
        for w in word[b].unique():
            sel = (word[b] == w) & eligible[b]
            if sel.any():
                assert chosen[b][sel].all() or not chosen[b][sel].any()
    rate = chosen.sum().item() / eligible.sum().item()
    assert 0.10 < rate < 0.20  # about mask_prob of the words; longer words weigh more
    split = MaskedLM(MASK_ID, VOCAB, SPECIALS)  # without word starts, pieces of one word are chosen apart
    _, plain = split.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(2))
    broken = 0
    for b in range(4):
        for w in word[b].unique():
            sel = (word[b] == w) & eligible[b]
            c = (plain[b] != IGNORE_INDEX)[sel]
            broken += int(c.any() and not c.all())
    assert broken > 0


def test_scoring_masked_rows_only_gives_the_same_loss_as_the_full_logits():
    from taesan.models.bert import BertConfig
    from taesan.models.bert_heads import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=VOCAB, n_positions=64, d_model=32, n_layers=1, n_heads=2, dropout=0.0,
                                       attn_dropout=0.0)).eval()
    ids, mask = _mlm_batch(B=3, T=40, seed=1)
    full, fast = MaskedLM(MASK_ID, VOCAB, SPECIALS), MaskedLM(MASK_ID, VOCAB, SPECIALS, score_masked_only=True)
    a_in, a_lab = full.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(7))
    b_in, b_lab = fast.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(7))
    assert torch.equal(a_in["input_ids"], b_in["input_ids"])  # the same draws
    assert b_lab.dim() == 1 and b_lab.numel() == int((a_lab != IGNORE_INDEX).sum())
    with torch.no_grad():
        la = full.loss(model(**a_in), a_lab)
        lb = fast.loss(model(**b_in), b_lab)
        ma, mb = full.metrics(model(**a_in), a_lab), fast.metrics(model(**b_in), b_lab)
    assert torch.allclose(la, lb, atol=1e-5)
    assert ma["accuracy"] == mb["accuracy"] and abs(ma["loss"][0] - mb["loss"][0]) < 1e-3


# ---- replaced-token detection (ELECTRA) -------------------------------------------------------------------


def _electra(vocab=VOCAB, d=32):
    from taesan.models.bert import BertConfig
    from taesan.models.bert_heads import BertForMaskedLM, BertForTokenClassification
    from taesan.objectives import GeneratorDiscriminator

    cfg = {"vocab_size": vocab, "n_positions": 64, "d_model": d, "n_heads": 2, "dropout": 0.0, "attn_dropout": 0.0}
    gen = BertForMaskedLM(BertConfig(n_layers=1, **cfg))
    disc = BertForTokenClassification(BertConfig(n_layers=2, num_labels=1, **cfg))
    return GeneratorDiscriminator(gen, disc, forbidden_ids=SPECIALS)


def test_replaced_token_detection_labels_every_real_token_and_replaces_only_masked_ones():
    from taesan.objectives import ReplacedTokenDetection

    torch.manual_seed(0)
    pair = _electra()
    assert pair.generator.bert.tok_emb is pair.discriminator.bert.tok_emb  # one embedding table
    assert pair.generator.mlm.decoder.weight is pair.discriminator.bert.tok_emb.weight
    obj = ReplacedTokenDetection(MaskedLM(MASK_ID, VOCAB, SPECIALS))
    ids, mask = _mlm_batch(B=4, T=48, seed=3)
    inputs, labels = obj.prepare({"input_ids": ids, "attention_mask": mask}, torch.Generator().manual_seed(1))
    out = pair(**inputs)
    chosen = inputs["masked_positions"]
    corrupted = out["corrupted"]
    assert torch.equal(corrupted[~chosen], ids[~chosen])  # only masked positions can change
    assert not bool(torch.isin(corrupted[chosen], torch.tensor(SPECIALS)).any())  # never a special token
    assert bool((corrupted[chosen] != ids[chosen]).float().mean() > 0.9)  # an untrained generator rarely guesses right
    assert out["discriminator"].shape == ids.shape and out["generator"].shape == (int(chosen.sum()), VOCAB)
    assert torch.equal(labels["counted"], (ids >= 5) & mask.bool())  # every real, non-special token counts
    loss = obj.loss(out, labels)
    loss.backward()
    assert pair.discriminator.classifier.weight.grad is not None and pair.generator.bert.blocks[0].attn is not None
    m = obj.metrics(out, labels)
    n_disc = int(labels["counted"].sum())
    assert m["discriminator_accuracy"][1] == n_disc and m["replaced_share"][0] == int(((corrupted != ids) & labels["counted"]).sum())


def test_replaced_token_detection_samples_from_the_generator_distribution_reproducibly():
    from taesan.objectives import ReplacedTokenDetection

    torch.manual_seed(0)
    pair = _electra(vocab=40)
    with torch.no_grad():  # a generator that puts nearly all its mass on id 7
        pair.generator.mlm.decoder.bias.fill_(-20.0)
        pair.generator.mlm.decoder.bias[7] = 20.0
    obj = ReplacedTokenDetection(MaskedLM(MASK_ID, 40, SPECIALS, mask_prob=0.5))
    ids = torch.randint(8, 40, (2, 30), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    a_in, _ = obj.prepare(batch, torch.Generator().manual_seed(5))
    b_in, _ = obj.prepare(batch, torch.Generator().manual_seed(5))
    a, b = pair(**a_in)["corrupted"], pair(**b_in)["corrupted"]
    assert torch.equal(a, b)
    assert bool((a[a_in["masked_positions"]] == 7).all())


def test_replaced_token_detection_learns_to_spot_replacements():
    """A tiny corpus (each row one repeated token): after training, the discriminator scores replaced tokens
    far above original ones (a separation no untrained model has)."""
    from taesan.objectives import ReplacedTokenDetection

    torch.manual_seed(0)
    pair = _electra(vocab=60, d=32)
    obj = ReplacedTokenDetection(MaskedLM(MASK_ID, 60, SPECIALS, mask_prob=0.3))
    opt = torch.optim.AdamW(pair.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([[2] + [5 + k] * 30 + [3] for k in range(16)])  # a replaced token differs from its row

    def separation() -> float:
        with torch.no_grad():
            inputs, labels = obj.prepare({"input_ids": rows, "attention_mask": torch.ones_like(rows)}, torch.Generator().manual_seed(9))
            out = pair(**inputs)
        replaced = (out["corrupted"] != rows) & labels["counted"]
        kept = (out["corrupted"] == rows) & labels["counted"]
        return float(out["discriminator"][replaced].mean() - out["discriminator"][kept].mean())

    before = separation()
    for _ in range(100):
        inputs, labels = obj.prepare({"input_ids": rows, "attention_mask": torch.ones_like(rows)}, g)
        loss = obj.loss(pair(**inputs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = separation()
    assert abs(before) < 1.0 and after > 2.0
