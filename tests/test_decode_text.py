"""A completion's text is what its ids add after the prompt's ids (Tokenizer.decode_after, as HuggingFace's
text-generation pipeline cuts it): prompt + completion == decode(prompt ids + new ids) for WordPiece, byte-level BPE,
character, word and SentencePiece-style (Metaspace) tokenizers, and a WordPiece "##" piece joins the prompt's last
word in greedy, sampled, beam, streamed, printed, served and predicted text instead of showing its marker."""
from __future__ import annotations

import json
import random

import pytest
import torch

import taesan
from taesan.cli import main as cli_main
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.text import complete, encode_prompt, stream
from taesan.tasks.generation import GenerationConfig, GenerationTask
from taesan.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer, WordTokenizer, from_hf_json

LINES = ["대한민국의 역사는 길다", "대한민국의 수도는 서울이다", "우리나라의 역사와 문화", "한국의 역사 공부",
         "서울의 봄은 따뜻하다", "티끌 모아 태산", "어제 카페 갔었어. 거기 사람 많더라!"] * 3
PROMPT = "대한민국의"  # one WordPiece token here; "##의" is another
GPT = dict(n_positions=64, n_layers=1, d_model=32, n_heads=2)


def metaspace_bpe():
    """A SentencePiece-style tokenizer.json (Metaspace "▁" for spaces, the first one stripped on decoding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(LINES, trainers.BpeTrainer(vocab_size=150, min_frequency=1, special_tokens=["<unk>", "</s>"]))
    return from_hf_json(json.loads(tok.to_str()))


@pytest.fixture(scope="module")
def tokenizers():
    pytest.importorskip("tokenizers")
    specials = ["[UNK]", "<|endoftext|>"]
    return {
        "wordpiece": WordPieceTokenizer.train(LINES, vocab_size=120, min_frequency=1),
        "bpe": BPETokenizer.train(LINES, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"]),
        "char": CharTokenizer.train(LINES, vocab_size=200, special_tokens=specials),
        "word": WordTokenizer.train(LINES, vocab_size=100, min_frequency=1, special_tokens=specials),
        "metaspace": metaspace_bpe(),
    }


@pytest.fixture(scope="module")
def wp(tokenizers):
    return tokenizers["wordpiece"]


# ---- the tokenizer: decode_after -----------------------------------------------------------------------------------


def test_a_continuation_piece_joins_the_word_before_and_a_word_initial_piece_brings_its_space(wp):
    prompt = wp.encode(PROMPT, add_special_tokens=False).ids
    cont, word = wp.vocab["##의"], wp.vocab["역사"]
    assert wp.decode([cont]) == "##의"  # decoded alone, the marker shows (the defect's cause)
    assert wp.decode_after(prompt, [cont, cont]) == "의의"
    assert wp.decode_after(prompt, [word, cont]) == " 역사의"
    assert wp.decode_after([], [cont]) == "##의"  # nothing to join: as decode
    assert wp.decode_after([wp.sep_id, *prompt], [cont]) == "의"  # a special token before writes nothing


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char", "word", "metaspace"])
def test_prompt_plus_completion_is_the_whole_decoded_text(tokenizers, kind):
    """Any new ids after any prompt: decode(prompt) + decode_after(prompt, new) == decode(prompt + new); byte-level
    BPE and characters (whole characters before) give the ids' own text, as before."""
    tok = tokenizers[kind]
    special = {tok.vocab[t] for t in tok.special_tokens}
    ordinary = [i for i in range(tok.vocab_size) if i not in special]
    rng = random.Random(0)
    for text in ("대한민국의", "어제 카페", "티끌 모아 태산", "서울"):
        prompt = tok.encode(text, add_special_tokens=False).ids
        for _ in range(30):
            new = rng.choices(ordinary, k=rng.randint(0, 6))
            after = tok.decode_after(prompt, new)
            assert tok.decode(prompt) + after == tok.decode(prompt + new), (kind, text, new)
            if kind in ("bpe", "char"):
                assert after == tok.decode(new)
            if kind == "wordpiece":
                assert "##" not in after


# ---- decoding a GPT's completion ------------------------------------------------------------------------------------


def parrot(tok, token: int):
    """A GPT that always writes `token`: the final norm outputs its embedding, scaled up (the head is tied)."""
    torch.manual_seed(0)
    gpt = taesan.create("gpt-tiny", vocab_size=tok.vocab_size, **GPT)
    with torch.no_grad():
        gpt.tok_emb.weight[token] *= 100
        gpt.norm.weight.zero_()
        gpt.norm.bias.copy_(gpt.tok_emb.weight[token])
    return gpt.eval()


