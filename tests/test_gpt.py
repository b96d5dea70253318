"""GPT's behaviour: causality, KV-cache decoding == full pass, padding invariance, presets, checkpoints, errors, fused LM loss.

Not HuggingFace parity: that is tests/test_interop_gpt.py.
"""
import json

import pytest
import torch
import torch.nn.functional as F

import taesan
from taesan.cli import main as cli_main
from taesan.errors import TaesanError
from taesan.models import create, presets
from taesan.models.gpt import GPT, GPTConfig
from taesan.modules.lm_loss import linear_cross_entropy

V = 53


def _model(**overrides) -> GPT:
    fields = dict(vocab_size=V, n_positions=32, d_model=32, n_layers=2, n_heads=4, dropout=0.0, attn_dropout=0.0)
    model = GPT(GPTConfig(**{**fields, **overrides}))
    with torch.no_grad():  # random LayerNorm gains/biases too, so every parameter matters
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _ids(B=2, T=10):
    return torch.randint(0, V, (B, T))


def test_changing_token_t_never_changes_earlier_outputs():
    model = _model()
    ids = _ids(1, 12)
    base = model(ids)
    for t in (0, 5, 11):
        changed = ids.clone()
        changed[0, t] = (changed[0, t] + 1) % V
        out = model(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=0, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t]), "the changed position itself must see the change"


def test_step_by_step_decoding_with_cache_equals_full_pass():
    model = _model()
    ids = _ids(2, 9)
    full = model(ids)
    cache = model.new_cache()
    steps = torch.cat([model(ids[:, i : i + 1], cache=cache) for i in range(9)], 1)
    assert cache.length == 9
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)
    cache = model.new_cache()  # prefill 5, then one token at a time; positions continue from cache.length
    parts = [model(ids[:, :5], cache=cache)] + [model(ids[:, i : i + 1], cache=cache) for i in range(5, 9)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)


def test_cached_decoding_with_left_padding_equals_full_masked_pass():
    model = _model()
    ids = _ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    full = model(ids, attention_mask=mask, position_ids=pos)
    cache = model.new_cache()
    parts = [model(ids[:, :4], attention_mask=mask[:, :4], position_ids=pos[:, :4], cache=cache)]
    for i in range(4, 8):
        parts.append(model(ids[:, i : i + 1], attention_mask=mask[:, : i + 1], position_ids=pos[:, i : i + 1], cache=cache))
    real = mask.bool()
    torch.testing.assert_close(torch.cat(parts, 1)[real], full[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_pad_tokens_under_the_mask_leave_real_outputs_unchanged(side):
    model = _model()
    ids = _ids(1, 7)
    base = model(ids)
    pad = torch.randint(0, V, (1, 4))
    if side == "left":
        padded = torch.cat([pad, ids], 1)
        mask = torch.cat([torch.zeros(1, 4), torch.ones(1, 7)], 1).long()
        out = model(padded, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))[:, 4:]
    else:
        padded = torch.cat([ids, pad], 1)
        mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 4)], 1).long()
        out = model(padded, attention_mask=mask)[:, :7]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, base, atol=1e-5, rtol=0)


def test_all_ones_mask_equals_no_mask_and_inputs_embeds_equal_ids():
    model = _model()
    ids = _ids()
    base = model(ids)
    torch.testing.assert_close(model(ids, attention_mask=torch.ones_like(ids)), base, atol=1e-6, rtol=0)
    torch.testing.assert_close(model(inputs_embeds=model.tok_emb(ids)), base, atol=1e-6, rtol=0)


def test_need_weights_gives_causal_per_layer_weights():
    model = _model()
    ids = _ids(2, 6)
    hidden, attentions = model.forward_features(ids, need_weights=True)
    assert len(attentions) == 2
    for layer in attentions:
        w = layer["self"]
        assert w.shape == (2, 4, 6, 6)
        lower = torch.ones(6, 6, dtype=torch.bool).tril()
        assert (w[..., ~lower] == 0).all() and (w[..., lower] > 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 6))
    torch.testing.assert_close(hidden, model.forward_features(ids)[0], atol=1e-5, rtol=0)
    assert model.forward_features(ids)[1] == []


def test_positions_beyond_the_table_are_refused():
    model = _model(n_positions=8)
    with pytest.raises(ValueError, match="beyond"):
        model(_ids(1, 9))


