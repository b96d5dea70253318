"""pipeline/text.py: the prompt as each checkpoint was trained (separator first, a backward LM reversed, an
encoder-decoder's specials, a fine-tuned task's own encoding), stop ids, finish_reason ("stop" / "length", an
empty completion said as such in the CLI and the server), streamed pieces that never end inside a character,
and sampled byte-level text without a broken character in its middle."""
from __future__ import annotations

import json

import pytest
import torch
from playground_models import GPT_LINES, SMALL, _train_gpt

import taesan
from taesan.cli import main as cli_main
from taesan.data.embedded import korean_corpus
from taesan.errors import TaesanError
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.text import LENGTH, STOP, complete, encode_prompt, stream
from taesan.tasks.generation import GenerationConfig, GenerationTask
from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

PROMPT = "티끌 모아"


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(korean_corpus(300) + GPT_LINES * 20, vocab_size=400, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory, bpe):
    """A GPT that learned a few lines, each between separators: "티끌 모아" -> " 태산" and then the end."""
    torch.manual_seed(0)
    gpt = taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL)
    _train_gpt(gpt, bpe, GPT_LINES)
    d = tmp_path_factory.mktemp("gpt")
    gpt.save(d, bpe)
    return d


@pytest.fixture(scope="module")
def random_dir(tmp_path_factory, bpe):
    """An untrained GPT with large weights: its choices jump around the byte-level vocabulary."""
    torch.manual_seed(1)
    gpt = taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL)
    with torch.no_grad():
        for p in gpt.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("random")
    gpt.save(d, bpe)
    return d


@pytest.fixture(scope="module")
def silent_dir(tmp_path_factory, bpe):
    """A GPT whose first choice is always end-of-text: the final norm outputs a constant pointing at its embedding."""
    gpt = taesan.create("gpt", vocab_size=bpe.vocab_size, **SMALL)
    eos = bpe.eos_id
    with torch.no_grad():
        gpt.tok_emb.weight[eos] *= 20
        gpt.norm.weight.zero_()
        gpt.norm.bias.copy_(gpt.tok_emb.weight[eos])
    d = tmp_path_factory.mktemp("silent")
    gpt.save(d, bpe)
    return d


# ---- the prompt as trained ---------------------------------------------------------------------------------------


def test_prompts_are_encoded_as_each_checkpoint_was_trained(gpt_dir, bpe, tmp_path):
    b = Bundle.load(gpt_dir)
    plain = bpe.encode(PROMPT, add_special_tokens=False).ids
    p = encode_prompt(b, PROMPT, 5)
    assert p.ids == [bpe.eos_id] + plain and p.head == PROMPT  # a document starts after the separator
    back = tmp_path / "back"
    b.model.save(back, bpe)
    (back / "training.json").write_text(json.dumps({"objective": "backward", "separator_id": bpe.eos_id}))
    p = encode_prompt(Bundle.load(back), PROMPT, 5)
    forward = bpe.encode(" " + PROMPT, add_special_tokens=False).ids
    assert p.ids == [bpe.eos_id] + forward[::-1] and p.forward_ids == forward  # read right to left
    gen = GenerationTask(GenerationConfig(), tokenizer=bpe)
    tuned = b.model.__class__(b.model.config)
    p = encode_prompt(Bundle("gen", None, tuned, bpe, gen, ["generate"]), PROMPT, 5)
    assert p.ids == gen.prompt_ids(PROMPT) and p.strip == " " and p.head == PROMPT + " "  # the task's own encoding
    wp = WordPieceTokenizer.train(korean_corpus(100), vocab_size=200)
    s2s = taesan.create("transformer-tiny", src_vocab_size=wp.vocab_size, n_positions=16, d_model=32, n_heads=2, d_ff=64,
                        n_encoder_layers=1, n_decoder_layers=1, pad_token_id=wp.pad_id, eos_token_id=wp.sep_id,
                        decoder_start_token_id=wp.cls_id)
    s2s.save(tmp_path / "s2s", wp)
    s = Bundle.load(tmp_path / "s2s")
    assert encode_prompt(s, "어제 카페", 5).ids == wp.encode("어제 카페").ids  # [CLS] ... [SEP]
    with pytest.raises(TaesanError, match=r"16 positions \(n_positions=16\)"):
        encode_prompt(s, "어제 카페", 16)
    with pytest.raises(TaesanError, match="n_positions=64"):
        encode_prompt(b, PROMPT, 64)


