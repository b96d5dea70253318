"""ViT: HF parity both ways (features, logits, interpolated positions), presets, save/load, pooling, errors, a digits sanity run.

Not the attention rollout (tests/test_viz.py) and not image-classification fine-tuning tasks.
"""
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import taesan
from taesan.errors import TaesanError
from taesan.models import to_hf
from taesan.pipeline.convert import convert
from taesan.models import create, presets
from taesan.models.vit import ViT

transformers = pytest.importorskip("transformers")


def hf_config(**overrides):
    fields = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  image_size=8, patch_size=2, num_channels=3, hidden_act="gelu")
    return transformers.ViTConfig(**{**fields, **overrides})


def hf_output(model, pixels, interpolate=False):
    """What taesan's model gives for this HF model: (last_hidden_state, pooler_output) or logits."""
    with torch.no_grad():
        out = model(pixel_values=pixels, interpolate_pos_encoding=interpolate)
    if hasattr(out, "logits"):
        return out.logits
    return out.last_hidden_state, out.pooler_output


def taesan_output(model, pixels, interpolate=False):
    with torch.no_grad():
        if model.head is not None:
            return model(pixels, interpolate_pos_encoding=interpolate)
        hidden, _ = model.forward_features(pixels, interpolate_pos_encoding=interpolate)
        return hidden, model.pooler_output(hidden)


