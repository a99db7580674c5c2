"""The report sections of the study's analyses: per-letter F1, prompt sensitivity, the two protocols (generative vs
log-likelihood) and the error taxonomy (docs/analyses.md says how to read each)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fine_tune.evaluate.formatting import num, ok_models, rate_with_ci, task_letters
from fine_tune.markdown import md_table


def per_letter_section(results: Mapping[str, Any]) -> str:
    models = {label: model for label, model in ok_models(results).items() if "per_letter" in model}
    if not models:
        return ""
    letters = task_letters(results)
    rows = []
    for label, model in models.items():
        cells = [
            f"{num(s['precision'], 2)} / {num(s['recall'], 2)} / {num(s['f1'], 2)}"
            for s in model["per_letter"].values()
        ]
        rows.append([label, num(model["metrics"].get("macro_f1")), *cells])
    return (
        "## Per-letter precision / recall / F1\n\nscikit-learn's per-class scores over the task's letters; an invalid "
        "answer is a miss of its gold letter. Macro-F1 is their unweighted mean.\n\n"
        + md_table(["", "macro-F1", *letters], rows)
    )


def variants_section(results: Mapping[str, Any], plot: str | None) -> str:
    """Strict accuracy per prompt variant and model, and each model's spread (max - min) over the variants."""
    models = {label: model for label, model in ok_models(results).items() if model.get("prompt_variants")}
    if not models:
        return ""
    names = list(next(iter(models.values()))["prompt_variants"])
    rows = [[name, *(variant_cell(model["prompt_variants"][name]) for model in models.values())] for name in names]
    spreads = []
    for model in models.values():
        values = [entry["accuracy"] for entry in model["prompt_variants"].values() if entry["accuracy"] is not None]
        spreads.append(f"{100 * (max(values) - min(values)):.1f} pp" if values else "n/a")
    rows.append(["spread (max - min)", *spreads])
    text = (
        "## Prompt sensitivity\n\nStrict accuracy of each model under each prompt variant (`--prompt_variants`), "
        "95% Wilson intervals; the headline numbers above use the project's own prompt (`project`).\n\n"
        + md_table(["variant", *models], rows)
    )
    return text + (f"\n\n![prompt sensitivity]({plot})" if plot else "")


def protocols_section(results: Mapping[str, Any]) -> str:
    """The project's generative JSON accuracy beside lm-evaluation-harness's log-likelihood accuracy, same rows."""
    models = {label: model for label, model in ok_models(results).items() if model.get("harness")}
    if not models:
        return ""
    rows = [
        [label, rate_with_ci(model["intervals"]["accuracy"]), num(model["harness"]["loglikelihood_accuracy"]),
         num(model["harness"]["loglikelihood_accuracy_norm"])]
        for label, model in models.items()
    ]  # fmt: skip
    first = next(iter(models.values()))["harness"]
    return (
        "## Two protocols on the same rows\n\nGenerative: greedy decoding, strict JSON parse, the letter must be "
        f"right (the project's headline). Log-likelihood: {first['protocol']}, lm-eval {first['lm_eval_version']}, "
        f"task `{first['harness_task']}`; the highest-likelihood letter is the answer, so format failures cannot "
        "occur.\n\n" + md_table(["model", "generative JSON accuracy", "log-likelihood acc", "acc_norm"], rows)
    )


def variant_cell(entry: Mapping[str, Any]) -> str:
    interval = {"value": entry["accuracy"], "count": entry["correct"], "total": entry["n"]}
    return rate_with_ci({**interval, "ci_low": entry["ci_low"], "ci_high": entry["ci_high"]})


def errors_section(results: Mapping[str, Any], plot: str | None) -> str:
    models = {label: model for label, model in ok_models(results).items() if "error_taxonomy" in model}
    if not models:
        return ""
    categories = list(next(iter(models.values()))["error_taxonomy"])
    rows = [[category, *(model["error_taxonomy"][category] for model in models.values())] for category in categories]
    rows.append(["total", *(sum(model["error_taxonomy"].values()) for model in models.values())])
    text = (
        "## Error taxonomy\n\nEvery wrong or unusable answer in exactly one category (docs/analyses.md); "
        "examples: `error_category` in predictions.jsonl.\n\n" + md_table(["category", *models], rows)
    )
    return text + (f"\n\n![error taxonomy]({plot})" if plot else "")
