"""fp32 products on oneDNN (taesan.modules.products): the same values and gradients as PyTorch's own to fp32
rounding, used only where the probe finds oneDNN faster and never under autocast; the Trainer turns a model's
Linear layers when it is."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taesan.modules import products
from taesan.modules.lm_loss import linear_cross_entropy

if not torch.backends.mkldnn.is_available():
    pytest.skip("this PyTorch has no oneDNN", allow_module_level=True)


@pytest.fixture
def faster(monkeypatch):
    """Pretend the probe found oneDNN faster (it may or may not be on this CPU) and every product large enough:
    the kernel runs either way."""
    monkeypatch.setattr(products, "onednn_faster", lambda threads=None: True)
    monkeypatch.setattr(products, "MIN_MACS", 0)


def test_the_probe_answers_once_and_the_kernel_agrees_with_mm():
    assert isinstance(products.onednn_faster(torch.get_num_threads()), bool)
    a, b = torch.randn(33, 17), torch.randn(9, 17)
    torch.testing.assert_close(products._onednn_nt(a, b), a @ b.t(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(products._onednn_nt(a.t(), a.t()), a.t() @ a, rtol=1e-5, atol=1e-5)  # transposed views


@pytest.mark.parametrize("bias", [True, False])
def test_fast_linear_equals_nn_linear_values_and_gradients(faster, bias):
    torch.manual_seed(0)
    plain = nn.Linear(24, 40, bias=bias)
    fast = nn.Linear(24, 40, bias=bias)
    fast.load_state_dict(plain.state_dict())
    assert products.use_fast_products(fast) == 1 and type(fast) is products.FastLinear
    assert fast.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(3, 5, 24)
    outs, grads = [], []
    for layer in (plain, fast):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        (y * torch.linspace(-1, 1, 40)).sum().backward()
        outs.append(y)
        grads.append([xi.grad] + [p.grad for p in layer.parameters()])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_autocast_and_other_dtypes_keep_pytorchs_own_linear(faster, monkeypatch):
    called = []
    monkeypatch.setattr(products._Linear, "apply", lambda *a: called.append(1) or F.linear(*a))
    layer = nn.Linear(8, 4)
    products.use_fast_products(layer)
    x = torch.randn(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    assert products.linear(x.double(), layer.weight.double()).dtype == torch.float64
    assert called == []
    layer(x)
    assert called == [1]


def test_small_and_empty_products_keep_pytorchs_own_linear(monkeypatch):
    """Below MIN_MACS multiply-adds oneDNN's per-call cost outweighs its speed; no rows at all never reach it."""
    monkeypatch.setattr(products, "onednn_faster", lambda threads=None: True)
    called = []
    monkeypatch.setattr(products._Linear, "apply", lambda *a: called.append(a[0].shape) or F.linear(*a))
    small, large = torch.randn(32, 64), torch.randn(256, 128)
    products.linear(small, torch.randn(64, 64))
    products.linear(torch.randn(0, 128), torch.randn(128, 128))
    assert called == []
    products.linear(large, torch.randn(128, 128))  # 256 x 128 x 128 = MIN_MACS
    assert called == [large.shape]


def test_nothing_is_turned_where_onednn_is_not_faster(monkeypatch):
    monkeypatch.setattr(products, "onednn_faster", lambda threads=None: False)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert products.use_fast_products(model) == 0
    assert all(type(m) is nn.Linear for m in model if isinstance(m, nn.Linear))


def test_the_fused_lm_loss_on_onednn_equals_the_plain_loss(faster):
    torch.manual_seed(0)
    hidden = torch.randn(70, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (70,))
    targets[3] = -100
    loss = linear_cross_entropy(hidden, weight, targets, chunk=32)
    loss.backward()
    h2, w2 = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    reference = F.cross_entropy(h2 @ w2.t(), targets)
    reference.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden.grad, h2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weight.grad, w2.grad, rtol=1e-5, atol=1e-6)


