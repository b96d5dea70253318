"""The public Python API answers as the command line does: `taesan.pipeline(dir)` per task against `taesan predict
--json`, `taesan generate` and `taesan score` on the same checkpoints and inputs; taesan.generate stops at a
pretrained GPT's end-of-text by default; and the README's Python block runs as written."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from playground_models import GPT_LINES, SMALL, build_image_model, build_models

import taesan
from taesan.cli import main as cli_main
from taesan.errors import TaesanError
from taesan.tasks.generation import GenerationConfig, GenerationTask
from taesan.tasks.translation import Translation, TranslationConfig
from taesan.tokenizers import load as load_tokenizer

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    models = {**build_models(root), "vit": build_image_model(root)}
    bpe, wp = load_tokenizer(f"{models['gpt']}/tokenizer.json"), load_tokenizer(f"{models['s2s']}/tokenizer.json")
    gen = GenerationTask(GenerationConfig(max_new_tokens=8), tokenizer=bpe)  # fine-tuned checkpoints of the writing tasks
    gen.build_model(taesan.load(models["gpt"])).save(root / "gen", bpe)
    gen.save(root / "gen")
    tr = Translation(TranslationConfig(max_target_length=12), tokenizer=wp)
    tr.build_model(taesan.load(models["s2s"])).save(root / "tr", wp)
    tr.save(root / "tr")
    return {**models, "gen": str(root / "gen"), "tr": str(root / "tr")}


def predicted(capsys, directory: str, inputs: list[str], *options: str) -> list[dict]:
    """What `taesan predict --json` prints, without the echoed input."""
    capsys.readouterr()
    assert cli_main(["predict", "--model", directory, "--json", *options, *inputs]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [{k: v for k, v in row.items() if k != "input"} for row in rows]


def as_json(value):
    return json.loads(json.dumps(value, ensure_ascii=False))


@pytest.mark.parametrize("name, inputs", [
    ("sentiment", ["배우들 연기가 훌륭하다", "정말 지루했다"]),
    ("ner", ["철수는 어제 서울 카페에 갔었어"]),
    ("qa", ["어디에 갔어? ||| 철수는 어제 카페에 갔었는데 거기 사람이 많더라."]),
    ("tr", ["어제 카페 갔었어"]),
    ("vit", ["digits:0", "digits:5"]),
])
def test_pipeline_predicts_what_taesan_predict_prints(models, capsys, name, inputs):
    p = taesan.pipeline(models[name])
    assert as_json(p(inputs)) == predicted(capsys, models[name], inputs)
    assert as_json(p(inputs[0])) == predicted(capsys, models[name], inputs[:1])[0]  # one input, one result


def test_pipeline_runs_at_the_precision_predict_takes(models, capsys):
    """precision= as predict's --precision, on any CPU kind (bf16 is emulated where it is not native); auto
    picks what `taesan predict` picks on this machine, so the two agree; bf16 stays near fp32."""
    texts = ["배우들 연기가 훌륭하다", "정말 지루했다"]
    found = {}
    for precision in ("fp32", "bf16"):
        found[precision] = as_json(taesan.pipeline(models["sentiment"], precision=precision)(texts))
        assert found[precision] == predicted(capsys, models["sentiment"], texts, "--precision", precision)
    for lo, hi in zip(found["fp32"], found["bf16"]):
        assert lo["probabilities"] == pytest.approx(hi["probabilities"], abs=0.02)
    with pytest.raises(TaesanError, match="precision 'fp16'"):
        taesan.pipeline(models["sentiment"], precision="fp16")


def test_labels_entities_answers_and_translations_have_their_fields(models):
    label = taesan.pipeline(models["sentiment"])("배우들 연기가 훌륭하다")
    assert label["label"] in label["probabilities"] and label["probability"] == max(label["probabilities"].values())
    text = "철수는 어제 서울 카페에 갔었어"
    for e in taesan.pipeline(models["ner"])(text)["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]
    context = "철수는 어제 카페에 갔었는데 거기 사람이 많더라."
    qa = taesan.pipeline(models["qa"])
    answer = qa(question="어디에 갔어?", context=context)
    assert answer == qa({"question": "어디에 갔어?", "context": context}) and context[answer["start"]:answer["end"]] == answer["answer"]
    for bad in (dict(question="누구?", context=""), dict(question="", context=context), dict(question="누구?")):
        with pytest.raises(TaesanError, match="needs a non-empty question and context"):  # answered '' with score 0
            qa(**bad)
    translated = taesan.pipeline(models["tr"])("어제 카페 갔었어")["translation"]
    assert taesan.pipeline(models["tr"], task="generate")("어제 카페 갔었어")["completion"] == translated


def test_generation_equals_taesan_generate_with_its_finish_reason(models, capsys):
    p = taesan.pipeline(models["gpt"])
    assert p.task == "generate"
    for prompt, n in (("티끌 모아", 10), ("어제 카페", 3)):
        capsys.readouterr()
        assert cli_main(["generate", "--model", models["gpt"], "--prompt", prompt, "--max-new-tokens", str(n)]) == 0
        out, err = capsys.readouterr()
        result = p(prompt, max_new_tokens=n)
        assert out == result["text"] + "\n" and result["text"] == prompt + result["completion"]
        assert f"finish_reason: {result['finish_reason']}" in err
    assert p("티끌 모아", max_new_tokens=10)["finish_reason"] == "stop"  # it learned to end the line
    sampled = p("티끌 모아", max_new_tokens=6, do_sample=True, top_p=0.9, seed=1, num_return_sequences=2)
    capsys.readouterr()
    assert cli_main(["generate", "--model", models["gpt"], "--prompt", "티끌 모아", "--max-new-tokens", "6", "--top-p", "0.9",
                     "--seed", "1", "--num-return", "2"]) == 0
    assert capsys.readouterr().out == "".join(f"[{k}] {r['text']}\n" for k, r in enumerate(sampled, 1))
    gen = taesan.pipeline(models["gen"])  # a fine-tuned generation task: its own encoding and decoding settings
    [expected] = predicted(capsys, models["gen"], ["티끌 모아"])
    assert gen("티끌 모아")["completion"] == expected["text"]


def test_scores_and_fills_equal_the_cli_and_the_model(models, capsys):
    texts = ["태산 모아 티끌", "티끌 모아 태산", "난폭 운전은 위험하다"]
    capsys.readouterr()
    assert cli_main(["score", "--model", models["gpt"], *texts]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    scored = taesan.pipeline(models["gpt"], task="score")(texts)
    assert scored["objective"] == "causal"
    assert [line.split(None, 1) for line in printed] == [[f"{r['log_prob']:.3f}", r["text"]] for r in scored["scores"]]
    fills = taesan.pipeline(models["bert"], precision="fp32")("티끌 [MASK] 태산", top_k=3)  # against the model in fp32
    tok, model = load_tokenizer(f"{models['bert']}/tokenizer.json"), taesan.load(models["bert"])
    probs = model(torch.tensor([tok.encode("티끌 [MASK] 태산").ids]))[0, fills["masks"][0]["position"]].softmax(-1)
    top = probs.topk(3)
    assert [c["token"] for c in fills["masks"][0]["candidates"]] == [tok.id_to_token(i) for i in top.indices.tolist()]
    assert [c["score"] for c in fills["masks"][0]["candidates"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    enc = tok.encode("티끌 모아 태산")
    assert taesan.pipeline(models["bert"], task="tokenize")("티끌 모아 태산")["ids"] == enc.ids


def test_a_task_the_checkpoint_cannot_do_is_one_line(models):
    with pytest.raises(TaesanError, match=r"cannot generate \(it can: classify, tokenize\)"):
        taesan.pipeline(models["sentiment"], task="generate")
    with pytest.raises(TaesanError, match="cannot fill-mask"):
        taesan.pipeline(models["gpt"], task="fill-mask")



def test_device_auto_is_taken_and_a_device_the_machine_lacks_is_one_line(models):
    """device="auto" (as --device auto and precision="auto") picks what there is; "cuda" on a CPU-only torch ended in
    torch's AssertionError, "auto" in a RuntimeError listing every device type."""
    from taesan.util import pick_device

    model = taesan.load(models["gpt"], map_location="auto")
    assert next(model.parameters()).device.type == pick_device("auto").type
    assert taesan.pipeline(models["gpt"], device="auto").task == "generate"
    if not torch.cuda.is_available():
        with pytest.raises(TaesanError, match="has no CUDA device"):
            taesan.pipeline(models["gpt"], device="cuda")
        with pytest.raises(TaesanError, match="has no CUDA device"):
            taesan.load(models["gpt"], map_location="cuda")
    with pytest.raises(TaesanError, match="'tpu' is not a device"):
        taesan.pipeline(models["gpt"], device="tpu")


