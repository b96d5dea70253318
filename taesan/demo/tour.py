"""`taesan demo` as a library: the whole tour on embedded data (taesan.demo_corpus, sklearn's digits), one function
per step, each returning its numbers, the checkpoint it saved and its figure paths, plus the report section.

Not a printer and not a new trainer: steps call taesan.tokenizers, the pipeline (the pretraining recipe, text out,
scores and fills), tuning and viz; `taesan demo` (taesan.cli.demo) prints the summaries and writes the HTML report.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Iterator

import torch
from tqdm.auto import tqdm

import taesan
from taesan.atomic import atomic_write_text
from taesan.data.embedded import korean_corpus
from taesan.demo.config import DemoConfig, StepResult, sentiment_split
from taesan.demo.portable import portable_step
from taesan.demo.questions import cloze_step
from taesan.demo.report import Section, Table, write_report
from taesan.demo.transfer import transfer_step
from taesan.pipeline.bundle import Bundle
from taesan.pipeline.lm import fill_mask, score
from taesan.pipeline.pretrain import Pretrained, Recipe, new_model, pretrain
from taesan.pipeline.text import complete
from taesan.tasks.image import ImageClassification
from taesan.tasks.readers.images import digits
from taesan.tokenizers import BPETokenizer, WordPieceTokenizer
from taesan.tokenizers.compare import available_kinds, byte_split_note, compare, plot
from taesan.train import TrainConfig
from taesan.tuning.compare import (
    CHART,
    CompareConfig,
    compare_modes,
    in_context_verdict,
    majority_accuracy,
    markdown_table,
    row_notes,
)
from taesan.tuning.finetune import finetune
from taesan.viz.attention import plot_attention, text_attention
from taesan.viz.rollout import save_attention_overlay, vit_attention_map

KINDS = ("word", "char", "bpe", "wordpiece", "wordpiece-morphemes")  # the last needs kiwipiepy (taesan[korean])
CUT_SENTENCES = ("어제 카페 갔었어", "어제 카페 갔었는데요", "카페 갔었잖아")  # 갔었잖아 is never in the corpus
PROMPT = "티끌 모아"
FILL = "티끌 [MASK] 태산"
SCORED = ("난폭 운전", "무모 운전", "티끌 모아 태산", "태산 모아 티끌")  # each pair: the first is the one people say
ATTENTION_TEXT = "어제 카페 갔었어 거기 사람 많더라"


def write_corpus(cfg: DemoConfig) -> Path:
    """The embedded corpus as OUT/corpus.txt (one sentence per line), so the printed commands can reuse it."""
    path = cfg.out / "corpus.txt"
    atomic_write_text(path, "\n".join(korean_corpus(cfg.corpus_lines, cfg.seed)) + "\n")
    return path


# ---- 1. tokenizers -----------------------------------------------------------------------------------------
def tokenizers_step(cfg: DemoConfig, corpus: Path) -> StepResult:
    """Word, char, BPE, WordPiece (and WordPiece merged within morphemes, with kiwipiepy) trained at one vocabulary
    budget; measured on held-out lines; the cuts."""
    reports = []
    for kind in tqdm(available_kinds(KINDS), desc="tokenizers", disable=not cfg.progress):
        reports += compare([corpus], vocab_size=cfg.vocab_size, kinds=(kind,), variants=CUT_SENTENCES)
    figure = plot(reports, cfg.out / "figures" / "tokenizers.png")
    rows = [[r.kind, r.vocab_size, 100 * r.unk_rate, r.tokens_per_sentence] for r in reports]
    cuts = {r.kind: {s: [piece.replace(" ", "▁") for piece in r.variants[s]] for s in CUT_SENTENCES} for r in reports}
    note = next((n for k in cuts for s in CUT_SENTENCES if (n := byte_split_note(cuts[k][s]))), "")
    summary = [f"{r.kind:<19} vocab {r.vocab_size:>5}  [UNK] {100 * r.unk_rate:5.2f}%  {r.tokens_per_sentence:5.1f} tokens/sentence"
               for r in reports]
    summary += [f"{s}: " + "   ".join(f"{k} {' · '.join(cuts[k][s])}" for k in cuts) for s in CUT_SENTENCES[1:]]
    summary += [f"({note})"] if note else []
    section = Section(
        "Ways to cut a sentence",
        [f"Each kind learned a vocabulary of at most {cfg.vocab_size} entries from the embedded corpus and was measured on "
         "every tenth line, held out. Words need no splitting but meet unknown words ([UNK]: the unseen form 갔었잖아); "
         "characters rarely do but make long sequences; BPE and WordPiece share pieces such as 갔었 + 잖아. "
         "▁ marks a space the token carries.",
         *(["wordpiece-morphemes is WordPiece whose merges stay inside kiwipiepy's morpheme units (taesan tokenizer "
            "train --kind wordpiece --merge-rule frequency --morphemes): particles and endings stay pieces of their "
            "own (이순신 + 은). "
            "On real Korean data it gave taesan's best NSMC and KLUE-NER scores (benchmarks/RESULTS.md)."]
           if "wordpiece-morphemes" in cuts else []), *([f"How to read a numbered piece: {note}."] if note else [])],
        [Table(["kind", "vocab size", "[UNK] %", "tokens / sentence"], rows, "held-out lines",
               ["text", "count", "number", "number"]),
         Table(["sentence", *cuts], [[s, *(" · ".join(cuts[k][s]) for k in cuts)] for s in CUT_SENTENCES],
               "how each kind cuts" + (" (X(k/n): the k-th of n byte tokens that together spell X)" if note else ""))],
        [figure],
        [f'taesan tokenizer compare --input {corpus} --vocab-size {cfg.vocab_size} --out {cfg.out / "compare"}'],
    )
    return StepResult("tokenizers", summary, section, data={"reports": reports, "cuts": cuts})


# ---- 2 and 3. pretraining -------------------------------------------------------------------------------------
def pretrain_lm(cfg: DemoConfig, model, tokenizer, objective: str, corpus: Path, out_dir: Path) -> Pretrained:
    """`taesan pretrain`'s recipe at the demo's size (every tenth line held out); the checkpoint in `out_dir`
    carries tokenizer.json and training.json."""
    recipe = Recipe(objective, [corpus], out_dir, block_size=cfg.block_size, batch_size=cfg.batch_size, seed=cfg.seed,
                    valid_every=10, workers=1, model_name="demo", mask_prob=cfg.mask_prob)
    config = TrainConfig(max_steps=cfg.lm_steps, max_minutes=cfg.lm_minutes, lr=cfg.lr, warmup=max(1, cfg.lm_steps // 20),
                         eval_every=max(1, cfg.lm_steps // 4), eval_batches=4, save_every=0, keep_last=1, seed=cfg.seed,
                         progress=cfg.progress)
    return pretrain(model, tokenizer, recipe, config)


def _eval_line(trainer) -> str:
    return ", ".join(f"{k.removeprefix('eval_')} {v:.3g}" for k, v in trainer.last_eval.items())


def _clock_note(cfg: DemoConfig, trainer) -> str:
    """Said when the clock, not the step budget, ended pretraining: on a busy machine the model learned less."""
    if trainer.step >= cfg.lm_steps:
        return ""
    return (f"The {cfg.lm_minutes:g}-minute clock stopped it at step {trainer.step} of {cfg.lm_steps} (a busy or slow "
            "machine): it learned less than the demo intends; run again with --threads 1 or on an idle machine.")


def _ranked(result: dict) -> list[tuple[float, str]]:
    return [(r["log_prob"], r["text"]) for r in result["scores"]]


def gpt_step(cfg: DemoConfig, corpus: Path) -> StepResult:
    """A byte-level BPE tokenizer and a tiny GPT pretrained with next-word prediction; completions of 티끌 모아;
    sentence log-probabilities by the chain rule."""
    out_dir = cfg.out / "gpt"
    tokenizer = BPETokenizer.train([corpus], vocab_size=cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    trainer = pretrain_lm(cfg, new_model("gpt-tiny", "causal", tokenizer, **cfg.model), tokenizer, "causal", corpus,
                          out_dir).trainer
    gpt = Bundle.load(out_dir, "gpt")  # the checkpoint as `taesan generate` and `taesan score` read it

    def complete_(**how) -> tuple[str, str]:
        c = complete(gpt, PROMPT, max_new_tokens=12, **how)[0]
        return c.shown, c.finish_reason

    completions = [("greedy", *complete_())]
    completions += [(f"top-p 0.9, seed {s}", *complete_(do_sample=True, top_p=0.9, seed=cfg.seed + s))
                    for s in range(cfg.samples)]
    ranked = _ranked(score(gpt, SCORED))
    clock = _clock_note(cfg, trainer)
    summary = [f"step {trainer.step}: {_eval_line(trainer)}"] + ([clock] if clock else [])
    summary += [f"{PROMPT} → {text}   ({how}; {why})" for how, text, why in completions]
    summary += [f"log P = {s:7.2f}  {t}" for s, t in ranked]
    section = Section(
        "A tiny GPT: next-word prediction",
        [f"A byte-level BPE tokenizer ({tokenizer.vocab_size} tokens) and a {sum(p.numel() for p in gpt.model.parameters()):,}-"
         f"parameter GPT trained for {trainer.step} steps on the embedded corpus ({_eval_line(trainer)} on held-out lines). "
         "A language model gives a sentence a probability by the chain rule: P(난폭 운전) = P(난폭) · P(운전 | 난폭); "
         "the one people say should score higher. A completion ends at end-of-text (stop) or after 12 tokens (length).",
         *([clock] if clock else [])],
        [Table(["decoding", "completion", "finish reason"], [list(c) for c in completions], f"continuing “{PROMPT}”",
               ["text", "text", "text"]),
         Table(["sentence", "log P (nats)"], [[t, s] for s, t in ranked], "sentence log-probabilities, highest first",
               ["text", "number"])],
        [out_dir / "loss.png"],
        [f'taesan generate --model {out_dir} --prompt "{PROMPT}" --max-new-tokens 12',
         f'taesan score --model {out_dir} ' + " ".join(f'"{t}"' for t in SCORED)],
    )
    return StepResult("gpt", summary, section, {"gpt": out_dir},
                      {"completions": completions, "scores": {t: s for s, t in ranked}, "eval": trainer.last_eval})


def bert_step(cfg: DemoConfig, corpus: Path) -> StepResult:
    """A WordPiece tokenizer and a tiny BERT pretrained to fill in the blank; top fills for 티끌 [MASK] 태산."""
    out_dir = cfg.out / "bert"
    tokenizer = WordPieceTokenizer.train([corpus], vocab_size=cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    trainer = pretrain_lm(cfg, new_model("bert-tiny", "masked", tokenizer, **cfg.model), tokenizer, "masked", corpus,
                          out_dir).trainer
    bert = Bundle.load(out_dir, "bert")
    fills = [(c["token"], c["score"]) for c in fill_mask(bert, FILL)["masks"][0]["candidates"]]  # as the playground shows them
    ranked = _ranked(score(bert, SCORED))
    clock = _clock_note(cfg, trainer)
    summary = [f"step {trainer.step}: {_eval_line(trainer)}"] + ([clock] if clock else [])
    summary += [f"{FILL}: " + ", ".join(f"{t} {p:.2f}" for t, p in fills)]
    summary += [f"pseudo-log P = {s:7.2f}  {t}" for s, t in ranked]
    section = Section(
        "A tiny BERT: fill in the blank",
        [f"A WordPiece tokenizer ({tokenizer.vocab_size} tokens) and a BERT masked language model trained for {trainer.step} "
         f"steps with {cfg.mask_prob:.0%} of the tokens hidden ({_eval_line(trainer)}; accuracy counts masked tokens only). "
         "It reads both sides of the blank; a sentence's pseudo-log-likelihood masks each token in turn. BERT hid 15%; "
         "on these short sentences that often hides nothing in a line, and a tiny model needed ~800 steps before 모아 "
         "topped the fills (at 300 steps 영화, the corpus' commonest word, came first); hiding 30% gives it twice the "
         "blanks to learn from per step.", *([clock] if clock else [])],
        [Table(["fill", "probability"], [[t, p] for t, p in fills], f"top fills for “{FILL}”", ["text", "number"]),
         Table(["sentence", "pseudo-log P"], [[t, s] for s, t in ranked], "pseudo-log-likelihood, highest first",
               ["text", "number"])],
        [out_dir / "loss.png"],
        [f'taesan score --model {out_dir} ' + " ".join(f'"{t}"' for t in SCORED)],
    )
    return StepResult("bert", summary, section, {"bert": out_dir},
                      {"fills": fills, "scores": {t: s for s, t in ranked}, "eval": trainer.last_eval})


# ---- 4. sentiment: fine-tuned, prompt-tuned, few-shot ------------------------------------------------------------
def sentiment_step(cfg: DemoConfig, gpt_dir: Path, bert_dir: Path) -> StepResult:
    """The demo GPT and BERT adapted to movie-review sentiment three ways (taesan.tuning.compare), same data."""
    train, eval_examples = sentiment_split(cfg)
    out_dir = cfg.out / "sentiment"
    # the label words: review words of each sentiment, whole in both demo tokenizers (긍정 is [UNK] to BERT's);
    # 최악 / 최고, rare in the reviews, left BERT's prompt through the LM head at chance
    config = CompareConfig(shots=list(cfg.shots), seeds=cfg.shot_seeds, prompt_tokens=cfg.prompt_tokens,
                           max_steps=cfg.tune_steps, max_minutes=cfg.tune_minutes, seed=cfg.seed, progress=cfg.progress,
                           verbalizer={"부정": "지루했다", "긍정": "재미있었다"}, calibrate=True)
    every = compare_modes(gpt_dir, train, eval_examples, out_dir, config, bert_dir=bert_dir)
    rows = [r for r in every if not r.skipped]
    floor = majority_accuracy(train, eval_examples)
    table = [[r.mode, r.model, (r.accuracy, r.accuracy_std) if r.accuracy_std is not None else r.accuracy,
              None if r.skipped else r.trainable_parameters, None if r.skipped else r.seconds,
              f"not run: {r.skipped}" if r.skipped else row_notes(r) if "in-context" in r.mode else ""] for r in every]
    table.append(["majority class (always the most frequent label)", "–", floor, 0, None, ""])
    width = max(len(r.mode) for r in every)
    summary = [f"{r.mode:<{width}} {r.model:<4} accuracy {r.accuracy:.3f}  trained {r.trainable_parameters:>9,} parameters  "
               f"{r.seconds:5.1f} s" + (f"  calibrated {r.extra['accuracy_calibrated']:.3f}"
                                        if r.extra.get("accuracy_calibrated") is not None else "") for r in rows]
    summary += [f"{r.mode:<{width}} {r.model:<4} not run: {r.skipped}" for r in every if r.skipped]
    summary += [f"majority class: {floor:.3f}"]
    checkpoints = {f"sentiment-{Path(r.extra['out']).name}": Path(r.extra["out"]) for r in rows if "out" in r.extra}
    example = "이 영화 배우들 연기가 훌륭하다"
    in_context = in_context_verdict(every, floor, len(eval_examples))  # above answering blind, or not, in words
    section = Section(
        "One task, three ways to adapt",
        [f"{len(train)} labelled reviews to learn from and {len(eval_examples)} to test on (긍정 / 부정). Full fine-tuning "
         "trains every weight; prompt tuning trains only a soft prompt and a new head, or only the prompt with the label "
         "read as its word's score from the frozen LM head (via the LM head: 재미있었다 for 긍정, 지루했다 for 부정, "
         "words the reviews use for each, as PET reads \"great\" / \"terrible\"); in-context learning trains nothing, "
         "shows the GPT k labelled examples in its prompt and picks the answer word (the same two) it finds likelier "
         "after the review; \"calibrated\" first divides out the prompt's own lean toward one word, measured on the "
         f"content-free input N/A (Zhao et al. 2021). The majority class scores {floor:.3f}.",
         *([in_context] if in_context else [])],
        [Table(["mode", "model", "accuracy", "trainable parameters", "seconds", "note"], table,
               "held-out accuracy (in-context: mean ± spread over demonstration draws)",
               ["text", "text", "fraction", "count", "seconds", "text"])],
        [out_dir / CHART],
        [f'taesan predict --model {checkpoints[name]} "{example}"' for name in ("sentiment-bert-full", "sentiment-gpt-prompt")
         if name in checkpoints],
    )
    return StepResult("sentiment", summary, section, checkpoints, {"rows": rows, "majority": floor,
                                                                  "table": markdown_table(rows, floor)})


# ---- 5. a tiny ViT on digits ---------------------------------------------------------------------------------
def vit_step(cfg: DemoConfig) -> StepResult:
    """vit-tiny fine-tuned on sklearn's 8×8 digits (the image-classification task); held-out accuracy; where [CLS]
    looks (attention rollout over the patches) on a few test digits."""
    images = digits()
    random.Random(cfg.seed).shuffle(images)
    images = images[: cfg.digits]
    held = len(images) // 5
    test, train = images[:held], images[held:]
    out_dir = cfg.out / "vit"
    torch.manual_seed(cfg.seed)
    task = ImageClassification()
    config = TrainConfig(max_steps=cfg.vit_steps, max_minutes=cfg.vit_minutes, lr=2e-3, warmup=max(1, cfg.vit_steps // 20),
                         eval_every=0, save_every=0, keep_last=1, seed=cfg.seed, progress=cfg.progress)
    result = finetune(task, taesan.create("vit-tiny"), train, test, out_dir, config, batch_size=64)
    model = result.model.eval()
    shown = test[:8]
    pixels = task.collate([f for ex in shown for f in task.encode(ex)])["pixel_values"]  # (8, 1, 8, 8)
    pixels = pixels.to(next(model.parameters()).device)
    guesses = model(pixels).argmax(-1).tolist()
    titles = [f"{ex.label} → {task.labels[g]}" for ex, g in zip(shown, guesses)]
    figure = save_attention_overlay(pixels.cpu(), vit_attention_map(model, pixels).cpu(), cfg.out / "figures" / "vit_rollout.png",
                                    titles)
    accuracy = float(result.metrics.get("accuracy", float("nan")))
    summary = [f"{len(train)} training digits, {len(test)} held out: accuracy {accuracy:.3f} "
               f"({result.trainable_parameters:,} parameters, {result.seconds:.0f} s)"]
    section = Section(
        "A tiny ViT on handwritten digits",
        [f"Each 8×8 digit is cut into 16 patches of 2×2 pixels; a {result.trainable_parameters:,}-parameter ViT reads them "
         f"as a sequence after a [CLS] token and classifies [CLS]. Held-out accuracy {accuracy:.3f} on {len(test)} digits "
         "(chance is 0.1). The lower row shows attention rollout: which patches [CLS] finally draws on (true → predicted)."],
        [Table(["accuracy", "macro-F1", "digits"], [[accuracy, result.metrics.get("macro_f1"), len(test)]], "held-out digits",
               ["fraction", "fraction", "count"])],
        [figure],
        [f"taesan predict --model {out_dir} digits:0"],
    )
    return StepResult("vit", summary, section, {"vit": out_dir}, {"metrics": result.metrics})


# ---- 6. attention maps ---------------------------------------------------------------------------------------
def attention_step(cfg: DemoConfig, gpt_dir: Path, bert_dir: Path) -> StepResult:
    """Every layer and head of the demo GPT and BERT on one sentence (taesan.viz_attention): the GPT's causal
    triangle (no token sees the future) beside BERT reading both ways."""
    figures, sizes = [], []
    for name, directory in (("gpt", gpt_dir), ("bert", bert_dir)):
        bundle = Bundle.load(directory, name)
        blocks = text_attention(bundle.model, bundle.tokenizer, ATTENTION_TEXT)
        figures.append(plot_attention(blocks, cfg.out / "figures" / f"attention_{name}.png"))
        figures.append(plot_attention(blocks, cfg.out / "figures" / f"attention_{name}_L0H0.png", layer=0, head=0))
        sizes.append(f"{name}: {len(blocks)} layers × {blocks[0].weights.shape[0]} heads over {len(blocks[0].keys)} tokens")
    section = Section(
        "Who attends to whom",
        [f"“{ATTENTION_TEXT}” through both models: one heatmap per layer and head (rows: the token reading, columns: the "
         "token read). The GPT's upper triangle is empty: a word never sees the words after it. BERT's maps are full."],
        [], figures,
        [f'taesan attention --model {d} "{ATTENTION_TEXT}" --out attention.png' for d in (gpt_dir, bert_dir)],
    )
    return StepResult("attention", sizes, section, data={"figures": figures})


# ---- the tour ------------------------------------------------------------------------------------------------
def run(cfg: DemoConfig) -> Iterator[StepResult]:
    """Every step in order, each result yielded as soon as it is done (so the caller can print as it goes)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus(cfg)

    def timed(step, *args) -> StepResult:
        began = time.perf_counter()
        result = step(*args)
        result.seconds = time.perf_counter() - began
        return result

    yield timed(tokenizers_step, cfg, corpus)
    gpt = timed(gpt_step, cfg, corpus)
    yield gpt
    bert = timed(bert_step, cfg, corpus)
    yield bert
    yield timed(sentiment_step, cfg, gpt.checkpoints["gpt"], bert.checkpoints["bert"])
    yield timed(transfer_step, cfg, gpt.checkpoints["gpt"], bert.checkpoints["bert"])
    yield timed(cloze_step, cfg)
    yield timed(portable_step, cfg, gpt.checkpoints["gpt"], bert.checkpoints["bert"])
    yield timed(vit_step, cfg)
    yield timed(attention_step, cfg, gpt.checkpoints["gpt"], bert.checkpoints["bert"])


def write_demo_report(cfg: DemoConfig, results: list[StepResult], seconds: float) -> Path:
    """OUT/report.html: every step's section, plus where the checkpoints are."""
    saved = [[name, str(path)] for r in results for name, path in r.checkpoints.items()]
    timing = [[r.name, r.seconds] for r in results] + [["total", seconds]]
    closing = Section("Checkpoints and timing",
                      ["Every model the tour trained is a checkpoint directory that taesan load, generate, score, predict, "
                       "attention and serve read."],
                      [Table(["model", "directory"], saved, kinds=["text", "text"]),
                       Table(["step", "seconds"], timing, "wall time", ["text", "seconds"])],
                      commands=["taesan serve " + " ".join(f"--model {name}={path}" for name, path in saved)])
    intro = (f"태산 (티끌 모아 태산): the whole tour on the corpus that ships inside the package, "
             f"{'quick mode, ' if cfg.is_quick else ''}seed {cfg.seed}, in {seconds / 60:.1f} minutes.")
    return write_report(cfg.out / "report.html", "taesan demo", [r.section for r in results] + [closing], intro)
