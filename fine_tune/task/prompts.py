"""The task format, defined once: system prompt, user message, target JSON, SFT and GRPO examples.

Every phase (SFT, GRPO, eval) renders prompts through this module, so the text the model sees at inference is exactly
the prefix it was trained on. What a base's chat template does is probed once per template (`chat_format`): a template
without a system role gets the system prompt folded into the first user turn (Mistral v0.3 silently drops a system
message from a [system, user, assistant] conversation), and `enable_thinking=False` goes only to templates that read
it (Qwen3). Rows are canonical (`fine_tune.data.normalise`: question, options, answer, context, exp).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fine_tune.errors import ModelSourceError, RecipeError
from fine_tune.task.spec import CHOICES_FIELD, DEFAULT_TASK, OPEN_RESPONSE_KEYS, TaskSpec, resolve_task
from fine_tune.task.variants import DEFAULT_OPTION_FORMAT, PROJECT_VARIANT, PromptVariant

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
OPTION_COLUMNS: tuple[str, ...] = ("opa", "opb", "opc", "opd")
TARGET_CONFIDENCE = 0.95
REASON_MAX_CHARS = 250
CHAT_TEMPLATE_KWARGS: dict[str, Any] = {"enable_thinking": False}
SYSTEM_FOLD_SEPARATOR = "\n\n"
_PROBE_SYSTEM = "PROBE-SYSTEM-7f3a"


def system_prompt(letters: Sequence[str] = LETTERS, template: str | None = None) -> str:
    """The instructions, naming the task's letters (for A-D exactly the MedMCQA prompt every model was trained on);
    `template`: a task's own instructions (`prompt: {system: ...}` in its file), the letters at `{choices}`."""
    choices = ", ".join(f'"{letter}"' for letter in letters)
    if template is not None:
        return template.replace(CHOICES_FIELD, choices)
    return (
        "You are a medical expert answering a multiple-choice exam question. "
        "Reply with exactly one JSON object and nothing else, with these keys: "
        f'"predicted_category" (one of {choices}), '
        '"confidence" (a number between 0 and 1), '
        '"reason" (one short sentence).'
    )


SYSTEM_PROMPT = system_prompt(LETTERS)
OPEN_JSON_SYSTEM_PROMPT = (
    "You are a medical expert answering a medical question. "
    "Reply with exactly one JSON object and nothing else, with these keys: "
    f'"{OPEN_RESPONSE_KEYS[0]}" (your answer, in the language of the question), '
    f'"{OPEN_RESPONSE_KEYS[1]}" (a number between 0 and 1).'
)
OPEN_TEXT_SYSTEM_PROMPT = "You are a medical expert. Answer the medical question accurately and concisely."


def task_system_prompt(task: TaskSpec | None) -> str:
    """The system prompt of any task: a multiple-choice task's names its letters; an open task's asks for the JSON
    answer (answer_format: json) or for the answer alone (text); a task's own `prompt.system` replaces either."""
    if task is None or not task.is_open:
        return system_prompt(_letters(task), task.system if task else None)
    if task.system is not None:
        return task.system
    return OPEN_JSON_SYSTEM_PROMPT if task.answer_format == "json" else OPEN_TEXT_SYSTEM_PROMPT


def gold_letter(row: Mapping[str, Any], task: TaskSpec | None = None) -> str:
    """The letter of a canonical row's correct option (`answer`, 0-based)."""
    return _letters(task)[row["answer"]]


def format_question(
    row: Mapping[str, Any], task: TaskSpec | None = None, option_format: str = DEFAULT_OPTION_FORMAT
) -> str:
    """The user message: the context (if the task has one) under its label, the question, the lettered options (an
    open task has none)."""
    task = task or resolve_task(DEFAULT_TASK)
    lines = [f"{task.context_label}: {row['context'].strip()}"] if row.get("context") else []
    lines.append(f"{task.question_label}: {row['question'].strip()}")
    if task.is_open:
        return "\n".join(lines)
    lines += [
        option_format.replace("{letter}", letter).replace("{text}", str(option).strip())
        for letter, option in zip(task.letters, row["options"], strict=False)
    ]
    return "\n".join(lines)


