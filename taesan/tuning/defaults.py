"""The fine-tuning learning rate, warmup and batch size (and a small classifier's R-Drop, a QA reader's lexical
priors) a model gets when the command line names none, chosen from what the model is: how many parameters its
backbone has, and whether only a soft prompt learns.

Not a search: one rule with named constants, so `taesan finetune` can say which it chose and why in one line.
Explicit --lr / --warmup / --batch-size always win.

Why by size: 2e-5 - 5e-5 is right for BERT-base (Devlin et al. 2019, 110M parameters, pretrained for days), but a
tiny preset or a checkpoint pretrained for minutes on a CPU barely moves at that rate: on NSMC, bert-tiny fine-tuned
600 steps at 5e-5 scored 54.4 (pretrained) / 50.0 (one class, random init), at 1e-3 64.7 - 77.8 (issue 17).
Why warmup 6%: RoBERTa's fine-tuning recipe (Liu et al. 2019); it keeps the first steps of a fresh head from
wrecking the pretrained features at the large rate. Why larger rates for prompt tuning: only a few vectors learn.
With a new head (mode prompt) 3e-3 beat 1e-2 and 3e-2 on NSMC with gpt-tiny (benchmarks/RESULTS.md, "three ways to
adapt"); with the prompt alone read through the LM head (prompt-lm) 3e-2 reached 0.95 on the demo reviews where 3e-3
reached 0.60 (the demo's GPT, 400 steps, 10 tokens; PEFT's prompt-tuning examples use 3e-2, Lester et al. 0.3).
Why R-Drop for a small text classifier (Liang et al. 2021: each batch twice, with different dropout, the two
predictions pulled together): a tiny model fine-tuned from minutes of pretraining overfits 20k labels within two
epochs, and the consistency term is the one regulariser that helped. By 5-fold cross-validation over the training
files (issue 17): KorNLI 47.1 -> 48.7, NSMC 83.2 -> 83.4 at rdrop 3; it costs twice the training compute.
Why a small model sees at most 30,000 examples by default (3 epochs, fewer on a larger file): it overfits a large
file within epochs too. On 2,000 NSMC reviews carved from the training file (18,000 left to train on, the word-vector
start, seeds 0/1): 3 epochs of 16 84.1, 1.5 epochs 84.6, 30,000 examples (1.67 epochs) 84.7; on 500 - 1,000 labels
3 epochs beat 10 (79.4 / 80.9 against 76.6 / 78.4). Below 10,000 examples nothing changes (benchmarks/RESULTS.md,
"How many labels pretraining is worth").
Why a small tagger trains 10 epochs and a small reader 1 (validation carves of the training splits, the word-vector
masked LM start, seeds 0/1): on KLUE-NER (2,800 sentences) 3 epochs 50.8, 6 55.4, 10 57.9, 20 57.3, 30 57.3 entity F1;
with 800 sentences 3 epochs 29.5, 10 44.1, 20 45.3 (random init: 50.4 -> 54.4). On KorQuAD (3,000 questions) the
reader peaks early: 0.5 epoch 21.4, 1 epoch 28.7, 1.5 27.4, 3 24.2, 10 21.2 korquad_f1. Once on the test splits
(seeds 0/1): NER 52.0 -> 56.4; QA level (25.9 at 1 epoch and at 3), at half the time. Pair classification
stays at 3: on a KorNLI carve 3 / 6 / 10 epochs gave 47.8 / 49.0 / 47.3, within their seeds' spread.
Why lexical priors for a small, minutes-old QA reader only (taesan.tasks.question_overlap): it misses the answer's
sentence more often than the question's words do, and answers with the question's own words; a well-pretrained
reader does neither, and keeps HF's decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

SMALL_MODEL = 20_000_000  # parameters: below, a tiny preset or a minutes-old checkpoint
SMALL_LR = 1e-3  # measured on NSMC with bert-tiny (issue 17); 5e-5 left it at chance
LARGE_LR = 3e-5  # BERT-base-sized and up: the middle of Devlin et al.'s 2e-5 .. 5e-5
PROMPT_LR = 3e-3  # mode prompt: a soft prompt and a new head
PROMPT_LM_LR = 3e-2  # mode prompt-lm: the prompt alone moves a frozen LM head
WARMUP_FRACTION = 0.06  # of the planned steps (RoBERTa's fine-tuning recipe)
SMALL_BATCH = 16  # a tiny model: more, smaller steps in a CPU budget
EPOCHS = 3.0  # HF Trainer's default
SMALL_EXAMPLES = 30_000  # a small model, fully fine-tuned: examples seen by default, at most (chosen on NSMC validation)
SMALL_TASK_EPOCHS = {  # a small model, fully fine-tuned, where the task learns at another pace than 3 epochs
    "ner": (10.0, "a small tagger is still learning after 3 (KLUE-NER validation F1 50.8 -> 57.9)"),
    "qa": (1.0, "a small reader overfits after 1 (KorQuAD validation korquad_f1 28.7, 24.2 at 3)"),
}
LARGE_BATCH = 32  # Devlin et al.'s fine-tuning batch (16 or 32)
SMALL_RDROP = 3.0  # classification, pair-classification; chosen by 5-fold CV on NSMC and KorNLI (issue 17)
CLASSIFICATION_TASKS = ("classification", "pair-classification")
SMALL_QA_PRIORS = {"sentence_prior": 4.0, "echo_penalty": 4.0}  # chosen on KorQuAD validation, bert-tiny readers (issue 17)


@dataclass(frozen=True)
class Defaults:
    lr: float
    warmup_fraction: float
    batch_size: int
    reason: str  # one clause: why these

    max_examples: int | None = None  # a cap on the examples seen by default (None: EPOCHS whatever the size)
    base_epochs: float = EPOCHS  # passes over a file below the cap
    epochs_why: str = ""  # why base_epochs is not EPOCHS (a small model's task: SMALL_TASK_EPOCHS)

    def warmup(self, steps: int) -> int:
        """Warmup steps for a run of `steps`: warmup(600) -> 36 at 6%."""
        return int(steps * self.warmup_fraction)

    def epochs(self, n_examples: int) -> float:
        """Passes over `n_examples` when the command line names neither --epochs nor --max-steps:
        epochs(5_000) -> 3.0;  epochs(18_000) -> 1.67 with the small model's cap of 30,000 examples;
        a small tagger's epochs(2_800) -> 10.0, epochs(5_000) -> 6.0."""
        if self.max_examples is None or n_examples * self.base_epochs <= self.max_examples:
            return self.base_epochs
        return self.max_examples / n_examples


