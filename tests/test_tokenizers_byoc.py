"""Hub tokenizer layouts that are not a tokenizer.json, built here small and compared with their own tokenizers:
KoBERT (a SentencePiece .model under another name + a vocab.txt of its pieces, cut as KoBertTokenizer does),
Marian (source.spm / target.spm + one vocab.json: transformers' MarianTokenizer), and added_tokens.json /
additional_special_tokens beside a vocab.txt or vocab.json + merges.txt (transformers' BertTokenizer /
GPT2Tokenizer) or a .model."""
from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest

from shared_lines import sample_lines
from taesan.errors import TaesanError
from taesan.tokenizers import BPETokenizer, WordPieceTokenizer, load

spm = pytest.importorskip("sentencepiece")

TEXTS = ["어제 카페 갔었어", "티끌 모아 태산!!", "Café ``naïve'' ÀÉÎ", "가격은 1,000, 2,500,000원", "ㅋㅋㅋ 😀 ꙮ",
         "  runs  of\tspaces\u3000", "", "Hello world", "Ｈｅｌｌｏ 漢字 大韓民國"]
ENGLISH = ["I went to a cafe yesterday.", "The weather is nice today.", "Every little bit helps.", "Hello world!",
           "King Sejong created Hangul in 1443."] * 20
PRICES = ["가격은 1,000, 2,000, 3,500, 12,000원", "1,000, 1,500, 10,000, 20,000,"] * 30  # so that BPE learns "0,"


def train(path: Path, lines: list[str], **options) -> spm.SentencePieceProcessor:
    options.setdefault("character_coverage", 0.99)  # some characters left unknown
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(path.with_suffix("")), minloglevel=2,
                                   hard_vocab_limit=False, **options)
    path.with_suffix(".model").rename(path)
    path.with_suffix(".vocab").unlink()
    return spm.SentencePieceProcessor(model_file=str(path))


@pytest.fixture(scope="module")
def corpus(shared_data) -> list[str]:
    return (shared_data / "corpus" / "nsmc_raw_reviews.txt").read_text(encoding="utf-8").split("\n")[:3000] + PRICES


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    return sample_lines(shared_data, per_file=25) + TEXTS


# ---- KoBERT ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kobert_dir(tmp_path_factory, corpus):
    """monologg/kobert's layout: tokenizer_78b3253a26.model (BPE) and a vocab.txt of [UNK] [PAD] [CLS] [SEP] [MASK]
    then the pieces in another order than the model's, so that model ids and vocab.txt ids differ."""
    d = tmp_path_factory.mktemp("kobert")
    sp = train(d / "tokenizer_78b3253a26.model", corpus, model_type="bpe", vocab_size=1000, split_by_number=False)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i) and not sp.is_unknown(i)]
    (d / "vocab.txt").write_text("\n".join(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + sorted(pieces)) + "\n", encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}), encoding="utf-8")
    (d / "special_tokens_map.json").write_text(json.dumps({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                                           "cls_token": "[CLS]", "mask_token": "[MASK]"}), encoding="utf-8")
    return d, sp


def kobert_reference(sp, vocab: dict[str, int], text: str, pair: str | None = None) -> list[int]:
    """KoBertTokenizer's steps (monologg's tokenization_kobert.py, XLNet's before it): spaces collapsed, `` and ''
    to ", NFKD without combining marks, the model's pieces (one ending in a digit and a comma cut again without
    the comma), each piece's line in vocab.txt or [UNK]'s; [CLS] A [SEP] (B [SEP])."""
    def ids(t: str) -> list[int]:
        t = " ".join(t.strip().split()).replace("``", '"').replace("''", '"')
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
        out = []
        for p in sp.encode_as_pieces(t):
            if len(p) > 1 and p[-1] == "," and p[-2].isdigit():
                again = sp.encode_as_pieces(p[:-1].replace("▁", ""))
                if p[0] != "▁" and again[0][0] == "▁":
                    again = again[1:] if len(again[0]) == 1 else [again[0][1:]] + again[1:]
                out += again + [","]
            else:
                out.append(p)
        return [vocab.get(p, vocab["[UNK]"]) for p in out]

    out = [vocab["[CLS]"]] + ids(text) + [vocab["[SEP]"]]
    return out + ids(pair) + [vocab["[SEP]"]] if pair is not None else out


