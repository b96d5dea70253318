"""Corpus BLEU (Papineni et al. 2002) through sacrebleu, so scores match what papers report.

Not a sentence-level score: n-gram matches are summed over the whole corpus before the geometric
mean, and the brevity penalty compares total lengths. sacrebleu's defaults: 13a tokenization (use
"char" or "intl" for Korean targets), exponential smoothing, one reference per hypothesis here.
"""
from __future__ import annotations

from typing import Sequence

from taesan.errors import TaesanError


def check_tokenize(tokenize: str) -> str:
    """`tokenize` if sacrebleu knows it (13a, intl, char, ko-mecab, ...), else a one-line error."""
    from sacrebleu.metrics.bleu import BLEU

    if tokenize not in BLEU.TOKENIZERS:
        raise TaesanError(f"BLEU tokenize {tokenize!r}: choose one of {', '.join(BLEU.TOKENIZERS)}")
    return tokenize


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a", lowercase: bool = False) -> float:
    """BLEU in [0, 100] of `hypotheses` against one reference each.

    corpus_bleu(["a b c d e"], ["a b c d f"]) = 100 · (4/5 · 3/4 · 2/3 · 1/2) ** (1/4) = 66.87;
    corpus_bleu(["a b c d"], ["a b c d e"]) = 100 · exp(1 - 5/4) = 77.88 (all n-grams match; brevity penalty).
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise TaesanError(f"BLEU needs one reference per hypothesis: {len(hypotheses)} hypotheses, {len(references)} references")
    check_tokenize(tokenize)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize, lowercase=lowercase).score)
