"""Every registered model type, timm-style: a small instance runs forward and backward with finite values and the
right output shape, ignores right padding under its attention mask, reads inputs_embeds as ids, returns attention
weights that are distributions, saves and loads through `taesan.load` with identical outputs, and (where its family
has one) goes through the HuggingFace layout and back unchanged.

Not the comparisons with transformers' outputs (tests/test_interop_*.py) and not the decoder-only behaviour
(causality, cached decoding: tests/test_gpt.py, tests/test_generate.py).
"""
import dataclasses
import inspect

import pytest
import torch

import taesan
from taesan.models import HF_EXPORTERS, MODEL_TYPES, create, from_hf, to_hf
from taesan.modules import TokenEmbedding

# small values for whichever of these fields a config class has
SMALL = dict(vocab_size=64, src_vocab_size=64, n_positions=24, d_model=32, n_layers=2, n_encoder_layers=2,
             n_decoder_layers=2, n_heads=4, d_ff=48, embedding_size=16, image_size=16, patch_size=8, num_labels=3,
             labels=["가", "나", "다"], dropout=0.0, attn_dropout=0.0)
B, T, V, C, L = 2, 7, 64, 32, 3

# model_type -> output shape of `small(model_type)` on the inputs below; a type missing here gets the generic checks
EXPECTED = {
    "gpt": (B, T, V),
    "gpt-sequence-classification": (B, L),
    "transformer": (B, T - 2, V),
    "vit": (B, L),
    "bert": (B, T, C),
    "bert-mlm": (B, T, V),
    "bert-sequence-classification": (B, L),
    "bert-token-classification": (B, T, L),
    "bert-qa": (B, T, 2),
    "roberta": (B, T, C),
    "roberta-mlm": (B, T, V),
    "roberta-sequence-classification": (B, L),
    "roberta-token-classification": (B, T, L),
    "roberta-qa": (B, T, 2),
    "electra": (B, T, C),
    "electra-discriminator": (B, T),
    "electra-generator": (B, T, V),
    "electra-sequence-classification": (B, L),
    "electra-token-classification": (B, T, L),
    "electra-qa": (B, T, 2),
}
ALL_TYPES = sorted(MODEL_TYPES)
# the settings that make a model type's default shape one a HuggingFace family has (the 2017 Transformer: Marian's)
HF_SHAPED = {"transformer": dict(position_embedding="sinusoidal_halves")}


def small(model_type: str, **changes):
    cls = MODEL_TYPES[model_type]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    labels = 2 if model_type.endswith("-qa") else L  # a QA head has exactly start and end
    values = {**SMALL, "num_labels": labels, "labels": SMALL["labels"][:labels] if labels == L else None}
    return create(model_type, **{k: v for k, v in values.items() if k in fields}, **changes).eval()


def pad_id(model) -> int:
    return getattr(model.config, "pad_token_id", None) or 0


def inputs(model, length: int = T, seed: int = 0) -> dict[str, torch.Tensor]:
    """The keyword arguments of one forward of `model`, read from its signature: ids, pixels or source + target."""
    g = torch.Generator().manual_seed(seed)
    params = inspect.signature(model.forward).parameters
    if "pixel_values" in params:
        return {"pixel_values": torch.randn(B, model.config.channels, model.config.image_size, model.config.image_size, generator=g)}
    vocab = model.config.vocab_size if hasattr(model.config, "vocab_size") else model.config.src_vocab_size
    ids = torch.randint(3, vocab, (B, length), generator=g)  # 0-2: pad / bos / eos in some families
    if "src_ids" in params:
        return {"src_ids": ids, "tgt_ids": ids[:, : length - 2]}
    if "decoder_input_ids" in params:
        return {"input_ids": ids, "decoder_input_ids": ids[:, : length - 2]}
    batch = {"input_ids": ids}
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 1) > 1:
        batch["token_type_ids"] = (torch.arange(length) >= length // 2).long().expand(B, length)  # (B, T): A then B
    return batch


def run(model, batch) -> torch.Tensor:
    out = model(**batch)
    assert isinstance(out, torch.Tensor), f"{model.model_type} returns {type(out).__name__}, not logits"
    return out


def test_every_preset_names_a_registered_model_type():
    for name, (model_type, _) in taesan.models.PRESETS.items():
        assert model_type in MODEL_TYPES, f"preset {name!r} names unknown model_type {model_type!r}"


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_forward_shape_and_backward_are_finite(model_type):
    model = small(model_type).train()
    out = run(model, inputs(model))
    if model_type in EXPECTED:
        assert tuple(out.shape) == EXPECTED[model_type]
    assert out.shape[0] == B and torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads), "the output depends on the parameters"


