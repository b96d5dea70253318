"""Tiny labelled files in each task's format (sentiment TSV, NLI TSV, KLUE-NER TSV, SQuAD JSON, parallel TSV,
generation TSV) and a WordPiece tokenizer, for tests that run `taesan finetune` on every model family.

Not a test file: test_family_tasks.py and test_hub_checkpoints.py write these into a temporary directory.
"""
from __future__ import annotations

import json
from pathlib import Path

from taesan.data.embedded import korean_corpus, sentiment_examples

NLI = [("어제 카페 갔었어", "카페에 갔다", "entailment"), ("어제 카페 갔었어", "집에만 있었다", "contradiction"),
       ("오늘 학교 간다", "학교에 간다", "entailment"), ("오늘 학교 간다", "학교에 안 간다", "contradiction"),
       ("영화가 지루했다", "영화를 봤다", "neutral")]
NER = [("민수는 어제 서울에 갔다", [("민수", "PS"), ("어제", "DT"), ("서울", "LC")]),
       ("지수가 오늘 부산 카페에 왔다", [("지수", "PS"), ("오늘", "DT"), ("부산", "LC")])]
QA = [("세종대왕은 1443년에 훈민정음을 만들었다.", "누가 훈민정음을 만들었나?", "세종대왕"),
      ("이순신은 1592년에 거북선으로 싸웠다.", "이순신은 무엇으로 싸웠나?", "거북선")]
PARALLEL = [("어제 카페 갔었어", "i went to a cafe yesterday"), ("티끌 모아 태산", "many a little makes a mickle"),
            ("비 온다", "it is raining"), ("고마워", "thank you")]
GENERATION = [("티끌 모아", "태산"), ("어제 카페", "갔었어"), ("비가", "온다"), ("고마워", "천만에")]


def ner_tsv(sentences=NER) -> str:
    """KLUE-NER's character-BIO layout: '## id<TAB>text', then one 'char<TAB>tag' line per character."""
    blocks = []
    for n, (text, entities) in enumerate(sentences):
        tags = ["O"] * len(text)
        for word, kind in entities:
            start = text.index(word)
            tags[start:start + len(word)] = [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
        blocks.append(f"## s{n}\t{text}\n" + "".join(f"{c}\t{t}\n" for c, t in zip(text, tags)))
    return "## 컬럼명 : CHAR\tNE_TAG\n" + "\n".join(blocks)


def squad_json(items=QA) -> str:
    paragraphs = [{"context": c, "qas": [{"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": c.index(a)}]}]}
                  for i, (c, q, a) in enumerate(items)]
    return json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}, ensure_ascii=False)


def write_task_files(d: Path, repeat: int = 4) -> dict[str, Path]:
    """Every task's training file under `d` -> {task name: path}."""
    rows = "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(sentiment_examples(40)))
    texts = {
        "classification": ("sent.tsv", "id\tdocument\tlabel\n" + rows),
        "pair-classification": ("nli.tsv", "sentence1\tsentence2\tgold_label\n" + "".join("\t".join(p) + "\n" for p in NLI * repeat)),
        "ner": ("ner.tsv", ner_tsv(NER * repeat)),
        "qa": ("qa.json", squad_json(QA * repeat)),
        "translation": ("para.tsv", "".join(f"{a}\t{b}\n" for a, b in PARALLEL * repeat)),
        "generation": ("gen.tsv", "prompt\ttarget\n" + "".join(f"{a}\t{b}\n" for a, b in GENERATION * repeat)),
    }
    out = {}
    for task, (name, text) in texts.items():
        (d / name).write_text(text, encoding="utf-8")
        out[task] = d / name
    return out


def corpus_lines(n: int = 300) -> list[str]:
    """Text every tokenizer is trained on: the embedded corpus plus every task file's words."""
    extra = [t for t, _ in sentiment_examples(40)] + [w for p in NLI for w in p[:2]] + [t for t, _ in NER]
    extra += [c + " " + q for c, q, _ in QA] + [a + " " + b for a, b in PARALLEL + GENERATION]
    return korean_corpus(n) + extra * 3
