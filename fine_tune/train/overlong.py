"""Rows longer than `max_length`, counted before training: TRL cuts them (or drops those whose prompt alone fills
`max_length`) without a word, and a target cut before its end-of-turn teaches the model to stop mid-answer.

`overlong: refuse` (the default) stops with the counts; `overlong: drop` leaves those rows out and says how many.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from fine_tune.errors import DatasetError, RecipeError

logger = logging.getLogger(__name__)
OVERLONG_POLICIES = ("refuse", "drop")
LISTED = 5


@dataclass(frozen=True)
class Overlong:
    """The examples (by position) longer than max_length, their token counts, and which have an overlong prompt."""

    max_length: int
    total: int
    lengths: dict[int, int]
    prompt_fills: list[int]

    def describe(self) -> str:
        listed = ", ".join(f"#{i} ({n} tokens)" for i, n in list(self.lengths.items())[:LISTED])
        more = f" and {len(self.lengths) - LISTED} more" if len(self.lengths) > LISTED else ""
        return (
            f"{len(self.lengths)} of {self.total} SFT examples are longer than max_length {self.max_length} tokens "
            f"(longest {max(self.lengths.values())}; {len(self.prompt_fills)} with a prompt that alone fills it): "
            f"{listed}{more}"
        )


def conversation_length(example: Mapping[str, Any], tokenizer: Any, *, prompt_only: bool = False) -> int:
    """Tokens of a conversational prompt(+completion) example, rendered as TRL's SFTTrainer tokenizes it; of a plain
    `text` example, its tokens and the end-of-sequence token TRL appends (a text has no prompt: 0)."""
    if "text" in example:
        return 0 if prompt_only else len(tokenizer(example["text"])["input_ids"]) + 1
    kwargs = dict(example.get("chat_template_kwargs") or {})
    if prompt_only:
        messages, kwargs["add_generation_prompt"] = list(example["prompt"]), True
    else:
        messages = list(example["prompt"]) + list(example["completion"])
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def find_overlong(examples: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int) -> Overlong:
    lengths, prompt_fills = {}, []
    for index, example in enumerate(examples):
        length = conversation_length(example, tokenizer)
        if length > max_length:
            lengths[index] = length
            if conversation_length(example, tokenizer, prompt_only=True) >= max_length:
                prompt_fills.append(index)
    return Overlong(max_length=max_length, total=len(examples), lengths=lengths, prompt_fills=prompt_fills)


def enforce_max_length(dataset: datasets.Dataset, tokenizer: Any, training_args) -> datasets.Dataset:
    """The SFT examples that fit `training_args.max_length` whole; the others refused (DatasetError with the counts)
    or dropped and counted, as `training_args.overlong` says. No max_length: nothing is cut, nothing to check."""
    policy = getattr(training_args, "overlong", "refuse")
    if policy not in OVERLONG_POLICIES:
        raise RecipeError(f"overlong must be one of {', '.join(OVERLONG_POLICIES)}, got {policy!r}")
    if training_args.max_length is None:
        return dataset
    overlong = find_overlong(dataset, tokenizer, training_args.max_length)
    if not overlong.lengths:
        logger.info("all %d SFT examples fit max_length %d", overlong.total, overlong.max_length)
        return dataset
    if policy == "refuse":
        raise DatasetError(
            f"{overlong.describe()}; TRL would cut their targets before the end-of-turn or drop them. Raise "
            f"max_length to {max(overlong.lengths.values())}, or set overlong: drop to leave them out (counted)"
        )
    kept = [i for i in range(len(dataset)) if i not in overlong.lengths]
    if not kept:
        raise DatasetError(f"{overlong.describe()}: none is left to train on; raise max_length")
    logger.warning("%s; dropped them (overlong: drop), %d left", overlong.describe(), len(kept))
    return dataset.select(kept)