def finetune_defaults(parameters: int, mode: str = "full", task: str | None = None) -> Defaults:
    """The defaults for a backbone of `parameters` parameters fine-tuned in `mode` (full, prompt, prompt-lm) for
    `task` (its name: a small model's NER and QA take their own epochs).

    finetune_defaults(970_624) -> lr 1e-3, batch 16;  finetune_defaults(109_482_240) -> lr 3e-5, batch 32;
    finetune_defaults(970_624, "prompt-lm") -> lr 3e-2 (only the prompt learns);
    finetune_defaults(970_624, task="ner") -> 10 epochs (at most 30,000 examples)
    """
    small = parameters < SMALL_MODEL
    size = f"a {_millions(parameters)}-parameter model ({'<' if small else '>='} {_millions(SMALL_MODEL)})"
    batch = SMALL_BATCH if small else LARGE_BATCH
    if mode == "prompt":
        return Defaults(PROMPT_LR, WARMUP_FRACTION, batch, f"{size}, prompt tuning: only a prompt and a head learn, so a larger step")
    if mode == "prompt-lm":
        return Defaults(PROMPT_LM_LR, WARMUP_FRACTION, batch, f"{size}, prompt tuning through the LM head: only the prompt "
                                                              f"learns, so a much larger step")
    if small:
        epochs, why = SMALL_TASK_EPOCHS.get(task, (EPOCHS, ""))
        return Defaults(SMALL_LR, WARMUP_FRACTION, batch, f"{size}: a tiny or minutes-old model needs a large step",
                        SMALL_EXAMPLES, epochs, why)
    return Defaults(LARGE_LR, WARMUP_FRACTION, batch, f"{size}: a well-pretrained model wants a small step (BERT's 2e-5 .. 5e-5)")


def qa_lexical_priors(parameters: int, minutes_old: bool = True) -> tuple[dict[str, float], str]:
    """({"sentence_prior": .., "echo_penalty": ..}, why) for an extractive QA reader of `parameters` parameters.
    `minutes_old`: a fresh preset, or a checkpoint taesan pretrained (or fine-tuned from one). A checkpoint from
    elsewhere (HuggingFace; KoELECTRA-small has 14M parameters and reads well) keeps HF's decoding at any size.

    qa_lexical_priors(2_494_594) -> ({"sentence_prior": 4.0, "echo_penalty": 4.0}, "a 2.5M-parameter reader (< 20M) ...")
    qa_lexical_priors(110_000_000) or qa_lexical_priors(14_000_000, minutes_old=False) -> both 0.0: HF's decoding
    """
    size = _millions(parameters)
    off = {name: 0.0 for name in SMALL_QA_PRIORS}
    if not minutes_old:
        return off, "a checkpoint from elsewhere (not pretrained by taesan) decodes as HF's readers do"
    if parameters < SMALL_MODEL:
        return dict(SMALL_QA_PRIORS), (f"a {size}-parameter reader (< {_millions(SMALL_MODEL)}) misses the answer's "
                                       f"sentence more often than the question's words do, and answers with them")
    return off, f"a {size}-parameter reader (>= {_millions(SMALL_MODEL)}) finds the answer's sentence itself"


def classification_rdrop(parameters: int, dropout: bool, mode: str = "full") -> tuple[float, str]:
    """(rdrop, why) for a text classifier of `parameters` parameters fully fine-tuned; `dropout`: the model drops
    anything in training (without it the two passes are the same, and R-Drop only doubles the cost).

    classification_rdrop(4_526_082, True) -> (3.0, "a 4.5M-parameter classifier (< 20M) ...");
    classification_rdrop(109_482_240, True) or classification_rdrop(4_526_082, False) -> (0.0, why)
    """
    size = f"a {_millions(parameters)}-parameter classifier"
    if mode != "full":
        return 0.0, "prompt tuning trains only a prompt"
    if not dropout:
        return 0.0, f"{size} without dropout: two passes would be the same"
    if parameters >= SMALL_MODEL:
        return 0.0, f"{size} (>= {_millions(SMALL_MODEL)}) is fine-tuned as HF does, one pass a batch"
    return SMALL_RDROP, (f"{size} (< {_millions(SMALL_MODEL)}) overfits its labels within epochs; each batch runs "
                         f"twice and the two predictions are pulled together (R-Drop), twice the training compute")


def has_dropout(model: nn.Module) -> bool:
    """Whether training drops anything (a dropout layer or attention dropout above 0): R-Drop needs it."""
    return (any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
            or getattr(getattr(model, "config", None), "attn_dropout", 0.0) > 0)


def _millions(n: int) -> str:
    """_millions(970_624) -> "1.0M";  _millions(20_000_000) -> "20M"."""
    return f"{n / 1e6:.1f}M" if n < 10_000_000 else f"{n / 1e6:.0f}M"
