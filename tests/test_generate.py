"""taesan.generate against HuggingFace `generate` (tiny random GPT-2 / Marian / BART from a config, no download),
against a naive uncached loop, and on its own promises: batching, seeds, streaming, stop tokens and strings, the CLI.

Not the logits processors one by one: that is tests/test_sampling.py.
"""
import re
from collections import Counter

import numpy as np
import pytest
import torch

import taesan
from taesan.cli import main as cli_main
from taesan.errors import TaesanError
from taesan.decoding import generate

transformers = pytest.importorskip("transformers")

V = 101
PAD = 100  # a pad id no stop token shares, so HF's and our fill values agree


def _randomise(model, std):
    """Every weight random (LayerNorm gains around 1), large enough that greedy outputs vary from token to token."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name and not p.requires_grad:  # Marian's fixed sinusoidal table
                continue
            is_norm = name.endswith("weight") and ("ln" in name or "layer_norm" in name or "layernorm" in name)
            p.copy_(1 + 0.1 * torch.randn_like(p) if is_norm else std * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """(HF GPT2LMHeadModel, the same weights as a taesan GPT)."""
    torch.manual_seed(1)
    config = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    hf = _randomise(transformers.GPT2LMHeadModel(config), 0.3)
    d = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(d)
    return hf, taesan.load(d)


def _prompts(B=3, T=6, seed=0):
    return torch.randint(1, V - 1, (B, T), generator=torch.Generator().manual_seed(seed))


def _hf(hf, ids, **kw):
    kw.setdefault("pad_token_id", PAD)
    kw.setdefault("eos_token_id", None)
    with torch.no_grad():
        return hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)


def _frequent_tokens(model, ids, n=2, steps=12):
    """The tokens greedy decoding emits most: as stop tokens they are really hit, so stopping is exercised."""
    out = generate(model, ids, max_new_tokens=steps, eos_token_id=[])
    return [t for t, _ in Counter(out[:, ids.shape[1]:].flatten().tolist()).most_common(n)]


# ---- parity with HuggingFace ---------------------------------------------------------------------------------


def test_greedy_equals_hf(gpt):
    hf, model = gpt
    ids = _prompts()
    ours = generate(model, ids, max_new_tokens=15, eos_token_id=[])
    assert ours.tolist() == _hf(hf, ids, max_new_tokens=15).tolist()
    assert len(set(ours[:, 6:].flatten().tolist())) > 4  # not one repeated token: the test can tell models apart


def test_greedy_with_stop_token_equals_hf(gpt):
    hf, model = gpt
    ids = _prompts()
    eos = _frequent_tokens(model, ids, 1)[0]
    ours = generate(model, ids, max_new_tokens=15, eos_token_id=eos, pad_token_id=PAD)
    assert ours.tolist() == _hf(hf, ids, max_new_tokens=15, eos_token_id=eos).tolist()
    assert (ours == PAD).any()  # a row stopped before another


@pytest.mark.parametrize("settings", [
    dict(repetition_penalty=1.5),
    dict(repetition_penalty=0.7),
    dict(no_repeat_ngram_size=2),
    dict(no_repeat_ngram_size=3, repetition_penalty=1.3),
])
def test_penalties_equal_hf(gpt, settings):
    hf, model = gpt
    ids = _prompts()
    plain = generate(model, ids, max_new_tokens=15, eos_token_id=[])
    ours = generate(model, ids, max_new_tokens=15, eos_token_id=[], **settings)
    assert ours.tolist() == _hf(hf, ids, max_new_tokens=15, **settings).tolist()
    assert ours.tolist() != plain.tolist()  # the setting changed something


def test_min_new_tokens_equals_hf_and_suppresses_eos(gpt):
    hf, model = gpt
    ids = _prompts()
    eos = _frequent_tokens(model, ids, 1)[0]
    ours = generate(model, ids, max_new_tokens=12, min_new_tokens=8, eos_token_id=eos, pad_token_id=PAD)
    assert ours.tolist() == _hf(hf, ids, max_new_tokens=12, min_new_tokens=8, eos_token_id=eos).tolist()
    assert not (ours[:, 6:14] == eos).any()


@pytest.mark.parametrize("beams, length_penalty, early_stopping, num_return", [
    (3, 1.0, False, 1),
    (4, 0.5, True, 3),
    (4, 2.0, "never", 2),
    (3, -1.0, False, 2),
    (4, 1.0, True, 4),
])
def test_beam_search_equals_hf(gpt, beams, length_penalty, early_stopping, num_return):
    hf, model = gpt
    ids = _prompts(B=2)
    eos = _frequent_tokens(model, ids, 2)
    settings = dict(num_beams=beams, length_penalty=length_penalty, early_stopping=early_stopping, num_return_sequences=num_return)
    for stop in ([], eos):
        ours = generate(model, ids, max_new_tokens=10, eos_token_id=stop, pad_token_id=PAD, **settings)
        theirs = _hf(hf, ids, max_new_tokens=10, eos_token_id=stop or None, **settings)
        assert ours.tolist() == theirs.tolist(), (stop, ours.tolist(), theirs.tolist())
        assert ours.shape[0] == 2 * num_return


def test_beam_search_with_penalties_equals_hf(gpt):
    hf, model = gpt
    ids = _prompts(B=2)
    settings = dict(num_beams=3, repetition_penalty=1.3, no_repeat_ngram_size=2, num_return_sequences=2)
    ours = generate(model, ids, max_new_tokens=10, eos_token_id=[], pad_token_id=PAD, **settings)
    assert ours.tolist() == _hf(hf, ids, max_new_tokens=10, **settings).tolist()


def test_left_padded_batch_equals_hf(gpt):
    hf, model = gpt
    ids = _prompts(B=3, T=7)
    mask = torch.ones_like(ids)
    mask[0, :3], mask[2, :1] = 0, 0
    ids = ids.masked_fill(mask == 0, PAD)
    ours = generate(model, ids, mask, max_new_tokens=10, eos_token_id=[])
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert ours.tolist() == theirs.tolist()


# ---- our own promises -----------------------------------------------------------------------------------------


@torch.no_grad()
def _naive_greedy(model, ids, steps):
    """No cache: the whole sequence through the model at every step."""
    for _ in range(steps):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


def test_stop_between_checks_ends_where_the_last_row_stops(gpt):
    """Stop tokens are looked for every few steps, yet the output ends at the step the last row stopped."""
    _, model = gpt
    ids = _prompts(B=1)
    free = generate(model, ids, max_new_tokens=20, eos_token_id=[])[0, 6:].tolist()
    cut = next(i for i in range(1, 20) if free[i] not in free[:i])  # a token first emitted at step cut (not 8k-1)
    out = generate(model, ids, max_new_tokens=20, eos_token_id=free[cut])
    assert out[0, 6:].tolist() == free[: cut + 1]


def test_pad_after_stop_hand_computed():
    from taesan.decoding.generate import _pad_after_stop

    ids = torch.tensor([[7, 2, 9, 9], [7, 5, 2, 9]])
    assert _pad_after_stop(ids, 1, torch.tensor([2]), 0).tolist() == [[7, 2, 0], [7, 5, 2]]
    assert _pad_after_stop(ids, 1, torch.tensor([5]), 0).tolist() == [[7, 2, 9, 9], [7, 5, 0, 0]]  # row 0 never stops
    assert _pad_after_stop(ids, 1, None, 0).tolist() == ids.tolist()


def test_cached_equals_uncached(gpt):
    _, model = gpt
    ids = _prompts()
    assert generate(model, ids, max_new_tokens=20, eos_token_id=[]).tolist() == _naive_greedy(model, ids, 20).tolist()


def test_left_padded_batch_equals_one_by_one(gpt):
    _, model = gpt
    rows = [[5, 9, 13, 2], [7, 1], [3, 8, 8, 40, 41, 42]]
    T = max(map(len, rows))
    ids = torch.tensor([[PAD] * (T - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    for settings in (dict(), dict(repetition_penalty=1.4, no_repeat_ngram_size=2), dict(num_beams=3)):
        batched = generate(model, ids, mask, max_new_tokens=8, eos_token_id=[], **settings)
        for i, r in enumerate(rows):
            alone = generate(model, torch.tensor([r]), max_new_tokens=8, eos_token_id=[], **settings)
            assert batched[i, T - len(r):].tolist() == alone[0].tolist(), (settings, i)


def test_left_padded_rows_stop_and_pad_independently(gpt):
    _, model = gpt
    ids, mask = torch.tensor([[PAD, PAD, 5, 9], [3, 8, 8, 40]]), torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    eos = _frequent_tokens(model, ids, 1)[0]
    out = generate(model, ids, mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD)
    for i in range(2):
        alone = generate(model, ids[i : i + 1, int((mask[i] == 0).sum()):], max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD)
        new = out[i, 4:].tolist()
        n = alone.shape[1] - (4 - int((mask[i] == 0).sum()))
        assert new[:n] == alone[0, -n:].tolist() and set(new[n:]) <= {PAD}


def test_seed_makes_sampling_reproducible(gpt):
    _, model = gpt
    ids = _prompts()
    kw = dict(max_new_tokens=15, do_sample=True, top_k=20, top_p=0.95, temperature=1.5, eos_token_id=[])
    a = generate(model, ids, seed=7, **kw)
    assert a.tolist() == generate(model, ids, seed=7, **kw).tolist()
    assert a.tolist() == generate(model, ids, seed=torch.Generator().manual_seed(7), **kw).tolist()
    assert a.tolist() != generate(model, ids, seed=8, **kw).tolist()


def test_sampling_with_top_k_1_is_greedy(gpt):
    _, model = gpt
    ids = _prompts()
    greedy = generate(model, ids, max_new_tokens=12, eos_token_id=[])
    assert generate(model, ids, max_new_tokens=12, do_sample=True, top_k=1, seed=3, eos_token_id=[]).tolist() == greedy.tolist()
    assert generate(model, ids, max_new_tokens=12, do_sample=True, top_p=1e-6, seed=3, eos_token_id=[]).tolist() == greedy.tolist()


def test_sampling_follows_the_distribution(gpt):
    """The first sampled token's frequencies over many rows match softmax(logits) (a 4-sigma band)."""
    _, model = gpt
    ids = _prompts(B=1).repeat(4000, 1)
    first = generate(model, ids, max_new_tokens=1, do_sample=True, temperature=2.0, seed=0, eos_token_id=[])[:, -1]
    with torch.no_grad():
        p = (model(ids[:1])[0, -1] / 2.0).softmax(-1)
    freq = torch.bincount(first, minlength=V).double() / len(first)
    tolerance = 4 * (p.double() * (1 - p.double()) / len(first)).sqrt() + 1e-3
    assert ((freq - p.double()).abs() <= tolerance).all()


