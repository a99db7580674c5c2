"""GRPO reward functions: one float in [0, 1] per completion, computed with the strict parser.

TRL calls them as `f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **dataset_columns)`, with
each completion a `[{"role": "assistant", "content": ...}]` list for conversational datasets; `completion_text`
accepts that form as well as plain strings. Unknown keyword arguments are ignored, and no input makes them raise.

Two reward modes share the first two functions: "summed" (upstream's three rewards) and "gated", whose accuracy term
pays only for a schema-valid answer (schema compliance already implies valid JSON, so each term needs the one before).
`calibration_reward` is optional: `1 - (confidence - correct)^2` on a schema-valid answer, the negated Brier term.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from fine_tune.errors import RecipeError
from fine_tune.task.parsing import is_letter, parse_response
from fine_tune.task.prompts import LETTERS

RewardFunc = Callable[..., list[float]]


def json_validity_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when the completion is exactly one JSON object."""
    return [float(parsed.json_valid) for parsed in _parsed(completions, kwargs)]


def schema_compliance_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when the completion meets the full response contract (its category one of the task's letters)."""
    return [float(parsed.schema_valid) for parsed in _parsed(completions, kwargs)]


def accuracy_reward(completions: Any, ground_truth: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the strictly parsed category equals the aligned ground-truth letter; no valid letter gives 0.0."""
    parsed = _parsed(completions, kwargs)
    golds = _aligned(ground_truth, len(parsed))
    letters = _letter_sets(kwargs, len(parsed))
    return [
        float(is_letter(gold, task) and p.category == gold)
        for p, gold, task in zip(parsed, golds, letters, strict=True)
    ]


def gated_accuracy_reward(completions: Any, ground_truth: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the answer is correct and the whole response is schema-valid (no credit for a bare letter)."""
    parsed = _parsed(completions, kwargs)
    golds = _aligned(ground_truth, len(parsed))
    letters = _letter_sets(kwargs, len(parsed))
    return [
        float(is_letter(gold, task) and p.schema_valid and p.category == gold)
        for p, gold, task in zip(parsed, golds, letters, strict=True)
    ]


def calibration_reward(completions: Any, ground_truth: Any = None, **kwargs: Any) -> list[float]:
    """`1 - (confidence - correct)^2` for a schema-valid answer, else 0.0: stating the real certainty pays most."""
    parsed = _parsed(completions, kwargs)
    golds = _aligned(ground_truth, len(parsed))
    letters = _letter_sets(kwargs, len(parsed))
    rewards = []
    for p, gold, task in zip(parsed, golds, letters, strict=True):
        if not (p.schema_valid and is_letter(gold, task)):
            rewards.append(0.0)
            continue
        correct = float(p.category == gold)
        rewards.append(1.0 - (p.confidence - correct) ** 2)
    return rewards


def _letter_sets(kwargs: dict[str, Any], n: int) -> list[Sequence[str]]:
    """Each completion's task letters, from the GRPO dataset's `letters` column (A-D when it has none)."""
    return [
        task if isinstance(task, list | tuple) and task else LETTERS for task in _aligned(kwargs.get("letters"), n)
    ]


def _parsed(completions: Any, kwargs: dict[str, Any]) -> list[Any]:
    completions = _as_list(completions)
    letters = _letter_sets(kwargs, len(completions))
    return [parse_response(c, task) for c, task in zip(completions, letters, strict=True)]


REWARD_FUNCS: dict[str, RewardFunc] = {
    f.__name__: f
    for f in (
        json_validity_reward,
        schema_compliance_reward,
        accuracy_reward,
        gated_accuracy_reward,
        calibration_reward,
    )
}
REWARD_MODES: dict[str, tuple[str, ...]] = {
    "summed": ("json_validity_reward", "schema_compliance_reward", "accuracy_reward"),
    "gated": ("json_validity_reward", "schema_compliance_reward", "gated_accuracy_reward"),
}
# Measured on the demo task (docs/measurements.md, 2026-11-30): summed regressed (-30 pp, McNemar p < 0.001),
# gated did not.
DEFAULT_REWARD_MODE = "gated"
# Keyword arguments TRL passes to every reward function; any other named parameter is a dataset column.
TRL_REWARD_KWARGS = frozenset({"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"})


def get_reward_funcs(names: Sequence[str]) -> list[RewardFunc]:
    """Reward functions by registry name, or by dotted import path (`package.module.function`) as in TRL's script."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in names if name not in REWARD_FUNCS and "." not in name]
    if unknown:
        raise ValueError(
            f"unknown reward function(s) {unknown}; known: {', '.join(REWARD_FUNCS)} (or a dotted import path)"
        )
    return [REWARD_FUNCS[name] if name in REWARD_FUNCS else _import_reward(name) for name in names]


def required_columns(func: RewardFunc) -> list[str]:
    """The dataset columns a reward function reads: its named parameters beyond the ones TRL always passes."""
    parameters = inspect.signature(func).parameters.values()
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in TRL_REWARD_KWARGS
    ]


def check_reward_columns(
    funcs: Sequence[RewardFunc], columns: Sequence[str], dataset: str = "the GRPO dataset"
) -> None:
    """Refuse to train when a reward reads a column the dataset lacks (it would silently score 0.0 everywhere)."""
    missing = {
        getattr(func, "__name__", repr(func)): [name for name in required_columns(func) if name not in columns]
        for func in funcs
    }
    missing = {name: cols for name, cols in missing.items() if cols}
    if missing:
        named = "; ".join(f"{name} needs {', '.join(cols)}" for name, cols in missing.items())
        raise RecipeError(f"{dataset} lacks reward input column(s): {named} (columns: {', '.join(columns)})")


def _aligned(values: Any, n: int) -> list[Any]:
    """`values` as a list of length n: cut when longer, padded with None when shorter."""
    values = _as_list(values)[:n]
    return values + [None] * (n - len(values))


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