def test_the_trainer_turns_linears_in_fp32_only(faster, tmp_path):
    from taesan.data import CausalWindows, TokenSplit
    from taesan.models.gpt import GPT, GPTConfig
    from taesan.objectives import CausalLM
    from taesan.train import TrainConfig, Trainer

    split = TokenSplit(torch.randint(0, 30, (400,)).numpy().astype("uint16"), torch.tensor([0, 400]).numpy())
    for precision, turned in (("fp32", True), ("bf16", False)):
        model = GPT(GPTConfig(vocab_size=30, n_positions=16, d_model=16, n_layers=1, n_heads=2))
        config = TrainConfig(max_steps=1, warmup=0, eval_every=0, save_every=0, progress=False, precision=precision)
        trainer = Trainer(model, CausalLM(), CausalWindows(split, 8, 2, seed=0), config, tmp_path / precision, device="cpu")
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert linears and all((type(m) is products.FastLinear) == turned for m in linears), precision
        loss, _ = trainer.train_step()
        assert torch.isfinite(torch.tensor(loss))


def test_a_resumed_run_keeps_the_kernel_it_began_with_and_continues_bit_for_bit(tmp_path, monkeypatch):
    """The kernel is probed per process, and the two round differently. A run that began on oneDNN and is resumed
    where a new probe says MKL (a busy machine, a margin case) pins oneDNN from its trainer_state.json, so it ends
    with the weights of the uninterrupted run; the probe never moves the global random stream."""
    import numpy as np

    import taesan
    from taesan.data import CausalWindows, TokenSplit
    from taesan.objectives import CausalLM
    from taesan.train import TrainConfig, Trainer, latest_checkpoint

    if not products._onednn_works(*products._operands()):
        pytest.skip("oneDNN's linear kernel does not run here")
    threads = torch.get_num_threads()
    split = TokenSplit(np.random.default_rng(0).integers(0, 64, size=20_000).astype(np.uint16), np.array([0, 20_000]))

    def run(out, decided: bool, resume=None, stop_at=None):
        monkeypatch.setattr(products, "_DECIDED", {threads: decided})  # what this "process" probed
        torch.manual_seed(0)
        model = taesan.create("gpt-tiny", vocab_size=64, n_layers=1, d_model=256, n_heads=4, n_positions=64)
        config = TrainConfig(max_steps=6, warmup=2, eval_every=0, save_every=3, keep_last=5, progress=False, precision="fp32")
        trainer = Trainer(model, CausalLM(), CausalWindows(split, 32, 8, seed=1), config, out, device="cpu", resume_from=resume)
        trainer.fit(stop_at=stop_at)
        return trainer

    assert run(tmp_path / "straight", True).kernel == "onednn"
    run(tmp_path / "cut", True, stop_at=3)
    checkpoint = latest_checkpoint(tmp_path / "cut")
    assert json.loads((checkpoint / "trainer_state.json").read_text())["fp32_products"] == "onednn"
    state = torch.random.get_rng_state()
    products._onednn_works(*products._operands()), products._probe()
    assert torch.equal(torch.random.get_rng_state(), state)  # probing draws from a generator of its own
    resumed = run(tmp_path / "cut", False, resume=checkpoint)  # this process's probe said MKL
    assert resumed.kernel == "onednn" and products._DECIDED[threads] is True  # pinned from the checkpoint
    a, b = taesan.load(tmp_path / "straight").state_dict(), taesan.load(tmp_path / "cut").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and without the pin the two kernels part: the test can tell
    monkeypatch.setattr(products, "pin_onednn", lambda onednn: False)
    run(tmp_path / "cut2", True, stop_at=3)
    unpinned = run(tmp_path / "cut2", False, resume=latest_checkpoint(tmp_path / "cut2"))
    assert unpinned.kernel == "default"
    c = taesan.load(tmp_path / "cut2").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)