def test_num_return_sequences_samples_distinct_rows(gpt):
    _, model = gpt
    ids = _prompts(B=2)
    out = generate(model, ids, max_new_tokens=10, do_sample=True, num_return_sequences=3, seed=1, eos_token_id=[])
    assert out.shape == (6, 16)
    assert (out[:3, :6] == ids[0]).all() and (out[3:, :6] == ids[1]).all()
    assert len({tuple(r) for r in out[:3].tolist()}) > 1


def test_stream_yields_the_same_tokens(gpt):
    _, model = gpt
    ids = _prompts()
    eos = _frequent_tokens(model, ids, 1)[0]
    for kw in (dict(), dict(do_sample=True, top_p=0.9, seed=4)):
        full = generate(model, ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD, **kw)
        steps = list(generate(model, ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD, stream=True, **kw))
        assert all(s.shape == (3,) for s in steps)
        assert torch.stack(steps, 1).tolist() == full[:, 6:].tolist()
        assert not torch.is_inference(steps[0])  # usable outside inference mode


def test_stop_tokens_stop_every_row(gpt):
    _, model = gpt
    ids = _prompts()
    free = generate(model, ids, max_new_tokens=20, eos_token_id=[])[:, 6:]
    stops = _frequent_tokens(model, ids, 2)
    out = generate(model, ids, max_new_tokens=20, eos_token_id=stops, pad_token_id=PAD)[:, 6:]
    for row, ref in zip(out.tolist(), free.tolist()):
        cut = next((i for i, t in enumerate(ref) if t in stops), None)
        if cut is None:
            assert row == ref
        else:
            assert row[: cut + 1] == ref[: cut + 1] and set(row[cut + 1 :]) <= {PAD}
    assert out.shape[1] < 20 or (out == PAD).any()