@pytest.fixture(scope="module")
def parrots(tmp_path_factory, wp):
    """Two WordPiece GPT checkpoints: one writes "##의" after every prompt, the other "역사"."""
    out = {}
    for name, token in (("cont", "##의"), ("word", "역사")):
        d = tmp_path_factory.mktemp(name)
        parrot(wp, wp.vocab[token]).save(d, tokenizer=wp)
        out[name] = d
    return out


SETTINGS = {"greedy": {}, "sampled": dict(do_sample=True, temperature=0.7, seed=1), "beams": dict(num_beams=2)}


@pytest.mark.parametrize("how", sorted(SETTINGS))
def test_a_wordpiece_gpt_writes_no_marker_greedy_sampled_beams_or_streamed(parrots, how):
    """The defect's repro: "대한민국의" + "##의" x 3 was "대한민국의##의의의"; now "대한민국의의의의"; a word-initial
    piece after the prompt gets its space ("대한민국의역사..." before)."""
    for name, text in (("cont", "의의의"), ("word", " 역사 역사 역사")):
        b = Bundle.load(parrots[name])
        [c] = complete(b, PROMPT, max_new_tokens=3, **SETTINGS[how])
        assert c.text == text and c.shown == PROMPT + text, (how, name, c)
        if how != "beams":
            pieces = stream(b, PROMPT, max_new_tokens=3, **SETTINGS[how])
            assert "".join(pieces) == text and pieces.completion.shown == PROMPT + text


def test_stop_strings_see_the_text_after_the_prompt(parrots):
    [c] = complete(Bundle.load(parrots["cont"]), PROMPT, max_new_tokens=10, stop_strings=["의의"])
    assert c.text == "의의" and c.finish_reason == "stop" and c.tokens == 2


def test_a_random_wordpiece_gpt_shows_the_whole_decoded_text(tmp_path, wp):
    """Whatever pieces an untrained GPT picks, what is shown is the prompt ids and the new ids decoded together."""
    torch.manual_seed(2)
    gpt = taesan.create("gpt-tiny", vocab_size=wp.vocab_size, **GPT)
    with torch.no_grad():
        for p in gpt.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    gpt.save(tmp_path, tokenizer=wp)
    b, text = Bundle.load(tmp_path), "한국의 역사"
    ids = encode_prompt(b, text, 12).ids
    assert wp.decode(ids) == text
    joined = 0
    for kw in [{}] + [dict(do_sample=True, seed=seed) for seed in range(4)]:
        [c] = complete(b, text, max_new_tokens=12, **kw)
        new = taesan.generate(b.model, [ids], max_new_tokens=12, eos_token_id=b.stop_ids, **kw)[0, len(ids):].tolist()
        new = [i for i in new if i not in b.stop_ids]
        assert c.shown == text + c.text == wp.decode(ids + new) and "##" not in c.shown, kw
        joined += wp.id_to_token(new[0]).startswith("##") if new else 0
    assert joined > 0  # some completion did start with a continuation piece


def test_the_cli_prints_and_the_server_streams_the_joined_text(parrots, capsys):
    d = str(parrots["cont"])
    assert cli_main(["generate", "--model", d, "--prompt", PROMPT, "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out == PROMPT + "의의의\n"
    assert cli_main(["generate", "--model", d, "--prompt", PROMPT, "--max-new-tokens", "3", "--beams", "2"]) == 0
    assert capsys.readouterr().out == f"[1] {PROMPT}의의의\n"
    pytest.importorskip("fastapi", reason="the web extra (fastapi, uvicorn) is not installed")
    from fastapi.testclient import TestClient

    from taesan.serve import ServeConfig, create_app

    client = TestClient(create_app({"wp": d}, ServeConfig(demo_tokenizers=False)))
    r = client.post("/api/generate", json={"model": "wp", "prompt": PROMPT, "max_new_tokens": 3})
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert "".join(line.get("text", "") for line in lines) == "의의의" and lines[-1]["done"]


def test_a_generation_task_predicts_the_text_after_its_prompt(parrots, wp, tmp_path, capsys):
    """A fine-tuned generation task (taesan predict) cuts its answer the same way; its separator (" ") still goes."""
    task = GenerationTask(GenerationConfig(max_length=32, max_new_tokens=3), tokenizer=wp)
    cont, word = Bundle.load(parrots["cont"]).model, Bundle.load(parrots["word"]).model
    assert task.predict(cont, [PROMPT, "한국의 역사"]) == [{"text": "의의의"}] * 2
    assert task.predict(word, [PROMPT]) == [{"text": "역사 역사 역사"}]  # " 역사..." less the separator
    cont.save(tmp_path, tokenizer=wp)
    task.save(tmp_path)
    assert cli_main(["predict", "--model", str(tmp_path), "--json", PROMPT]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "의의의"
