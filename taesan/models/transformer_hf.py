"""HuggingFace Marian and BART checkpoints <-> taesan's Seq2SeqTransformer: key tables and config fields, as data.

Not the model (taesan.models.transformer) and not the generic table reader (taesan.interop).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from taesan.checkpoint import check_and_load
from taesan.config import config_from_dict
from taesan.errors import TaesanError
from taesan.models.hf import expand, export_state, import_state, read_hf_weights
from taesan.models.transformer import Seq2SeqTransformer, TransformerConfig

# One block's tensors, taesan name -> HF name. Self-attention q, k, v are fused into `qkv`; cross-attention
# keeps q apart (it reads the decoder) and fuses k, v (they read the encoder's memory).
SELF_BLOCK = {
    "attn.qkv.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attn.qkv.bias": ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
    "attn.out.weight": "self_attn.out_proj.weight",
    "attn.out.bias": "self_attn.out_proj.bias",
    "attn_norm.weight": "self_attn_layer_norm.weight",
    "attn_norm.bias": "self_attn_layer_norm.bias",
    "mlp.up.weight": "fc1.weight",
    "mlp.up.bias": "fc1.bias",
    "mlp.down.weight": "fc2.weight",
    "mlp.down.bias": "fc2.bias",
    "mlp_norm.weight": "final_layer_norm.weight",
    "mlp_norm.bias": "final_layer_norm.bias",
}
CROSS_BLOCK = {
    "cross_attn.q.weight": "encoder_attn.q_proj.weight",
    "cross_attn.q.bias": "encoder_attn.q_proj.bias",
    "cross_attn.kv.weight": ("encoder_attn.k_proj.weight", "encoder_attn.v_proj.weight"),
    "cross_attn.kv.bias": ("encoder_attn.k_proj.bias", "encoder_attn.v_proj.bias"),
    "cross_attn.out.weight": "encoder_attn.out_proj.weight",
    "cross_attn.out.bias": "encoder_attn.out_proj.bias",
    "cross_norm.weight": "encoder_attn_layer_norm.weight",
    "cross_norm.bias": "encoder_attn_layer_norm.bias",
}


def _prefixed(block: dict, ours: str, theirs: str) -> dict:
    return {ours + k: tuple(theirs + t for t in v) if isinstance(v, tuple) else theirs + v for k, v in block.items()}


# taesan key -> HF *ForConditionalGeneration key ({i} = encoder layer, {j} = decoder layer).
HF_KEYS = {
    "src_emb.weight": "model.encoder.embed_tokens.weight",
    "tgt_emb.weight": "model.decoder.embed_tokens.weight",
    **_prefixed(SELF_BLOCK, "encoder.{i}.", "model.encoder.layers.{i}."),
    **_prefixed({**SELF_BLOCK, **CROSS_BLOCK}, "decoder.{j}.", "model.decoder.layers.{j}."),
}
# BART's extra tensors: learned position tables and the LayerNorm after the embeddings.
BART_KEYS = {
    "src_pos.weight": "model.encoder.embed_positions.weight",
    "tgt_pos.weight": "model.decoder.embed_positions.weight",
    "src_emb_norm.weight": "model.encoder.layernorm_embedding.weight",
    "src_emb_norm.bias": "model.encoder.layernorm_embedding.bias",
    "tgt_emb_norm.weight": "model.decoder.layernorm_embedding.weight",
    "tgt_emb_norm.bias": "model.decoder.layernorm_embedding.bias",
}

# What each family fixes in the architecture (taesan fields); export picks the family whose settings match.
FAMILIES = {
    "marian": dict(norm="post", position_embedding="sinusoidal_halves", position_offset=0, layernorm_embedding=False),
    "bart": dict(norm="post", position_embedding="learned", position_offset=2, layernorm_embedding=True),
}
ARCHITECTURES = {  # family -> (with LM head, bare backbone)
    "marian": ("MarianMTModel", "MarianModel"),
    "bart": ("BartForConditionalGeneration", "BartModel"),
}

# HF config field -> taesan field. `save_pretrained` omits fields left at their default: HF_DEFAULTS fills them.
HF_CONFIG = {
    "vocab_size": "src_vocab_size",
    "decoder_vocab_size": "tgt_vocab_size",
    "share_encoder_decoder_embeddings": "share_embeddings",
    "tie_word_embeddings": "tie_output",
    "max_position_embeddings": "n_positions",
    "d_model": "d_model",
    "encoder_layers": "n_encoder_layers",
    "decoder_layers": "n_decoder_layers",
    "encoder_attention_heads": "n_heads",
    "encoder_ffn_dim": "d_ff",
    "dropout": "dropout",
    "attention_dropout": "attn_dropout",
    "activation_function": "activation",
    "scale_embedding": "scale_embedding",
    "pad_token_id": "pad_token_id",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "decoder_start_token_id": "decoder_start_token_id",
}
_COMMON_DEFAULTS = dict(
    max_position_embeddings=1024, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
    decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, dropout=0.1, attention_dropout=0.0,
    activation_function="gelu", scale_embedding=False, tie_word_embeddings=True, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
)
HF_DEFAULTS = {  # MarianConfig's and BartConfig's defaults (transformers 5.x)
    "marian": dict(_COMMON_DEFAULTS, vocab_size=58101, decoder_vocab_size=None, share_encoder_decoder_embeddings=True,
                   pad_token_id=58100, bos_token_id=None, eos_token_id=0, decoder_start_token_id=58100),
    "bart": dict(_COMMON_DEFAULTS, vocab_size=50265, decoder_vocab_size=None, share_encoder_decoder_embeddings=True,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2),
}
# pairs HF allows to differ but taesan's one-field config does not
HF_SAME = {"decoder_attention_heads": "encoder_attention_heads", "decoder_ffn_dim": "encoder_ffn_dim"}
# settings taesan does not implement -> the only value accepted. (activation_dropout, a training-only dropout
# inside the FFN, is not modelled: it is read as 0 and inference is unchanged.)
HF_REQUIRED = {"encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0}
HF_ACTIVATIONS = {
    "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
}
EXPORT_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "swish", "gelu_tanh": "gelu_new"}
HF_NORM_EPS = 1e-5  # both families use nn.LayerNorm's default


def _table(config: TransformerConfig, family: str) -> dict:
    """The expanded table for one model: shared and tied tensors are read from one HF key only."""
    table = dict(HF_KEYS, **(BART_KEYS if family == "bart" else {}))
    if config.share_embeddings:
        del table["tgt_emb.weight"]
    if config.lm_head and not config.tie_output:
        table["lm_head.weight"] = "lm_head.weight"
    return expand(table, i=config.n_encoder_layers, j=config.n_decoder_layers)


def from_hf_config(hf_config: dict[str, Any], lm_head: bool = True, source: str = "config.json") -> TransformerConfig:
    """HF MarianConfig / BartConfig fields -> TransformerConfig; an unsupported setting raises one TaesanError line."""
    family = hf_config.get("model_type")
    if family not in FAMILIES:
        raise TaesanError(f"{source}: model_type {family!r} is not an encoder-decoder family taesan reads ({', '.join(FAMILIES)})")
    hf = {**HF_DEFAULTS[family], **hf_config}
    if family == "bart":  # BART always shares one vocabulary between encoder and decoder
        hf.update(decoder_vocab_size=None, share_encoder_decoder_embeddings=True)
    for field, value in HF_REQUIRED.items():
        if hf[field] != value:
            raise TaesanError(f"{source}: field {field!r}={hf[field]!r} is not supported by taesan's Transformer (needs {value!r})")
    for field, other in HF_SAME.items():
        if hf[field] != hf[other]:
            raise TaesanError(f"{source}: field {field!r}={hf[field]!r} differs from {other!r}={hf[other]!r}; taesan needs them equal")
    fields = {ours: hf[theirs] for theirs, ours in HF_CONFIG.items()}
    if fields["activation"] not in HF_ACTIVATIONS:
        raise TaesanError(
            f"{source}: field 'activation_function'={fields['activation']!r} is not supported; known: {sorted(HF_ACTIVATIONS)}"
        )
    fields["activation"] = HF_ACTIVATIONS[fields["activation"]]
    if isinstance(fields["eos_token_id"], list):
        raise TaesanError(f"{source}: field 'eos_token_id'={fields['eos_token_id']!r}: taesan takes one end-of-sequence id")
    fields.update(FAMILIES[family], norm_eps=HF_NORM_EPS, lm_head=lm_head, final_logits_bias=lm_head)
    return config_from_dict(TransformerConfig, fields, source=source)


def to_hf_config(config: TransformerConfig) -> dict[str, Any]:
    """TransformerConfig -> a HF MarianConfig or BartConfig dict (the family is the one whose settings match)."""
    family = family_of(config)
    out = {"model_type": family, "architectures": [ARCHITECTURES[family][0 if config.lm_head else 1]]}
    for theirs, ours in HF_CONFIG.items():
        out[theirs] = getattr(config, ours)
    out["activation_function"] = EXPORT_ACTIVATIONS[config.activation]
    out.update({f: out[other] for f, other in HF_SAME.items()})
    out.update(HF_REQUIRED, activation_dropout=0.0, is_encoder_decoder=True, forced_eos_token_id=config.eos_token_id)
    if family == "bart":
        del out["decoder_vocab_size"], out["share_encoder_decoder_embeddings"]
    return out


def family_of(config: TransformerConfig) -> str:
    """The HF family whose fixed settings this config has, or a TaesanError saying what does not match."""
    for family, fixed in FAMILIES.items():
        if all(getattr(config, k) == v for k, v in fixed.items()):
            break
    else:
        needs = "; ".join(f"{f} needs " + ", ".join(f"{k}={v!r}" for k, v in fixed.items()) for f, fixed in FAMILIES.items())
        raise TaesanError(
            f"this Transformer (norm={config.norm!r}, position_embedding={config.position_embedding!r}, "
            f"position_offset={config.position_offset}, layernorm_embedding={config.layernorm_embedding}) matches no "
            f"HuggingFace family, so it cannot be exported: {needs}"
        )
    if config.norm_eps != HF_NORM_EPS:
        raise TaesanError(f"norm_eps={config.norm_eps} has no {family} equivalent (HF uses {HF_NORM_EPS})")
    if family == "bart" and not config.share_embeddings:
        raise TaesanError("BART always shares the encoder and decoder embeddings: export needs share_embeddings=True")
    return family


def from_hf(directory: str | Path, hf_config: dict[str, Any]) -> Seq2SeqTransformer:
    """A HF Marian/BART directory (*ForConditionalGeneration / MarianMTModel, or the bare *Model) -> Seq2SeqTransformer
    with its output layer (a bare model's tied one; hidden states only when its embeddings are untied)."""
    directory = Path(directory)
    source = str(directory / "config.json")
    weights = directory / "model.safetensors"
    family = hf_config.get("model_type")
    hf_state = read_hf_weights(directory)
    bare = not _has_lm_head(hf_config, hf_state, family, source)
    if bare:  # the bare model's keys have no "model." prefix
        hf_state = {"model." + k: v for k, v in hf_state.items()}
    # a bare model tied to its embeddings (KoBART ships as a BartModel) gets the output layer its
    # *ForConditionalGeneration ties there, so everything that loads it writes through the vocabulary
    lm_head = not bare or {**HF_DEFAULTS[family], **hf_config}["tie_word_embeddings"] is not False
    config = from_hf_config(hf_config, lm_head, source)
    hf_state = {k: v for k, v in hf_state.items() if not k.endswith(_IGNORED)}
    if family == "marian":  # fixed sinusoidal tables, recomputed by taesan (and by HF) at init
        hf_state = {k: v for k, v in hf_state.items() if not k.endswith("embed_positions.weight")}
    shared = hf_state.get("model.shared.weight")
    if shared is not None and config.share_embeddings:  # a tied copy may be stored only once, as `shared`
        for side in ("encoder", "decoder"):
            hf_state.setdefault(f"model.{side}.embed_tokens.weight", shared)
    table = _table(config, family)
    optional = {"model.shared.weight", "model.decoder.embed_tokens.weight", "lm_head.weight", "final_logits_bias"}
    known = set(_flatten(table.values())) | optional
    unknown = sorted(k for k in hf_state if k not in known)
    if unknown:
        only = " / ".join(ARCHITECTURES[family])
        raise TaesanError(f"{weights}: unexpected tensor {unknown[0]!r} ({len(unknown)} in all); only {only} load")
    state = import_state(hf_state, table, source=str(weights))
    if lm_head:  # HF stores it as (1, V) and may leave it out (it is all zeros then)
        bias = hf_state.get("final_logits_bias", torch.zeros(1, config.tgt_vocab_size))
        state["final_logits_bias"] = bias.reshape(-1).contiguous()
    model = Seq2SeqTransformer(config)
    check_and_load(model, state, str(weights), ignore=model.tied_keys)
    return model


_IGNORED = ("encoder.version", "decoder.version")  # bookkeeping in fairseq-converted BART checkpoints


def _flatten(specs) -> list[str]:
    return [p for s in specs for p in (s if isinstance(s, tuple) else (s,))]


def _has_lm_head(hf_config: dict, hf_state: dict, family: str, source: str) -> bool:
    """Which class wrote the checkpoint: `architectures` says so; without it, the key prefix does."""
    architectures = hf_config.get("architectures") or []
    with_head, bare = ARCHITECTURES[family]
    for arch in architectures:
        if arch not in (with_head, bare):
            raise TaesanError(f"{source}: architecture {arch!r} is not supported; only {with_head} and {bare} load")
    if architectures:
        return architectures[0] == with_head
    return any(k.startswith("model.") for k in hf_state)


def to_hf(model: Seq2SeqTransformer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Seq2SeqTransformer -> (HF config dict, HF state dict) that `AutoModelForSeq2SeqLM` / `AutoModel` load.

    Tied tensors are written under every HF name (shared, encoder/decoder embed_tokens, lm_head), so the
    result is the same whether or not transformers re-ties them on load.
    """
    config = model.config
    hf_config = to_hf_config(config)
    family = hf_config["model_type"]
    table = _table(config, family)
    state = export_state(model.state_dict(), table)
    if config.share_embeddings:
        state["model.decoder.embed_tokens.weight"] = state["model.shared.weight"] = model.src_emb.weight.detach()
    if config.lm_head:
        state["lm_head.weight"] = model.lm_head.weight.detach()
        bias = model.final_logits_bias if model.final_logits_bias is not None else torch.zeros(config.tgt_vocab_size)
        state["final_logits_bias"] = bias.detach().reshape(1, -1)
    else:
        state = {k.removeprefix("model."): v for k, v in state.items()}
    return hf_config, {k: v.contiguous() for k, v in state.items()}