def test_stop_strings_stop_with_a_decode_callback(gpt):
    _, model = gpt
    ids = _prompts(B=1)
    free = generate(model, ids, max_new_tokens=20, eos_token_id=[])[0, 6:].tolist()
    target = free[5]
    first = free.index(target)
    decode = lambda toks: " ".join(f"<{t}>" for t in toks)  # noqa: E731 -- a toy detokenizer
    out = generate(model, ids, max_new_tokens=20, eos_token_id=[], stop_strings=[f"<{target}>", "never there"], decode=decode)
    assert out[0, 6:].tolist() == free[: first + 1]


def test_bad_settings_raise_one_line_errors(gpt):
    _, model = gpt
    ids = _prompts()
    bad = [
        dict(max_new_tokens=0), dict(temperature=0.0), dict(top_p=1.5), dict(num_beams=2, num_return_sequences=3),
        dict(num_return_sequences=2), dict(num_beams=2, do_sample=True), dict(stop_strings=["x"]),
        dict(early_stopping="sometimes"), dict(num_beams=2, stream=True), dict(max_new_tokens=100),
        dict(min_new_tokens=6, max_new_tokens=5), dict(num_beams=2, length_penalty=float("nan")),
        dict(stop_strings=[""], decode=str),
    ]
    for kw in bad:
        with pytest.raises(TaesanError) as e:
            generate(model, ids, **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(TaesanError, match="left padding"):
        generate(model, ids, torch.tensor([[1] * 5 + [0]] * 3))



def test_wrong_inputs_are_one_line_errors_not_torch_internals(gpt):
    """Notebook slips that ended in a ValueError / IndexError / AttributeError from deep inside torch."""
    _, model = gpt
    vocab = model.config.vocab_size
    cases = [((model, "티끌 모아"), "input_ids must be token ids, not text"),
             ((model, [[vocab + 7]]), f"id {vocab + 7}, outside the model's {vocab} embeddings"),
             ((model, [[1, 2, 3], [4]]), "rows have different lengths ([1, 3]): pad them on the left"),
             ((model, [[1.5, 2.0]]), "must be whole numbers"),  # was cut to [1, 2] without a word
             (("gpt", [[1, 2]]), "generate needs a model (taesan.load(DIR)), got str"),
             ((taesan.create("bert-mlm", n_layers=1, d_model=32, n_heads=2, d_ff=64, vocab_size=50), [[1, 2]]),
              "does not generate: generate continues a GPT or an encoder-decoder")]
    for args, message in cases:
        with pytest.raises(TaesanError, match=re.escape(message)):
            generate(*args, max_new_tokens=2)
    assert generate(model, np.array([[1, 2, 3]]), max_new_tokens=2).shape == (1, 5)  # numpy ids are ids


def test_plain_lists_are_accepted(gpt):
    _, model = gpt
    ids = _prompts(B=1)
    assert generate(model, ids[0].tolist(), max_new_tokens=5).tolist() == generate(model, ids, max_new_tokens=5).tolist()


# ---- encoder-decoder ------------------------------------------------------------------------------------------


def test_seq2seq_cached_equals_uncached():
    """Greedy and sampled (same seed) decoding with the cache equal a loop re-running encoder and decoder on everything."""
    torch.manual_seed(0)
    model = _randomise(taesan.create("transformer-tiny", norm="pre", dropout=0.0), 0.3)
    src = torch.randint(4, 500, (3, 9), generator=torch.Generator().manual_seed(0))
    src_mask = torch.ones_like(src)
    src_mask[1, 6:] = 0
    for sample in (False, True):
        ours = generate(model, src, src_mask, max_new_tokens=10, eos_token_id=[], do_sample=sample, seed=5)
        g = torch.Generator().manual_seed(5)
        tgt = torch.full((3, 1), model.config.decoder_start_token_id)
        with torch.no_grad():
            for _ in range(10):
                logits = model(src, tgt, src_mask)[:, -1]
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=g) if sample else logits.argmax(-1, keepdim=True)
                tgt = torch.cat([tgt, nxt], 1)
        assert ours.tolist() == tgt.tolist()
    assert len(set(ours[:, 1:].flatten().tolist())) > 10  # sampled: every step tested a different distribution