@pytest.mark.parametrize("model_type", [t for t in ALL_TYPES if "attention_mask" in inspect.signature(MODEL_TYPES[t].forward).parameters])
def test_right_padding_under_the_mask_leaves_real_outputs_unchanged(model_type):
    model = small(model_type)
    batch = inputs(model, length=5)
    padded = {k: torch.cat([v, torch.full((B, 3), pad_id(model) if k == "input_ids" else 0)], 1) for k, v in batch.items()}
    padded["attention_mask"] = torch.cat([torch.ones(B, 5), torch.zeros(B, 3)], 1).long()
    with torch.no_grad():
        alone, with_padding = run(model, batch), run(model, padded)
    if with_padding.dim() >= 2 and with_padding.shape[1] == 8:  # one output per position: compare the real ones
        with_padding = with_padding[:, :5]
    torch.testing.assert_close(with_padding, alone, atol=1e-5, rtol=0)


def _takes(model_type: str, method: str, parameter: str) -> bool:
    return parameter in inspect.signature(getattr(MODEL_TYPES[model_type], method)).parameters


@pytest.mark.parametrize("model_type", [t for t in ALL_TYPES if _takes(t, "forward", "inputs_embeds")])
def test_inputs_embeds_from_the_token_table_equal_ids(model_type):
    """What prompt tuning relies on: the token table's vectors passed as inputs_embeds give the ids' outputs."""
    model = small(model_type)
    batch = inputs(model)
    table = next(m for m in model.modules() if isinstance(m, TokenEmbedding))
    with torch.no_grad():
        from_ids = run(model, batch)
        embeds = table(batch.pop("input_ids"))
        torch.testing.assert_close(run(model, {**batch, "inputs_embeds": embeds}), from_ids, atol=1e-6, rtol=0)


@pytest.mark.parametrize("model_type", [t for t in ALL_TYPES if _takes(t, "forward_features", "need_weights")])
def test_attention_weights_are_distributions_and_change_nothing(model_type):
    """What the attention view draws: per layer, (B, heads, queries, keys) rows of weights summing to 1."""
    model = small(model_type)
    batch = inputs(model)
    with torch.no_grad():
        hidden, attentions = model.forward_features(**batch, need_weights=True)
        fast, none = model.forward_features(**batch)
    assert none == [] and attentions, "weights only when asked for"
    torch.testing.assert_close(hidden, fast, atol=1e-5, rtol=0)
    for layer in attentions:
        for w in layer.values():
            assert w.dim() == 4 and w.shape[:2] == (B, model.config.n_heads) and (w >= 0).all()
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:3]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_save_then_load_gives_the_same_model(model_type, tmp_path):
    model = small(model_type)
    model.save(tmp_path)
    loaded = taesan.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    batch = inputs(model, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(run(loaded, batch), run(model, batch), atol=0, rtol=0)
    for key in getattr(model, "tied_keys", ()):
        tied = loaded.get_parameter(key)
        assert any(tied is p for name, p in loaded.named_parameters(remove_duplicate=False) if name != key), f"{key} is tied again"


@pytest.mark.parametrize("model_type", [t for t in ALL_TYPES if MODEL_TYPES[t] in HF_EXPORTERS])
def test_hf_layout_round_trip_gives_the_same_model(model_type, tmp_path):
    """Exported to the HF layout and imported again by taesan: same class, same outputs; transformers (when
    installed) loads the directory into the architecture the config names with no tensor missing or left over."""
    model = small(model_type, **HF_SHAPED.get(model_type, {}))
    to_hf(model, tmp_path)
    again = from_hf(tmp_path)
    assert type(again) is type(model)
    batch = inputs(model, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(run(again, batch), run(model, batch), atol=0, rtol=0)
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.from_pretrained(tmp_path)
    hf_cls = getattr(transformers, config.architectures[0])
    _, info = hf_cls.from_pretrained(tmp_path, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if ".pooler." not in f".{k}"]  # a backbone saved without its unused pooler
    assert not missing and not info["unexpected_keys"], info
