"""The report's PNG plots: reliability diagram, per-subject accuracy, predicted letters, confusion matrices.

Drawn from the JSON-ready results alone with matplotlib's object-oriented `Figure` API, which renders PNGs with the
Agg canvas and never touches pyplot's global backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fine_tune.evaluate.formatting import matrix_columns, num, ok_models, task_letters

PLOTS_DIR = "plots"
PLOT_FILES = {
    "reliability": "reliability.png",
    "per_subject": "per_subject.png",
    "letters": "letters.png",
    "confusion": "confusion.png",
    "errors": "errors.png",
    "variants": "prompt_variants.png",
}
DPI = 110


def save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


def plot_reliability(results: Mapping[str, Any], path: Path) -> None:
    figure = Figure(figsize=(6, 6.5))
    curve, hist = figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    models = ok_models(results)
    for offset, (label, model) in enumerate(models.items()):
        bins = model["calibration"]["bins"]
        filled = [b for b in bins if b["count"]]
        name = f"{label} (ECE {num(model['calibration']['ece'])}, n={model['calibration']['n']})"
        curve.plot([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", label=name)
        width = (bins[0]["high"] - bins[0]["low"]) / len(models)
        hist.bar([b["low"] + (offset + 0.5) * width for b in bins], [b["count"] for b in bins], width=width)
    curve.set(ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1), title="Reliability of stated confidence")
    curve.legend(loc="upper left", fontsize="small")
    hist.set(xlabel="stated confidence (schema-valid answers)", ylabel="answers")
    save(figure, path)


def plot_per_subject(results: Mapping[str, Any], path: Path) -> None:
    models = ok_models(results)
    subjects = sorted({s for m in models.values() for s in m["per_subject"]}, key=str)
    figure = Figure(figsize=(8, 1.5 + 0.35 * len(subjects) * max(1, len(models) / 2)))
    axes = figure.subplots()
    height = 0.8 / len(models)
    for offset, (label, model) in enumerate(models.items()):
        ys, xs, errors = [], [], [[], []]
        for index, subject in enumerate(subjects):
            entry = model["per_subject"].get(subject)
            if entry is None:
                continue
            ys.append(index + offset * height)
            xs.append(entry["accuracy"])
            errors[0].append(entry["accuracy"] - entry["ci_low"])
            errors[1].append(entry["ci_high"] - entry["accuracy"])
        axes.barh(ys, xs, height=height, xerr=errors, capsize=2, label=label)
    first = next(iter(models.values()))["per_subject"]
    axes.set_yticks(
        [i + 0.4 - height / 2 for i in range(len(subjects))],
        [f"{s} (n={first[s]['n'] if s in first else '?'})" for s in subjects],
    )
    axes.invert_yaxis()
    axes.axvline(0.25, color="grey", linestyle=":", label="chance (25%)")
    axes.set(xlim=(0, 1), xlabel="strict accuracy (95% Wilson CI)", title="Per-subject accuracy")
    axes.legend(fontsize="small", loc="lower right")
    save(figure, path)


def plot_letters(results: Mapping[str, Any], path: Path) -> None:
    models = ok_models(results)
    letters, columns = task_letters(results), matrix_columns(results)
    first = next(iter(models.values()))
    n = first["metrics"]["n"]
    series = {"gold": [first["letter_distribution"]["gold_counts"][letter] / n for letter in letters] + [0.0]}
    for label, model in models.items():
        counts = model["letter_distribution"]["predicted_counts"]
        predicted = [counts[letter] / n for letter in letters]
        series[label] = [*predicted, 1 - sum(predicted)]
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series.items()):
        axes.bar([i + offset * width for i in range(len(columns))], values, width=width, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(columns))], list(columns))
    axes.set(ylabel="share of questions", title="Predicted letter vs gold (position bias)")
    axes.legend(fontsize="small")
    save(figure, path)


def plot_confusion(results: Mapping[str, Any], path: Path) -> None:
    models = ok_models(results)
    letters, columns = task_letters(results), matrix_columns(results)
    figure = Figure(figsize=(3.6 * len(models) + 0.5, 3.6))
    axes_list = figure.subplots(1, len(models), squeeze=False)[0]
    for axes, (label, model) in zip(axes_list, models.items(), strict=True):
        matrix = [[model["confusion_matrix"][g][c] for c in columns] for g in letters]
        axes.imshow(matrix, cmap="Blues")
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                axes.text(j, i, value, ha="center", va="center", color="white" if value > peak / 2 else "black")
        axes.set_xticks(range(len(columns)), list(columns))
        axes.set_yticks(range(len(letters)), list(letters))
        axes.set(xlabel="predicted", ylabel="gold", title=label)
    save(figure, path)


def plot_errors(results: Mapping[str, Any], path: Path) -> None:
    """One stacked bar per model: its wrong or unusable answers by error category."""
    models = {label: model for label, model in ok_models(results).items() if "error_taxonomy" in model}
    categories = list(next(iter(models.values()))["error_taxonomy"]) if models else []
    figure = Figure(figsize=(7, 0.6 * len(models) + 1.6))
    axes = figure.subplots()
    left = [0] * len(models)
    for category in categories:
        counts = [model["error_taxonomy"][category] for model in models.values()]
        if any(counts):
            axes.barh(list(models), counts, left=left, label=category)
            left = [a + b for a, b in zip(left, counts, strict=True)]
    axes.invert_yaxis()
    axes.set(xlabel="wrong or unusable answers", title="Error taxonomy")
    if any(left):
        axes.legend(fontsize="small", loc="lower right")
    save(figure, path)


def plot_variants(results: Mapping[str, Any], path: Path) -> bool:
    """Strict accuracy per prompt variant, one group of bars per variant, one bar per model, with intervals."""
    models = {label: model for label, model in ok_models(results).items() if model.get("prompt_variants")}
    if not models:
        return False
    names = list(next(iter(models.values()))["prompt_variants"])
    figure = Figure(figsize=(max(6, 1.1 * len(names)), 4))
    axes = figure.subplots()
    width = 0.8 / len(models)
    for offset, (label, model) in enumerate(models.items()):
        entries = [model["prompt_variants"][name] for name in names]
        values = [entry["accuracy"] or 0.0 for entry in entries]
        errors = [
            [v - (e["ci_low"] or v) for v, e in zip(values, entries, strict=True)],
            [(e["ci_high"] or v) - v for v, e in zip(values, entries, strict=True)],
        ]
        axes.bar([i + offset * width for i in range(len(names))], values, width=width, yerr=errors, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=30, ha="right")
    axes.set(ylabel="strict accuracy", ylim=(0, 1), title="Prompt sensitivity")
    axes.legend(fontsize="small")
    save(figure, path)
    return True


PLOTTERS = {
    "reliability": plot_reliability,
    "per_subject": plot_per_subject,
    "letters": plot_letters,
    "confusion": plot_confusion,
    "errors": plot_errors,
    "variants": plot_variants,
}


def write_plots(results: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """The PNG plots under `folder/plots/`; returns their paths relative to `folder` (none without an ok model)."""
    if not ok_models(results):
        return {}
    (folder / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    written = {}
    for name, plotter in PLOTTERS.items():
        relative = f"{PLOTS_DIR}/{PLOT_FILES[name]}"
        if plotter(results, folder / relative) is not False:  # a plot with nothing to show is not drawn
            written[name] = relative
    return written