# ---- stops and finish_reason ---------------------------------------------------------------------------------------


def test_the_end_token_stops_and_says_stop_and_max_new_tokens_says_length(gpt_dir, bpe):
    b = Bundle.load(gpt_dir)
    [c] = complete(b, PROMPT, max_new_tokens=10)
    ids = [bpe.eos_id] + bpe.encode(PROMPT, add_special_tokens=False).ids
    raw = taesan.generate(b.model, [ids], max_new_tokens=10, eos_token_id=[])[0, len(ids):].tolist()
    end = raw.index(bpe.eos_id)  # the model learned to end the line
    assert c.text == bpe.decode(raw[:end]) == " 태산" and c.finish_reason == STOP and c.tokens == end + 1
    assert c.shown == PROMPT + " 태산"
    [cut] = complete(b, PROMPT, max_new_tokens=1)
    assert cut.finish_reason == LENGTH and cut.text == bpe.decode(raw[:1])
    [found] = complete(b, "어제", max_new_tokens=10, stop_strings=["카페"])
    assert found.finish_reason == STOP and "카페" in found.text
    pieces = stream(b, PROMPT, max_new_tokens=10)
    assert "".join(pieces) == c.text and pieces.finish_reason == STOP and pieces.head == PROMPT
    short = stream(b, PROMPT, max_new_tokens=1)
    assert "".join(short) == cut.text and short.finish_reason == LENGTH


def test_an_empty_completion_is_reported_in_python_the_cli_and_the_server(silent_dir, capsys):
    b = Bundle.load(silent_dir)
    [c] = complete(b, PROMPT, max_new_tokens=5)
    assert c.text == "" and c.finish_reason == STOP and c.tokens == 1
    pieces = stream(b, PROMPT, max_new_tokens=5)
    assert list(pieces) == [] and pieces.finish_reason == STOP
    assert cli_main(["generate", "--model", str(silent_dir), "--prompt", PROMPT, "--max-new-tokens", "5"]) == 0
    out, err = capsys.readouterr()
    assert out == PROMPT + "\n" and "finish_reason: stop" in err and "empty completion" in err
    pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
    from fastapi.testclient import TestClient

    from taesan.serve import ServeConfig, create_app

    client = TestClient(create_app({"silent": str(silent_dir)}, ServeConfig(demo_tokenizers=False)))
    r = client.post("/api/generate", json={"model": "silent", "prompt": PROMPT, "max_new_tokens": 5})
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert lines == [{"done": True, "finish_reason": "stop"}]


# ---- whole characters -----------------------------------------------------------------------------------------------


def test_streamed_pieces_never_end_inside_a_character(random_dir, bpe):
    b = Bundle.load(random_dir)
    held = 0
    for prompt in ("어제 카페", "티끌", "가는 말이"):
        pieces = list(stream(b, prompt, max_new_tokens=20))
        [whole] = complete(b, prompt, max_new_tokens=20)
        assert "".join(pieces) == whole.text
        assert not any(p.endswith("\ufffd") for p in pieces[:-1])
        ids = encode_prompt(b, prompt, 20).ids
        new = taesan.generate(b.model, [ids], max_new_tokens=20, eos_token_id=[])[0, len(ids):].tolist()
        held += sum(bpe.decode(new[:k]).endswith("\ufffd") for k in range(1, len(new)))
    assert held > 0  # the greedy text did stop inside characters: the hold-back was needed


def test_sampled_byte_level_text_has_no_broken_character_in_its_middle(random_dir):
    b = Bundle.load(random_dir)
    guarded, free = [], []
    for seed in range(6):
        kw = dict(max_new_tokens=24, do_sample=True, temperature=1.5, seed=seed)
        guarded.append(complete(b, "어제 카페", **kw)[0].text)
        free.append(complete(b, "어제 카페", token_bytes=None, **kw)[0].text)  # the guard switched off
    assert all("\ufffd" not in text.rstrip("\ufffd") for text in guarded)  # only a cut at max_new_tokens may end one
    assert any("\ufffd" in text.rstrip("\ufffd") for text in free)  # without it, sampling breaks characters
