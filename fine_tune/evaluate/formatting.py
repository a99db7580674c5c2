"""How the report, the console tables and the plots read and print a results dict: its models, letters and rates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fine_tune.evaluate.stats import INVALID
from fine_tune.task.prompts import LETTERS


def task_letters(results: Mapping[str, Any]) -> tuple[str, ...]:
    """The letters of the task the results are about (A-D for results written before tasks existed)."""
    return tuple((results.get("task") or {}).get("letters") or LETTERS)


def matrix_columns(results: Mapping[str, Any]) -> tuple[str, ...]:
    """Confusion-matrix columns: the task's letters, then INVALID."""
    return (*task_letters(results), INVALID)


def ok_models(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {label: model for label, model in results["models"].items() if model["status"] == "ok"}


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def rate_with_ci(entry: Mapping[str, Any], counts: bool = True) -> str:
    """`34.0% [27.8, 40.8] 68/200`: the rate, its 95% Wilson interval (percent) and the counts."""
    if entry["value"] is None:
        return f"n/a (0/{entry['total']})" if counts else "n/a"
    text = f"{pct(entry['value'])} [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"
    return f"{text} {entry['count']}/{entry['total']}" if counts else text
