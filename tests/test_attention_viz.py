"""Attention maps: the weights per layer/kind (GPT's causal triangle, BERT's full rows, encoder-decoder cross-attention
source ↔ target, ViT rollout), token labels, PNG size and content, the Korean font, and `taesan attention` errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import taesan
from taesan.errors import TaesanError
from taesan.tokenizers import Encoding
from taesan.viz.attention import (
    CELL, DPI, SINGLE, image_attention, korean_font, plot_attention, plot_image_attention, select, text_attention,
    token_labels,
)

TEXT = "어제 카페 갔었어 거기 사람 많더라"
SMALL = dict(n_layers=2, d_model=32, n_heads=2, n_positions=64)


@pytest.fixture(scope="module")
def tokenizers():
    from taesan.data.embedded import korean_corpus
    from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

    lines = korean_corpus(300)
    return (BPETokenizer.train(lines, vocab_size=300, special_tokens=["<|endoftext|>"]),
            WordPieceTokenizer.train(lines, vocab_size=300))


def gpt(tok):
    return taesan.create("gpt-tiny", vocab_size=tok.vocab_size, **SMALL).eval()


def bert(tok):
    return taesan.create("bert-mlm", vocab_size=tok.vocab_size, d_ff=64, **SMALL).eval()


def seq2seq(tok):
    return taesan.create("transformer-tiny", src_vocab_size=tok.vocab_size, n_positions=64, d_model=32, n_heads=2, d_ff=64,
                         pad_token_id=tok.pad_id, bos_token_id=tok.cls_id, eos_token_id=tok.sep_id,
                         decoder_start_token_id=tok.cls_id).eval()


def png_array(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path)  # (H, W, 4) floats in [0, 1]


def assert_not_blank(image):
    rgb = image[..., :3]
    assert rgb.std() > 0.05  # more than a flat background
    colours = np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 20


# ---- the weights ----------------------------------------------------------------------------------------------


def test_gpt_weights_are_a_causal_triangle_with_rows_summing_to_one(tokenizers):
    bpe, _ = tokenizers
    model = gpt(bpe)
    blocks = text_attention(model, bpe, TEXT)
    T = len(bpe.encode(TEXT).ids)
    assert [(b.kind, b.layer) for b in blocks] == [("self", 0), ("self", 1)]
    for b in blocks:
        assert b.weights.shape == (2, T, T)
        assert len(b.queries) == len(b.keys) == T
        upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        assert torch.all(b.weights[:, upper] == 0)  # no token looks ahead
        assert torch.all(b.weights[:, ~upper] > 0)
        assert torch.allclose(b.weights.sum(-1), torch.ones(2, T), atol=1e-5)
    assert torch.allclose(blocks[0].weights[:, 0, 0], torch.ones(2))  # the first token can only see itself


def test_bert_weights_see_both_directions(tokenizers):
    _, wp = tokenizers
    blocks = text_attention(bert(wp), wp, TEXT)
    enc = wp.encode(TEXT)
    assert blocks[0].queries[0] == "[CLS]" and blocks[0].queries[-1] == "[SEP]"
    assert len(blocks[0].queries) == len(enc.ids)
    T = len(enc.ids)
    upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert torch.all(blocks[0].weights[:, upper] > 0)
    assert torch.allclose(blocks[1].weights.sum(-1), torch.ones(2, T), atol=1e-5)


def test_seq2seq_blocks_encoder_self_decoder_self_and_cross(tokenizers):
    _, wp = tokenizers
    model = seq2seq(wp)
    blocks = text_attention(model, wp, TEXT, target="오늘 학교 갔다")
    S, T = len(wp.encode(TEXT).ids), 1 + len(wp.encode("오늘 학교 갔다", add_special_tokens=False).ids)
    assert [(b.kind, b.layer) for b in blocks] == [
        ("encoder self", 0), ("encoder self", 1), ("decoder self", 0), ("cross", 0), ("decoder self", 1), ("cross", 1)]
    cross = blocks[3]
    assert cross.weights.shape == (2, T, S)  # target queries over source keys
    assert cross.keys == blocks[0].keys and cross.queries == blocks[2].queries
    assert cross.queries[0] == "[CLS]" and cross.queries[1:] == ["오", "늘", "▁학", "교", "▁갔", "다"]
    assert torch.all(cross.weights > 0)  # every target position may read every source token
    dec = blocks[2].weights
    assert torch.all(torch.triu(dec, diagonal=1) == 0)
    # without a target: the model's own greedy output is the decoder input
    greedy = text_attention(model, wp, TEXT)
    assert greedy[3].kind == "cross" and greedy[3].weights.shape[-1] == S and greedy[3].weights.shape[1] >= 1


def test_token_labels_of_byte_level_pieces():
    # "어제 카페": byte-level BPE cuts 카 and 페 into several byte tokens sharing a character's offsets
    enc = Encoding(ids=[1, 2, 3, 4, 5, 6], tokens=["a", "b", "c", "d", "e", "f"],
                   offsets=[(0, 2), (2, 4), (3, 4), (4, 5), (4, 5), (0, 0)], special_tokens_mask=[0, 0, 0, 0, 0, 1])
    assert token_labels("어제 카페", enc) == ["어제", "▁카", "·", "페", "·", "f"]
    spaced = Encoding(ids=[1, 2, 3], tokens=["어", " ", "카"], offsets=[(0, 1), (1, 2), (2, 3)], special_tokens_mask=[0, 0, 0])
    # the space is its own token: marked there once, not again on the word (issue 16's doubled "▁" in the playground)
    assert token_labels("어 카", spaced) == ["어", "▁", "카"]


def test_a_char_tokenizer_marks_each_space_once():
    from taesan.tokenizers import CharTokenizer

    tok = CharTokenizer.train(["어제 카페 갔었어"] * 3, vocab_size=50)
    labels = token_labels("어제 카페", tok.encode("어제 카페", add_special_tokens=False))
    assert labels == ["어", "제", "▁", "카", "페"] and "".join(labels).count("▁") == 1


def test_select_and_its_errors(tokenizers):
    bpe, _ = tokenizers
    blocks = text_attention(gpt(bpe), bpe, TEXT)
    one = select(blocks, layer=1, head=1)
    assert len(one) == 1 and one[0].weights.shape[0] == 1 and torch.equal(one[0].weights[0], blocks[1].weights[1])
    with pytest.raises(TaesanError, match="layers 0..1"):
        select(blocks, layer=2)
    with pytest.raises(TaesanError, match="heads 0..1"):
        select(blocks, head=2)


def test_text_errors(tokenizers):
    bpe, wp = tokenizers
    with pytest.raises(TaesanError, match="empty"):
        text_attention(gpt(bpe), bpe, "   ")
    with pytest.raises(TaesanError, match="at most"):
        text_attention(gpt(bpe), bpe, "티끌 모아 태산 " * 40)
    with pytest.raises(TaesanError, match="images"):
        text_attention(taesan.create("vit-tiny").eval(), wp, TEXT)


# ---- pictures ---------------------------------------------------------------------------------------------------


def test_grid_and_single_png_sizes_and_content(tokenizers, tmp_path):
    bpe, wp = tokenizers
    blocks = text_attention(gpt(bpe), bpe, TEXT)
    grid = png_array(plot_attention(blocks, tmp_path / "grid.png"))
    assert grid.shape[:2] == (round(2 * CELL * DPI), round(2 * CELL * DPI))  # 2 layers × 2 heads
    assert_not_blank(grid)
    single = png_array(plot_attention(blocks, tmp_path / "one.png", layer=0, head=1))
    assert single.shape[:2] == (SINGLE * DPI, SINGLE * DPI)
    assert_not_blank(single)
    s2s_blocks = text_attention(seq2seq(wp), wp, TEXT, target="오늘 학교 갔다")
    layer = png_array(plot_attention(s2s_blocks, tmp_path / "s2s.png", layer=1))
    assert layer.shape[:2] == (round(3 * CELL * DPI), round(2 * CELL * DPI))  # encoder self, decoder self, cross × 2 heads


def test_korean_font_is_found_when_nanum_is_installed_and_a_warning_otherwise(tokenizers, tmp_path, monkeypatch):
    from matplotlib import font_manager

    from taesan.viz import attention as viz_attention

    if any("nanum" in p.lower() for p in font_manager.findSystemFonts()):
        assert korean_font().startswith("Nanum")
        bpe, _ = tokenizers
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither our fallback warning nor "Glyph ... missing"
            plot_attention(text_attention(gpt(bpe), bpe, TEXT), tmp_path / "ko.png", layer=0, head=0)
    monkeypatch.setattr(viz_attention, "korean_font", lambda: None)
    with pytest.warns(UserWarning, match="fonts-nanum"):
        viz_attention._font_rc()


def test_vit_rollout_and_png(tmp_path):
    model = taesan.create("vit-tiny").eval()
    pixels = torch.rand(1, 1, 8, 8)
    blocks, rollout = image_attention(model, pixels)
    assert len(blocks) == 2 and blocks[0].weights.shape == (4, 1, 16)  # [CLS] row over 16 patches, 4 heads
    assert rollout.shape == (4, 4) and float(rollout.sum()) == pytest.approx(1.0, abs=1e-5)
    image = png_array(plot_image_attention(pixels, blocks, rollout, tmp_path / "vit.png"))
    assert image.shape[:2] == (round(3 * CELL * DPI), round(4 * CELL * DPI))  # image row + 2 layers; 4 heads
    assert_not_blank(image)


# ---- the command line -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tokenizers, tmp_path_factory):
    bpe, wp = tokenizers
    root = tmp_path_factory.mktemp("attn")
    vit_dir = taesan.create("vit-tiny").save(root / "vit")
    return {"gpt": gpt(bpe).save(root / "gpt", bpe), "s2s": seq2seq(wp).save(root / "s2s", wp), "vit": vit_dir}


def test_cli_writes_the_png(checkpoints, tmp_path, capsys):
    from taesan.cli import main

    out = tmp_path / "attn.png"
    assert main(["attention", "--model", str(checkpoints["gpt"]), TEXT, "--layer", "1", "--head", "0", "--out", str(out)]) == 0
    assert png_array(out).shape[:2] == (SINGLE * DPI, SINGLE * DPI)
    assert str(out) in capsys.readouterr().out
    out = tmp_path / "cross.png"
    assert main(["attention", "--model", str(checkpoints["s2s"]), TEXT, "--target", "오늘 학교 갔다", "--out", str(out)]) == 0
    assert png_array(out).shape[:2] == (round(6 * CELL * DPI), round(2 * CELL * DPI))
    np.save(tmp_path / "digit.npy", np.random.default_rng(0).random((8, 8)))
    from PIL import Image

    Image.fromarray((np.random.default_rng(1).random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    for image in ("digit.npy", "digit.png"):
        out = tmp_path / f"vit_{image}.png"
        assert main(["attention", "--model", str(checkpoints["vit"]), "--image", str(tmp_path / image), "--out", str(out)]) == 0
        assert_not_blank(png_array(out))


@pytest.mark.parametrize("case, args, message", [
    ("no dir", ["--model", "{tmp}/nope", TEXT], "no such checkpoint directory"),
    ("layer", ["--model", "{gpt}", TEXT, "--layer", "7"], "--layer 7: the model has layers 0..1"),
    ("head", ["--model", "{gpt}", TEXT, "--head", "-1"], "--head -1"),
    ("target on gpt", ["--model", "{gpt}", TEXT, "--target", "오늘"], "--target is for encoder-decoder"),
    ("no text", ["--model", "{gpt}"], "give the text"),
    ("image on gpt", ["--model", "{gpt}", TEXT, "--image", "{tmp}/x.png"], "reads text, not images"),
    ("vit without image", ["--model", "{vit}"], "pass --image"),
    ("vit with text", ["--model", "{vit}", TEXT, "--image", "{tmp}/x.png"], "not text"),
    ("missing image", ["--model", "{vit}", "--image", "{tmp}/none.png"], "image file not found"),
    ("not an image", ["--model", "{vit}", "--image", "{tmp}/bad.png"], "not an image file"),
    ("not png", ["--model", "{gpt}", TEXT, "--out", "{tmp}/a.jpg"], "PNG"),
    ("empty text", ["--model", "{gpt}", "  "], "empty"),
])
def test_cli_errors_are_one_line(checkpoints, tmp_path, capsys, case, args, message):
    from taesan.cli import main

    (tmp_path / "bad.png").write_text("not a picture", encoding="utf-8")
    fill = {"tmp": str(tmp_path), "gpt": str(checkpoints["gpt"]), "vit": str(checkpoints["vit"])}
    argv = ["attention", *[a.format(**fill) for a in args]]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "a.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "a.png").exists()


# ---- parity: the weights HuggingFace returns with output_attentions=True -------------------------------------------


class FixedIds:
    """A stand-in tokenizer: every text is the given ids (so HF and taesan read exactly the same input)."""

    def __init__(self, ids: list[int], target: list[int] | None = None) -> None:
        self.ids, self.target = ids, target or []

    def encode(self, text, add_special_tokens=True):
        ids = self.ids if add_special_tokens else self.target
        return Encoding(ids=ids, tokens=[f"t{i}" for i in ids], offsets=[(0, 0)] * len(ids), special_tokens_mask=[1] * len(ids))

    def id_to_token(self, i):
        return f"t{i}"


def _randomised(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name and not p.requires_grad:
                continue
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name.lower() or "ln" in name else 0.2 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_self_attention_weights_equal_huggingfaces(family, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
        hf = _randomised(transformers.GPT2LMHeadModel(config))
    else:
        config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=48, max_position_embeddings=16)
        hf = _randomised(transformers.BertModel(config))
    hf.config._attn_implementation = "eager"  # the path that returns weights
    hf.save_pretrained(tmp_path)
    ids = [3, 17, 8, 42, 5, 11]
    blocks = text_attention(taesan.load(tmp_path), FixedIds(ids), "text")
    with torch.no_grad():
        expected = hf(torch.tensor([ids]), output_attentions=True).attentions
    assert len(blocks) == len(expected) == 2
    for block, weights in zip(blocks, expected):
        torch.testing.assert_close(block.weights, weights[0], atol=1e-5, rtol=0)


def test_cross_attention_weights_equal_huggingfaces_marian(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=40, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=32, pad_token_id=39, decoder_start_token_id=39,
        eos_token_id=0, scale_embedding=True)
    hf = _randomised(transformers.MarianMTModel(config))
    hf.config._attn_implementation = "eager"
    hf.save_pretrained(tmp_path)
    src, tgt = [5, 9, 13, 21, 0], [7, 3, 30]
    blocks = text_attention(taesan.load(tmp_path), FixedIds(src, tgt), "source", target="target")
    with torch.no_grad():
        out = hf(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([[39] + tgt]), output_attentions=True)
    kinds = {kind: [b.weights for b in blocks if b.kind == kind] for kind in ("encoder self", "decoder self", "cross")}
    for ours, theirs in ((kinds["encoder self"], out.encoder_attentions), (kinds["decoder self"], out.decoder_attentions),
                         (kinds["cross"], out.cross_attentions)):
        assert len(ours) == len(theirs) == 2
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b[0], atol=1e-5, rtol=0)
    assert blocks[-1].weights.shape == (4, 4, 5)  # (heads, start + 3 target tokens, 5 source tokens)


def test_cli_tokenizer_bigger_than_the_model_is_one_line(checkpoints, tmp_path, capsys):
    """Ids beyond the model's embeddings were an IndexError traceback (GPT and encoder-decoder)."""
    from taesan.cli import main
    from taesan.tokenizers import CharTokenizer

    big = CharTokenizer.train(["".join(chr(0xAC00 + i) for i in range(400)) + TEXT], vocab_size=1000, min_frequency=1)
    big.save(tmp_path / "big.json")
    for name in ("gpt", "s2s"):
        argv = ["attention", "--model", str(checkpoints[name]), TEXT, "--tokenizer", str(tmp_path / "big.json"),
                "--out", str(tmp_path / "a.png")]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not this model's tokenizer" in err, err
        assert not (tmp_path / "a.png").exists()