def test_kobert_cuts_with_its_model_and_numbers_with_vocab_txt(kobert_dir, lines):
    d, sp = kobert_dir
    vocab = {t: i for i, t in enumerate((d / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1])}
    assert any(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in sp.encode_as_pieces(TEXTS[3]))  # the rule is used
    tok = load(d)
    assert (tok.unk_id, tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4) and len(tok) == len(vocab)
    for line in lines:
        assert tok.encode(line).ids == kobert_reference(sp, vocab, line), line
    enc = tok.encode("어제 카페 갔었어", "티끌 모아 태산")
    assert enc.ids == kobert_reference(sp, vocab, "어제 카페 갔었어", "티끌 모아 태산")
    n = len(kobert_reference(sp, vocab, "어제 카페 갔었어"))
    assert enc.type_ids == [0] * n + [1] * (len(enc) - n)
    assert tok.encode("티끌 [MASK] 태산").ids == kobert_reference(sp, vocab, "티끌")[:-1] + [4] + kobert_reference(sp, vocab, "태산")[1:]
    assert load(d / "vocab.txt").encode(TEXTS[0]).ids == tok.encode(TEXTS[0]).ids


def test_kobert_decodes_and_saves_a_tokenizer_json_with_its_ids(kobert_dir, lines, tmp_path):
    from tokenizers import Tokenizer

    d, sp = kobert_dir
    tok = load(d)
    for text in ("어제 카페 갔었어", "티끌 모아 태산!!"):
        assert tok.decode(tok.encode(text).ids) == text
    hf = Tokenizer.from_file(str(tok.save(tmp_path / "tokenizer.json")))
    again = load(tmp_path / "tokenizer.json")
    plain = [line for line in lines if not any(c.isdigit() for c in line)]  # the digit-comma rule is KoBERT's own code
    for line in plain:
        assert hf.encode(line).ids == again.encode(line).ids == tok.encode(line).ids, line


def test_a_vocab_txt_of_pieces_beside_another_model_is_refused(kobert_dir, tmp_path):
    """Read as WordPiece, a vocab.txt of SentencePiece pieces makes nearly every word [UNK]: not silently."""
    d, _ = kobert_dir
    (tmp_path / "other.model").write_bytes((d / "tokenizer_78b3253a26.model").read_bytes())
    (tmp_path / "vocab.txt").write_text("\n".join(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "▁가나다", "▁라마바", "사아"]) + "\n", encoding="utf-8")
    with pytest.raises(TaesanError, match="SentencePiece pieces, but not those of other.model") as err:
        load(tmp_path)
    assert "\n" not in str(err.value)


# ---- Marian ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory, corpus):
    """Helsinki-NLP/opus-mt-ko-en's layout: source.spm (Korean), target.spm (English), one vocab.json of both sides'
    pieces (not the models' ids), tokenizer_config.json with the languages; no tokenizer.json."""
    d = tmp_path_factory.mktemp("marian")
    vocab = {"</s>": 0, "<unk>": 1}
    for name, text, size in (("source", corpus[:2000], 1000), ("target", ENGLISH, 60)):
        sp = train(d / f"{name}.spm", text, model_type="unigram", vocab_size=size, bos_id=-1, eos_id=1, unk_id=2, pad_id=-1,
                   character_coverage=0.98 if name == "source" else 1.0)
        for i in range(sp.get_piece_size()):
            vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps({"source_lang": "ko", "target_lang": "en"}), encoding="utf-8")
    return d


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # its normalizer is not used in encoding
def test_marian_directory_encodes_and_decodes_as_marian_tokenizer(marian_dir, lines):
    from transformers import MarianTokenizer

    hf, tok = MarianTokenizer.from_pretrained(str(marian_dir)), load(marian_dir)
    assert (tok.eos_id, tok.unk_id, tok.pad_id, tok.model_max_length) == (hf.eos_token_id, hf.unk_token_id, hf.pad_token_id, 512)
    for line in lines + ["a </s> b <unk>", "King Sejong"]:
        assert tok.encode(line).ids == hf(line)["input_ids"], line
    assert tok.encode("어제 카페", add_special_tokens=False).ids == hf("어제 카페", add_special_tokens=False)["input_ids"]
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randint(0, 8))]
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip), ids


def test_a_spm_file_is_a_sentencepiece_model_and_a_missing_vocab_json_is_named(marian_dir, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=str(marian_dir / "source.spm"))
    assert load(marian_dir / "source.spm").encode("어제 카페 갔었어").ids == sp.encode("어제 카페 갔었어")
    (tmp_path / "source.spm").write_bytes((marian_dir / "source.spm").read_bytes())
    with pytest.raises(TaesanError, match=r"source.spm needs the vocab.json beside it") as err:
        load(tmp_path)
    assert "\n" not in str(err.value)


