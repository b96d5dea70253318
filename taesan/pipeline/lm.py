"""What a pretrained language model answers besides writing: how likely each sentence is (the objective it was
trained with decides how), and which tokens fill a [MASK] (<mask> for RoBERTa's and ELECTRA's generator).

Not the arithmetic (taesan.scoring) and not a printer: the CLI, the server and the demo show these results.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from taesan.checkpoint import TRAINING_NAME
from taesan.errors import TaesanError
from taesan.models.kinds import is_causal_lm, is_masked_lm
from taesan.pipeline.bundle import Bundle, model_kind
from taesan.scoring import score_texts
from taesan.tasks.fits import tokenizer_rows


def objective_of(bundle: Bundle, override: str | None = None) -> str:
    """The objective scores use: `override`, else the one recorded (or implied by the model type); it must fit
    the model (a causal or backward one a GPT, a masked one a BERT masked LM)."""
    objective = override or bundle.objective
    kind = model_kind(bundle.model)
    if objective is None and not (is_causal_lm(bundle.model) or is_masked_lm(bundle.model)):  # no --objective fits it
        raise TaesanError(f"{bundle.directory}: a {kind!r} model does not score sentences alone; score with a GPT "
                          f"(causal, backward) or a masked LM (BERT, RoBERTa, ELECTRA generator)")
    if objective is None:
        raise TaesanError(f"{bundle.directory}: no {TRAINING_NAME} and model_type {kind!r}; pass --objective")
    if objective not in ("causal", "backward", "masked"):  # denoising: an encoder-decoder has no sentence probability alone
        raise TaesanError(f"{bundle.directory}: a model pretrained with the {objective} objective ({kind!r}) does not "
                          f"score sentences; score with a GPT (causal, backward) or a masked LM")
    fits = is_masked_lm(bundle.model) if objective == "masked" else is_causal_lm(bundle.model)
    if not fits:  # else a traceback or a meaningless number
        needs = "a masked LM (BERT, RoBERTa, ELECTRA generator)" if objective == "masked" else "a GPT"
        raise TaesanError(f"{bundle.directory}: the {objective} objective scores with {needs}; this model is {kind!r}")
    return objective


def score(bundle: Bundle, texts: Sequence[str], objective: str | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Sentence log-probabilities (natural log), highest first: {"objective", "scores": [{"text", "log_prob"}]}."""
    tokenizer = bundle.need_tokenizer()
    for n, text in enumerate(texts, start=1):
        if not text.strip():
            raise TaesanError(f"sentence {n} is empty: there is nothing to score")
    objective = objective_of(bundle, objective)
    start = bundle.separator_id if objective != "masked" else None
    values = score_texts(bundle.model, tokenizer, list(texts), objective, start_id=start, batch_size=batch_size)
    ranked = sorted(({"text": t, "log_prob": v} for t, v in zip(texts, values)), key=lambda r: -r["log_prob"])
    return {"objective": objective, "scores": ranked}


@torch.no_grad()
def fill_mask(bundle: Bundle, text: str, top_k: int = 5) -> dict[str, Any]:
    """Each [MASK] in `text` -> its top_k candidates {"token", "text", "score"} from the masked LM's softmax:
    {"tokens": the text's tokens, "masks": [{"position", "candidates"}]}."""
    tok, model = bundle.need_tokenizer(), bundle.model
    if tok.mask_id is None:
        raise TaesanError(f"{bundle.directory}: the tokenizer has no [MASK] token")
    mask_token = tok.id_to_token(tok.mask_id)
    enc = tok.encode(text)
    where = [i for i, t in enumerate(enc.ids) if t == tok.mask_id]
    if not where:
        raise TaesanError(f"put {mask_token} where a word is missing, e.g. \"티끌 {mask_token} 태산\"")
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    if limit is not None and len(enc.ids) > limit:
        raise TaesanError(f"the text is {len(enc.ids)} tokens; the model reads at most {limit}")
    device = next(model.parameters()).device
    logits = model(torch.tensor([enc.ids], device=device))[0]  # (T, V)
    probs = logits[where, :tokenizer_rows(tok)].float().softmax(-1)  # (M, V'): no row the tokenizer cannot write
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    masks = []
    for pos, values, indices in zip(where, top.values.tolist(), top.indices.tolist()):
        candidates = [{"token": tok.id_to_token(i), "text": tok.decode([i]), "score": v} for v, i in zip(values, indices)]
        masks.append({"position": pos, "candidates": candidates})
    return {"tokens": enc.tokens, "masks": masks}