SEQ2SEQ = {
    "marian": ("MarianConfig", "MarianMTModel", dict(pad_token_id=60, decoder_start_token_id=60, eos_token_id=0)),
    "bart": ("BartConfig", "BartForConditionalGeneration", dict()),
}


@pytest.fixture(scope="module", params=list(SEQ2SEQ))
def seq2seq(request, tmp_path_factory):
    config_cls, lm_cls, fields = SEQ2SEQ[request.param]
    sizes = dict(vocab_size=61, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=40, forced_eos_token_id=None, forced_bos_token_id=None)
    torch.manual_seed(3)
    hf = getattr(transformers, lm_cls)(getattr(transformers, config_cls)(**sizes, **fields)).eval()
    with torch.no_grad():  # small weights keep attention soft, so greedy decoding does not collapse to one token
        for name, p in hf.named_parameters():
            if p.requires_grad:
                p.copy_(1 + 0.1 * torch.randn_like(p) if "layer_norm" in name or "layernorm" in name else 0.05 * torch.randn_like(p))
        hf.final_logits_bias.normal_(std=0.1)
    d = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(d)
    return hf, taesan.load(d)


def test_seq2seq_greedy_and_beams_equal_hf(seq2seq):
    hf, model = seq2seq
    src = torch.randint(3, 58, (2, 8), generator=torch.Generator().manual_seed(5))
    src_mask = torch.ones_like(src)
    src_mask[1, 5:] = 0
    eos = model.config.eos_token_id
    for settings in (dict(), dict(num_beams=3, num_return_sequences=2, length_penalty=0.8), dict(no_repeat_ngram_size=2, repetition_penalty=1.2)):
        ours = generate(model, src, src_mask, max_new_tokens=8, min_new_tokens=3, **settings)
        with torch.no_grad():
            theirs = hf.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=8, min_new_tokens=3, do_sample=False,
                                 eos_token_id=eos, pad_token_id=model.config.pad_token_id, **{"no_repeat_ngram_size": 0, **settings})
        assert ours.tolist() == theirs.tolist(), settings
        assert (ours[:, 0] == model.config.decoder_start_token_id).all()
    assert len(set(ours[:, 1:].flatten().tolist())) > 3  # the n-gram ban forces variety: distinct steps agree


