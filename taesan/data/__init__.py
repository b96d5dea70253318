"""Data for pretraining: the token cache on disk (cache.py), batches drawn from it (batches.py), and the small
Korean corpus that ships inside taesan (embedded.py). Downstream task files are read by taesan.tasks.readers."""
from taesan.data.batches import (
    CausalWindows,
    PackedDocuments,
    ShuffledSampler,
    pack_documents,
    pad_batch,
    sentence_end_ids,
    unigram_perplexity,
)
from taesan.data.cache import (
    TokenCache,
    TokenSplit,
    build_token_cache,
    open_token_cache,
)

__all__ = [
    "CausalWindows", "PackedDocuments", "ShuffledSampler", "TokenCache", "TokenSplit", "build_token_cache",
    "open_token_cache", "pack_documents", "pad_batch", "sentence_end_ids", "unigram_perplexity",
]
