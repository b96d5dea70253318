"""Warm-starting an encoder-decoder from a pretrained BERT encoder (BERT2BERT, Rothe et al. 2020): the encoder is a
copy of the BERT, the decoder's self-attention, feed-forward and norms are a second copy, only cross-attention
starts from scratch; one token table (the BERT's) reads both languages and writes the output, as its MLM head did.

Not a model family (the result is an ordinary Seq2SeqTransformer) and not training: weights in, weights out.
The seq2seq takes the BERT's shape: post-LN blocks, learned positions, a LayerNorm after the embeddings, no
sqrt(d) scaling, its activation and epsilon. BERT's segment-0 vector, added to every token there, is folded into
the position table.
"""
from __future__ import annotations

import torch

from taesan.models.bert import BERT
from taesan.models.bert_heads import BertHeadModel
from taesan.models.transformer import Seq2SeqTransformer, TransformerConfig


def seq2seq_config(bert: BERT, n_decoder_layers: int | None = None, **ids: int) -> TransformerConfig:
    """The TransformerConfig of a seq2seq shaped like `bert` (`ids`: pad/eos/bos/decoder_start token ids)."""
    c = bert.config
    return TransformerConfig(
        src_vocab_size=c.vocab_size, share_embeddings=True, tie_output=True, n_positions=c.n_positions,
        d_model=c.d_model, n_encoder_layers=c.n_layers, n_decoder_layers=n_decoder_layers or c.n_layers,
        n_heads=c.n_heads, d_ff=c.d_ff, dropout=c.dropout, attn_dropout=c.attn_dropout, activation=c.activation,
        norm_eps=c.norm_eps, norm="post", position_embedding="learned", scale_embedding=False,
        layernorm_embedding=True, **ids,
    )


def warm_start_seq2seq(source: BERT | BertHeadModel, n_decoder_layers: int | None = None, **ids: int) -> Seq2SeqTransformer:
    """A Seq2SeqTransformer whose encoder is `source`'s BERT and whose decoder layer i copies BERT layer i
    (cycling when the decoder is deeper); cross-attention keeps its fresh initialisation.

    Encoding a source with the result gives exactly the BERT's hidden states (tested).
    """
    bert = source if isinstance(source, BERT) else source.bert
    model = Seq2SeqTransformer(seq2seq_config(bert, n_decoder_layers, **ids))
    with torch.no_grad():
        model.src_emb.weight.copy_(bert.tok_emb.weight)  # tgt_emb and lm_head are tied to it
        positions = bert.pos_emb.weight + bert.seg_emb.weight[0]  # (P, C): segment 0 folded in
        for pos in (model.src_pos, model.tgt_pos):
            pos.weight.copy_(positions)
        for norm in (model.src_emb_norm, model.tgt_emb_norm):
            norm.load_state_dict(bert.emb_norm.state_dict())
        for i, block in enumerate(model.encoder):
            block.load_state_dict(bert.blocks[i].state_dict())
        for i, block in enumerate(model.decoder):
            missing, unexpected = block.load_state_dict(bert.blocks[i % len(bert.blocks)].state_dict(), strict=False)
            if unexpected or any(not k.startswith(("cross_attn.", "cross_norm.")) for k in missing):
                raise RuntimeError(f"decoder layer {i}: unexpected {unexpected}, missing {missing}")
    return model.to(bert.device)
