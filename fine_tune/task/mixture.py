"""Several tasks in one run: the `task` recipe key as a weighted mixture.

    task: medqa                         one task (a preset name or a task YAML file)
    task: medqa:2,headqa:1              a mixture on the command line: name[:weight], weights default to 1
    --task '{medqa: 2, headqa: {weight: 1, dataset_name: x.jsonl}}'   the mapping, as YAML flow text
    task:                               a mixture in YAML, each task with its own data source if wanted
      medqa: 2
      headqa: {weight: 1, dataset_name: data/headqa.jsonl, dataset_train_split: train}

A mixture's weights share out the sft and grpo split sizes between the tasks (largest remainder, `apportion`);
each task gets `eval_size` EVAL rows of its own, so each is scored on the same number of questions whatever its
weight. Each task is split on its own (same seed), so adding a task never moves another task's rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fine_tune.errors import RecipeError

ENTRY_KEYS: tuple[str, ...] = ("weight", "dataset_name", "dataset_train_split")
WEIGHTED_SPLITS: tuple[str, ...] = ("sft", "grpo")  # eval_size is per task


@dataclass(frozen=True)
class MixtureEntry:
    task: str  # a preset name or a task YAML path
    weight: float = 1.0
    dataset_name: str | None = None
    dataset_train_split: str | None = None


def parse_task_mixture(value: Any) -> tuple[MixtureEntry, ...]:
    """`task` as entries: one for a single task; RecipeError naming the entry for a bad name, weight or key."""
    if value is None:
        raise RecipeError("task: expected a task name, 'name:weight,...' or a mapping of task -> weight")
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        value = _flow_yaml(value)
    if isinstance(value, str):
        entries = tuple(_entry_from_text(item.strip()) for item in value.split(",") if item.strip())
    elif isinstance(value, Mapping):
        entries = tuple(_entry_from_mapping(str(name), spec) for name, spec in value.items())
    elif isinstance(value, Sequence):
        entries = tuple(
            _entry_from_text(str(item)) if not isinstance(item, Mapping) else _entry_from_list_item(item)
            for item in value
        )
    else:
        raise RecipeError(f"task: expected a name, a list or a mapping, got {type(value).__name__}")
    if not entries:
        raise RecipeError("task: no task given")
    names = [entry.task for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecipeError(f"task: {', '.join(repeated)} listed more than once in the mixture")
    return entries


def _flow_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"task: {text!r} is not a YAML mapping or list ({problem})") from None


def _entry_from_text(item: str) -> MixtureEntry:
    name, sep, tail = item.rpartition(":")
    if sep and name and _is_number(tail):
        return MixtureEntry(name.strip(), _weight(tail, name))
    return MixtureEntry(item)


def _entry_from_mapping(name: str, spec: Any) -> MixtureEntry:
    if spec is None:
        return MixtureEntry(name)
    if not isinstance(spec, Mapping):
        return MixtureEntry(name, _weight(spec, name))
    unknown = [key for key in spec if key not in ENTRY_KEYS]
    if unknown:
        raise RecipeError(f"task: {name}: unknown key {unknown[0]!r}; expected {', '.join(ENTRY_KEYS)}")
    return MixtureEntry(
        name,
        _weight(spec.get("weight", 1.0), name),
        _optional_text(spec.get("dataset_name")),
        _optional_text(spec.get("dataset_train_split")),
    )


def _entry_from_list_item(item: Mapping[str, Any]) -> MixtureEntry:
    if "task" not in item:
        raise RecipeError(f"task: a list item needs a 'task' key, got {dict(item)}")
    return _entry_from_mapping(str(item["task"]), {key: value for key, value in item.items() if key != "task"})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _weight(value: Any, name: str) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"task: {name}: weight must be a number > 0, got {value!r}") from None
    if not math.isfinite(weight) or weight <= 0:
        raise RecipeError(f"task: {name}: weight must be a finite number > 0, got {value!r}")
    return weight


def _optional_text(value: Any) -> str | None:
    return None if value is None or not str(value).strip() else str(value).strip()


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` shared in proportion to `weights` (largest remainder; ties to the earlier entry); sums to `total`."""
    exact = [total * weight / sum(weights) for weight in weights]
    shares = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def mixture_sizes(sizes: Mapping[str, int], entries: Sequence[MixtureEntry]) -> list[dict[str, int]]:
    """Each entry's split sizes: sft and grpo shared out by weight, eval_size for every task; RecipeError when a task
    would get no rows of a split that is asked for."""
    weights = [entry.weight for entry in entries]
    shares = {name: apportion(size, weights) if name in WEIGHTED_SPLITS else None for name, size in sizes.items()}
    per_entry = []
    for i, entry in enumerate(entries):
        entry_sizes = {name: sizes[name] if share is None else share[i] for name, share in shares.items()}
        empty = [name for name, size in entry_sizes.items() if size == 0 and sizes[name] > 0]
        if empty:
            raise RecipeError(
                f"task: {entry.task} (weight {entry.weight:g}) gets no {empty[0]} rows of {sizes[empty[0]]}: raise "
                f"{empty[0]}_size or its weight"
            )
        per_entry.append(entry_sizes)
    return per_entry