# ---- the command line -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny taesan GPT with a character tokenizer over a few Korean sentences."""
    from taesan.tokenizers import CharTokenizer

    text = ["티끌 모아 태산", "어제 카페 갔었어", "가는 말이 고와야 오는 말이 곱다", "<|endoftext|>"]
    tok = CharTokenizer.train(text, vocab_size=200, special_tokens=["[UNK]", "<|endoftext|>"])
    torch.manual_seed(0)
    model = taesan.create("gpt-tiny", vocab_size=tok.vocab_size, n_positions=64, n_layers=1, d_model=32, n_heads=2)
    _randomise(model, 0.5)
    d = tmp_path_factory.mktemp("ckpt")
    model.save(d, tokenizer=tok)
    return d, tok, model.eval()


def test_cli_streams_the_greedy_continuation(checkpoint, capsys):
    d, tok, model = checkpoint
    assert cli_main(["generate", "--model", str(d), "--prompt", "티끌 모아", "--max-new-tokens", "10"]) == 0
    printed = capsys.readouterr().out
    stop = tok.vocab["<|endoftext|>"]
    ids = [stop] + tok.encode("티끌 모아", add_special_tokens=False).ids
    out = generate(model, torch.tensor([ids]), max_new_tokens=10, eos_token_id=stop)
    assert printed == "티끌 모아" + tok.decode([i for i in out[0, len(ids):].tolist() if i != stop]) + "\n"


