"""A SentencePiece model whose ids come from a vocabulary file beside it, as two hub layouts ship them: KoBERT
(monologg/kobert: tokenizer_78b3253a26.model + vocab.txt, as KoBertTokenizer cuts) and Marian
(Helsinki-NLP/opus-mt-*: source.spm, target.spm + vocab.json, as transformers' MarianTokenizer).

Not the SentencePiece cutting (sentencepiece.py) and not the choice of files (loader.py).
"""
from __future__ import annotations

from typing import Any, Iterable

from taesan.errors import TaesanError
from taesan.tokenizers.base import as_ids
from taesan.tokenizers.sentencepiece import CONTROL, NORMAL, SPACE, SentencePieceTokenizer, stages
from taesan.tokenizers.stages import normalizers
from taesan.tokenizers.stages.added_tokens import AddedToken
from taesan.tokenizers.stages.models_words import Model, Token
from taesan.tokenizers.stages.post_processors import BertProcessing, PostProcessor, TemplateProcessing
from taesan.tokenizers.stages.tokenizer import PipelineTokenizer
from taesan.tokenizers.tokenizer_config import token_name

UNSEEN_SCORE = -1e9  # a file token the model lacks, written to tokenizer.json: never the best cut


class VocabFileIds(Model):
    """The SentencePiece model's cut, each piece looked up in the vocabulary file; a piece the file lacks (or the
    surface of an unknown run) is the file's unknown token, as KoBertTokenizer's and MarianTokenizer's
    `_convert_token_to_id` do. digit_comma: KoBertTokenizer's (XLNet's) rule that a piece ending in a digit and
    a comma is cut again without the comma, the comma its own piece: "▁1,"  -> "▁1" ","."""

    def __init__(self, cut: Model, vocab: dict[str, int], unk: str, digit_comma: bool = False) -> None:
        super().__init__(vocab)
        self.cut, self.unk, self.unk_id, self.digit_comma = cut, unk, vocab[unk], digit_comma

    def tokenize(self, word: str) -> list[Token]:
        get = self.vocab.get
        out = []
        for piece, s, e in self._pieces(word):
            i = get(piece)
            out.append((i, piece, s, e) if i is not None else (self.unk_id, self.unk, s, e))
        return out

    def _pieces(self, word: str) -> list[tuple[str, int, int]]:
        out = []
        for _, piece, s, e in self.cut.tokenize(word):
            if not (self.digit_comma and len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()):
                out.append((piece, s, e))
                continue
            again = [(p, a, b) for _, p, a, b in self.cut.tokenize(SPACE + piece[:-1].replace(SPACE, ""))]
            shift = 0 if piece.startswith(SPACE) else -1  # the SPACE put in front has no character of its own
            if shift and again and again[0][0].startswith(SPACE):
                again[0] = (again[0][0][1:], again[0][1], again[0][2])
                again = again[1:] if not again[0][0] else again
            out += [(p, s + max(a + shift, 0), s + max(b + shift, 0)) for p, a, b in again] + [(",", e - 1, e)]
        return out