# ---- end-of-text by default, and the README -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, models):
    """`taesan pretrain` of a small GPT on the playground's lines: its config records the end-of-text."""
    root = tmp_path_factory.mktemp("readme")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(GPT_LINES * 40) + "\n", encoding="utf-8")
    bpe = load_tokenizer(f"{models['gpt']}/tokenizer.json")
    torch.manual_seed(0)
    taesan.create("gpt", vocab_size=bpe.vocab_size, **{**SMALL, "dropout": 0.0, "attn_dropout": 0.0}).save(root / "start", bpe)
    assert cli_main(["pretrain", "--model", str(root / "start"), "--objective", "causal", "--corpus", str(corpus),
                     "--tokenizer", f"{models['gpt']}/tokenizer.json", "--out", str(root / "gpt"), "--max-steps", "60",
                     "--batch-size", "8", "--block-size", "32", "--lr", "5e-3", "--warmup", "5", "--eval-every", "0",
                     "--save-every", "0", "--valid-every", "0", "--no-progress"]) == 0
    shutil.copytree(models["sentiment"], root / "sentiment")
    return root


def test_generate_stops_at_end_of_text_by_default(pretrained):
    model = taesan.load(pretrained / "gpt")
    tok = load_tokenizer(pretrained / "gpt" / "tokenizer.json")
    eos = tok.eos_id
    assert model.config.eos_token_id == eos
    ids = [tok.encode("티끌 모아").ids]
    n = len(ids[0])
    out = taesan.generate(model, ids, max_new_tokens=20)[0, n:].tolist()
    glued = taesan.generate(model, ids, max_new_tokens=20, eos_token_id=[])[0, n:].tolist()  # [] still means no stop
    end = glued.index(eos)  # the model ends the line, then writes on
    assert any(t != eos for t in glued[end + 1:])
    assert out == glued[: end + 1]  # the default stops at the end, where taesan generate stops


def test_the_readme_python_block_runs_as_written(pretrained, capsys, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    monkeypatch.chdir(pretrained)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    tok = namespace["tok"]
    new = namespace["ids"][0].tolist()[len(tok.encode("티끌 모아").ids):]
    assert tok.eos_id in new and all(t == tok.eos_id for t in new[new.index(tok.eos_id):])  # it stopped
    assert printed.startswith("티끌 모아")
    assert os.getcwd() == str(pretrained)


def test_a_checkpoint_path_of_the_wrong_type_is_one_line():
    """taesan.load(123) / taesan.load(None) ended in pathlib's TypeError."""
    for call in (lambda: taesan.load(123), lambda: taesan.load(None), lambda: taesan.pipeline(5)):
        with pytest.raises(TaesanError, match="a checkpoint is a directory path, got"):
            call()