def test_cli_vit_reads_digits_and_a_classifier_sees_its_normalised_pixels(tmp_path, monkeypatch, capsys):
    """`--image digits:N` was "image file not found" (predict takes it), and a fine-tuned ViT was shown
    [0, 1] pixels instead of the (x - mean) / std it was trained and predicts on."""
    import taesan.cli.attention as cli_attention
    from taesan.cli import main
    from taesan.tasks.image import load_image as task_image, to_pixels

    out = tmp_path / "vit"
    assert main(["finetune", "--task", "image-classification", "--model", "vit-tiny", "--train", "digits", "--out", str(out),
                 "--max-steps", "1", "--threads", "1", "--no-progress"]) == 0
    seen = []
    real = cli_attention.image_attention
    monkeypatch.setattr(cli_attention, "image_attention", lambda model, pixels: seen.append(pixels) or real(model, pixels))
    assert main(["attention", "--model", str(out), "--image", "digits:3", "--out", str(tmp_path / "a.png")]) == 0
    size = taesan.load(out).config.image_size
    torch.testing.assert_close(seen[0], to_pixels(task_image("digits:3"), size, 1, 0.5, 0.5)[None])
    assert seen[0].min() < 0  # normalised, not [0, 1]
    assert_not_blank(png_array(tmp_path / "a.png"))
