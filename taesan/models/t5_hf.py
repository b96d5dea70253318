"""HuggingFace T5 and mT5 checkpoints <-> taesan's T5 and T5Encoder: key tables and config fields, as data.

Not the model (taesan.models.t5) and not the generic table reader (taesan.models.hf).
Which head is tied follows transformers 5: a checkpoint without `lm_head.weight` (or with one equal to
`shared.weight`) has the tied head; `scale_decoder_outputs` (else `tie_word_embeddings`) says whether the
decoder output is rescaled by d_model**-0.5 first. mT5 never rescales.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.hf import expand, export_state, import_state, read_hf_weights
from taesan.models.t5 import T5, T5Config, T5Encoder

# One block, taesan name -> HF name. HF numbers a block's sublayers: 0 self-attention, (1 cross-attention,) last FF.
SELF = {
    "attn_norm.weight": "layer.0.layer_norm.weight",
    "attn.qkv.weight": ("layer.0.SelfAttention.q.weight", "layer.0.SelfAttention.k.weight", "layer.0.SelfAttention.v.weight"),
    "attn.out.weight": "layer.0.SelfAttention.o.weight",
}
CROSS = {
    "cross_norm.weight": "layer.1.layer_norm.weight",
    "cross_attn.q.weight": "layer.1.EncDecAttention.q.weight",
    "cross_attn.kv.weight": ("layer.1.EncDecAttention.k.weight", "layer.1.EncDecAttention.v.weight"),
    "cross_attn.out.weight": "layer.1.EncDecAttention.o.weight",
}
FF = {  # {ff} = the feed-forward's sublayer number: 1 in the encoder, 2 in the decoder
    "mlp_norm.weight": "layer.{ff}.layer_norm.weight",
    "mlp.down.weight": "layer.{ff}.DenseReluDense.wo.weight",
}
FF_PLAIN = {"mlp.up.weight": "layer.{ff}.DenseReluDense.wi.weight"}
FF_GATED = {"mlp.gate.weight": "layer.{ff}.DenseReluDense.wi_0.weight", "mlp.up.weight": "layer.{ff}.DenseReluDense.wi_1.weight"}
STACK = {
    "position_bias.weight": "block.0.layer.0.SelfAttention.relative_attention_bias.weight",  # block 0 computes it, all share it
    "final_norm.weight": "final_layer_norm.weight",
}

ARCHITECTURES = {  # HF class -> (taesan class, with an LM head)
    "T5ForConditionalGeneration": (T5, True), "T5Model": (T5, False), "T5EncoderModel": (T5Encoder, False),
    "MT5ForConditionalGeneration": (T5, True), "MT5Model": (T5, False), "MT5EncoderModel": (T5Encoder, False),
}
# HF config field -> taesan field; HF_DEFAULTS fill what `save_pretrained` leaves out (T5Config's defaults)
HF_CONFIG = {
    "vocab_size": "vocab_size", "d_model": "d_model", "d_kv": "d_kv", "d_ff": "d_ff", "num_layers": "n_encoder_layers",
    "num_decoder_layers": "n_decoder_layers", "num_heads": "n_heads", "relative_attention_num_buckets": "n_buckets",
    "relative_attention_max_distance": "max_distance", "dropout_rate": "dropout", "layer_norm_epsilon": "norm_eps",
    "pad_token_id": "pad_token_id", "eos_token_id": "eos_token_id", "decoder_start_token_id": "decoder_start_token_id",
}
HF_DEFAULTS = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, relative_attention_num_buckets=32,
                   relative_attention_max_distance=128, dropout_rate=0.1, layer_norm_epsilon=1e-6, feed_forward_proj="relu",
                   pad_token_id=0, eos_token_id=1)
MT5_DEFAULTS = dict(HF_DEFAULTS, vocab_size=250112, d_ff=1024, num_layers=8, num_heads=6, feed_forward_proj="gated-gelu")
# HF activation names (ACT2FN) -> taesan's; "gated-gelu" alone means gated gelu_new (T5 v1.1's tanh GELU)
HF_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu",
                  "swish": "silu"}
EXPORT_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "silu"}
# tensors HF writes (or keeps from older versions) that taesan reads from elsewhere or not at all
OPTIONAL = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight",
            "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")  # the last: unused by HF too


def _table(config: T5Config, decoder: bool, lm_head: bool) -> dict:
    """The expanded table for one model ({i}: encoder block, {j}: decoder block)."""
    ff = {**FF, **(FF_GATED if config.gated else FF_PLAIN)}
    table = {"shared.weight": "shared.weight"}
    table.update({f"encoder.{k}": f"encoder.{v}" for k, v in STACK.items()})
    table.update(_prefixed({**SELF, **ff}, "encoder.blocks.{i}.", "encoder.block.{i}.", ff_layer=1))
    if decoder:
        table.update({f"decoder.{k}": f"decoder.{v}" for k, v in STACK.items()})
        table.update(_prefixed({**SELF, **CROSS, **ff}, "decoder.blocks.{j}.", "decoder.block.{j}.", ff_layer=2))
    if lm_head and not config.tie_word_embeddings:
        table["lm_head.weight"] = "lm_head.weight"
    return expand(table, i=config.n_encoder_layers, j=config.n_decoder_layers)


def _prefixed(block: dict, ours: str, theirs: str, ff_layer: int) -> dict:
    def name(v: str) -> str:
        return theirs + v.replace("{ff}", str(ff_layer))

    return {ours + k: tuple(name(t) for t in v) if isinstance(v, tuple) else name(v) for k, v in block.items()}


def from_hf_config(hf_config: dict[str, Any], lm_head: bool, tied: bool, source: str = "config.json") -> T5Config:
    """HF T5Config / MT5Config fields -> T5Config; `tied`: the checkpoint's head is its shared embedding."""
    family = hf_config.get("model_type")
    hf = {**(MT5_DEFAULTS if family == "mt5" else HF_DEFAULTS), **hf_config}
    for field, fallback in (("num_decoder_layers", "num_layers"), ("decoder_start_token_id", "pad_token_id")):
        if hf.get(field) is None:  # absent or null: HF's own fallback (T5 starts the decoder with its pad token)
            hf[field] = hf[fallback]
    fields = {ours: hf[theirs] for theirs, ours in HF_CONFIG.items()}
    if isinstance(fields["eos_token_id"], list):
        raise TaesanError(f"{source}: field 'eos_token_id'={fields['eos_token_id']!r}: taesan takes one end-of-sequence id")
    fields["activation"], fields["gated"] = _activation(hf["feed_forward_proj"], source)
    scale = False if family == "mt5" else hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True) is not False)
    fields.update(lm_head=lm_head, tie_word_embeddings=tied, scale_decoder_outputs=bool(scale and lm_head))
    if "n_positions" in hf:  # older T5 configs name the length the model was trained on
        fields["n_positions"] = hf["n_positions"]
    return config_from_dict(T5Config, fields, source=source)


