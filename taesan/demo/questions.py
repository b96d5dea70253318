"""The demo's cloze-question step: raw paragraphs that ship with taesan (assets/ko_paragraphs.txt) turned into
extractive-QA practice questions by taesan.tasks.cloze_qa, as `taesan cloze-qa` does.

Not a QA model: the demo's models read a small template vocabulary, and the real effect of practising on cloze
questions (KorQuAD, against the masked LM alone) is measured in benchmarks/RESULTS.md. This step shows what the
questions look like, and which sentence of its paragraph each question's words point at: the sentence prior a small
reader decodes with (taesan.tasks.question_overlap).
"""
from __future__ import annotations

from taesan.atomic import atomic_write_text
from taesan.data.embedded import asset_lines
from taesan.demo.config import DemoConfig, StepResult
from taesan.demo.report import Section, Table
from taesan.tasks.cloze_qa import ClozeConfig, cloze_examples
from taesan.tasks.question_overlap import sentence_weights

SHOWN = 8  # questions in the report's table


def cloze_step(cfg: DemoConfig) -> StepResult:
    """Every sentence of the embedded paragraphs with a name or a number asked about (per_sentence 1.0), seeded."""
    paragraphs = asset_lines("ko_paragraphs.txt")
    corpus = cfg.out / "data" / "ko_paragraphs.txt"
    atomic_write_text(corpus, "\n".join(paragraphs) + "\n")
    examples = cloze_examples(paragraphs, 100, cfg.seed, ClozeConfig(per_sentence=1.0))
    named = [named_sentence(ex.question, ex.context) for ex in examples]
    holds = sum(a <= ex.answers[0].start < b for ex, (a, b) in zip(examples, named))
    rows = [[ex.question, ex.answers[0].text, ex.context[a:b].strip()] for ex, (a, b) in zip(examples[:SHOWN], named)]
    section = Section(
        "Practice questions from raw text",
        [f"{len(examples)} cloze questions from {len(paragraphs)} paragraphs: in each sentence a name or a number is cut "
         "out and replaced by 무엇, 언제 or 몇, the words around it shuffled a little. A QA model practises on these "
         "before its few labelled questions. On KorQuAD (benchmarks/RESULTS.md) a bert-tiny that practised on 7,947 "
         "of them from Wikipedia text answered at 16.4 korquad_f1, against 13.4 for the masked LM alone and 12.7 "
         "from random initialisation (the README's QA recipe: cloze-qa, then finetune --task qa on its file, then on "
         "the labelled questions).",
         f"The last column is the sentence sharing the most of the question's character bigrams (rare ones weigh "
         f"more); it holds the answer for {holds} of these {len(examples)} questions, and for 82% of KorQuAD's. A "
         "small reader decodes with that as a prior, and ranks spans that repeat the question's words lower "
         "(finetune's defaults for a minutes-old reader under 20M parameters: --set sentence_prior=4 "
         "echo_penalty=4): on KorQuAD the same weights went from 18.6 to 33.1 korquad_f1."],
        [Table(["question", "answer", "the sentence its words point at"], rows,
               "the first questions; the context of each is its whole paragraph", ["text", "text", "text"])],
        [],
        # the QA recipe on these (the README's) wants a model that reads Wikipedia text, not the demo's 800-token BERT
        [f"taesan cloze-qa --corpus {corpus} --out cloze.json"],
    )
    summary = [f"{len(examples)} cloze questions, e.g. {rows[0][0]} -> {rows[0][1]}"] if rows else ["no cloze question"]
    return StepResult("questions", summary, section, data={"questions": len(examples)})


def named_sentence(question: str, context: str) -> tuple[int, int]:
    """The character span of the context sentence with the highest overlap weight (the first of equals)."""
    a, b, _ = max(sentence_weights(question, context), key=lambda w: w[2])
    return a, b
