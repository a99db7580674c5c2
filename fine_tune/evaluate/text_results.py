"""A text task's eval results: each model's corpus perplexity on the eval texts with a bootstrap interval over texts,
per-subject perplexity, and the paired difference of every two models on the same resamples.

Keys: `models.<label>.metrics` = {perplexity, n, tokens}; `models.<label>.intervals.perplexity` = {value, n, tokens,
ci_low, ci_high, method}; `pairwise` entries = {a, b, n, metrics: {perplexity: {diff, ci_low, ci_high}}}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from fine_tune.constants import PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.evaluate.perplexity import TextLosses, paired_perplexity_difference, perplexity_interval
from fine_tune.evaluate.results import ScoredSet, json_safe, run_section
from fine_tune.evaluate.runs import ModelRun
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_jsonl, atomic_write_text


def losses_of(records: Sequence[Mapping[str, Any]]) -> TextLosses:
    return TextLosses(np.array([r["nll"] for r in records], dtype=float), np.array([r["tokens"] for r in records]), 0)


def per_subject_perplexity(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record.get("subject") or "unknown", []).append(record)
    return {
        subject: {"n": len(rows), "perplexity": losses_of(rows).perplexity} for subject, rows in sorted(groups.items())
    }


def text_model_section(run: ModelRun, verdict: str | None, resamples: int, seed: int) -> dict[str, Any]:
    section = run_section(run, verdict)
    if not run.ok:
        return section
    interval = perplexity_interval(losses_of(run.records), resamples, seed)
    metrics = {"perplexity": interval["value"], "n": interval["n"], "tokens": interval["tokens"]}
    return {
        **section,
        "metrics": metrics,
        "intervals": {"perplexity": interval},
        "per_subject": per_subject_perplexity(run.records),
    }


def build_text_results(scored: ScoredSet) -> dict[str, Any]:
    """A text task's results: perplexity per model with its interval, paired differences; no generation."""
    config = scored.config
    resamples, seed = config.bootstrap_resamples, config.seed
    models = {run.label: text_model_section(run, scored.verdict(run), resamples, seed) for run in scored.runs}
    pairwise = [
        {
            "a": a.label,
            "b": b.label,
            "n": len(a.records),
            "metrics": {
                "perplexity": paired_perplexity_difference(losses_of(a.records), losses_of(b.records), resamples, seed)
            },
        }
        for a, b in combinations([run for run in scored.runs if run.ok], 2)
    ]
    generation = {"scoring": "perplexity (no generation)", "text_max_length": config.text_max_length}
    return scored.results(
        prompt=None, generation=generation, models=models, pairwise=pairwise, parent_checks=[], regressions=[]
    )


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    lines = []
    for label, model in results["models"].items():
        if model["status"] != "ok":
            lines.append(f"{label}: failed at {model.get('stage')}")
            continue
        entry = model["intervals"]["perplexity"]
        lines.append(
            f"{label}: perplexity {entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] "
            f"({entry['n']} texts, {entry['tokens']} tokens)"
        )
    for pair in results["pairwise"]:
        d = pair["metrics"]["perplexity"]
        lines.append(f"{pair['a']} - {pair['b']} (paired): {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    return lines


def print_text_summary(results: Mapping[str, Any], console: Console) -> None:
    console.print(f"{results['task']['name']}: perplexity of the eval texts (95% bootstrap intervals)", markup=False)
    for line in summary_lines(results):
        console.print(line, markup=False)


def write_text_outputs(results: Mapping[str, Any], records: list[dict[str, Any]], folder: Path) -> Path:
    title = f"# {results['run_name']}: {results['task']['name']} (perplexity)\n\n"
    report = title + "\n".join(f"- {line}" for line in summary_lines(results)) + "\n"

    def write(tmp: Path) -> None:
        atomic_write_json(tmp / RESULTS_FILE, results)
        atomic_write_jsonl(tmp / PREDICTIONS_FILE, [json_safe(record) for record in records])
        atomic_write_text(tmp / REPORT_FILE, report)

    return atomic_write_dir(folder, write)
