"""Bring your own checkpoint, shown on the demo's models: the BERT and GPT exported to the HuggingFace layout
(`taesan convert --to-hf`: config.json with HF's keys, model.safetensors with HF's tensor names, tokenizer.json and
tokenizer_config.json), then that directory read back as a downloaded checkpoint is (`taesan.load`,
`taesan.tokenizers.load`), with the ids and logits compared to the originals.

Not an interop test against `transformers` (the test suite does that; the demo never imports it): everything here
is written and read by taesan's own code.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

import taesan
from taesan import tokenizers
from taesan.checkpoint import read_config
from taesan.demo.config import DemoConfig, StepResult
from taesan.demo.report import Section, Table
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.convert import convert
from taesan.pipeline.lm import fill_mask
from taesan.pipeline.text import complete
from taesan.safetensors_header import read_header

SENTENCES = ("티끌 모아 태산", "어제 카페 갔었잖아", "난폭 운전은 위험하다", "이 영화 최고의 영화다", "")  # "" too: specials only
FILL = "티끌 [MASK] 태산"
PROMPT = "티끌 모아"


def compare_directories(ours: Path, theirs: Path) -> dict:
    """Token ids and logits of the same sentences through both directories: ids equal?, the largest |logit difference|."""
    model_a, model_b = taesan.load(ours).eval(), taesan.load(theirs).eval()
    tok_a, tok_b = tokenizers.load(ours / "tokenizer.json"), tokenizers.load(theirs)  # a directory, as downloaded
    ids_equal, diff = True, 0.0
    for text in SENTENCES:
        a, b = tok_a.encode(text).ids, tok_b.encode(text).ids
        ids_equal &= a == b
        if not a:
            continue
        with torch.no_grad():
            la = model_a(input_ids=torch.tensor([a]))  # (1, T, V)
            lb = model_b(input_ids=torch.tensor([b]))
        diff = max(diff, float((la - lb).abs().max()))
    header = read_header(theirs / "model.safetensors")
    return {"ids_equal": ids_equal, "max_logit_diff": diff, "model_type": read_config(theirs).get("model_type"),
            "tensor_names": sorted(header.tensors)[:3], "tensors": len(header.tensors), "class": type(model_b).__name__,
            "tokenizer": type(tok_b).__name__, "files": sorted(p.name for p in theirs.iterdir())}


def portable_step(cfg: DemoConfig, gpt_dir: Path, bert_dir: Path) -> StepResult:
    """Export both demo models to the HF layout, load them back from there, compare; use them as if downloaded."""
    out = cfg.out / "hf"
    found = {}
    for name, directory in (("BERT", bert_dir), ("GPT", gpt_dir)):
        target = out / name.lower()
        if target.exists():  # a previous run's export: convert writes into an empty place
            shutil.rmtree(target)
        convert(directory, target, "to-hf")
        found[name] = compare_directories(directory, target)
    bert, gpt = Bundle.load(out / "bert", "bert"), Bundle.load(out / "gpt", "gpt")  # as `taesan serve --model` reads them
    top = fill_mask(bert, FILL)["masks"][0]["candidates"][0]["token"]
    greedy = complete(gpt, PROMPT, max_new_tokens=12)[0].shown
    rows = [[name, f["model_type"], f["class"], f["tokenizer"], f"{f['tensors']} ({', '.join(f['tensor_names'])}, ...)",
             "yes" if f["ids_equal"] else "NO", f["max_logit_diff"]] for name, f in found.items()]
    summary = [f"{name:<4} → {out / name.lower()}  model_type {f['model_type']}, ids equal: {f['ids_equal']}, "
               f"max |logit difference| {f['max_logit_diff']:.2e}" for name, f in found.items()]
    summary += [f"from the HF directories: {FILL} → {top};  {PROMPT} → {greedy}"]
    section = Section(
        "Bring your own checkpoint",
        ["This is how you point taesan at a checkpoint downloaded from elsewhere (the HuggingFace hub, a colleague): "
         "give the directory as it is. Here the demo's BERT and GPT are first written in HuggingFace's layout "
         f"(taesan convert --to-hf: {', '.join(found['BERT']['files'])}; config.json with HF's model_type and keys, "
         "tensors under HF's names), then read back from that directory alone with taesan.load and "
         "taesan.tokenizers.load, exactly as a downloaded KcBERT or KoGPT2 directory would be. The same sentences "
         "give the same token ids and the same logits. taesan writes and reads these files with its own code; "
         "transformers is not needed (the test suite checks the same files load in it).",
         f"Used straight from the HF directories: {FILL} → {top}; {PROMPT} → {greedy}."],
        [Table(["model", "HF model_type", "loads as", "tokenizer", "tensors (HF names)", "same ids",
                "max |logit difference|"], rows, f"read back from {out}, on {len(SENTENCES)} sentences",
               ["text"] * 6 + ["difference"])],
        [],
        [f"taesan convert --to-hf {bert_dir} --out {out / 'bert'}",
         f'taesan score --model {out / "bert"} "티끌 모아 태산"',
         f'taesan generate --model {out / "gpt"} --prompt "{PROMPT}" --max-new-tokens 12',
         "python -c \"import taesan; m = taesan.load('" + str(out / "gpt") + "'); "
         "t = taesan.tokenizers.load('" + str(out / "gpt") + "'); print(type(m).__name__, t.encode('티끌 모아').ids)\""],
    )
    return StepResult("portable", summary, section, {"bert-hf": out / "bert", "gpt-hf": out / "gpt"}, {"found": found})