@pytest.mark.parametrize("name", ["gpt-tiny"])
def test_cheap_presets_run_forward_and_backward_with_finite_values(name):
    model = create(name).train()
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    logits = model(ids)
    assert logits.shape == (2, 16, model.config.vocab_size) and torch.isfinite(logits).all()
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    "name,count",
    [("gpt2-small", 124_439_808), ("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080), ("gpt2-xl", 1_557_611_200)],
)
def test_standard_sizes_have_gpt2_parameter_counts(name, count):
    assert presets()[name][0] == "gpt"
    with torch.device("meta"):
        model = create(name)
    assert model.num_parameters() == count
    assert model.lm_head.weight is model.tok_emb.weight


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = _model()
    model.save(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys(), "a tied head is stored once"
    loaded = taesan.load(tmp_path)
    assert loaded.lm_head.weight is loaded.tok_emb.weight
    ids = _ids()
    torch.testing.assert_close(loaded(ids), model(ids), atol=0, rtol=0)
    untied = _model(tie_embeddings=False)
    untied.save(tmp_path / "u")
    torch.testing.assert_close(taesan.load(tmp_path / "u")(ids), untied(ids), atol=0, rtol=0)


def _cli_error(args, capsys) -> str:
    capsys.readouterr()
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_checkpoints_give_one_clear_error(tmp_path, capsys):
    good = tmp_path / "good"
    _model().save(good)
    cases = {}
    trunc = tmp_path / "truncated"
    _model().save(trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases[trunc] = "model.safetensors"
    for name, edit, expected in [
        ("badvalue", {"n_heads": 5}, "n_heads"),
        ("negative", {"dropout": -0.5}, "dropout"),
        ("shape", {"vocab_size": V + 1}, "shape"),
        ("unknowntype", {"model_type": "gpt9"}, "gpt9"),
    ]:
        d = tmp_path / name
        _model().save(d)
        config = json.loads((d / "config.json").read_text())
        config.update(edit)
        (d / "config.json").write_text(json.dumps(config))
        cases[d] = expected
    for d, expected in cases.items():
        with pytest.raises(TaesanError, match=expected) as info:
            taesan.load(d)
        assert str(d) in str(info.value)
        err = _cli_error(["convert", "--to-hf", str(d), "--out", str(tmp_path / "out")], capsys)
        assert expected in err
    assert not (tmp_path / "out").exists()


def test_config_validation_messages():
    with pytest.raises(ValueError, match="'d_model'=30 is not divisible by 'n_heads'=4"):
        GPTConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="activation"):
        GPTConfig(activation="tanh")
    assert GPTConfig(d_model=64, n_heads=4).d_ff == 256


def test_fused_lm_loss_equals_cross_entropy_on_logits_with_gradients():
    hidden = torch.randn(3, 37, 16, requires_grad=True)
    weight = (0.3 * torch.randn(V, 16)).requires_grad_()
    targets = torch.randint(0, V, (3, 37))
    targets[0, :5] = -100
    for reduction in ("mean", "sum"):
        ref = F.cross_entropy((hidden @ weight.t()).reshape(-1, V), targets.reshape(-1), reduction=reduction)
        ref_grads = torch.autograd.grad(ref, (hidden, weight))
        out = linear_cross_entropy(hidden, weight, targets, chunk=16, reduction=reduction)  # 111 rows: a ragged last chunk
        grads = torch.autograd.grad(out, (hidden, weight))
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, atol=1e-5, rtol=0)
    assert (grads[0][0, :5] == 0).all(), "ignored positions get no gradient"
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets), ref / (targets != -100).sum(), atol=1e-5, rtol=0)


def test_fused_lm_loss_is_exact_when_target_probabilities_underflow():
    hidden = (30 * torch.randn(64, 16)).requires_grad_()
    weight = torch.randn(V, 16)
    targets = (hidden @ weight.t()).argmin(-1).detach()  # the least likely token: p(target) underflows float32
    ref = F.cross_entropy(hidden @ weight.t(), targets)
    assert ref > 120, "the case must really underflow"
    out = linear_cross_entropy(hidden, weight, targets, chunk=16)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(torch.autograd.grad(out, hidden)[0], torch.autograd.grad(ref, hidden)[0], rtol=1e-5, atol=1e-6)


def test_fused_lm_loss_trains_a_tied_gpt_like_logits_do():
    model = _model().train()
    ids = _ids(2, 12)
    hidden, _ = model.forward_features(ids[:, :-1])
    fused = linear_cross_entropy(hidden, model.lm_head.weight, ids[:, 1:])
    g_fused = torch.autograd.grad(fused, model.tok_emb.weight)[0]
    logits = model(ids[:, :-1])
    ref = F.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))
    g_ref = torch.autograd.grad(ref, model.tok_emb.weight)[0]
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_fused, g_ref, atol=1e-5, rtol=0)
