"""The task format, defined once: system prompt, user message, target JSON, SFT and GRPO examples.

Every phase (SFT, GRPO, eval) renders prompts through this module, with Qwen3 in non-thinking mode, so the text the
model sees at inference is exactly the prefix it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
OPTION_COLUMNS: tuple[str, ...] = ("opa", "opb", "opc", "opd")
RESPONSE_KEYS: tuple[str, ...] = ("predicted_category", "confidence", "reason")
TARGET_CONFIDENCE = 0.95
REASON_MAX_CHARS = 250
CHAT_TEMPLATE_KWARGS: dict[str, Any] = {"enable_thinking": False}

SYSTEM_PROMPT = (
    "You are a medical expert answering a multiple-choice exam question. "
    "Reply with exactly one JSON object and nothing else, with these keys: "
    '"predicted_category" (one of "A", "B", "C", "D"), '
    '"confidence" (a number between 0 and 1), '
    '"reason" (one short sentence).'
)


def gold_letter(row: Mapping[str, Any]) -> str:
    """The letter of the correct option (`cop` 0..3 -> "A".."D")."""
    return LETTERS[row["cop"]]


def format_question(row: Mapping[str, Any]) -> str:
    """The user message: the question followed by the four lettered options."""
    lines = [f"Question: {row['question'].strip()}"]
    lines += [f"{letter}) {str(row[col]).strip()}" for letter, col in zip(LETTERS, OPTION_COLUMNS, strict=True)]
    return "\n".join(lines)


def prompt_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": format_question(row)},
    ]


def target_reason(row: Mapping[str, Any]) -> str:
    """`exp` cut to REASON_MAX_CHARS; when `exp` is missing, a sentence naming the correct option."""
    explanation = " ".join((row.get("exp") or "").split())
    if explanation:
        return explanation[:REASON_MAX_CHARS].rstrip()
    letter = gold_letter(row)
    option = " ".join(str(row[OPTION_COLUMNS[row["cop"]]]).split())
    return f"The correct answer is {letter}) {option}."[:REASON_MAX_CHARS]


def target_response(row: Mapping[str, Any]) -> str:
    """The assistant's target: one JSON object with exactly the three keys."""
    return json.dumps(
        {
            "predicted_category": gold_letter(row),
            "confidence": TARGET_CONFIDENCE,
            "reason": target_reason(row),
        },
        ensure_ascii=False,
    )


def sft_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """Conversational prompt/completion: TRL masks the prompt, so loss falls on the completion only."""
    return {
        "prompt": prompt_messages(row),
        "completion": [{"role": "assistant", "content": target_response(row)}],
        "chat_template_kwargs": dict(CHAT_TEMPLATE_KWARGS),
    }


def grpo_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """Prompt-only example; `ground_truth` reaches the reward functions as a keyword argument."""
    return {"prompt": prompt_messages(row), "ground_truth": gold_letter(row)}


def render_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The generation prompt text, exactly as SFT and GRPO render it (non-thinking mode)."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS
    )
