"""Several tasks in one run: `--task medqa:2,medmcqa:1` trains on a weighted mixture; eval scores each task alone.

A task list is `name[:weight],...` (names or task-file paths; weight 1 when omitted). Each split size is shared out by
weight with largest remainder, so the per-task sizes always sum to the configured size; each task is split from its
own source with its own manifest, and the training examples (rendered per task, with the task's letters) are
interleaved in a seeded order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fine_tune.errors import RecipeError

SEPARATOR = ","
WEIGHT_MARK = ":"


def parse_task_list(text: str | Sequence[str] | None) -> dict[str, float]:
    """'medqa:2,medmcqa' -> {'medqa': 2.0, 'medmcqa': 1.0}; one task gives {task: 1.0}."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise RecipeError("task: expected a task name or path, or name:weight,... for a mixture")
    items = [part.strip() for part in text.split(SEPARATOR)] if isinstance(text, str) else [str(t) for t in text]
    weights: dict[str, float] = {}
    for item in items:
        name, mark, weight = item.rpartition(WEIGHT_MARK) if _has_weight(item) else (item, "", "")
        name = name.strip()
        if not name:
            raise RecipeError(f"task: empty task name in {text!r}")
        value = _weight(weight, item) if mark else 1.0
        if name in weights:
            raise RecipeError(f"task: {name!r} is listed twice in {text!r}")
        weights[name] = value
    return weights


def _has_weight(item: str) -> bool:
    """A trailing ':<number>' is a weight (a Windows drive 'C:' or a path with ':' elsewhere is not)."""
    _, mark, tail = item.rpartition(WEIGHT_MARK)
    try:
        float(tail)
    except ValueError:
        return False
    return bool(mark)


def _weight(text: str, item: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise RecipeError(f"task: weight of {item!r} must be a positive number")
    return value


def share_sizes(sizes: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, dict[str, int]]:
    """Per task, each split's size: size * w / sum(w), largest remainder (ties by task order), summing to `sizes`."""
    total_weight = sum(weights.values())
    tasks = list(weights)
    shares: dict[str, dict[str, int]] = {task: {} for task in tasks}
    for split, size in sizes.items():
        ideal = {task: size * weights[task] / total_weight for task in tasks}
        counts = {task: math.floor(ideal[task]) for task in tasks}
        by_remainder = sorted(tasks, key=lambda t: (-(ideal[t] - counts[t]), tasks.index(t)))
        for task in by_remainder[: size - sum(counts.values())]:
            counts[task] += 1
        for task in tasks:
            shares[task][split] = counts[task]
    return shares


def interleave(examples_by_task: Mapping[str, Sequence[Mapping[str, Any]]], seed: int) -> list[dict[str, Any]]:
    """Every task's examples, each tagged with its task, in one seeded random order."""
    tagged = [{**example, "task": task} for task, examples in examples_by_task.items() for example in examples]
    order = np.random.default_rng(seed).permutation(len(tagged))
    return [tagged[i] for i in order]
