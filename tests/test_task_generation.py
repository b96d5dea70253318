"""Generation fine-tuning: the target-only loss mask position by position, truncation, a GPT learning
prompt -> target pairs with finetune(), predict through taesan.generate, save/load, the reader's errors."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from taesan.errors import TaesanError
from taesan.decoding import generate
from taesan.models import create
from taesan.objectives import IGNORE_INDEX, shift_for_next_token
from taesan.tasks import TASKS, task_class
from taesan.tasks.generation import GenerationConfig, GenerationTask
from taesan.tasks.readers.generation import GenerationExample as Ex
from taesan.tasks.readers.generation import read_generation
from taesan.tokenizers import WordTokenizer
from taesan.train import TrainConfig
from taesan.tuning.finetune import finetune, load_finetuned

WORDS = "어제 카페 갔었어 오늘 학교 갔어 티끌 모아 태산 내일 영화 볼래 비 온다 우산 챙겨".split()
PAIRS = [Ex("어제 카페", "갔었어"), Ex("티끌 모아", "태산"), Ex("비 온다", "우산 챙겨"), Ex("", "내일 영화 볼래")]


def word_tokenizer() -> WordTokenizer:
    specials = ["[PAD]", "[UNK]", "<|endoftext|>"]
    return WordTokenizer({w: i for i, w in enumerate(specials + WORDS)}, special_tokens=specials)


TOK = word_tokenizer()
PAD, EOS = 0, 2
ID = {w: TOK.vocab[w] for w in WORDS}


def tiny_gpt():
    return create("gpt-tiny", vocab_size=TOK.vocab_size, n_positions=32, d_model=32, n_layers=2, n_heads=2,
                  dropout=0.0, attn_dropout=0.0)


def make_task(**changes) -> GenerationTask:
    return GenerationTask(GenerationConfig(max_length=16, max_new_tokens=6, **changes), TOK)


# ---- the loss mask ----------------------------------------------------------------------------------------


def test_encode_labels_only_the_target_and_end_of_text():
    [f] = make_task().encode(Ex("어제 카페", "갔었어"))
    # ids: 어제 카페 갔었어 eos; the model reads all but the last, position i is labelled with ids[i + 1]
    assert f["input_ids"] == [ID["어제"], ID["카페"], ID["갔었어"]]
    assert f["labels"] == [IGNORE_INDEX, ID["갔었어"], EOS]


def test_empty_prompt_starts_from_end_of_text():
    [f] = make_task().encode(Ex("", "내일 영화"))
    assert f["input_ids"] == [EOS, ID["내일"], ID["영화"]]
    assert f["labels"] == [ID["내일"], ID["영화"], EOS]


def test_labels_agree_with_the_causal_shift_where_the_target_is():
    task = make_task()
    [f] = task.encode(Ex("티끌 모아", "태산 비"))
    full = torch.tensor([f["input_ids"] + [f["labels"][-1]]])
    _, _, causal = shift_for_next_token(full)
    expected = causal[0].tolist()
    expected[:1] = [IGNORE_INDEX]  # the one position whose next token is still prompt (모아)
    assert f["labels"] == expected


def test_truncation_keeps_the_prompt_end_and_drops_end_of_text_of_a_cut_target():
    task = GenerationTask(GenerationConfig(max_length=6), TOK)
    [f] = task.encode(Ex("어제 카페 오늘 학교 티끌 모아", "비 온다 우산 챙겨"))
    # at most half of 6 for the prompt (its last 3 tokens), then 3 target tokens and no room for eos
    assert f["input_ids"] == [ID["학교"], ID["티끌"], ID["모아"], ID["비"], ID["온다"]]
    assert f["labels"] == [IGNORE_INDEX, IGNORE_INDEX, ID["비"], ID["온다"], ID["우산"]]
    [g] = task.encode(Ex("어제 카페 오늘 학교 티끌", "비"))  # a short target lends its room to the prompt
    assert g["input_ids"] == [ID["카페"], ID["오늘"], ID["학교"], ID["티끌"], ID["비"]]
    assert g["labels"] == [IGNORE_INDEX] * 3 + [ID["비"], EOS]


def test_only_target_positions_count_in_the_loss():
    task = make_task()
    batch = task.collate(task.encode(Ex("어제 카페", "갔었어")) + task.encode(Ex("티끌", "모아 태산 비")))
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, ID["갔었어"], EOS, IGNORE_INDEX],  # right padding: mask 0, label -100
        [ID["모아"], ID["태산"], ID["비"], EOS],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    inputs, labels = task.prepare(batch)
    assert set(inputs) == {"input_ids", "attention_mask"}
    logits = torch.randn(2, 4, TOK.vocab_size, requires_grad=True)
    loss = task.loss(logits, labels)
    counted = [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
    by_hand = torch.stack([-F.log_softmax(logits[b, t], -1)[labels[b, t]] for b, t in counted]).mean()
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    touched = {(b, t) for b in range(2) for t in range(4) if logits.grad[b, t].abs().sum() > 0}
    assert touched == set(counted)


def test_loss_equals_huggingface_gpt2_with_prompt_labels_masked(tmp_path):
    """HF's recipe (labels = input ids, -100 on prompt and padding, shifted inside the model) gives the same loss."""
    transformers = pytest.importorskip("transformers")
    from taesan import models as interop

    task, model = make_task(), tiny_gpt().eval()
    examples = [Ex("어제 카페", "갔었어"), Ex("티끌", "모아 태산 비"), Ex("", "내일 영화 볼래")]
    inputs, labels = task.prepare(task.collate([f for ex in examples for f in task.encode(ex)]))
    with torch.no_grad():
        ours = task.loss(model(**inputs), labels)
    interop.to_hf(model, tmp_path / "hf")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    rows = [task.prompt_ids(ex.prompt) + task.target_ids(ex) + [EOS] for ex in examples]
    prompt_lengths = [len(task.prompt_ids(ex.prompt)) for ex in examples]
    T = max(map(len, rows))
    ids = torch.tensor([r + [PAD] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    hf_labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    for row, n in enumerate(prompt_lengths):
        hf_labels[row, :n] = IGNORE_INDEX
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, labels=hf_labels).loss
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# ---- training, prediction, save/load ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    task, model = make_task(), tiny_gpt()
    before = task.evaluate(model, PAIRS)
    config = TrainConfig(max_steps=40, lr=5e-3, warmup=2, eval_every=0, save_every=0, progress=False)
    result = finetune(task, model, PAIRS, PAIRS, out, config, batch_size=4, device="cpu")
    return before, result, task, out


def test_finetune_loss_falls_and_the_model_writes_the_targets(trained):
    before, result, task, _ = trained
    assert result.metrics["loss"] < 0.3 * before["loss"]
    assert result.metrics["perplexity"] == pytest.approx(torch.tensor(result.metrics["loss"]).exp().item(), rel=1e-5)
    assert result.metrics["tokens"] == 2 + 2 + 3 + 4  # target tokens + end-of-text, prompts not counted
    preds = task.predict(result.model, [p.prompt for p in PAIRS])
    assert preds == [{"text": p.target} for p in PAIRS]


def test_predict_is_greedy_generate_until_end_of_text(trained):
    _, result, task, _ = trained
    model = result.model
    prompts = ["어제 카페", "비", "티끌 모아 태산 어제"]
    preds = task.predict(model, prompts, batch_size=2)  # mixed lengths: left padding inside a batch
    for prompt, pred in zip(prompts, preds):
        ids = TOK.encode(prompt, add_special_tokens=False).ids
        out = generate(model, torch.tensor([ids]), max_new_tokens=6, eos_token_id=EOS)[0, len(ids):].tolist()
        new = out[: out.index(EOS)] if EOS in out else out
        assert pred == {"text": TOK.decode(new)}


def test_predict_reads_the_whole_prompt_when_max_new_tokens_fills_the_positions(trained):
    """max_new_tokens 64 on a 32-position GPT: predict kept the prompt's last 32 - 31 = 1 token ("모아" of "티끌 모아")
    and wrote from it, where generate read the whole prompt. The prompt now keeps up to half the positions, and
    the continuation gets what is left."""
    _, result, _, _ = trained
    long_task = GenerationTask(GenerationConfig(max_length=16, max_new_tokens=64), TOK)
    prompts = ["티끌 모아", "어제 카페"]
    assert long_task.predict(result.model, prompts) == [{"text": "태산"}, {"text": "갔었어"}]
    ids = TOK.encode("티끌 모아 " + " ".join(WORDS * 4), add_special_tokens=False).ids  # 74 words: longer than 32
    last = TOK.decode(ids[-16:])  # what a too-long prompt keeps: its last half of the positions
    too_long = long_task.predict(result.model, [TOK.decode(ids)])
    assert too_long == long_task.predict(result.model, [last])


def test_save_and_load_round_trip(trained):
    _, result, task, out = trained
    model, loaded = load_finetuned(out)
    assert isinstance(loaded, GenerationTask) and loaded.config == task.config
    assert json.loads((out / "task.json").read_text())["task"] == "generation"
    prompts = [p.prompt for p in PAIRS]
    assert loaded.predict(model, prompts) == task.predict(result.model, prompts)
    assert loaded.evaluate(model, PAIRS) == pytest.approx(task.evaluate(result.model, PAIRS))


def test_sampling_settings_reach_generate(trained):
    _, result, task, _ = trained
    sampler = GenerationTask(GenerationConfig(max_new_tokens=4, do_sample=True, temperature=5.0, seed=3), TOK)
    a, b = sampler.predict(result.model, ["어제"] * 3), sampler.predict(result.model, ["어제"] * 3)
    assert a == b  # seeded
    assert len({p["text"] for p in a}) > 1  # a hot temperature makes rows differ


def test_registered_and_model_checks():
    assert task_class("generation") is GenerationTask and TASKS["generation"].endswith(":GenerationTask")
    task = make_task()
    with pytest.raises(TaesanError, match="fine-tunes a GPT or an encoder-decoder"):
        task.build_model(create("bert-tiny"))
    with pytest.raises(TaesanError, match="vocab_size"):
        task.build_model(create("gpt-tiny", vocab_size=5, d_model=32, n_layers=1, n_heads=2))
    small = create("gpt-tiny", vocab_size=TOK.vocab_size, n_positions=8, d_model=32, n_layers=1, n_heads=2)
    task.build_model(small)
    assert task.config.max_length == 9  # the model reads max_length - 1 tokens
    with pytest.raises(TaesanError, match="end-of-text"):
        GenerationTask(GenerationConfig(), WordTokenizer({"[PAD]": 0, "[UNK]": 1, "a": 2})).encode(Ex("", "a"))


# ---- the reader -------------------------------------------------------------------------------------------


def test_reader_formats(tmp_path):
    (tmp_path / "a.tsv").write_text("prompt\ttarget\n어제 카페\t갔었어\n\n티끌 모아\t태산\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"prompt": "어제 카페", "target": "갔었어"}\n{"target": "태산"}\n', encoding="utf-8")
    (tmp_path / "a.txt").write_text("어제 카페 갔었어\n\n티끌 모아 태산\r\n", encoding="utf-8")
    assert read_generation(tmp_path / "a.tsv") == [Ex("어제 카페", "갔었어"), Ex("티끌 모아", "태산")]
    assert read_generation(tmp_path / "a.jsonl") == [Ex("어제 카페", "갔었어"), Ex("", "태산")]
    assert read_generation(tmp_path / "a.txt") == [Ex("", "어제 카페 갔었어"), Ex("", "티끌 모아 태산")]
    (tmp_path / "a.json").write_text('[{"prompt": "어제 카페", "target": "갔었어"}, {"target": "태산"}]', encoding="utf-8")
    assert read_generation(tmp_path / "a.json") == [Ex("어제 카페", "갔었어"), Ex("", "태산")]
    (tmp_path / "b.tsv").write_text("q\ta\n질문\t답\n", encoding="utf-8")
    task = GenerationTask(GenerationConfig(prompt_column="q", target_column="a"), TOK)
    assert task.read(tmp_path / "b.tsv") == [Ex("질문", "답")]


@pytest.mark.parametrize("name, text, message", [
    ("bad.jsonl", '{"prompt": "a", "target": "b"}\n{"prompt": "a"\n', r"bad\.jsonl, line 2: not valid JSON"),
    ("key.jsonl", '{"prompt": "a", "target": "b"}\n{"prompt": "a"}\n', r"key\.jsonl, line 2: missing key 'target'"),
    ("type.jsonl", '{"prompt": "a", "target": 3}\n', r"type\.jsonl, line 1: 'target' must be a string"),
    ("list.jsonl", '["a", "b"]\n', r"list\.jsonl, line 1: expected a JSON object"),
    ("item.json", '[{"target": "b"},\n {"prompt": "a"}]', r"item\.json, line 2: missing key 'target'"),
    ("wrapped.json", '{"data": [{"target": "b"}, {"prompt": "a"}]}', r"wrapped\.json, item 2: missing key 'target'"),
    ("broken.json", '[{"target": "b"},\n', r"broken\.json, line 2: not valid JSON"),
    ("dict.json", '{"target": "b"}', r"dict\.json: expected a JSON list"),
    ("col.tsv", "prompt\tanswer\na\tb\n", r"col\.tsv, line 1: missing column\(s\) target"),
    ("short.tsv", "prompt\ttarget\na\tb\nc\n", r"short\.tsv, line 3: expected 2 tab-separated fields"),
])
def test_reader_errors_name_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(TaesanError, match=message):
        read_generation(tmp_path / name)


def test_reader_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(TaesanError, match="no such file"):
        read_generation(tmp_path / "nope.tsv")
    (tmp_path / "latin.txt").write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(TaesanError, match=r"latin\.txt, line 2: not UTF-8"):
        read_generation(tmp_path / "latin.txt")


# ---- real data --------------------------------------------------------------------------------------------


def test_real_reviews_fine_tune_smoke(shared_data, tmp_path):
    """Unconditional fine-tuning on NSMC reviews (plain text: each line a target), byte-level BPE."""
    from taesan.tokenizers import BPETokenizer

    examples = read_generation(shared_data / "corpus" / "nsmc_raw_reviews.txt")
    assert len(examples) == 30000 and all(ex.prompt == "" and ex.target for ex in examples[:100])
    tok = BPETokenizer.train([ex.target for ex in examples[:300]], vocab_size=400, special_tokens=["<|endoftext|>"])
    task = GenerationTask(GenerationConfig(max_length=24, max_new_tokens=5), tok)
    model = create("gpt-tiny", vocab_size=tok.vocab_size, n_positions=32, d_model=32, n_layers=1, n_heads=2)
    config = TrainConfig(max_steps=3, lr=1e-3, warmup=1, eval_every=0, save_every=0, progress=False)
    result = finetune(task, model, examples[:32], examples[32:40], tmp_path, config, batch_size=8, device="cpu")
    assert set(result.metrics) >= {"loss", "perplexity", "accuracy"} and result.metrics["loss"] > 0
    [pred] = load_finetuned(tmp_path)[1].predict(result.model, ["이 영화"])
    assert isinstance(pred["text"], str)


def test_cli_finetune_evaluate_predict(tmp_path, capsys):
    """taesan finetune --task generation on a JSONL file from a preset; evaluate prints JSON; predict --json."""
    from taesan.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "target": p.target}, ensure_ascii=False) + "\n" for p in PAIRS),
                    encoding="utf-8")
    TOK.save(tmp_path / "tok.json")
    out = tmp_path / "out"
    code = main(["finetune", "--task", "generation", "--model", "gpt-tiny", "--tokenizer", str(tmp_path / "tok.json"),
                 "--train", str(data), "--valid", str(data), "--out", str(out), "--max-steps", "2", "--no-progress"])
    assert code == 0 and json.loads((out / "task.json").read_text())["task"] == "generation"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(data)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["tokens"] == 11 and scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
    assert main(["predict", "--model", str(out), "--json", "어제 카페"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["input"] == "어제 카페" and isinstance(line["text"], str)
    assert main(["evaluate", "--model", str(out), "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_parse_input_keeps_an_empty_prompt_while_other_tasks_refuse_empty_text():
    """Generation may start from nothing (unconditional); a classifier given nothing is a user error."""
    from taesan.errors import TaesanError
    from taesan.tasks import task_class

    assert task_class("generation")(task_class("generation").config_class(), None).parse_input("") == ""
    classifier = task_class("classification")(task_class("classification").config_class(), None)
    with pytest.raises(TaesanError, match="empty"):
        classifier.parse_input("  ")
    assert classifier.parse_input("좋다") == "좋다"


def test_evaluate_reports_and_warns_when_nothing_is_written(trained, tmp_path, capsys):
    """A GPT that ends every text at once: a fine-looking loss, no text. evaluate says so."""
    from taesan.cli import main

    model, task = load_finetuned(trained[3])
    assert task.evaluate(model, PAIRS)["empty_outputs"] < 0.5
    with torch.no_grad():  # the final norm outputs the end-of-text embedding, scaled up: its logit always wins
        model.tok_emb.weight[task.eos_id] = 5.0
        model.norm.weight.zero_()
        model.norm.bias.copy_(model.tok_emb.weight[task.eos_id])
    scores = task.evaluate(model, PAIRS)
    assert scores["empty_outputs"] == 1.0 and scores["outputs_checked"] == len(PAIRS)
    mute = tmp_path / "mute"
    model.save(mute, task.tokenizer)
    task.save(mute)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "target": p.target}, ensure_ascii=False) + "\n"
                            for p in PAIRS), encoding="utf-8")
    assert main(["evaluate", "--model", str(mute), "--data", str(data)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: 100% of the {len(PAIRS)} checked outputs are empty or only whitespace") and err.count("warning") == 1
