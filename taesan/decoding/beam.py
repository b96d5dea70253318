"""Beam search as HuggingFace's transformers does it: the same candidates, scores and stopping rules.

Not greedy decoding or sampling (generate.py); it shares their runners and logits processors.
"""
from __future__ import annotations

import torch

from taesan.decoding.runners import setup
from taesan.decoding.sampling import processor_for
from taesan.decoding.settings import Settings

BIG_NEG = -1.0e9  # "impossible" in beam scores; finite, as HF's, so sums of scores stay ordered


def beam_search(model, s: Settings) -> torch.Tensor:
    """Beam search as HuggingFace's transformers does it (same candidates, scores and stopping rules).

    Each step every live beam proposes its tokens; the best 2·K (more with several stop tokens) of the B·K·V
    candidates are kept; those ending in a stop token (or at max length) compete, length-normalised, for the
    K finished slots; the best K others live on. Scores are sums of log-probabilities.
    """
    with torch.inference_mode():
        K, lp, early = s.num_beams, s.length_penalty, s.early_stopping
        runner, flat, valid, L0 = setup(model, s, K)
        B, L = flat.shape[0] // K, flat.shape[1]
        procs = processor_for(s)
        logits = runner.prefill()
        V = logits.shape[-1]
        procs.start(flat[:, :L0], None if valid is None else valid[:, :L0], V)
        eos = torch.tensor(s.eos, dtype=torch.long, device=flat.device)
        n_cand = max(2, 1 + len(s.eos)) * K
        first_k = torch.arange(n_cand, device=flat.device) < K  # only the K best candidates may finish
        offsets = torch.arange(B, device=flat.device)[:, None] * K  # (B, 1)

        running = flat.view(B, K, L)
        scores = torch.zeros(B, K, device=flat.device)
        scores[:, 1:] = BIG_NEG  # at first all beams are equal: only beam 0 may propose
        done = running.clone()
        done_scores = torch.full((B, K), BIG_NEG, device=flat.device)
        done_flag = torch.zeros(B, K, dtype=torch.bool, device=flat.device)
        done_len = torch.zeros(B, K, dtype=torch.long, device=flat.device)
        improvable = torch.ones(B, 1, dtype=torch.bool, device=flat.device)

        for cur in range(L0, L):
            flat_running = running.reshape(B * K, L)
            log_probs = torch.log_softmax(logits.float(), -1)
            log_probs = procs(log_probs, flat_running[:, :cur], None if valid is None else valid[:, :cur], cur - L0)
            total = (log_probs.view(B, K, V) + scores[:, :, None]).view(B, K * V)
            cand_scores, cand = torch.topk(total, n_cand)  # (B, n_cand)
            beam, token = cand // V, cand % V
            cand_seqs = _gather(running, beam)  # (B, n_cand, L)
            cand_seqs[:, :, cur] = token
            hits = torch.isin(token, eos) | (cur + 1 >= L)  # (B, n_cand): the candidate ends here

            # the K best unfinished candidates live on
            live_scores = cand_scores + hits.float() * BIG_NEG
            keep = torch.topk(live_scores, K).indices  # (B, K)
            running, scores, source = _gather(cand_seqs, keep), _gather(live_scores, keep), _gather(beam, keep)

            # finished candidates compete for the K finished slots, length-normalised
            finished = hits & first_k
            normed = cand_scores / ((cur + 1 - L0) ** lp)
            normed += (done_flag.all(-1, keepdim=True) & (early is True)).float() * BIG_NEG
            normed += (~improvable).float() * BIG_NEG
            normed += (~finished) * BIG_NEG
            all_scores = torch.cat([done_scores, normed], 1)
            best = torch.topk(all_scores, K).indices
            done = _gather(torch.cat([done, cand_seqs], 1), best)
            done_scores = _gather(all_scores, best)
            done_flag = _gather(torch.cat([done_flag, finished], 1), best)
            new_len = torch.full_like(token, cur + 1 - L0)
            done_len = _gather(torch.cat([done_len, new_len], 1), best)

            index = (source + offsets).view(-1)  # (B·K,) the row each surviving beam continues
            improvable = _still_improvable(improvable, scores, done_scores, done_flag, cur + 1 - L0, L - L0, early, lp)
            if not (bool(improvable.any()) and not (bool(done_flag.all()) and early is True) and not bool(hits.all())):
                break
            procs.reorder(index)
            runner.reorder(index)
            next_tokens = running[:, :, cur].reshape(B * K)
            procs.update(next_tokens)
            logits = runner.step(next_tokens[:, None])

        ret = s.num_return_sequences
        out = done[:, :ret].reshape(B * ret, L)
        return out[:, : L0 + int(done_len[:, :ret].max())].clone()


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of the beam dimension: t (B, n, ...) at index (B, m) -> (B, m, ...)."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)


def _still_improvable(improvable, scores, done_scores, done_flag, length: int, max_length: int, early, lp: float) -> torch.Tensor:
    """(B, 1): could the best live beam still beat the worst finished hypothesis? (HF's heuristic.)

    early_stopping=False assumes the live beam stops now; "never" with lp > 0 assumes it grows to max length.
    """
    best_length = max_length if early == "never" and lp > 0 else length
    best_possible = scores[:, :1] / (best_length**lp)
    worst_done = torch.where(done_flag, done_scores.min(1, keepdim=True).values, BIG_NEG)
    return improvable & (best_possible > worst_done).any(-1, keepdim=True)