class VocabFileSentencePiece(SentencePieceTokenizer):
    """Cut by a SentencePiece model, ids from a vocabulary file. `decoding`: the model whose piece types decode
    (Marian's target.spm); decoded text is stripped at both ends, as both HF tokenizers do."""

    def __init__(self, proto: dict[str, Any], vocab: dict[str, int], unk: str, specials: Iterable[str],
                 post: PostProcessor | None, prepare: Iterable[normalizers.Normalizer] = (),
                 decoding: dict[str, Any] | None = None, digit_comma: bool = False) -> None:
        if unk not in vocab:
            raise TaesanError(f"the unknown token {unk!r} is not in the vocabulary file")
        cut, normalizer, pre = stages(proto)
        prepare = list(prepare)
        if prepare:  # what the HF tokenizer does to the text before SentencePiece sees it
            normalizer = normalizers.Sequence([*prepare, normalizer])
        added = [AddedToken(t, vocab[t], special=True, normalized=False) for t in dict.fromkeys(specials) if t in vocab]
        PipelineTokenizer.__init__(self, VocabFileIds(cut, vocab, unk, digit_comma), normalizer, pre, post, None, added)
        self._read_settings(proto)
        self.special_tokens = [t.content for t in added]
        self.kinds = {}
        for piece, _, kind in (decoding or proto)["pieces"]:
            self.kinds.setdefault(piece, kind)

    def _kind(self, i: int, piece: str) -> int:
        return CONTROL if i in self.added.special_ids else self.kinds.get(piece, NORMAL)

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        """As MarianTokenizer's convert_tokens_to_string: the pieces decoded as SentencePiece does, a special token
        (unless skipped) written as itself and a space, cutting the pieces into runs decoded apart; stripped."""
        ids = as_ids(ids)
        specials = self.added.special_ids
        if skip_special_tokens:
            return super().decode([i for i in ids if i not in specials]).strip()
        out, run = [], []
        for i in ids:
            if i in specials:
                out += [super().decode(run), self.inverse[i] + " "]
                run = []
            else:
                run.append(i)
        return ("".join(out) + super().decode(run)).strip()

    def to_hf_json(self) -> dict[str, Any]:
        """The model's tokenizer.json renumbered to the file's ids: a piece the file lacks is left out, a file token
        the model lacks scores UNSEEN_SCORE (known gap: the library cuts it where SentencePiece calls the
        character unknown, as a Korean source.spm does the Latin letters of Marian's target side)."""
        data = super().to_hf_json()
        model, vocab, unk = data["model"], self.model.vocab, self.model.unk
        if model["type"] == "Unigram":
            scores = {}
            for piece, score in model["vocab"]:
                scores.setdefault(piece, score)
            inverse = self.model.inverse
            model["vocab"] = [[inverse.get(i, f"<unused{i}>"), scores.get(inverse.get(i), UNSEEN_SCORE)]
                              for i in range(max(inverse) + 1)]
            model["unk_id"] = vocab[unk]
        else:
            model["merges"] = [m for m in model["merges"] if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
            model["vocab"], model["unk_token"] = self.model.ordered_vocab(), unk
        data["added_tokens"] = [t.to_json() for t in self.added.tokens]
        data["post_processor"] = self.post_processor.to_json() if self.post_processor is not None else None
        return data


def kobert(proto: dict[str, Any], vocab: dict[str, int], config: dict[str, Any]) -> VocabFileSentencePiece:
    """KoBertTokenizer: its preprocess_text (`` and '' -> ", NFKD without combining marks unless keep_accents,
    lowercase if do_lower_case), the model's cut with its digit-comma rule, vocab.txt's ids, [CLS] A [SEP] (B [SEP]).
    Written from its documented steps; a combining mark is one of category Mn here (HF's StripAccents)."""
    names = {role: token_name(config.get(f"{role}_token")) or f"[{role.upper()}]"
             for role in ("unk", "sep", "pad", "cls", "mask")}
    prepare: list[normalizers.Normalizer] = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not config.get("keep_accents", False):
        prepare += [normalizers.NFKD(), normalizers.StripAccents()]
        if "nfkc" in proto["normalizer"]["name"]:  # the model's NFKC map puts Hangul syllables back together; the
            prepare.append(normalizers.NFC())      # library's Precompiled does not, so its tokenizer.json needs this
    if config.get("do_lower_case", False):
        prepare.append(normalizers.Lowercase())
    cls, sep = names["cls"], names["sep"]
    post = BertProcessing((sep, vocab[sep]), (cls, vocab[cls])) if cls in vocab and sep in vocab else None
    return VocabFileSentencePiece(proto, vocab, names["unk"], names.values(), post, prepare, digit_comma=True)


def marian(source: dict[str, Any], target: dict[str, Any] | None, vocab: dict[str, int],
           config: dict[str, Any]) -> VocabFileSentencePiece:
    """MarianTokenizer (one vocab.json for both sides): source.spm's cut, vocab.json's ids, A </s> (A B </s>);
    a >>lang<< code is one token; decoding reads target.spm's piece types."""
    names = {role: token_name(config.get(f"{role}_token")) or default
             for role, default in (("unk", "<unk>"), ("eos", "</s>"), ("pad", "<pad>"))}
    eos = names["eos"]
    if eos not in vocab:
        raise TaesanError(f"the end-of-sequence token {eos!r} is not in vocab.json")
    end = [{"SpecialToken": {"id": eos, "type_id": 0}}]
    post = TemplateProcessing([{"Sequence": {"id": "A", "type_id": 0}}] + end,
                              [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}] + end,
                              {eos: {"id": eos, "ids": [vocab[eos]], "tokens": [eos]}})
    tok = VocabFileSentencePiece(source, vocab, names["unk"], names.values(), post, decoding=target)
    codes = [AddedToken(t, i, special=False, normalized=False) for t, i in vocab.items()
             if t.startswith(">>") and t.endswith("<<")]
    if codes:
        tok.add_tokens(codes)
    tok.model_max_length = 512  # MarianTokenizer's default; a tokenizer_config.json may say otherwise
    return tok