# ---- added_tokens.json and additional_special_tokens ------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_vocab(tmp_path_factory, corpus) -> Path:
    d = tmp_path_factory.mktemp("bert")
    WordPieceTokenizer.train(corpus[:1500], vocab_size=600, min_frequency=2, workers=1).save(d)
    vocab = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    (d / "tokenizer.json").unlink()
    (d / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
    return d / "vocab.txt"


ADDED_TEXTS = ["[주제] 영화 [이모지] 😀", "[주제]영화[이모지]", "카페라떼 맛있어 카페라떼", "[새토큰] 어제 [주제]", "영화 [MASK] 카페"]


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("where", ["tokenizer_config.json", "special_tokens_map.json"])
def test_added_tokens_json_and_additional_special_tokens_as_bert_tokenizer(bert_vocab, tmp_path, lowercase, where):
    from transformers import AutoTokenizer

    (tmp_path / "vocab.txt").write_bytes(bert_vocab.read_bytes())
    n = len(bert_vocab.read_text(encoding="utf-8").split("\n")) - 1
    (tmp_path / "added_tokens.json").write_text(json.dumps({"[주제]": n, "[이모지]": n + 1, "카페라떼": n + 2}), encoding="utf-8")
    roles = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    extra = {"additional_special_tokens": ["[주제]", "[이모지]", "[새토큰]"]}
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase, **(extra if where == "tokenizer_config.json" else {})}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({**roles, **(extra if where != "tokenizer_config.json" else {})}),
                                                      encoding="utf-8")
    hf, tok = AutoTokenizer.from_pretrained(str(tmp_path)), load(tmp_path)
    assert len(tok) == len(hf) == n + 4 and tok.vocab["[새토큰]"] == hf.convert_tokens_to_ids("[새토큰]") == n + 3
    for text in ADDED_TEXTS + TEXTS:
        ids = hf(text)["input_ids"]
        assert tok.encode(text).ids == ids, text
        if where == "tokenizer_config.json":  # from special_tokens_map.json, transformers 5 keeps them unspecial
            assert tok.decode(ids, skip_special_tokens=False) == hf.decode(ids, skip_special_tokens=False), text
            assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=True), text
    assert tok.decode(tok.encode("[주제] 카페라떼").ids) == tok.decode([n + 2]) != ""  # special skipped, plain added kept


def test_added_tokens_json_beside_vocab_json_and_merges_as_gpt2_tokenizer(tmp_path, corpus):
    from transformers import AutoTokenizer

    BPETokenizer.train(corpus[:1500], vocab_size=400, min_frequency=2).save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    (tmp_path / "tokenizer.json").unlink()
    vocab = data["model"]["vocab"]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    n = max(vocab.values()) + 1
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<주제>": n, "<|sep|>": n + 1}), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>",
                                                                "additional_special_tokens": ["<|sep|>"]}), encoding="utf-8")
    hf, tok = AutoTokenizer.from_pretrained(str(tmp_path)), load(tmp_path)
    for text in ["<주제> 영화 <|sep|> 좋아요", "영화<|sep|>영화", "어제 카페 갔었어"]:
        assert tok.encode(text).ids == hf(text)["input_ids"], text


def test_added_tokens_json_beside_a_sentencepiece_model(kobert_dir, tmp_path):
    d, sp = kobert_dir
    (tmp_path / "spiece.model").write_bytes((d / "tokenizer_78b3253a26.model").read_bytes())
    n = sp.get_piece_size()
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<주제>": n}), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"additional_special_tokens": ["<주제>", "<new>"]}), encoding="utf-8")
    tok = load(tmp_path)
    assert tok.encode("영화 <주제> 카페<new>").ids == sp.encode("영화") + [n] + sp.encode("카페") + [n + 1]
    assert tok.decode(tok.encode("<주제> 영화").ids) == "영화" and len(tok) == n + 2


def test_a_hostile_config_beside_a_sentencepiece_model_is_one_line(kobert_dir, tmp_path):
    """The T5 check reads config.json beside a .model: nested 3,000 deep it was a RecursionError traceback; it is
    read as every checkpoint JSON is (size, depth and number limits)."""
    d, _ = kobert_dir
    (tmp_path / "spiece.model").write_bytes((d / "tokenizer_78b3253a26.model").read_bytes())
    (tmp_path / "config.json").write_text("[" * 3000 + "]" * 3000, encoding="utf-8")
    with pytest.raises(TaesanError, match="config.json: JSON nested more than 100 levels deep"):
        load(tmp_path)


def test_a_tokenizer_json_or_vocab_json_nested_thousands_deep_is_one_line(tmp_path):
    deep = "[" * 3000 + "]" * 3000
    (tmp_path / "tokenizer.json").write_text(deep, encoding="utf-8")
    with pytest.raises(TaesanError, match="tokenizer.json: corrupted JSON \\(nested too deeply"):
        load(tmp_path / "tokenizer.json")
