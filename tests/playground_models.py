"""Tiny checkpoints for the serve and browser tests: a GPT that learned a few sentences, an untrained BERT
masked LM and encoder-decoder, and classification / NER / QA heads fine-tuned for a few steps.

Not a test file: test_serve.py and test_browser.py build these once per session (a few seconds on one core).
"""
from __future__ import annotations

from pathlib import Path

import torch

import taesan
from taesan.data.embedded import korean_corpus, sentiment_examples

GPT_LINES = ["티끌 모아 태산", "어제 카페 갔었어 거기 사람 많더라", "난폭 운전은 위험하다"]
SMALL = dict(n_layers=2, d_model=32, n_heads=2, n_positions=64)


def _train_gpt(model, tok, lines: list[str], steps: int = 80) -> None:
    """A few AdamW steps on `lines`, each after the document separator, so "티끌 모아" continues with " 태산"."""
    sep = tok.eos_id
    rows = [[sep] + tok.encode(line, add_special_tokens=False).ids + [sep] for line in lines]
    T = max(map(len, rows))
    ids = torch.tensor([r + [sep] * (T - len(r)) for r in rows])  # (B, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(ids[:, :-1])  # (B, T-1, V)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _finetune(task, model, train, out: Path, steps: int):
    from taesan.train import TrainConfig
    from taesan.tuning.finetune import finetune

    config = TrainConfig(max_steps=steps, lr=3e-3, warmup=2, eval_every=0, save_every=0, log_every=1000, progress=False)
    finetune(task, model, train, train[:8], out, config, batch_size=16, device="cpu")
    return out


def build_models(root: Path, tasks: tuple[str, ...] = ("classify", "ner", "qa")) -> dict[str, str]:
    """Write the checkpoints under `root`; -> {name: directory} for create_app."""
    from taesan.tokenizers import BPETokenizer, WordPieceTokenizer

    torch.manual_seed(0)
    lines = korean_corpus(400)
    bpe = BPETokenizer.train(lines + GPT_LINES * 20, vocab_size=400, special_tokens=["<|endoftext|>"])
    wp = WordPieceTokenizer.train(lines, vocab_size=500)
    models: dict[str, str] = {}

    gpt = taesan.create("gpt-tiny", vocab_size=bpe.vocab_size, **SMALL)
    _train_gpt(gpt, bpe, GPT_LINES)
    models["gpt"] = str(gpt.save(root / "gpt", bpe))

    bert = taesan.create("bert-mlm", vocab_size=wp.vocab_size, d_ff=64, **SMALL).eval()
    models["bert"] = str(bert.save(root / "bert", wp))

    s2s = taesan.create("transformer-tiny", src_vocab_size=wp.vocab_size, n_positions=64, d_model=32, n_heads=2, d_ff=64,
                        pad_token_id=wp.pad_id, bos_token_id=wp.cls_id, eos_token_id=wp.sep_id, decoder_start_token_id=wp.cls_id)
    models["s2s"] = str(s2s.eval().save(root / "s2s", wp))

    if "classify" in tasks:
        from taesan.tasks.classification import SequenceClassification
        from taesan.tasks.readers.sentiment import TextExample

        train = [TextExample(text, "긍정" if label else "부정", "demo") for text, label in sentiment_examples(120)]
        task = SequenceClassification(tokenizer=wp)
        backbone = taesan.create("bert-tiny", vocab_size=wp.vocab_size, d_ff=64, **SMALL)
        models["sentiment"] = str(_finetune(task, backbone, train, root / "sentiment", steps=40))
    if "ner" in tasks:
        from taesan.tasks.ner import TokenClassification
        from taesan.tasks.readers.ner import TaggedText

        train = [_tagged(TaggedText, text, ents) for text, ents in NER_SENTENCES] * 8
        task = TokenClassification(tokenizer=wp)
        backbone = taesan.create("bert-tiny", vocab_size=wp.vocab_size, d_ff=64, **SMALL)
        models["ner"] = str(_finetune(task, backbone, train, root / "ner", steps=30))
    if "qa" in tasks:
        from taesan.tasks.qa import ExtractiveQA
        from taesan.tasks.readers.qa import Answer, QAExample

        context = "철수는 어제 카페에 갔었는데 거기 사람이 많더라."
        train = [QAExample("어디에 갔어?", context, [Answer("카페", context.index("카페"))], id=str(i)) for i in range(16)]
        from taesan.tasks.qa import QAConfig

        task = ExtractiveQA(QAConfig(max_length=64, doc_stride=16, max_question_length=16), tokenizer=wp)
        backbone = taesan.create("bert-tiny", vocab_size=wp.vocab_size, d_ff=64, **SMALL)
        models["qa"] = str(_finetune(task, backbone, train, root / "qa", steps=20))
    return models


NER_SENTENCES = [
    ("철수는 어제 서울 카페에 갔었어", [("철수", "PS"), ("서울", "LC")]),
    ("영희는 오늘 부산 시장에 갔다", [("영희", "PS"), ("부산", "LC")]),
    ("동생은 주말에 학교에 갔다", []),
]


def build_image_model(root: Path) -> str:
    """A vit-tiny (narrowed) fine-tuned for a few steps on 200 bundled digits, as `taesan demo` does; -> its directory."""
    from taesan.tasks.image import ImageClassification
    from taesan.tasks.readers.images import digits

    torch.manual_seed(0)
    vit = taesan.create("vit-tiny", d_model=32, n_heads=2, d_ff=64)
    return str(_finetune(ImageClassification(), vit, digits()[:200], root / "vit", steps=15))


def _tagged(cls, text: str, entities: list[tuple[str, str]]):
    """Character BIO tags (KLUE style) for `text` with the named entities."""
    tags = ["O"] * len(text)
    for surface, kind in entities:
        start = text.index(surface)
        tags[start] = f"B-{kind}"
        for i in range(start + 1, start + len(surface)):
            tags[i] = f"I-{kind}"
    return cls(text, tags, [(i, i + 1) for i in range(len(text))])
