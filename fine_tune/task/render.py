"""The task format for any TaskSpec, on canonical rows (`fine_tune.data.tasks`): system prompt, user message, target
JSON, SFT/GRPO examples and k-shot prompts.

For MedMCQA (letters A-D, no context, label "Question") every text is byte-identical to `fine_tune.task.prompts`.
A task with a context puts it before the question under its label (PubMedQA: "Abstract: ..."). A k-shot prompt
repeats the same contract k times as earlier user/assistant turns, so the model is scored exactly as in 0-shot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS, REASON_MAX_CHARS, TARGET_CONFIDENCE
from fine_tune.task.spec import TaskSpec


def system_prompt(letters: Sequence[str]) -> str:
    choices = ", ".join(f'"{letter}"' for letter in letters)
    return (
        "You are a medical expert answering a multiple-choice exam question. "
        "Reply with exactly one JSON object and nothing else, with these keys: "
        f'"predicted_category" (one of {choices}), '
        '"confidence" (a number between 0 and 1), '
        '"reason" (one short sentence).'
    )


def gold_letter(spec: TaskSpec, row: Mapping[str, Any]) -> str:
    return spec.letters[row["answer"]]


def format_question(spec: TaskSpec, row: Mapping[str, Any]) -> str:
    """The user message: the context (if any), the question, then the row's lettered options."""
    lines = [f"{spec.context_label}: {row['context'].strip()}"] if row.get("context") else []
    lines.append(f"{spec.question_label}: {row['question'].strip()}")
    lines += [f"{letter}) {str(option).strip()}" for letter, option in zip(spec.letters, row["options"], strict=False)]
    return "\n".join(lines)


def target_reason(spec: TaskSpec, row: Mapping[str, Any]) -> str:
    """The explanation cut to REASON_MAX_CHARS; without one, a sentence naming the correct option."""
    explanation = " ".join((row.get("exp") or "").split())
    if explanation:
        return explanation[:REASON_MAX_CHARS].rstrip()
    option = " ".join(str(row["options"][row["answer"]]).split())
    return f"The correct answer is {gold_letter(spec, row)}) {option}."[:REASON_MAX_CHARS]


def target_response(spec: TaskSpec, row: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "predicted_category": gold_letter(spec, row),
            "confidence": TARGET_CONFIDENCE,
            "reason": target_reason(spec, row),
        },
        ensure_ascii=False,
    )


def prompt_messages(
    spec: TaskSpec, row: Mapping[str, Any], exemplars: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, str]]:
    """System prompt, then one user/assistant pair per exemplar (k-shot), then the question."""
    messages = [{"role": "system", "content": system_prompt(spec.letters)}]
    for exemplar in exemplars:
        messages.append({"role": "user", "content": format_question(spec, exemplar)})
        messages.append({"role": "assistant", "content": target_response(spec, exemplar)})
    messages.append({"role": "user", "content": format_question(spec, row)})
    return messages


def sft_example(spec: TaskSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """Conversational prompt/completion: TRL masks the prompt, so loss falls on the completion only."""
    return {
        "prompt": prompt_messages(spec, row),
        "completion": [{"role": "assistant", "content": target_response(spec, row)}],
        "chat_template_kwargs": dict(CHAT_TEMPLATE_KWARGS),
    }


def grpo_example(spec: TaskSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """Prompt-only example; `ground_truth` and the task's `letters` reach the reward functions as keyword arguments."""
    return {
        "prompt": prompt_messages(spec, row),
        "ground_truth": gold_letter(spec, row),
        "letters": list(spec.letters),
    }


def select_exemplars(pool_size: int, shots: int, seed: int) -> list[int]:
    """`shots` distinct indices into the exemplar pool (training rows only), the same for every eval row and run."""
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    if shots > pool_size:
        raise ValueError(f"{shots} shots requested but only {pool_size} training rows to draw exemplars from")
    return sorted(np.random.default_rng(seed).choice(pool_size, size=shots, replace=False).tolist())