def _activation(proj: str, source: str) -> tuple[str, bool]:
    """HF's feed_forward_proj -> (taesan activation, gated): "relu" -> ("relu", False), "gated-gelu" -> ("gelu_tanh", True)."""
    parts = proj.split("-") if isinstance(proj, str) else []
    gated = len(parts) == 2 and parts[0] == "gated"
    name = "gelu_new" if proj == "gated-gelu" else parts[-1] if parts else None
    if not (len(parts) == 1 or gated) or name not in HF_ACTIVATIONS:
        raise TaesanError(f"{source}: field 'feed_forward_proj'={proj!r} is not supported; use relu, gated-gelu or "
                          f"[gated-]{{{', '.join(sorted(HF_ACTIVATIONS))}}}")
    return HF_ACTIVATIONS[name], gated


def to_hf_config(model: T5 | T5Encoder) -> dict[str, Any]:
    """T5Config -> a HF T5Config dict for the class the model is (T5ForConditionalGeneration, T5Model, T5EncoderModel)."""
    c = model.config
    if c.gated and c.activation == "gelu":
        raise TaesanError("a gated exact-GELU feed-forward has no HuggingFace T5 name (\"gated-gelu\" is the tanh GELU)")
    proj = "gated-gelu" if c.gated and c.activation == "gelu_tanh" else ("gated-" if c.gated else "") + EXPORT_ACTIVATIONS[c.activation]
    arch = "T5EncoderModel" if isinstance(model, T5Encoder) else "T5ForConditionalGeneration" if c.lm_head else "T5Model"
    out = {"model_type": "t5", "architectures": [arch], "is_encoder_decoder": True, "feed_forward_proj": proj,
           "tie_word_embeddings": c.tie_word_embeddings, "scale_decoder_outputs": bool(c.scale_decoder_outputs),
           "n_positions": c.n_positions, "initializer_factor": 1.0}
    out.update({theirs: getattr(c, ours) for theirs, ours in HF_CONFIG.items()})
    return out


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> T5 | T5Encoder:
    """A HF T5/mT5 directory (ForConditionalGeneration, the bare Model or the EncoderModel) -> T5 or T5Encoder."""
    directory = Path(directory)
    source, weights = str(directory / "config.json"), directory / "model.safetensors"
    hf_state = read_hf_weights(directory)
    cls, lm_head = _architecture(hf_config, hf_state, source)
    if cls is T5 and not lm_head and hf_config.get("tie_word_embeddings", True) is not False:
        lm_head = True  # a bare T5Model writes through the head T5ForConditionalGeneration ties to `shared`
    head = hf_state.get("lm_head.weight")
    # equal values mean a tied head; a size check's dry run on "meta" has no values: a stored head counts as its own
    tied = head is None or ("shared.weight" in hf_state and not head.is_meta and torch.equal(head, hf_state["shared.weight"]))
    if "shared.weight" not in hf_state and "encoder.embed_tokens.weight" in hf_state:  # an older save may keep only this copy
        hf_state["shared.weight"] = hf_state["encoder.embed_tokens.weight"]
    config = from_hf_config(hf_config, lm_head, tied, source)
    table = _table(config, decoder=cls is T5, lm_head=lm_head)
    known = {p for spec in table.values() for p in (spec if isinstance(spec, tuple) else (spec,))} | set(OPTIONAL)
    unknown = sorted(k for k in hf_state if k not in known)
    if unknown:
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all); only "
                          f"{' / '.join(ARCHITECTURES)} load")
    model = cls(config)
    check_and_load(model, import_state(hf_state, table, source=str(weights)), str(weights), ignore=model.tied_keys)
    return model


