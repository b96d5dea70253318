"""A fresh model's token embeddings started from word vectors: the oldest transfer in NLP (Collobert et al. 2011;
Kim 2014, a sentiment classifier from random init vs from word2vec), and on a CPU budget still a strong one.

Word2Vec trained on the pieces of the model's own tokenizer (`taesan word2vec train --tokenizer FILE`) gives each row
of the embedding table a vector that already places 명작 near 걸작 and 재밌 near 재미있. The layers above start at
random init and either learn the task at once (`finetune --embeddings`) or are pretrained on top of the vectors
(`pretrain --embeddings`). On NSMC the vectors alone (2.5 CPU-minutes) beat both random init and 15 CPU-minutes of
masked-LM pretraining; under the masked LM they lifted KLUE-NER from 53.0 to 56.5 (benchmarks/RESULTS.md, issue 17).

The vectors are rescaled to one standard deviation (EMBEDDING_STD) for the whole table: word2vec's own scale
(~0.2-0.5) is an accident of its training. 0.1 is about where 15 CPU-minutes of masked-LM pretraining took BERT's
table (from its 0.02 init); on NSMC validation it scored as 0.2 did and above 0.02. Rows of tokens the vectors do not
know (special tokens, pieces rarer than min-count) keep the model's own random init.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from taesan.errors import TaesanError
from taesan.modules.embeddings import TokenEmbedding

EMBEDDING_STD = 0.1
MIN_SHARE = 0.9  # fewer of the vectors' words than this are the tokenizer's tokens: trained on other units


@dataclass
class EmbeddingStart:
    """What was set: rows from the vectors, rows in the table, the tables changed (a tied LM head shares one)."""

    rows_set: int
    rows: int
    tables: int
    std: float

    def line(self, source: str) -> str:
        return (f"embeddings: {self.rows_set:,} of {self.rows:,} token rows from the word vectors in {source} "
                f"(scaled to std {self.std:g}); the other rows and every other weight at random init")


def piece_words(tokenizer: Any) -> Callable[[str], list[str]]:
    """The tokenizer's pieces as word2vec's words, so each vector has a row to go to:
    piece_words(wordpiece)("어제 카페 갔었어") -> ["어제", "카페", "갔", "##었", "##어"] (no [CLS] / [SEP])."""
    return lambda text: [piece.token for piece in tokenizer.tokenize(text)]


def token_tables(model: nn.Module) -> list[TokenEmbedding]:
    """The model's token embedding tables, each once (an encoder-decoder may have two, a tied head shares one)."""
    seen, out = set(), []
    for module in model.modules():
        if isinstance(module, TokenEmbedding) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            out.append(module)
    if not out:
        raise TaesanError(f"--embeddings: {type(model).__name__} has no token embedding table (a text model is needed)")
    return out


def start_embeddings(model: nn.Module, tokenizer: Any, vectors: Any, std: float = EMBEDDING_STD) -> EmbeddingStart:
    """Copy `vectors` (a taesan Word2Vec) into every token table of `model`, row by row through the tokenizer's
    token strings, rescaled to `std`; other rows keep their values. Errors (one line) for a dimension that
    differs from the model's, or vectors whose words are under MIN_SHARE tokens of this tokenizer (whitespace words,
    another tokenizer's pieces). Not every token gets a vector: a WordPiece vocabulary holds pieces that encoding
    never emits, and pieces rarer than min-count have none."""
    tables = token_tables(model)
    dim = tables[0].embedding_dim
    if vectors.config.dim != dim:
        raise TaesanError(f"--embeddings: the word vectors have {vectors.config.dim} dimensions, the model's token "
                          f"embeddings {dim} (train them with --dim {dim})")
    rows = tables[0].num_embeddings
    found = [(i, j) for j, w in enumerate(vectors.words) if (i := tokenizer.token_to_id(w)) is not None and i < rows]
    if not found or len(found) < MIN_SHARE * len(vectors.words):
        raise TaesanError(f"--embeddings: only {len(found):,} of the {len(vectors.words):,} words with vectors are tokens "
                          f"of this tokenizer; train them on its pieces (taesan word2vec train --tokenizer FILE)")
    source = vectors.vectors
    source = source / source.std()
    ids = torch.tensor([i for i, _ in found], dtype=torch.long)
    rows_of = torch.tensor([j for _, j in found], dtype=torch.long)
    same = [t for t in tables if t.num_embeddings == rows]  # a table over another vocabulary is not this tokenizer's
    with torch.no_grad():
        for table in same:
            table.weight[ids] = (source[rows_of] * std).to(table.weight.dtype)
    return EmbeddingStart(len(found), rows, len(same), std)
