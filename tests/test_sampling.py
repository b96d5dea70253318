"""Logits processors against distributions computed by hand (softmax of [3, 2, 1, 0] and friends), and HF's warpers.

Not the decoding loop: that is tests/test_generate.py.
"""
import math
import random

import pytest
import torch

import taesan
from taesan.decoding import generate
from taesan.decoding.sampling import (
    LogitsProcessor,
    Utf8Guard,
    apply_repetition_penalty,
    apply_temperature,
    ban_repeated_ngrams,
    top_k_filter,
    top_p_filter,
    utf8_tables,
)

# softmax([3, 2, 1, 0]) = [e³, e², e, 1] / (e³ + e² + e + 1) = [20.0855, 7.3891, 2.7183, 1] / 31.1929
LOGITS = torch.tensor([[3.0, 2.0, 1.0, 0.0]])


def probs(logits):
    return logits.softmax(-1)[0].tolist()


def close(a, b):
    assert a == pytest.approx(b, abs=1e-4)


def constant_gpt(logits: list[float]):
    """A GPT whose next-token logits are `logits` at every position: the final norm outputs its bias (weight 0),
    and the tied output matrix is the identity."""
    V = len(logits)
    model = taesan.create("gpt", vocab_size=V, n_positions=8, d_model=V, n_layers=1, n_heads=1)
    with torch.no_grad():
        model.tok_emb.weight.copy_(torch.eye(V))
        model.norm.weight.zero_()
        model.norm.bias.copy_(torch.tensor(logits))
    return model.eval()


def test_softmax_of_the_example_by_hand():
    """generate's sampling draws each token as often as the hand-computed softmax says (and T=2 flattens it)."""
    exp = [math.exp(x) for x in (3, 2, 1, 0)]
    hand = [e / sum(exp) for e in exp]
    close(hand, [0.6439, 0.2369, 0.0871, 0.0321])
    model = constant_gpt([3.0, 2.0, 1.0, 0.0])
    n = 6000
    for temperature, expected in ((1.0, hand), (2.0, [0.4550, 0.2760, 0.1674, 0.1015])):
        out = generate(model, [[0]], max_new_tokens=1, do_sample=True, temperature=temperature, num_return_sequences=n,
                       seed=0, eos_token_id=[])
        freq = (torch.bincount(out[:, -1], minlength=4).float() / n).tolist()
        assert freq == pytest.approx(expected, abs=0.025)  # 3 standard deviations at most ~0.019


def test_top_k_keeps_the_k_best_renormalised():
    # k=2: e³ / (e³ + e²) = 1 / (1 + e⁻¹) = 0.7311, and 1 - 0.7311
    close(probs(top_k_filter(LOGITS, 2)), [0.7311, 0.2689, 0.0, 0.0])
    # k=3: [e³, e², e] / 30.1929
    close(probs(top_k_filter(LOGITS, 3)), [0.6652, 0.2447, 0.0900, 0.0])
    close(probs(top_k_filter(LOGITS, 1)), [1.0, 0.0, 0.0, 0.0])
    assert top_k_filter(LOGITS, 0) is LOGITS and top_k_filter(LOGITS, 4) is LOGITS  # off / everything


def test_top_k_keeps_ties_with_the_kth():
    close(probs(top_k_filter(torch.tensor([[1.0, 1.0, 0.0]]), 1)), [0.5, 0.5, 0.0])


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    # .6439 < .7 <= .6439 + .2369 = .8808: two tokens
    close(probs(top_p_filter(LOGITS, 0.7)), [0.7311, 0.2689, 0.0, 0.0])
    # .8808 < .9 <= .9679: three tokens
    close(probs(top_p_filter(LOGITS, 0.9)), [0.6652, 0.2447, 0.0900, 0.0])
    # the best token alone already reaches .5
    close(probs(top_p_filter(LOGITS, 0.5)), [1.0, 0.0, 0.0, 0.0])
    # even a tiny p keeps the most likely token
    close(probs(top_p_filter(LOGITS, 1e-6)), [1.0, 0.0, 0.0, 0.0])
    assert top_p_filter(LOGITS, 1.0) is LOGITS


def test_top_p_does_not_depend_on_the_order_of_the_vocabulary():
    perm = torch.tensor([2, 0, 3, 1])
    out = top_p_filter(LOGITS[:, perm], 0.7)
    assert torch.isinf(out).tolist() == [[True, False, True, False]]  # tokens holding 1 and 0 dropped


def test_temperature_divides_the_logits():
    # [2, 0] / 2 = [1, 0]: softmax = [e / (e + 1), 1 / (e + 1)]
    close(probs(apply_temperature(torch.tensor([[2.0, 0.0]]), 2.0)), [0.7311, 0.2689])


