"""Regression flags: a model significantly worse than the model its lineage names as its parent.

A fine-tuned model's lineage records the model it started from (`base`: the base model for SFT, the SFT model for
GRPO; for an adapter without lineage, the base its adapter config names). When that parent was scored in the same
run (matched by `ModelRun.identities`: same folder, same Hub ID, a training output folder and its merged model, a
merged model and its adapter), the child's strict accuracy is compared with the parent's on the same rows; it
regressed when it is lower and the exact McNemar test gives p < 0.05.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.scored_models import model_identities
from fine_tune.evaluate.stats import mcnemar_exact
from fine_tune.evaluate.summaries import compare

REGRESSION_ALPHA = 0.05


def parent_checks(
    runs: Sequence[ModelRun], resamples: int, seed: int, alpha: float = REGRESSION_ALPHA
) -> list[dict[str, Any]]:
    """One entry per successful model with a parent: the comparison with each scored label holding the parent's
    weights (`parent` None when none was scored here, so nothing could be checked).

    The parent is the lineage's `base`; a LoRA adapter without a lineage record has the base its adapter config
    names (the model it was trained from, and loaded onto here)."""
    ok = [run for run in runs if run.ok]
    identities = {run.label: run.identities() for run in ok}
    checks = []
    for child in ok:
        resolved = child.resolved or {}
        lineage = resolved.get("lineage") or {}
        parent_source = lineage.get("base") or (resolved.get("base") if resolved.get("kind") == "adapter" else None)
        if not parent_source:
            continue
        wanted = model_identities(parent_source)
        parents = [run for run in ok if run.label != child.label and identities[run.label] & wanted]
        context = {"model": child.label, "phase": lineage.get("phase"), "parent_source": parent_source, "alpha": alpha}
        if not parents:
            checks.append({**context, "parent": None, "regressed": False})
        for parent in parents:
            checks.append(
                {**context, "parent": parent.label, **parent_comparison(child, parent, resamples, seed, alpha)}
            )
    return checks


def parent_comparison(child: ModelRun, parent: ModelRun, resamples: int, seed: int, alpha: float) -> dict[str, Any]:
    """Child minus parent strict accuracy with its paired-bootstrap CI, McNemar's test and the verdict."""
    comparison = compare(child, parent, resamples, seed)
    regressed = is_regression(comparison["diff"], comparison["mcnemar_p"], alpha)
    return {
        "n": comparison["n"],
        "accuracy": comparison["accuracy_a"],
        "parent_accuracy": comparison["accuracy_b"],
        "diff": comparison["diff"],
        "ci_low": comparison["ci_low"],
        "ci_high": comparison["ci_high"],
        "only_model_right": comparison["b10"],
        "only_parent_right": comparison["b01"],
        "mcnemar_p": comparison["mcnemar_p"],
        "regressed": regressed,
    }


def is_regression(diff: float, mcnemar_p: float, alpha: float = REGRESSION_ALPHA) -> bool:
    """The project's no-worse-model rule: lower strict accuracy on the same rows, exact McNemar p < alpha."""
    return diff < 0 and mcnemar_p < alpha


def paired_regression(
    correct: Sequence[Any], start_correct: Sequence[Any], alpha: float = REGRESSION_ALPHA
) -> dict[str, Any]:
    """A model's per-row strict correctness against a start model's on the same rows, under `is_regression`."""
    n = len(correct)
    diff = (sum(map(bool, correct)) - sum(map(bool, start_correct))) / n if n else 0.0
    test = mcnemar_exact(correct, start_correct)
    return {"n": n, "diff": diff, **test, "alpha": alpha, "regressed": is_regression(diff, test["mcnemar_p"], alpha)}


def regressions(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(check) for check in checks if check["regressed"]]
