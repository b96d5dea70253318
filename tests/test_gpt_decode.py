"""GPT's one-token decoding fast path (models/gpt_decode.py, gpt_step.py) through its public calls: decode_step
equals forward on every kernel, scripted and interpreted, padded or not; the decode weights follow weight changes
and are not rebuilt otherwise; bf16 decoding keeps fp32's completions and perplexity.

Not generate's strategies (tests/test_generate.py) or HF parity (test_generate.py, test_interop_gpt.py).
"""
import copy

import pytest
import torch

from taesan.decoding import generate
from taesan.models import gpt_decode, gpt_step
from taesan.models.gpt import GPT, GPTConfig
from taesan.modules.transformer import ACTIVATIONS

V = 61


def _model(seed=0, **overrides) -> GPT:
    """A random GPT whose every parameter matters (LayerNorm gains and biases moved off 1 and 0)."""
    torch.manual_seed(seed)
    fields = dict(vocab_size=V, n_positions=48, d_model=32, n_layers=2, n_heads=4, dropout=0.0, attn_dropout=0.0)
    model = GPT(GPTConfig(**{**fields, **overrides}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(5.0)  # larger than at initialisation: logits that differ visibly between tokens
    return model.eval()


def _ids(B, T, seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


KERNELS = ["onednn", "addmm-copies", "addmm-views"]


def _use(kernel: str, scripted: bool, monkeypatch) -> None:
    """Make the next decode weights built use `kernel`, and the step run scripted or in the interpreter."""
    if kernel == "onednn" and not gpt_decode.onednn_usable(torch.float32):
        pytest.skip("this PyTorch build has no oneDNN linear kernel")
    if scripted and gpt_step.compiled() is None:
        pytest.skip("TorchScript cannot script the step in this PyTorch")
    if not scripted:
        monkeypatch.setattr(gpt_step, "compiled", lambda: None)
    if kernel != "onednn":
        monkeypatch.setattr(gpt_decode, "onednn_usable", lambda dtype: False)
    if kernel == "addmm-views":
        monkeypatch.setattr(gpt_decode, "STEP_COPY_BYTES", 0)


@pytest.mark.parametrize("scripted", [True, False], ids=["scripted", "interpreted"])
@pytest.mark.parametrize("kernel", KERNELS)
@torch.no_grad()
def test_decode_step_equals_forward_on_every_kernel_with_and_without_padding(kernel, scripted, monkeypatch):
    """The step's arithmetic (gpt_step.layers_step) is PreNormBlock's again: forward over the whole sequence,
    forward with the cache and decode_step give the same logits, whether the step runs as TorchScript or in
    the interpreter, over oneDNN-packed matrices, transposed copies (no oneDNN) or transposed views (a model
    too big to copy)."""
    _use(kernel, scripted, monkeypatch)
    model = _model()
    weights = model.decode_weights()
    assert weights.kernel == ("onednn" if kernel == "onednn" else "addmm")
    if kernel != "onednn":  # a view reads the parameter's own storage; a copy its own
        shares = weights.layers[0].qkv.weight.data_ptr() == model.blocks[0].attn.qkv.weight.data_ptr()
        assert shares == (kernel == "addmm-views")
    ids, nxt = _ids(3, 7), _ids(3, 1, seed=1)
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[0, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    for m, p in ((None, None), (mask, positions)):
        a, b = model.new_cache(), model.new_cache()
        full = model(torch.cat([ids, nxt], 1), attention_mask=m, position_ids=p)[:, -1]
        prompt = dict(attention_mask=None if m is None else m[:, :7], position_ids=None if p is None else p[:, :7])
        model(ids, cache=a, **prompt)
        model(ids, cache=b, **prompt)
        slow = model(nxt, attention_mask=m, position_ids=None if p is None else p[:, 7:], cache=a)[:, -1]
        fast = model.decode_step(nxt, b, m, None if p is None else p[:, 7:])
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)
        assert a.length == b.length == 8
        torch.testing.assert_close(b.self_attn[1].keys_values()[0], a.self_attn[1].keys_values()[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_the_steps_activations_are_the_blocks(name):
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(gpt_step.activation(x, name), ACTIVATIONS[name](x), atol=0, rtol=0)


@torch.no_grad()
def test_a_full_cache_grows_and_every_step_equals_forward():
    """A prompt that fills the cache's storage exactly: the next step makes room itself (KVCache.extend)."""
    model = _model()
    ids = _ids(2, 16)
    cache = model.new_cache()
    model(ids, cache=cache)
    assert cache.self_attn[0].k.shape[2] == 16  # 16 positions in 16 slots
    for step in range(3):
        nxt = _ids(2, 1, seed=10 + step)
        logits = model.decode_step(nxt, cache)
        ids = torch.cat([ids, nxt], 1)
        torch.testing.assert_close(logits, model(ids)[:, -1], atol=1e-5, rtol=0)
        assert cache.length == ids.shape[1] and cache.self_attn[0].k.shape[2] == 32


@pytest.mark.parametrize("bias,activation", [(True, "gelu_tanh"), (False, "gelu"), (True, "relu"), (False, "silu")])
@pytest.mark.parametrize("kernel", ["onednn", "addmm-copies"])
@torch.no_grad()
def test_decode_weights_follow_weight_changes_and_are_kept_otherwise(bias, activation, kernel, monkeypatch):
    """An in-place edit, a replaced parameter or a load_state_dict shows in the next decoding (the copies are
    made again); with nothing changed, decoding reuses the same copies. bias=False and every activation too."""
    _use(kernel, True, monkeypatch)
    model = _model(bias=bias, activation=activation)
    ids, nxt = _ids(2, 5), _ids(2, 1, seed=1)

    def decoded():
        cache = model.new_cache()
        model(ids, cache=cache)
        fast = model.decode_step(nxt, cache)
        torch.testing.assert_close(fast, model(torch.cat([ids, nxt], 1))[:, -1], atol=1e-5, rtol=0)
        return fast

    before, weights = decoded(), model.decode_weights()
    assert model.decode_weights() is weights
    generate(model, ids, max_new_tokens=4, eos_token_id=[])
    assert model.decode_weights() is weights, "nothing changed: no new copies"
    changes = [
        lambda: model.blocks[1].mlp.up.weight.mul_(3.0),  # in place
        lambda: model.norm.bias.add_(0.5),  # a vector the step reads
        lambda: setattr(model.blocks[0].attn.out, "weight", torch.nn.Parameter(2 * model.blocks[0].attn.out.weight)),
        lambda: model.load_state_dict(_model(seed=5, bias=bias, activation=activation).state_dict()),
    ]
    for change in changes:
        change()
        after = decoded()
        assert not torch.allclose(after, before)
        assert model.decode_weights() is not weights
        before, weights = after, model.decode_weights()


@torch.no_grad()
def test_a_copied_model_decodes_with_its_own_weights():
    """copy.deepcopy after decoding (oneDNN-packed tensors cannot be copied): the copy makes its own."""
    model = _model()
    generate(model, _ids(1, 4), max_new_tokens=3, eos_token_id=[])
    twin = copy.deepcopy(model)
    twin.blocks[0].mlp.down.weight.mul_(2.0)
    a = generate(model, _ids(1, 4), max_new_tokens=6, eos_token_id=[])
    b = generate(twin, _ids(1, 4), max_new_tokens=6, eos_token_id=[])
    assert a.tolist() == _naive_greedy(model, _ids(1, 4), 6).tolist()
    assert b.tolist() == _naive_greedy(twin, _ids(1, 4), 6).tolist()
    assert model.decode_weights() is not twin.decode_weights()


def test_training_with_a_fused_optimizer_is_seen_by_decoding():
    """AdamW(fused=True) (the Trainer's) updates weights without moving their version; train() drops the copies."""
    model = _model()
    with torch.no_grad():
        generate(model, _ids(1, 4), max_new_tokens=3, eos_token_id=[])  # the decode weights exist
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    model.train()
    model(_ids(2, 6)).logsumexp(-1).mean().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        assert generate(model, _ids(1, 4), max_new_tokens=6, eos_token_id=[]).tolist() == _naive_greedy(model, _ids(1, 4), 6).tolist()


def _naive_greedy(model, ids, steps):
    for _ in range(steps):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


# ---- precision ----------------------------------------------------------------------------------------------


def test_auto_precision_follows_the_cpu_flags(tmp_path, monkeypatch):
    from taesan import util
    from taesan.errors import TaesanError

    for flags, native in (("fpu avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", True), ("fpu avx512f avx2", False)):
        info = tmp_path / f"cpuinfo{native}{len(flags)}"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert util.native_bf16(str(info)) is native
    assert util.native_bf16(str(tmp_path / "absent")) is False
    model = _model()
    for native, picked in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(util, "native_bf16", lambda native=native: native)
        assert model.set_decode_precision("auto") == picked and model.decode_dtype == picked
    assert model.set_decode_precision("fp32") == torch.float32
    with pytest.raises(TaesanError, match="precision 'fp16'"):
        model.set_decode_precision("fp16")


@pytest.mark.parametrize("kernel", ["onednn", "addmm-copies"])
@torch.no_grad()
def test_bf16_decoding_returns_fp32_logits_close_to_fp32(kernel, monkeypatch):
    """bf16 decode weights; on CPU the cache and attention stay fp32 (CPU attention over one query is far
    slower in bf16); the logits come back in fp32, near fp32 decoding's, and the model's own parameters stay
    fp32. Going back to fp32 gives fp32's logits exactly again."""
    _use(kernel, True, monkeypatch)
    if kernel == "onednn" and not gpt_decode.onednn_usable(torch.bfloat16):
        pytest.skip("no oneDNN bf16 linear kernel here")
    model = _model()
    ids, nxt = _ids(2, 6), _ids(2, 1, seed=1)

    def step():
        cache = model.new_cache()
        model(ids, cache=cache)
        return model.decode_step(nxt, cache), cache

    fp32, _ = step()
    model.set_decode_precision("bf16")
    bf16, cache = step()
    assert model.decode_weights().dtype == torch.bfloat16 and model.decode_weights().kernel == kernel.split("-")[0]
    assert bf16.dtype == torch.float32 and cache.dtype == torch.float32 == model.decode_weights().cache_dtype
    assert gpt_decode.cache_dtype(torch.bfloat16, torch.device("cuda")) == torch.bfloat16  # elsewhere: as decoded
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.equal(bf16, fp32)
    scale = fp32.abs().max()
    torch.testing.assert_close(bf16 / scale, fp32 / scale, atol=0.03, rtol=0)
    model.set_decode_precision("fp32")
    again, cache = step()
    assert cache.dtype == torch.float32
    torch.testing.assert_close(again, fp32, atol=0, rtol=0)


@pytest.fixture(scope="module")
def trained():
    """A tiny character-level GPT trained for 150 steps on the embedded Korean corpus, and held-out
    lines as (B, T) ids: a model whose predictions mean something, for comparing precisions."""
    from taesan.data.embedded import korean_corpus

    torch.manual_seed(0)
    torch.set_num_threads(1)
    lines = korean_corpus(3000)
    chars = sorted({c for line in lines for c in line})
    index = {c: i + 1 for i, c in enumerate(chars)}  # 0: the separator between lines
    stream = torch.tensor([t for line in lines[:2800] for t in [0] + [index[c] for c in line]])
    model = GPT(GPTConfig(vocab_size=len(chars) + 1, n_positions=64, d_model=64, n_layers=2, n_heads=4, dropout=0.0, attn_dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        starts = torch.randint(0, len(stream) - 49, (16,), generator=g)
        batch = torch.stack([stream[s : s + 49] for s in starts])  # (16, 49)
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = [[0] + [index[c] for c in line][:31] for line in lines[2800:] if len(line) >= 12][:24]
    T = min(map(len, held_out))
    return model.eval(), torch.tensor([r[:T] for r in held_out])


def _decoded_nll(model, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced through decode_step: the first token through forward, then one step per token ->
    (negative log-likelihood of tokens 1.. (B, T-1), the argmax at every step (B, T-1))."""
    cache = model.new_cache()
    logits = [model(text[:, :1], cache=cache)[:, -1]]
    for t in range(1, text.shape[1] - 1):
        logits.append(model.decode_step(text[:, t : t + 1], cache))
    logits = torch.stack(logits, 1)  # (B, T-1, V)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), text[:, 1:], reduction="none")
    return nll, logits.argmax(-1)


@torch.no_grad()
def test_bf16_completions_match_fp32_on_a_trained_model(trained):
    """Issue 18's quality bar for bf16 decoding: the same text's perplexity within 1% of fp32's, the greedy
    next token the same at nearly every step, and greedy completions of held-out prompts mostly identical."""
    model, text = trained
    model.set_decode_precision("fp32")
    nll32, top32 = _decoded_nll(model, text)
    ppl32 = nll32.mean().exp().item()
    prompts = text[:, :8]
    greedy32 = generate(model, prompts, max_new_tokens=16, eos_token_id=[])
    model.set_decode_precision("bf16")
    try:
        nll16, top16 = _decoded_nll(model, text)
        greedy16 = generate(model, prompts, max_new_tokens=16, eos_token_id=[])
    finally:
        model.set_decode_precision("fp32")
    ppl16 = nll16.mean().exp().item()
    assert ppl32 < model.config.vocab_size / 10  # a trained model: far better than a uniform guess
    step_agreement = (top16 == top32).float().mean().item()
    same_completion = (greedy16 == greedy32).all(1).float().mean().item()
    token_agreement = (greedy16[:, 8:] == greedy32[:, 8:]).float().mean().item()
    print(f"\nperplexity fp32 {ppl32:.4f} bf16 {ppl16:.4f} ({100 * (ppl16 / ppl32 - 1):+.2f}%); next-token agreement "
          f"{step_agreement:.3f}; greedy completions identical {same_completion:.3f}, tokens {token_agreement:.3f}")
    assert abs(ppl16 / ppl32 - 1) < 0.01
    assert step_agreement >= 0.95
    assert token_agreement >= 0.8
