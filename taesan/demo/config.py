"""The demo's sizes (DemoConfig), what a step hands back (StepResult) and the one sentiment split every tuning step
shares, so the steps in tour.py, transfer.py and portable.py read them from one place.

Not a step: no training here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taesan.data.embedded import sentiment_examples
from taesan.demo.report import Section
from taesan.tasks.readers.sentiment import TextExample

SENTIMENT_LABELS = ("부정", "긍정")  # demo_corpus.sentiment_examples: 0 = negative, 1 = positive


@dataclass
class DemoConfig:
    """How big each step is. The defaults fit ~10 minutes on 2 CPU cores; `quick()` is the seconds-long test size."""

    out: Path = Path("taesan-demo")
    seed: int = 0
    progress: bool = True
    corpus_lines: int = 4000  # template sentences on top of the hand-written ones
    vocab_size: int = 800  # every tokenizer, so the comparison is at equal budget
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the gpt-tiny / bert-tiny presets
    block_size: int = 32  # the corpus is short sentences
    batch_size: int = 16
    lm_steps: int = 800  # GPT and BERT each; the clock below stops earlier on a slow machine
    lm_minutes: float = 2.0
    lr: float = 2e-3
    mask_prob: float = 0.3  # BERT's share of masked tokens: 15% left 영화 / 애니메이션 above 모아 at 300 steps (a busy machine's
    # 2 minutes), 30% put 모아 first there (measured over seeds 0-3); at 800 steps both do
    is_quick: bool = False  # set by quick(); the report says so
    samples: int = 2  # sampled completions beside the greedy one
    reviews: int = 400  # sentiment examples (a fifth held out)
    tune_steps: int = 100  # full and prompt tuning, GPT and BERT each
    tune_minutes: float = 0.5  # each of those runs
    prompt_tokens: int = 20  # taesan finetune's default; 10 left the BERT read through its LM head at 0.61 (20: 0.96)
    shots: tuple[int, ...] = (0, 1, 4)
    shot_seeds: int = 2  # demonstration draws per k
    transfer_steps: int = 40  # pretrained vs from scratch: each fine-tuning run (short: where pretraining shows)
    transfer_minutes: float = 0.5  # each run
    transfer_labels: tuple[int, ...] = (32, 0)  # labelled reviews to fine-tune on (half per label); 0: all of them
    transfer_seeds: int = 3  # fine-tuning seeds per start (head init, batch order): mean ± spread
    digits: int = 1797  # sklearn's digits (a fifth held out)
    vit_steps: int = 400
    vit_minutes: float = 1.0

    @classmethod
    def quick(cls, out: Path, seed: int = 0, progress: bool = False) -> "DemoConfig":
        """Every step shrunk to seconds: tiny models, a few steps, a small corpus (the tests run this)."""
        tiny = dict(d_model=32, n_layers=2, n_heads=2, n_positions=64)
        return cls(out=Path(out), seed=seed, progress=progress, is_quick=True, corpus_lines=300, vocab_size=400, model=tiny,
                   block_size=32, batch_size=8, lm_steps=20, lm_minutes=1.0, samples=1, reviews=60, tune_steps=5, tune_minutes=0.5,
                   prompt_tokens=2, shots=(0, 1), shot_seeds=1, transfer_steps=6, transfer_minutes=0.5, transfer_labels=(16, 0),
                   transfer_seeds=1, digits=100,
                   vit_steps=10, vit_minutes=0.5)


@dataclass
class StepResult:
    """What a step hands back: one-line facts for the terminal, the report section, checkpoints it saved."""

    name: str
    summary: list[str]
    section: Section
    checkpoints: dict[str, Path] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # the numbers, for tests and the caller
    seconds: float = 0.0


def sentiment_split(cfg: DemoConfig) -> tuple[list[TextExample], list[TextExample]]:
    """(train, held out): the embedded reviews, a fifth held out; every sentiment step uses this same split."""
    examples = [TextExample(text, SENTIMENT_LABELS[y], f"demo review {n + 1}")
                for n, (text, y) in enumerate(sentiment_examples(cfg.reviews, cfg.seed))]
    held = len(examples) // 5
    return examples[held:], examples[:held]