def prompt_messages(
    row: Mapping[str, Any],
    chat_format: ChatFormat | None = None,
    *,
    task: TaskSpec | None = None,
    exemplars: Sequence[Mapping[str, Any]] = (),
    variant: PromptVariant | None = None,
) -> list[dict[str, str]]:
    """System prompt, one user/assistant pair per exemplar (k-shot: the same strict contract), then the question;
    a `variant` (`fine_tune.task.variants`) changes the instructions, the option format or where they go."""
    variant = variant or PromptVariant(PROJECT_VARIANT)
    if task is not None and task.is_open:
        system = task_system_prompt(task)
    else:
        system = system_prompt(_letters(task), variant.system or (task.system if task else None))
    messages = [{"role": "system", "content": system}] if variant.system_placement == "system" else []
    for exemplar in exemplars:
        messages.append({"role": "user", "content": format_question(exemplar, task, variant.option_format)})
        messages.append({"role": "assistant", "content": target_response(exemplar, task)})
    question = format_question(row, task, variant.option_format)
    if variant.system_placement == "user":
        question = system + SYSTEM_FOLD_SEPARATOR + question
    messages.append({"role": "user", "content": question})
    return (chat_format or DEFAULT_CHAT_FORMAT).conversation(messages)


def target_reason(row: Mapping[str, Any], task: TaskSpec | None = None) -> str:
    """The explanation cut to REASON_MAX_CHARS; when it is missing, a sentence naming the correct option."""
    explanation = " ".join((row.get("exp") or "").split())
    if explanation:
        return explanation[:REASON_MAX_CHARS].rstrip()
    option = " ".join(str(row["options"][row["answer"]]).split())
    return f"The correct answer is {gold_letter(row, task)}) {option}."[:REASON_MAX_CHARS]


def target_response(row: Mapping[str, Any], task: TaskSpec | None = None) -> str:
    """The assistant's target: one JSON object with exactly the three keys (an open task's: `open_target`)."""
    if task is not None and task.is_open:
        return open_target(row, task)
    return json.dumps(
        {
            "predicted_category": gold_letter(row, task),
            "confidence": TARGET_CONFIDENCE,
            "reason": target_reason(row, task),
        },
        ensure_ascii=False,
    )


def open_target(row: Mapping[str, Any], task: TaskSpec) -> str:
    """An open task's target: {"answer": reference, "confidence": TARGET_CONFIDENCE}, or the reference alone."""
    if task.answer_format == "text":
        return row["answer"]
    answer_key, confidence_key = OPEN_RESPONSE_KEYS
    return json.dumps({answer_key: row["answer"], confidence_key: TARGET_CONFIDENCE}, ensure_ascii=False)


def sft_example(
    row: Mapping[str, Any], chat_format: ChatFormat | None = None, task: TaskSpec | None = None
) -> dict[str, Any]:
    """Conversational prompt/completion: TRL masks the prompt, so loss falls on the completion only. A text task's
    example is its plain text (no chat template; loss on every token)."""
    if task is not None and task.is_text:
        return {"text": row["text"]}
    chat_format = chat_format or DEFAULT_CHAT_FORMAT
    return {
        "prompt": prompt_messages(row, chat_format, task=task),
        "completion": [{"role": "assistant", "content": target_response(row, task)}],
        "chat_template_kwargs": dict(chat_format.template_kwargs),
    }


def grpo_example(
    row: Mapping[str, Any], chat_format: ChatFormat | None = None, task: TaskSpec | None = None
) -> dict[str, Any]:
    """Prompt-only example; `ground_truth` and the task's `letters` reach the reward functions as keyword arguments."""
    if task is not None and task.type != "mcq":
        raise RecipeError(f"task {task.name} is a {task.type} task: GRPO is built for multiple-choice tasks only")
    return {
        "prompt": prompt_messages(row, chat_format, task=task),
        "ground_truth": gold_letter(row, task),
        "letters": list(_letters(task)),
    }