CASES = {
    "ViTModel": ("ViTModel", {}),
    "ViTForImageClassification": ("ViTForImageClassification", dict(id2label={0: "고양이", 1: "개", 2: "새"})),
    "classifier-no-qkv-bias-gelu-new": ("ViTForImageClassification", dict(num_labels=4, qkv_bias=False, hidden_act="gelu_new")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_random_hf_model_loads_with_same_outputs_and_exports_back(case, tmp_path):
    architecture, overrides = CASES[case]
    hf_cls = getattr(transformers, architecture)
    hf = hf_cls(hf_config(**overrides)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert isinstance(model, ViT)
    assert (model.head is not None) == (architecture == "ViTForImageClassification")

    pixels = torch.randn(2, 3, 8, 8)
    larger = torch.randn(2, 3, 12, 10)  # a 6 × 5 grid: positions interpolated bicubically from 4 × 4
    for x, interpolate in ((pixels, False), (larger, True)):
        torch.testing.assert_close(taesan_output(model, x, interpolate), hf_output(hf, x, interpolate), atol=1e-5, rtol=0)

    to_hf(model, tmp_path / "back")
    again = hf_cls.from_pretrained(tmp_path / "back").eval()
    for x, interpolate in ((pixels, False), (larger, True)):
        torch.testing.assert_close(hf_output(again, x, interpolate), taesan_output(model, x, interpolate), atol=1e-5, rtol=0)
    # exactly the tensors HF itself writes for this architecture
    assert set(load_file(tmp_path / "back" / "model.safetensors")) == set(load_file(tmp_path / "hf" / "model.safetensors"))
    assert again.config.id2label == hf.config.id2label


def test_classifier_uses_the_final_normed_cls_state_and_labels_survive(tmp_path):
    hf = transformers.ViTForImageClassification(hf_config(id2label={0: "고양이", 1: "개"})).eval()
    hf.save_pretrained(tmp_path)
    model = taesan.load(tmp_path)
    assert model.config.labels == ["고양이", "개"] and model.config.num_labels == 2
    pixels = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        hidden, _ = model.forward_features(pixels)
        expected = hf.vit(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(pixels), model.head(hidden[:, 0]), atol=0, rtol=0)


def test_vitmodel_without_pooler_loads_and_exports(tmp_path):
    hf = transformers.ViTModel(hf_config(), add_pooling_layer=False).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = taesan.load(tmp_path / "hf")
    assert model.pooler is None and model.head is None
    pixels = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = hf(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(model.forward_features(pixels)[0], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(pixels), expected[:, 0], atol=1e-5, rtol=0)  # bare backbone: pooled [CLS]
    with pytest.raises(TaesanError, match="no pooler"):
        model.pooler_output(expected)
    to_hf(model, tmp_path / "back")
    again = transformers.ViTModel.from_pretrained(tmp_path / "back", add_pooling_layer=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=pixels).last_hidden_state, expected, atol=1e-5, rtol=0)


def test_state_dict_with_transformers5_module_names_loads(tmp_path):
    """A state dict saved straight from transformers 5's modules (layers.0.attention.q_proj, ...), not via save_pretrained."""
    from safetensors.torch import save_file

    hf = transformers.ViTForImageClassification(hf_config(num_labels=3)).eval()
    hf.save_pretrained(tmp_path)
    state = hf.state_dict()
    assert any(".q_proj." in k for k in state)  # the premise: these names differ from the saved layout
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    model = taesan.load(tmp_path)
    pixels = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(taesan_output(model, pixels), hf_output(hf, pixels), atol=1e-5, rtol=0)


def test_convert_command_both_ways(tmp_path):
    hf = transformers.ViTForImageClassification(hf_config(num_labels=3)).eval()
    hf.save_pretrained(tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "ours", "from-hf")
    convert(tmp_path / "ours", tmp_path / "back", "to-hf")
    again = transformers.ViTForImageClassification.from_pretrained(tmp_path / "back").eval()
    pixels = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(hf_output(again, pixels), hf_output(hf, pixels), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "overrides, architecture, message",
    [
        (dict(image_size=[8, 12]), "ViTModel", "image_size"),
        (dict(patch_size=[2, 4]), "ViTModel", "patch_size"),
        (dict(hidden_act="quick_gelu"), "ViTModel", "hidden_act"),
        (dict(pooler_act="relu"), "ViTModel", "pooler_act"),
        (dict(), "ViTForMaskedImageModeling", "architectures"),
    ],
)
def test_unsupported_hf_settings_give_one_line_errors(overrides, architecture, message, tmp_path):
    hf = getattr(transformers, architecture)(hf_config(**overrides))
    hf.save_pretrained(tmp_path)
    with pytest.raises(TaesanError, match=message) as e:
        taesan.load(tmp_path)
    assert "\n" not in str(e.value)


def test_unexpected_hf_tensor_is_named(tmp_path):
    from safetensors.torch import save_file

    hf = transformers.ViTModel(hf_config())
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["encoder.layer.9.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(TaesanError, match="encoder.layer.9.extra.weight"):
        taesan.load(tmp_path)


def test_mean_pooling_classifier_has_no_hf_export(tmp_path):
    model = create("vit-tiny", pooling="mean")
    with pytest.raises(TaesanError, match="pooling='mean'"):
        to_hf(model, tmp_path)


VIT_PRESETS = sorted(name for name, (kind, _) in presets().items() if kind == "vit")
CHEAP = [name for name in VIT_PRESETS if "tiny" in name]


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_presets_forward_backward_finite(name):
    model = create(name)
    c = model.config
    pixels = torch.randn(2, c.channels, c.image_size, c.image_size)
    logits = model(pixels)
    assert logits.shape == (2, c.num_labels)
    logits.square().mean().backward()
    assert torch.isfinite(logits).all()
    for key, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key


def test_presets_are_registered_and_standard_sizes_match_hf_parameter_counts():
    assert {"vit-tiny", "vit-base-patch16-224", "vit-large-patch16-224"} <= set(VIT_PRESETS)
    counts = {}
    with torch.device("meta"):  # no memory, no init cost: shapes only
        for name, (d, layers, heads) in {"vit-base-patch16-224": (768, 12, 12), "vit-large-patch16-224": (1024, 24, 16)}.items():
            ours = create(name).num_parameters()
            hf = transformers.ViTForImageClassification(
                transformers.ViTConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                       intermediate_size=4 * d, num_labels=1000)
            )
            assert ours == sum(p.numel() for p in hf.parameters()), name
            counts[name] = ours
    assert counts["vit-base-patch16-224"] == 86_567_656  # google/vit-base-patch16-224


def test_save_load_round_trip(tmp_path):
    model = create("vit-tiny", pooling="mean", labels=[str(i) for i in range(10)]).eval()
    model.save(tmp_path)
    again = taesan.load(tmp_path)
    assert again.config == model.config
    pixels = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(again(pixels), model(pixels), atol=0, rtol=0)


def test_cls_and_mean_pooling_both_work():
    torch.manual_seed(1)
    cls_model = create("vit-tiny").eval()
    mean_model = create("vit-tiny", pooling="mean").eval()
    mean_model.load_state_dict(cls_model.state_dict())
    pixels = torch.randn(4, 1, 8, 8)
    hidden, _ = cls_model.forward_features(pixels)
    torch.testing.assert_close(cls_model.pool(hidden), hidden[:, 0])
    torch.testing.assert_close(mean_model.pool(hidden), hidden[:, 1:].mean(1))
    assert not torch.allclose(cls_model(pixels), mean_model(pixels))
    mean_model.train()
    mean_model(pixels).logsumexp(-1).sum().backward()
    assert mean_model.cls_token.grad is not None  # [CLS] still takes part in attention


def test_image_size_and_channel_errors_are_clear():
    model = create("vit-tiny")
    with pytest.raises(TaesanError, match=r"12×12 does not match the model's 8×8.*interpolate_pos_encoding=True"):
        model(torch.randn(1, 1, 12, 12))
    assert model(torch.randn(1, 1, 12, 12), interpolate_pos_encoding=True).shape == (1, 10)
    with pytest.raises(TaesanError, match=r"expected \(B, 1, H, W\)"):
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(TaesanError, match="not divisible"):
        create("vit-tiny", image_size=9)
    with pytest.raises(TaesanError, match="pooling"):
        create("vit-tiny", pooling="max")


def test_attention_weights_are_returned_and_change_nothing():
    model = create("vit-tiny").eval()
    pixels = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        plain, none = model.forward_features(pixels)
        hidden, attentions = model.forward_features(pixels, need_weights=True)
    assert none == []
    torch.testing.assert_close(hidden, plain, atol=1e-6, rtol=0)
    assert len(attentions) == model.config.n_layers
    for layer in attentions:
        assert layer["self"].shape == (2, 4, 17, 17)
        torch.testing.assert_close(layer["self"].sum(-1), torch.ones(2, 4, 17))


def test_reset_classifier_for_transfer_learning(tmp_path):
    model = create("vit-tiny").eval()
    pixels = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        features = model.pool(model.forward_features(pixels)[0])
    model.reset_classifier(3, labels=["a", "b", "c"])
    assert model(pixels).shape == (2, 3) and model.config.num_labels == 3
    model.save(tmp_path)
    assert taesan.load(tmp_path).config.labels == ["a", "b", "c"]
    model.reset_classifier(0)
    assert model.head is None
    with torch.no_grad():
        torch.testing.assert_close(model(pixels), features)  # the backbone is untouched
    with pytest.raises(TaesanError, match="labels"):
        model.reset_classifier(2, labels=["only one"])


def test_vit_tiny_learns_sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0 - 0.5) / 0.5  # (1797, 1, 8, 8) in [-1, 1]
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    train, test = order[:1400], order[1400:]
    model = create("vit-tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    start = time.perf_counter()
    for _ in range(150):
        batch = train[torch.randint(len(train), (64,), generator=g)]
        loss = F.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(-1) == y[test]).float().mean().item()
    assert accuracy > 0.6, f"held-out accuracy {accuracy:.2f} after 150 steps (chance is 0.10)"
    assert time.perf_counter() - start < 30