def _architecture(hf_config: dict, hf_state: dict, source: str) -> tuple[type, bool]:
    """Which class wrote the checkpoint: `architectures` says so; without it, the tensors do."""
    architectures = hf_config.get("architectures") or []
    for arch in architectures:
        if arch not in ARCHITECTURES:
            raise TaesanError(f"{source}: architecture {arch!r} is not supported; only {', '.join(ARCHITECTURES)} load")
    if architectures:
        return ARCHITECTURES[architectures[0]]
    if not any(k.startswith("decoder.") for k in hf_state):
        return T5Encoder, False
    return T5, True  # a tied head leaves no tensor of its own: the LM model is the common case


def to_hf(model: T5 | T5Encoder) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """T5 / T5Encoder -> (HF config dict, HF state dict) that transformers' T5 classes load.

    Tied tensors are written under every HF name (shared, encoder/decoder embed_tokens, lm_head), so the
    result is the same whether or not transformers re-ties them on load.
    """
    decoder = isinstance(model, T5)
    lm_head = decoder and model.config.lm_head
    state = export_state(model.state_dict(), _table(model.config, decoder, lm_head))
    shared = model.shared.weight.detach()
    state["encoder.embed_tokens.weight"] = shared
    if decoder:
        state["decoder.embed_tokens.weight"] = shared
    if lm_head:
        state["lm_head.weight"] = model.lm_head.weight.detach()
    return to_hf_config(model), {k: v.contiguous() for k, v in state.items()}
