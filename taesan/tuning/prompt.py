"""Soft prompt tuning (Lester et al., 2021): N trainable virtual-token vectors placed before the text at the
embedding layer of a frozen model; only the prompt (and a task head) learn, and only they are saved.

Not a new architecture: `SoftPrompt` wraps any taesan model that accepts `inputs_embeds` (GPT, its heads, the heads
of BERT, RoBERTa and ELECTRA, a verbalizer reading an LM's own head: taesan.models.verbalizer) and extends the
attention mask and positions; the wrapped model runs unchanged. Saved as a small model.safetensors (prompt + head;
the prompt alone around a verbalizer) and a config.json naming the base checkpoint it loads onto.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taesan.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_and_load,
    check_shapes,
    load_state_dict,
    read_config,
)
from taesan.config import config_from_dict, config_to_dict
from taesan.errors import TaesanError
from taesan.models import load_model, model_class, size
from taesan.models.base import TAESAN_FORMAT_VERSION, TaesanModel
from taesan.models.kinds import is_text_encoder
from taesan.models.verbalizer import Verbalizer
from taesan.modules.embeddings import TokenEmbedding
from taesan.safetensors_header import read_header
from taesan.tasks.heads import backbone

MODEL_TYPE = "soft-prompt"
BASE_COPY = "base"  # where a base that came from no checkpoint directory is saved, beside the prompt


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The task head's parameter names (trained and saved with the prompt): every module outside the backbone (the
    `.bert` / `.roberta` / `.electra` of a BERT-shaped head, a GPT classifier's `.gpt`), plus the pooler where the
    head reads it (BERT's classifier). A bare backbone has no head.

    head_prefixes(BertForSequenceClassification) -> ("dropout.", "classifier.", "bert.pooler.");
    head_prefixes(RobertaForQuestionAnswering) -> ("qa.",);  head_prefixes(GPTForSequenceClassification) -> ("score.",)
    """
    inner = backbone(model)
    if inner is None or inner is model:
        return ()
    prefix = next(name for name, m in model.named_children() if m is inner)
    out = [f"{name}." for name, m in model.named_children() if m is not inner]
    if getattr(model, "needs_pooler", False):
        out.append(f"{prefix}.pooler.")
    return tuple(out)


@dataclass
class SoftPromptConfig:
    n_tokens: int = 20
    insert_at: int = 0  # 0: before everything (GPT); 1: after [CLS], so a pooled [CLS] head still reads position 0
    base: str | None = None  # the base checkpoint: on disk relative to the prompt's directory, in memory absolute
    base_fingerprint: str = ""  # sha256 of the frozen tensors: required; loading onto a changed base is an error
    inner: dict[str, Any] = field(default_factory=dict)  # the wrapped model's config.json (model_type + fields)
    init: str | None = None  # how the prompt started: "vocab", "random" or the text