def test_processor_order_is_temperature_then_top_k_then_top_p():
    # T=2: [1.5, 1, .5, 0] -> probs [.4550, .2760, .1674, .1015]; top_p .7: .4550 + .2760 = .7311 >= .7,
    # two tokens left: [e^1.5, e] / (e^1.5 + e) = sigmoid(.5) = .6225
    proc = LogitsProcessor(do_sample=True, temperature=2.0, top_p=0.7)
    close(probs(proc(LOGITS.clone(), torch.zeros(1, 1, dtype=torch.long), None, 0)), [0.6225, 0.3775, 0.0, 0.0])
    # top_k 3 first ([.6652, .2447, .0900]), then top_p .9: .6652 + .2447 = .9099 >= .9 -> two tokens
    proc = LogitsProcessor(do_sample=True, top_k=3, top_p=0.9)
    close(probs(proc(LOGITS.clone(), torch.zeros(1, 1, dtype=torch.long), None, 0)), [0.7311, 0.2689, 0.0, 0.0])


def test_warpers_are_off_without_sampling_and_nothing_runs_when_all_is_off():
    proc = LogitsProcessor(do_sample=False, temperature=0.5, top_k=1, top_p=0.1)
    assert not proc.active
    scores = LOGITS.clone()
    assert proc(scores, torch.zeros(1, 1, dtype=torch.long), None, 0) is scores


def test_repetition_penalty_divides_positive_and_multiplies_negative_scores():
    out = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[True, True, False]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_repetition_penalty_ignores_padding_and_follows_new_tokens():
    proc = LogitsProcessor(repetition_penalty=2.0)
    tokens = torch.tensor([[0, 0, 3], [1, 2, 3]])
    valid = torch.tensor([[False, False, True], [True, True, True]])
    proc.start(tokens, valid, vocab_size=5)
    assert proc.seen.tolist() == [[False, False, False, True, False], [False, True, True, True, False]]
    proc.update(torch.tensor([4, 4]))
    out = proc(torch.full((2, 5), 2.0), tokens, valid, 1)
    assert out.tolist() == [[2.0, 2.0, 2.0, 1.0, 1.0], [2.0, 1.0, 1.0, 1.0, 1.0]]
    proc.reorder(torch.tensor([1, 1]))
    assert proc.seen[0].tolist() == proc.seen[1].tolist() == [False, True, True, True, True]


def test_no_repeat_ngram_bans_the_completing_tokens():
    scores = ban_repeated_ngrams(torch.zeros(1, 8), torch.tensor([[5, 6, 5]]), 2)  # "5 6" exists, we end in 5
    assert torch.isinf(scores[0]).nonzero().flatten().tolist() == [6]
    scores = ban_repeated_ngrams(torch.zeros(1, 8), torch.tensor([[1, 2, 3, 1, 2, 4, 1, 2]]), 3)  # "1 2 3", "1 2 4"
    assert torch.isinf(scores[0]).nonzero().flatten().tolist() == [3, 4]
    scores = ban_repeated_ngrams(torch.zeros(1, 8), torch.tensor([[1, 2, 3]]), 3)  # nothing repeats yet
    assert not torch.isinf(scores).any()
    scores = ban_repeated_ngrams(torch.zeros(1, 8), torch.tensor([[1, 2]]), 3)  # shorter than n
    assert not torch.isinf(scores).any()


def test_no_repeat_ngram_skips_windows_touching_padding():
    tokens, valid = torch.tensor([[0, 7, 0]]), torch.tensor([[False, True, True]])
    assert torch.isinf(ban_repeated_ngrams(torch.zeros(1, 8), tokens, 2)[0]).nonzero().flatten().tolist() == [7]
    assert not torch.isinf(ban_repeated_ngrams(torch.zeros(1, 8), tokens, 2, valid)).any()


def test_min_new_tokens_suppresses_every_stop_token_until_reached():
    proc = LogitsProcessor(min_new_tokens=2, eos_ids=[1, 3])
    tokens = torch.zeros(1, 1, dtype=torch.long)
    assert torch.isinf(proc(LOGITS.clone(), tokens, None, 1)).tolist() == [[False, True, False, True]]
    assert not torch.isinf(proc(LOGITS.clone(), tokens, None, 2)).any()
    assert not LogitsProcessor(min_new_tokens=2, eos_ids=[]).active  # nothing to suppress


def test_filters_equal_huggingface_warpers_on_random_logits():
    transformers = pytest.importorskip("transformers")
    from transformers.generation.logits_process import (
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    ids = torch.zeros(6, 1, dtype=torch.long)
    for k in (1, 5, 20):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits.clone()))


# ---- whole UTF-8 characters (byte-level tokens) ------------------------------------------------------------------------


