"""Attention rollout for ViT: the rollout algebra on hand-made weights, maps from a tiny model, the PNG overlay.

Not the model's attention weights themselves (tests/test_vit.py checks they are softmax rows).
"""
import pytest
import torch

from taesan.errors import TaesanError
from taesan.models import create
from taesan.viz.rollout import attention_rollout, save_attention_overlay, vit_attention_map


def test_rollout_of_uniform_heads_is_the_docstring_example():
    uniform = torch.full((1, 2, 2, 2), 0.5)  # (B, H, T, T)
    expected = torch.tensor([[[0.75, 0.25], [0.25, 0.75]]])
    torch.testing.assert_close(attention_rollout([{"self": uniform}]), expected)


def test_rollout_averages_heads_adds_identity_and_multiplies_later_layers_on_the_left():
    torch.manual_seed(0)
    layers = [torch.rand(3, 4, 5, 5).softmax(-1) for _ in range(3)]  # (B, H, T, T)
    eye = torch.eye(5)
    step = [(w.mean(1) + eye) / (w.mean(1) + eye).sum(-1, keepdim=True) for w in layers]
    expected = step[2] @ step[1] @ step[0]
    got = attention_rollout([{"self": w} for w in layers])
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, step[0] @ step[1] @ step[2])  # the order matters
    torch.testing.assert_close(got.sum(-1), torch.ones(3, 5))


def test_rollout_of_self_attention_only_is_the_identity():
    eye = torch.eye(4).expand(2, 3, 4, 4)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(4).expand(2, 4, 4))


def test_rollout_needs_a_layer():
    with pytest.raises(TaesanError, match="need_weights"):
        attention_rollout([])


def test_vit_attention_map_per_image_is_a_distribution_over_the_patch_grid():
    model = create("vit-tiny").eval()
    pixels = torch.randn(3, 1, 8, 8)
    maps = vit_attention_map(model, pixels)
    assert maps.shape == (3, 4, 4)
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(3))
    assert not torch.allclose(maps[0], maps[1])  # the map depends on the image
    # other image sizes: the grid follows the image (positions interpolated)
    wide = vit_attention_map(model, torch.randn(2, 1, 12, 10), interpolate_pos_encoding=True)
    assert wide.shape == (2, 6, 5)


def test_overlay_png_is_written(tmp_path):
    model = create("vit-tiny").eval()
    pixels = torch.randn(2, 1, 8, 8)
    path = save_attention_overlay(pixels, vit_attention_map(model, pixels), tmp_path / "attn.png", titles=["3", "7"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["attn.png"]  # no temp file left behind
    with pytest.raises(TaesanError, match="2 images but 1"):
        save_attention_overlay(pixels, torch.rand(1, 4, 4), tmp_path / "bad.png")
