"""Tokenizers: word, morpheme (Korean, kiwipiepy), character, byte-level BPE (GPT-2) and WordPiece (BERT),
plus PipelineTokenizer for any other tokenizer.json (Metaspace BPE, Unigram, ...) and SentencePiece .model
files; HuggingFace tokenizer.json / vocab.txt / vocab.json + merges.txt files and `load(path)`.

Not models: ids in, ids out; each kind lives in its own module, the pipeline's stages in stages/.
"""
from taesan.tokenizers.base import (
    BERT_SPECIALS,
    GPT_SPECIALS,
    Encoding,
    Piece,
    Tokenizer,
)
from taesan.tokenizers.bpe import BPETokenizer
from taesan.tokenizers.char import CharTokenizer
from taesan.tokenizers.loader import from_hf_json, load
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer
from taesan.tokenizers.word import MorphemeTokenizer, WordTokenizer
from taesan.tokenizers.wordpiece import WordPieceTokenizer

KINDS: dict[str, type[Tokenizer]] = {
    "word": WordTokenizer,
    "morpheme": MorphemeTokenizer,
    "char": CharTokenizer,
    "bpe": BPETokenizer,
    "wordpiece": WordPieceTokenizer,
}

__all__ = [
    "BERT_SPECIALS", "GPT_SPECIALS", "Encoding", "Piece", "Tokenizer", "BPETokenizer", "CharTokenizer", "MorphemeTokenizer",
    "WordTokenizer", "WordPieceTokenizer", "PipelineTokenizer", "KINDS", "load", "from_hf_json",
]