def test_cli_prompt_file_sampling_and_beams(checkpoint, capsys, tmp_path):
    d, _, _ = checkpoint
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("티끌 모아\n어제 카페\n", encoding="utf-8")
    args = ["generate", "--model", str(d), "--prompt-file", str(prompts), "--max-new-tokens", "6"]
    assert cli_main(args + ["--top-k", "5", "--temperature", "0.8", "--seed", "1", "--num-return", "2"]) == 0
    first = capsys.readouterr().out
    assert first.count("[1] 티끌 모아") == 1 and first.count("[2] 어제 카페") == 1
    assert cli_main(args + ["--top-k", "5", "--temperature", "0.8", "--seed", "1", "--num-return", "2"]) == 0
    assert capsys.readouterr().out == first  # the seed reproduces
    assert cli_main(args + ["--beams", "3", "--num-return", "2", "--no-repeat-ngram", "2"]) == 0
    assert capsys.readouterr().out.count("[2] ") == 2
    # a file saved by Windows' Notepad: a BOM and CRLF; the BOM was sent to the model as the first prompt's start
    prompts.write_bytes("\ufeff티끌 모아\r\n어제 카페\r\n".encode("utf-8"))
    assert cli_main(args + ["--top-k", "5", "--temperature", "0.8", "--seed", "1", "--num-return", "2"]) == 0
    assert capsys.readouterr().out == first


def test_cli_writes_past_the_positions_in_a_sliding_window_as_nanogpt_samples(checkpoint, capsys):
    """prompt + new tokens beyond n_positions (64): each token is predicted from the last 64 ids, as nanoGPT's
    `sample` crops its context; the first ones, within the positions, exactly as without a window."""
    d, tok, model = checkpoint
    assert cli_main(["generate", "--model", str(d), "--prompt", "티끌 모아", "--max-new-tokens", "100",
                     "--precision", "fp32"]) == 0  # fp32: the reference below is fp32 on every CPU kind
    out, err = capsys.readouterr()
    assert "precision: fp32" in err
    ids = [tok.vocab["<|endoftext|>"]] + tok.encode("티끌 모아", add_special_tokens=False).ids
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(100):  # nanoGPT: logits = model(idx[:, -block_size:])[:, -1]; greedy; no stop token
            x = torch.cat([x, model(x[:, -64:])[:, -1].argmax(-1, keepdim=True)], dim=1)
    new = x[0, len(ids):].tolist()
    stop = tok.vocab["<|endoftext|>"]
    new = new[: new.index(stop)] if stop in new else new
    assert out == "티끌 모아" + tok.decode(new) + "\n"
    assert len(ids) + len(new) > 64 + 30  # this model writes no end-of-text here: the window moved 30+ times


@pytest.mark.parametrize("extra, message", [
    (["--prompt", "x", "--beams", "2", "--num-return", "3"], "num_return_sequences"),
    (["--prompt-file", "/nonexistent/prompts.txt"], "prompt file not found"),
    (["--prompt", "x", "--max-new-tokens", "0"], "max_new_tokens"),
    (["--prompt", "x", "--top-p", "1.5"], "top_p"),
])
def test_cli_user_errors_are_one_line(checkpoint, capsys, extra, message):
    d, _, _ = checkpoint
    assert cli_main(["generate", "--model", str(d)] + extra) == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and out == ""  # nothing half-printed