class SoftPrompt(TaesanModel):
    """prompt (N, C) ++ token embeddings -> the wrapped model; outputs per position come back without the prompt.

    `config` is the wrapped model's config with n_positions reduced by N (the positions left for text), so
    callers that read model.config (labels, limits) see the task model. `state_dict()` holds only the
    trainable tensors (the prompt and the head): what the Trainer saves and resumes, and what `save` writes.
    """

    model_type = MODEL_TYPE
    config_class = SoftPromptConfig

    def __init__(self, inner: nn.Module, n_tokens: int, insert_at: int = 0, base: str | None = None, init: str | None = None) -> None:
        if n_tokens < 1:
            raise TaesanError(f"--prompt-tokens must be >= 1, got {n_tokens}")
        if "inputs_embeds" not in inspect.signature(inner.forward).parameters:
            raise TaesanError(f"prompt tuning needs a model that reads inputs_embeds (GPT, BERT and their heads); "
                              f"{type(inner).__name__} does not")
        config = inner.config
        if hasattr(config, "n_positions"):
            if config.n_positions <= n_tokens + 1:
                raise TaesanError(f"{n_tokens} prompt tokens leave no room in the model's {config.n_positions} positions")
            config = dataclasses.replace(config, n_positions=config.n_positions - n_tokens)
        super().__init__(config)
        self.inner = inner
        names = [n for n, m in inner.named_modules() if isinstance(m, TokenEmbedding)]
        if not names:
            raise TaesanError(f"{type(inner).__name__} has no token embedding: soft prompts need a text model")
        self._embed_name = names[0]  # a name, not a second reference: the table is registered once, in inner
        self.prompt = nn.Embedding(n_tokens, self.embed.embedding_dim)  # an embedding table: no weight decay
        self.prompt.to(self.embed.weight.device, self.embed.weight.dtype)
        head = head_prefixes(inner)
        for name, p in inner.named_parameters():
            p.requires_grad_(name.startswith(head))
        self.saved_keys = {"prompt.weight"} | {"inner." + n for n, p in inner.named_parameters() if p.requires_grad}
        self.prompt_config = SoftPromptConfig(n_tokens, insert_at, base, "", inner.config_dict(), init)
        self.prompt_config.base_fingerprint = self.fingerprint()

    @property
    def embed(self) -> TokenEmbedding:
        """The wrapped model's token embedding (the prompt lives in its space)."""
        return self.inner.get_submodule(self._embed_name)

    @property
    def n_tokens(self) -> int:
        return self.prompt_config.n_tokens

    # ---- forward ---------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The wrapped model's forward with the prompt spliced in; (B, T, ...) outputs come back as (B, T, ...).

        With a KV cache the prompt goes in once, at the first call (prefill); later calls only shift
        the mask and positions by N.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T, _ = x.shape
        N, at = self.n_tokens, self.prompt_config.insert_at
        prefill = cache is None or cache.length == 0
        if prefill:
            prompt = self.prompt.weight.to(x.dtype).expand(B, N, -1)  # (B, N, C)
            x = torch.cat([x[:, :at], prompt, x[:, at:]], 1)  # (B, N + T, C)
            token_type_ids = self._splice(token_type_ids, 0, prefill)
            position_ids = self._positions(position_ids, B)
        elif position_ids is not None:
            position_ids = position_ids + N
        attention_mask = self._splice(attention_mask, 1, prefill)
        kwargs = {"attention_mask": attention_mask, "token_type_ids": token_type_ids, "position_ids": position_ids, "cache": cache}
        out = self.inner(inputs_embeds=x, **{k: v for k, v in kwargs.items() if v is not None})
        if prefill and out.dim() >= 3 and out.shape[1] == N + T:
            out = torch.cat([out[:, :at], out[:, at + N:]], 1)  # (B, T, ...): one output per real token
        return out

    def _splice(self, t: torch.Tensor | None, value: int, prefill: bool) -> torch.Tensor | None:
        """A (B, S) mask or segment row with N `value` columns where the prompt sits (at the front once cached)."""
        if t is None:
            return None
        at = self.prompt_config.insert_at if prefill else 0
        fill = torch.full((t.shape[0], self.n_tokens), value, dtype=t.dtype, device=t.device)  # (B, N)
        return torch.cat([t[:, :at], fill, t[:, at:]], 1)  # (B, S + N)

    def _positions(self, position_ids: torch.Tensor | None, B: int) -> torch.Tensor | None:
        """Given positions (B, T) -> (B, N + T): the prompt takes N consecutive slots at insert_at, later ones move up."""
        if position_ids is None:
            return None  # the wrapped model counts 0..N+T-1
        at, N = self.prompt_config.insert_at, self.n_tokens
        start = position_ids[:, :at].max(1, keepdim=True).values + 1 if at else torch.zeros_like(position_ids[:, :1])  # (B, 1)
        own = start + torch.arange(N, device=position_ids.device)  # (B, N)
        return torch.cat([position_ids[:, :at], own, position_ids[:, at:] + N], 1)  # (B, N + T)

    # ---- generation (taesan.generate: cache, one-token steps) ---------------------------------------------
    def new_cache(self):
        return self.inner.new_cache()

    @property
    def decode_step(self):
        """The wrapped GPT's one-token path with the mask and positions shifted past the prompt (None without one)."""
        return self._decode_step if hasattr(self.inner, "decode_step") else None

    def _decode_step(self, tokens, cache, attention_mask=None, position_ids=None) -> torch.Tensor:
        if cache.length == 0:
            return self.forward(tokens, attention_mask, position_ids=position_ids, cache=cache)[:, -1]
        mask = self._splice(attention_mask, 1, prefill=False)
        positions = None if position_ids is None else position_ids + self.n_tokens
        return self.inner.decode_step(tokens, cache, mask, positions)

    # ---- what is trained and saved -----------------------------------------------------------------------
    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> dict[str, Any]:
        """Only the prompt and the head (the frozen backbone lives in the base checkpoint)."""
        full = super().state_dict(prefix=prefix, keep_vars=keep_vars)
        out = destination if destination is not None else {}
        for k, v in full.items():
            if k[len(prefix):] in self.saved_keys:
                out[k] = v
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True, assign: bool = False):
        """Load the prompt and head; the frozen backbone is never touched (strict: exactly the saved keys)."""
        if strict:
            missing, unexpected = self.saved_keys - set(state), set(state) - self.saved_keys
            if missing or unexpected:
                raise RuntimeError(f"soft prompt state: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        return super().load_state_dict(state, strict=False, assign=assign)

    def frozen_state(self) -> dict[str, torch.Tensor]:
        tied = set(getattr(self.inner, "tied_keys", ()))
        return {k: v for k, v in self.inner.state_dict().items() if "inner." + k not in self.saved_keys and k not in tied}

    def fingerprint(self) -> str:
        """sha256 over the frozen tensors' bytes in key order: identifies the exact base the prompt was tuned on."""
        h = hashlib.sha256()
        for k, t in sorted(self.frozen_state().items()):
            h.update(k.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def config_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, "taesan_version": TAESAN_FORMAT_VERSION, **config_to_dict(self.prompt_config)}

    def save(self, directory: str | Path, tokenizer: Any = None) -> Path:
        """model.safetensors (prompt + head) and config.json naming the base by a path relative to `directory`
        (the two move together); a base that came from no checkpoint directory (a preset, a model built in
        memory) is saved once beside it, in base/."""
        directory = Path(directory)
        base = self.prompt_config.base
        if base is None or base == BASE_COPY:
            (self.inner.lm if isinstance(self.inner, Verbalizer) else self.inner).save(directory / BASE_COPY)  # a verbalizer: its LM
            self.prompt_config.base = base = BASE_COPY
        directory.mkdir(parents=True, exist_ok=True)
        self.prompt_config.base = base if base == BASE_COPY else os.path.relpath(Path(base).resolve(), directory.resolve())
        try:
            return super().save(directory, tokenizer)
        finally:
            self.prompt_config.base = base  # in memory the base stays absolute: the next save may go elsewhere


# ---- building and loading -------------------------------------------------------------------------------------


def add_soft_prompt(model: nn.Module, n_tokens: int, init: str | None = None, tokenizer: Any = None, seed: int = 0,
                    base: str | Path | None = None, insert_at: int | None = None) -> SoftPrompt:
    """`model` frozen behind a soft prompt of `n_tokens` vectors; its head (see `head_prefixes`) stays trainable.

    init: None or "vocab" -> embeddings of tokens sampled from the vocabulary (Lester et al.'s best simple
    choice); "random" -> Gaussian with the embedding table's spread; any other text -> its tokens'
    embeddings, cut or repeated to N ("긍정 부정 감정" with N=5 -> 긍정 부정 감정 긍정 부정, per token).
    base: the checkpoint directory `model`'s backbone came from (default: where taesan.load read it).
    BERT-shaped encoders (BERT, RoBERTa, ELECTRA) get the prompt after [CLS] / <s> (insert_at=1): their classifiers
    read position 0. Others (GPT) at the front; `insert_at` says otherwise (a verbalizer around a masked LM: 1).
    """
    if isinstance(model, SoftPrompt):
        raise TaesanError("this model already has a soft prompt")
    if base is None:
        base = getattr(model, "checkpoint_dir", None)
    if insert_at is None:
        insert_at = 1 if is_text_encoder(model) else 0
    wrapped = SoftPrompt(model, n_tokens, insert_at, None if base is None else str(Path(base).resolve()),
                         init if init is not None else "vocab")
    with torch.no_grad():
        wrapped.prompt.weight.copy_(initial_prompt(wrapped.embed.weight, n_tokens, init, tokenizer, seed))
    return wrapped


def initial_prompt(table: torch.Tensor, n_tokens: int, init: str | None, tokenizer: Any, seed: int) -> torch.Tensor:
    """The prompt's starting vectors (N, C) from the embedding table (V, C); see `add_soft_prompt`."""
    g = torch.Generator().manual_seed(seed)
    table = table.detach().float().cpu()
    if init == "random":
        return torch.randn(n_tokens, table.shape[1], generator=g) * table.std()
    if init is None or init == "vocab":
        special = set(getattr(tokenizer, "special_tokens", []) or [])
        vocab = getattr(tokenizer, "vocab", {}) or {}
        banned = {vocab[t] for t in special if t in vocab}
        pool = [i for i in range(min(table.shape[0], 5000)) if i not in banned] or list(range(table.shape[0]))
        pick = torch.randint(len(pool), (n_tokens,), generator=g)
        return table[torch.as_tensor(pool)[pick]]
    if tokenizer is None:
        raise TaesanError("--prompt-init TEXT needs the model's tokenizer")
    ids = tokenizer.encode(init, add_special_tokens=False).ids
    if not ids:
        raise TaesanError(f"--prompt-init {init!r} has no tokens")
    ids = (ids * (n_tokens // len(ids) + 1))[:n_tokens]
    return table[torch.as_tensor(ids)]


def load_soft_prompt(directory: str | Path, map_location: str = "cpu") -> SoftPrompt:
    """A saved soft prompt on its base checkpoint -> the prompt-tuned model in eval mode (taesan.load calls this).

    The base is a model checkpoint named relative to the prompt's directory (absolute in prompts saved before);
    its frozen tensors must hash to the saved `base_fingerprint`. A base that is itself a prompt is refused.
    """
    directory = Path(directory)
    source = str(directory / CONFIG_NAME)
    cfg = config_from_dict(SoftPromptConfig, read_config(directory), source)
    if not cfg.base:
        raise TaesanError(f"{source}: field 'base' (the base checkpoint) is missing")
    if not cfg.base_fingerprint:
        raise TaesanError(f"{source}: field 'base_fingerprint' is missing or empty: the base cannot be checked")
    base_dir = _base_directory(directory, cfg.base, source)
    base_model = load_model(base_dir)
    inner_type = cfg.inner.get("model_type")
    cls = Verbalizer if inner_type == Verbalizer.model_type else model_class(inner_type, source)
    inner_config = config_from_dict(cls.config_class, cfg.inner, source)
    if type(base_model) is cls and dataclasses.asdict(base_model.config) == dataclasses.asdict(inner_config):
        inner = base_model
    else:  # a head model (or a verbalizer's LM) around the base's backbone: its size is checked before it is built
        size.check_layers(cfg.inner, source)
        if isinstance(cfg.inner.get("lm"), dict):
            size.check_layers(cfg.inner["lm"], source)
        planned = size.plan(lambda: cls(inner_config), source)
        size.check_parameters(planned, source)
        size.check_model_memory(planned, source)
        inner = cls(inner_config)
        _copy_backbone(inner, base_model, base_dir)
    try:
        model = SoftPrompt(inner, cfg.n_tokens, cfg.insert_at, str(base_dir.resolve()), cfg.init)
    except TaesanError as e:  # "5000 prompt tokens leave no room ...": which file said so
        raise TaesanError(f"{source}: {e}") from None
    if model.prompt_config.base_fingerprint != cfg.base_fingerprint:
        raise TaesanError(f"{source}: base checkpoint {base_dir} differs from the one this prompt was tuned on")
    weights = directory / WEIGHTS_NAME
    check_shapes(model, read_header(weights).meta_state(), str(weights))  # shapes first, then the data
    check_and_load(model, load_state_dict(weights), str(weights))
    cfg.base = BASE_COPY if cfg.base == BASE_COPY else str(base_dir.resolve())  # in memory: absolute (see save)
    model.prompt_config = cfg
    return model.to(map_location).eval()


def _base_directory(directory: Path, base: str, source: str) -> Path:
    """The base checkpoint's directory: `base` relative to the prompt's (or absolute); a model, not another prompt."""
    base_dir = Path(base) if Path(base).is_absolute() else directory / base
    try:
        found = base_dir.is_dir()
        same = found and base_dir.resolve() == directory.resolve()
    except OSError as e:  # a name too long for the file system, a loop of links
        raise TaesanError(f"{source}: base checkpoint {base[:200]!r} cannot be opened ({e.strerror})") from None
    if not found:
        raise TaesanError(f"{source}: base checkpoint {base_dir} not found (the prompt loads onto it)")
    if same or read_config(base_dir).get("model_type") == MODEL_TYPE:
        raise TaesanError(f"{source}: base checkpoint {base_dir} is {'this' if same else 'another'} soft prompt; "
                          f"a prompt loads onto a model checkpoint, not onto a prompt")
    return base_dir


def _copy_backbone(inner: nn.Module, base: nn.Module, base_dir: Path) -> None:
    """Frozen tensors of `inner` from `base`, matched by key with or without one leading module name
    (`bert.blocks.0...` in a head model is `blocks.0...` in a bare BERT, and the other way round)."""
    have = base.state_dict()
    by_tail = {k.split(".", 1)[1]: v for k, v in have.items() if "." in k}
    state, head = {}, head_prefixes(inner)
    for k, t in inner.state_dict().items():
        if k.startswith(head):
            continue
        tail = k.split(".", 1)[1] if "." in k else k
        v = have.get(k, have.get(tail, by_tail.get(k)))
        if v is None or v.shape != t.shape:
            raise TaesanError(f"{base_dir}: no tensor for {k!r} of the prompt-tuned model in the base checkpoint")
        state[k] = v
    inner.load_state_dict(state, strict=False)
