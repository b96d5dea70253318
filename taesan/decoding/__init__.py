"""Decoding: ids in, ids out. Greedy, sampling and beam search over a KV cache (generate.py), its checked
settings (settings.py) and the logits processors that shape each step's choice (sampling.py). No tokenizer here."""
from taesan.decoding.generate import generate
from taesan.decoding.runners import is_encoder_decoder

__all__ = ["generate", "is_encoder_decoder"]
