"""GRPO reward functions: one float (0.0 or 1.0) per completion, computed with the strict parser.

TRL calls them as `f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **dataset_columns)`, with
each completion a `[{"role": "assistant", "content": ...}]` list for conversational datasets; `completion_text`
accepts that form as well as plain strings. Unknown keyword arguments are ignored, and no input makes them raise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from fine_tune.task.parsing import is_letter, parse_response

RewardFunc = Callable[..., list[float]]


def json_validity_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when the completion is exactly one JSON object."""
    return [float(parse_response(c).json_valid) for c in _as_list(completions)]


def schema_compliance_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when the completion meets the full response contract."""
    return [float(parse_response(c).schema_valid) for c in _as_list(completions)]


def accuracy_reward(completions: Any, ground_truth: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the strictly parsed category equals the aligned ground-truth letter; no valid letter gives 0.0."""
    completions = _as_list(completions)
    golds = _as_list(ground_truth)[: len(completions)]
    golds += [None] * (len(completions) - len(golds))
    return [
        float(is_letter(gold) and parse_response(c).category == gold)
        for c, gold in zip(completions, golds, strict=True)
    ]


REWARD_FUNCS: dict[str, RewardFunc] = {
    f.__name__: f for f in (json_validity_reward, schema_compliance_reward, accuracy_reward)
}


def get_reward_funcs(names: Sequence[str]) -> list[RewardFunc]:
    """Reward functions by registry name, or by dotted import path (`package.module.function`) as in TRL's script."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in names if name not in REWARD_FUNCS and "." not in name]
    if unknown:
        raise ValueError(
            f"unknown reward function(s) {unknown}; known: {', '.join(REWARD_FUNCS)} (or a dotted import path)"
        )
    return [REWARD_FUNCS[name] if name in REWARD_FUNCS else _import_reward(name) for name in names]


def _import_reward(dotted: str) -> RewardFunc:
    module_name, _, attribute = dotted.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import reward function {dotted!r}: {error}") from error
    if not callable(function):
        raise ValueError(f"reward function {dotted!r} is not callable")
    return function


def _as_list(values: Any) -> list[Any]:
    """A batch as a list; None is an empty batch and anything that is not a list or tuple a batch of one."""
    if values is None:
        return []
    return list(values) if isinstance(values, (list, tuple)) else [values]
