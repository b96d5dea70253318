"""Generic transformer building blocks, shared by every model family (no model knows another)."""
from taesan.modules.attention import KVCache, LayerCache, MultiHeadAttention
from taesan.modules.embeddings import (
    LearnedPositionEmbedding,
    PatchEmbedding,
    SegmentEmbedding,
    SinusoidalPositionEmbedding,
    TokenEmbedding,
)
from taesan.modules.masks import (
    causal_mask,
    causal_padding_mask,
    combine_masks,
    key_padding_mask,
    padding_mask,
)
from taesan.modules.pooling import masked_mean
from taesan.modules.transformer import FeedForward, PostNormBlock, PreNormBlock

__all__ = [
    "KVCache", "LayerCache", "MultiHeadAttention", "TokenEmbedding", "LearnedPositionEmbedding",
    "SinusoidalPositionEmbedding", "SegmentEmbedding", "PatchEmbedding", "causal_mask", "padding_mask",
    "key_padding_mask", "causal_padding_mask", "combine_masks", "masked_mean", "FeedForward", "PreNormBlock", "PostNormBlock",
]