def select_exemplars(pool_size: int, shots: int, seed: int) -> list[int]:
    """`shots` distinct indices into the exemplar pool (training rows only), the same for every eval row and run."""
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    if shots > pool_size:
        raise ValueError(f"{shots} shots requested but only {pool_size} training rows to draw exemplars from")
    return sorted(np.random.default_rng(seed).choice(pool_size, size=shots, replace=False).tolist())


def _letters(task: TaskSpec | None) -> tuple[str, ...]:
    return task.letters if task is not None else LETTERS


@dataclass(frozen=True)
class ChatFormat:
    """What a chat template does with the task's conversation.

    `system_role`: the template renders a leading system message in a [system, user, assistant] conversation (Qwen,
    Llama 3; Gemma 3 folds it itself). Without one, the system prompt is folded into the first user turn as
    `system + "\n\n" + user`, the rule Gemma 3 and Mistral v0.3 use themselves, so training and eval see it.
    `template_kwargs`: extra template variables the template reads (`enable_thinking` only where it is used).
    """

    system_role: bool = True
    template_kwargs: Mapping[str, Any] = field(default_factory=lambda: dict(CHAT_TEMPLATE_KWARGS))

    def conversation(self, messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        messages = [dict(message) for message in messages]
        if self.system_role or not messages or messages[0]["role"] != "system":
            return messages
        system, first, *rest = messages
        if first["role"] != "user":
            raise ValueError(f"a system message must be followed by a user message, got {first['role']!r}")
        return [{"role": "user", "content": system["content"] + SYSTEM_FOLD_SEPARATOR + first["content"]}, *rest]


DEFAULT_CHAT_FORMAT = ChatFormat()
_FORMATS: dict[str, ChatFormat] = {}


def chat_format(tokenizer: Any) -> ChatFormat:
    """Probe the tokenizer's chat template once: does a system message survive a full training conversation, and
    which of CHAT_TEMPLATE_KWARGS does the template read."""
    template = tokenizer.chat_template
    if not isinstance(template, str):
        raise ModelSourceError(f"{getattr(tokenizer, 'name_or_path', 'the tokenizer')} has no (single) chat template")
    if template not in _FORMATS:
        probe = [
            {"role": "system", "content": _PROBE_SYSTEM},
            {"role": "user", "content": "question"},
            {"role": "assistant", "content": "answer"},
        ]
        try:
            rendered = tokenizer.apply_chat_template(probe, tokenize=False)
            system_role = _PROBE_SYSTEM in rendered
        except Exception:  # jinja2 TemplateError: templates that refuse a system role (Gemma 1/2) raise
            system_role = False
        kwargs = usable_template_kwargs(tokenizer, CHAT_TEMPLATE_KWARGS)
        _FORMATS[template] = ChatFormat(system_role=system_role, template_kwargs=kwargs)
    return _FORMATS[template]


def usable_template_kwargs(tokenizer: Any, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The template variables among `kwargs` that the tokenizer's chat template reads (others are dropped)."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return {key: value for key, value in (kwargs or {}).items() if key in template}


def render_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The generation prompt text, exactly as SFT and GRPO render it (system folded and template kwargs as the
    template needs)."""
    chat_format_ = chat_format(tokenizer)
    return tokenizer.apply_chat_template(
        chat_format_.conversation(messages), tokenize=False, add_generation_prompt=True, **chat_format_.template_kwargs
    )


def render_training_text(tokenizer: Any, row: Mapping[str, Any], task: TaskSpec | None = None) -> str:
    """The full SFT training sequence (prompt + target) for `row`, as the SFT trainer renders it (a text task's:
    the text and the end-of-sequence token)."""
    if task is not None and task.is_text:
        return row["text"] + (tokenizer.eos_token or "")
    example = sft_example(row, chat_format(tokenizer), task=task)
    return tokenizer.apply_chat_template(
        example["prompt"] + example["completion"], tokenize=False, **example["chat_template_kwargs"]
    )
