"""Prompt tuning through the LM head (finetune --mode prompt-lm): the checkpoint's own language model, frozen, reads
a label as its verbalizer word's score after a pattern, and only a soft prompt learns (Lester et al. 2021; PEFT's
PROMPT_TUNING). Here the words and the pattern become ids and the model a `Verbalizer` (taesan.models.verbalizer).

Not the prompt (taesan.tuning.prompt wraps the verbalizer in it) and not in-context learning (nothing learns there;
tuning/in_context.py shares the verbalizer's "0=부정,1=긍정" syntax and the word joining with it).
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from taesan.errors import TaesanError
from taesan.models.kinds import family_name, is_causal_lm, is_masked_lm
from taesan.models.verbalizer import Verbalizer, VerbalizerConfig
from taesan.tasks.heads import takes_segments
from taesan.tuning.in_context import join_ids

MASK = "{mask}"  # where a masked LM reads the label in a pattern
CAUSAL_PATTERN = "\n정답:"  # a GPT reads the next token after it: in-context learning's answer prefix
MASKED_PATTERN = "정답: " + MASK  # after the text's [SEP]: "이 영화 최고다 [SEP] 정답: [MASK] [SEP]"


def default_pattern(model: nn.Module) -> str:
    return MASKED_PATTERN if is_masked_lm(model) else CAUSAL_PATTERN


def verbalized_lm(model: nn.Module, tokenizer: Any, labels: Sequence[str], words: dict[str, str],
                  pattern: str | None = None) -> Verbalizer:
    """`model` (a GPT or a masked LM, with its LM head) read as a classifier of `labels` through `words`.

    pattern: text after each input. A GPT scores " " + word as the next token after it (default "\\n정답:"); a masked
    LM's pattern holds {mask}, where the word is scored ("정답: {mask}", then the tokenizer's [SEP]). A label is its
    word's first token: words whose first tokens coincide are an error, as is a word the tokenizer cannot spell.
    """
    if not (is_causal_lm(model) or is_masked_lm(model)) or getattr(model, "inner", None) is not None:
        raise TaesanError(f"--mode prompt-lm reads labels through the LM head: it needs a GPT or a masked LM (a "
                          f"checkpoint pretrained with --objective causal or masked, or a gpt / bert-mlm preset), "
                          f"got {family_name(model)!r}")
    if tokenizer is None:
        raise TaesanError("--mode prompt-lm needs the model's tokenizer")
    missing = [label for label in labels if label not in words]
    if missing:
        raise TaesanError(f"--verbalizer has no word for label {missing[0]!r} (labels: {', '.join(labels)})")
    pattern = default_pattern(model) if pattern is None else pattern
    masked = is_masked_lm(model)
    pattern_ids, read_at, label_ids = (_masked if masked else _causal)(tokenizer, pattern, [words[x] for x in labels])
    spelled = {}
    for label, i in zip(labels, label_ids):
        if i == tokenizer.unk_id:
            raise TaesanError(f"--verbalizer: the word {words[label]!r} (label {label!r}) is unknown to the tokenizer; "
                              f"give each label a word it knows (--verbalizer {','.join(f'{x}=WORD' for x in labels)}): "
                              "words the texts themselves use for each label read best")
        if i in spelled:
            raise TaesanError(f"--verbalizer: the words {words[spelled[i]]!r} and {words[label]!r} start with the same "
                              f"token {tokenizer.id_to_token(i)!r}; a label is read as its word's first token")
        spelled[i] = label
    room = model.config.n_positions - len(pattern_ids)
    if room < 2:
        raise TaesanError(f"the pattern {pattern!r} takes {len(pattern_ids)} of the model's {model.config.n_positions} positions")
    config = VerbalizerConfig(
        lm=model.config_dict(), labels=list(labels), words=[words[x] for x in labels], label_ids=label_ids,
        pattern=pattern, pattern_ids=pattern_ids, read_at=read_at, pattern_type_id=int(masked and takes_segments(model)),
        n_positions=room, vocab_size=model.config.vocab_size, num_labels=len(labels),
    )
    return Verbalizer(config, lm=model)


def _causal(tokenizer: Any, pattern: str, words: list[str]) -> tuple[list[int], int, list[int]]:
    """A GPT: (the pattern's ids, read at its last, each " word"'s first token as in-context learning joins them)."""
    if MASK in pattern:
        raise TaesanError(f"--pattern {pattern!r}: a GPT reads the word after the pattern; {MASK} is for masked LMs")
    joined = [join_ids(tokenizer, pattern, " " + w) for w in words]
    return joined[0][0], -1, [cont[0] for _, cont in joined]


def _masked(tokenizer: Any, pattern: str, words: list[str]) -> tuple[list[int], int, list[int]]:
    """A masked LM: (the pattern's ids with the mask and a closing [SEP], the mask's index, each word's first token)."""
    if pattern.count(MASK) != 1 or tokenizer.mask_id is None:
        raise TaesanError(f"--pattern {pattern!r}: a masked LM reads the label at {MASK}: write it once (and the "
                          f"tokenizer needs a mask token)")
    text = pattern.replace(MASK, tokenizer.id_to_token(tokenizer.mask_id))
    ids = tokenizer.encode(text, add_special_tokens=False).ids + ([tokenizer.sep_id] if tokenizer.sep_id is not None else [])
    before = pattern.split(MASK)[0]
    firsts = []
    for w in words:
        # spelled as it would stand at the mask: after "정답: ", a byte-level BPE (RoBERTa's) writes " 재미있었다" as
        # one Ġ-token where "재미있었다" alone is byte pieces; WordPiece spells both alike
        spelled = join_ids(tokenizer, before, w)[1] if w.strip() else []
        if not spelled:
            raise TaesanError(f"--verbalizer: the word {w!r} encodes to no tokens")
        firsts.append(spelled[0])
    return ids, ids.index(tokenizer.mask_id), firsts