def test_cli_without_tokenizer_says_so(checkpoint, capsys, tmp_path):
    _, _, model = checkpoint
    model.save(tmp_path / "bare")
    assert cli_main(["generate", "--model", str(tmp_path / "bare"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "no tokenizer" in err and err.count("\n") == 1


def test_cli_refuses_models_that_do_not_write_and_tokenizers_too_big(checkpoint, capsys, tmp_path):
    """A masked LM, a tokenizer with ids beyond the model's embeddings, a source longer than a seq2seq's
    positions: one line each (they were tracebacks)."""
    from taesan.tokenizers import CharTokenizer

    d, tok, _ = checkpoint
    bert = taesan.create("bert-tiny", vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, d_ff=64)
    bert.save(tmp_path / "bert", tokenizer=tok)
    big = CharTokenizer.train(["".join(chr(0xAC00 + i) for i in range(60))], vocab_size=500, min_frequency=1)
    big.save(tmp_path / "big.json")
    assert big.vocab_size > tok.vocab_size
    s2s = taesan.create("transformer-tiny", src_vocab_size=tok.vocab_size, n_positions=16, d_model=32, n_heads=2,
                        d_ff=64, n_encoder_layers=1, n_decoder_layers=1)
    s2s.save(tmp_path / "s2s", tokenizer=tok)
    from taesan.tuning.prompt import add_soft_prompt

    classifier = taesan.create("bert-sequence-classification", vocab_size=tok.vocab_size, n_layers=1, d_model=32,
                               n_heads=2, d_ff=64, num_labels=2)
    add_soft_prompt(classifier, 2).save(tmp_path / "soft", tokenizer=tok)  # a prompt-tuned classifier
    cases = [
        (["--model", str(tmp_path / "soft"), "--prompt", "티끌"], "a BertForSequenceClassification does not write text"),
        (["--model", str(tmp_path / "bert"), "--prompt", "티끌"], "does not write text"),
        (["--model", str(d), "--tokenizer", str(tmp_path / "big.json"), "--prompt", "티끌"], "not this model's tokenizer"),
        (["--model", str(tmp_path / "s2s"), "--prompt", "티끌 모아 " * 10], "n_positions=16"),
    ]
    for extra, message in cases:
        assert cli_main(["generate"] + extra) == 2
        out, err = capsys.readouterr()
        assert message in err and err.count("\n") == 1 and out == "", (extra, err)


def test_cli_backward_lm_writes_the_text_before_the_prompt(checkpoint, capsys, tmp_path):
    """A backward LM (training.json says so) continues to the left: the output is new text + the prompt,
    the new tokens being the model's greedy continuation of the reversed prompt, read back in order."""
    import json

    d, tok, model = checkpoint
    back = tmp_path / "back"
    model.save(back, tokenizer=tok)
    stop = tok.vocab["<|endoftext|>"]
    (back / "training.json").write_text(json.dumps({"objective": "backward", "separator_id": stop}), encoding="utf-8")
    assert cli_main(["generate", "--model", str(back), "--prompt", "태산", "--max-new-tokens", "5"]) == 0
    printed = capsys.readouterr().out
    forward = tok.encode(" 태산", add_special_tokens=False).ids
    ids = [stop] + forward[::-1]
    new = generate(model, torch.tensor([ids]), max_new_tokens=5, eos_token_id=stop)[0, len(ids):].tolist()
    new = [i for i in new if i != stop]
    assert printed == tok.decode(new[::-1] + forward).strip() + "\n"
    assert printed.rstrip("\n").endswith("태산") and len(new) > 0


def test_cli_prompt_file_that_is_a_directory_says_so(checkpoint, capsys, tmp_path):
    d, _, _ = checkpoint
    assert cli_main(["generate", "--model", str(d), "--prompt-file", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a directory, not a prompt file" in err and err.count("\n") == 1
