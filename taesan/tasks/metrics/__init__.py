"""Task metrics, each checked against hand-computed cases: classification (accuracy, macro-F1),
entities (seqeval-style span P/R/F1), SQuAD/KorQuAD EM and F1, BLEU (sacrebleu)."""
