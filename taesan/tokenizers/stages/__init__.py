"""The stages of a tokenizer.json pipeline as the `tokenizers` library defines them, in taesan's own code:
normalizers, pre-tokenizers, models (BPE, WordPiece, WordLevel, Unigram), post-processors, decoders and the
added-token split, run by PipelineTokenizer for any tokenizer.json the fast kinds do not exactly match.

Not the fast kinds themselves (bpe.py, wordpiece.py, word.py, char.py), which load() keeps for their files.
"""
