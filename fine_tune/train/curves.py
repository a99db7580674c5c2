"""Training curves: the loss and dev-score history of a run (the Trainer's `log_history`), as a plot beside its
lineage (`OUTPUT/training_curves.png`), and several runs' dev curves overlaid (the sweep)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fine_tune.train.selection import SELECTION_METRIC

CURVES_FILE = "training_curves.png"
LOSS_KEY = "loss"
DEV_SCORE_KEY = f"eval_{SELECTION_METRIC}"  # the selection metric, as the Trainer logs it


def curve(log_history: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged entry that has `key`, in log order."""
    return [(int(entry["step"]), float(entry[key])) for entry in log_history if key in entry and "step" in entry]


def write_training_curves(log_history: Sequence[Mapping[str, Any]], path: str | Path, title: str) -> Path | None:
    """Loss (left) and dev score (right) against the optimizer step; None when nothing was logged."""
    loss, dev = curve(log_history, LOSS_KEY), curve(log_history, DEV_SCORE_KEY)
    if not loss and not dev:
        return None
    from matplotlib.figure import Figure  # imported only to draw

    figure = Figure(figsize=(10, 3.6))
    loss_axes, dev_axes = figure.subplots(1, 2)
    if loss:
        loss_axes.plot(*zip(*loss, strict=True), marker=".")
    loss_axes.set(xlabel="step", ylabel="training loss", title=f"{title}: loss")
    if dev:
        dev_axes.plot(*zip(*dev, strict=True), marker="o")
    dev_axes.set(xlabel="step", ylabel="dev score (strict accuracy)", ylim=(0, 1), title=f"{title}: dev score")
    return _save(figure, Path(path))


def write_overlaid_dev_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: str | Path) -> Path | None:
    """One dev-score line per configuration, on one axes; None when no configuration logged a dev score."""
    drawn = {name: points for name, points in curves.items() if points}
    if not drawn:
        return None
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for name, points in drawn.items():
        axes.plot(*zip(*points, strict=True), marker="o", label=name)
    axes.set(xlabel="step", ylabel="dev score (strict accuracy)", ylim=(0, 1), title="Dev score per configuration")
    axes.legend(fontsize="small")
    return _save(figure, Path(path))


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    return path