def test_utf8_tables_by_hand():
    """Which token may follow a reader owing 0-3 continuation bytes, and what it owes after the token."""
    table = (b"a", "어".encode()[:1], b"\x96\xb4", b"\x96", b"\xb4a\xec", b"\xc0", None)  # EC opens 3 bytes; None: special
    allowed, after = utf8_tables(table, 8)  # id 7: beyond the table, as a special token
    assert allowed.tolist()[:4] == [
        [True, True, False, False, False, False, True, True],  # nothing owed: no stray continuation byte, C0 never
        [False, False, False, True, True, False, False, False],  # one owed: 96 pays it; B4 pays it and "a" EC follows
        [False, False, True, True, False, False, False, False],  # two owed: 96 B4 pays both, 96 one
        [False, False, True, True, False, False, False, False],  # three owed: continuation bytes only
    ]
    assert after[0].tolist()[:2] == [0, 2] and after[2].tolist()[2:4] == [0, 1] and after[1, 4] == 2
    assert after[3, 3] == 2 and after[:, 6].tolist() == [0] * 8


def test_utf8_tables_narrow_the_byte_after_e0_ed_f0_f4():
    """UTF-8 narrows the byte after four lead bytes: ED A0-BF would write a lone surrogate (no UTF-8 text holds one),
    E0 80-9F and F0 80-8F overlong forms, F4 90-BF a code point past U+10FFFF. Such tokens never follow them."""
    conts = [bytes([b]) for b in (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF)]
    for lead, takes in ((0xE0, {0xA0, 0xBF}), (0xED, {0x80, 0x8F, 0x90, 0x9F}), (0xF0, {0x90, 0x9F, 0xA0, 0xBF}),
                        (0xF4, {0x80, 0x8F}), (0xEC, {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF})):
        table = (bytes([lead]), *conts, b"a")
        allowed, after = utf8_tables(table, len(table))
        state = int(after[0, 0])
        assert {c[0] for c, ok in zip(conts, allowed[state, 1:-1].tolist()) if ok} == takes, hex(lead)
        assert not allowed[state, -1]  # "a" may not cut the character short
        # each allowed byte leaves the usual number owed: one fewer than the lead byte asked for
        owed = 1 if lead < 0xF0 else 2
        assert all(int(after[state, 1 + k]) == owed for k, c in enumerate(conts) if c[0] in takes)
    # a token holding the whole surrogate encoding is refused outright; "어" = EC 96 B4 is not
    allowed, _ = utf8_tables((b"\xed\xb1\xb0", "어".encode(), "\U0010ffff".encode(), b"\xf4\x90\x80\x80"), 4)
    assert allowed[0].tolist() == [False, True, True, False]


def test_utf8_guard_masks_tokens_that_cannot_continue():
    table = [b"a", b"\xec", b"\x96\xb4", b"\x96", None, b"\xb4a"]  # token 4 is a special token (end-of-text)
    guard = Utf8Guard(table, 6, torch.device("cpu"))
    guard.start(torch.tensor([[0], [1]]), None)  # row 0 after "a"; row 1 after EC: two bytes owed
    assert guard.state.tolist() == [0, 2]
    allowed = ~torch.isneginf(guard(torch.zeros(2, 6)))
    assert allowed.tolist() == [[True, True, False, False, True, False], [False, False, True, True, False, False]]
    guard.update(torch.tensor([1, 3]))  # row 0 opens a character, row 1 takes one of its two bytes
    assert guard.state.tolist() == [2, 1]
    assert (~torch.isneginf(guard(torch.zeros(2, 6))))[1].tolist() == [False, False, False, True, False, True]
    left = guard(torch.tensor([[0.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, float("-inf")]]))  # nothing allowed is left:
    assert not torch.isneginf(left[1]).all()  # the row keeps its own scores rather than none


def test_the_guard_runs_only_when_sampling():
    table = [b"a", b"\xec", b"\x96"]
    greedy = LogitsProcessor(do_sample=False, token_bytes=table)
    assert not greedy.active and greedy.token_bytes is None  # greedy decoding keeps the model's own choice
    proc = LogitsProcessor(do_sample=True, token_bytes=table)
    assert proc.active and not proc.follows_tokens  # until start() builds the guard
    proc.start(torch.tensor([[1]]), None, 3)
    assert proc.follows_tokens
    assert torch.isneginf(proc(torch.zeros(1, 3), torch.tensor([[1]]), None, 0)).tolist() == [[True, True, False]]


def test_every_path_the_guard_allows_decodes_as_strict_utf8():
    """Random byte tokens (mostly continuation and lead bytes), random walks through what the guard allows: each
    walk that ends between characters is text a UTF-8 decoder takes, with no surrogate, overlong form or stray
    byte."""
    rng = random.Random(0)
    tokens = tuple(bytes(rng.randrange(128, 256) if rng.random() < 0.8 else rng.randrange(128) for _ in range(rng.randrange(1, 4)))
                   for _ in range(500))
    allowed, after = utf8_tables(tokens, len(tokens))
    choices = [torch.nonzero(row).flatten().tolist() for row in allowed]
    finished = 0
    for _ in range(2000):
        state, written = 0, b""
        for _ in range(8):
            token = rng.choice(choices[state])
            written, state = written + tokens[token], int(after[state, token])
        if state == 0:
            written.decode("utf-8")  # strict: raises on anything UTF-8 forbids
            finished += 1
    assert finished > 500
