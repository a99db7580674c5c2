"""Training length in both units: optimizer steps and epochs over the phase's training rows (after the dev slice).

A recipe gives one: `max_steps` (> 0), or `num_train_epochs` with `max_steps: -1`; the other follows from the rows
and the batch, as transformers counts it (one optimizer step = micro-batch x accumulation x processes sequences; a
GRPO sequence is one completion, num_generations of them per prompt). The dry run and the training log state both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingLength:
    rows: int  # the phase's training rows (GRPO: prompts), the dev slice taken out
    rows_per_step: float  # rows one optimizer step sees
    steps: int
    epochs: float
    given: str  # "max_steps" or "num_train_epochs": what the recipe stated

    def describe(self) -> str:
        return (
            f"{self.steps} optimizer steps = {self.epochs:.2f} epochs over {self.rows} training rows "
            f"({self.rows_per_step:g} rows per step; {self.given} given)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": round(self.epochs, 3),
            "rows": self.rows,
            "rows_per_step": self.rows_per_step,
            "given": self.given,
        }


def training_rows(values: Mapping[str, Any], phase: str) -> int:
    """The rows a phase trains on: its split size less the dev slice."""
    return int(values[f"{phase}_size"]) - int(values.get("dev_size") or 0)


def training_length(
    values: Mapping[str, Any], phase: str, *, world_size: int = 1, rows: int | None = None
) -> TrainingLength:
    """Steps and epochs of a recipe's values (`recipes.loader.recipe_values`) for `phase` ("sft" or "grpo");
    `rows`: the rows actually left (default: the split size less dev_size)."""
    rows = training_rows(values, phase) if rows is None else rows
    if rows < 1:
        raise ValueError(
            f"{phase}: no training rows ({values[f'{phase}_size']} in the split, dev_size {values.get('dev_size')})"
        )
    micro = int(values["per_device_train_batch_size"]) * world_size
    accumulation = int(values["gradient_accumulation_steps"])
    completions = int(values.get("num_generations") or 1) if phase == "grpo" else 1
    rows_per_step = micro * accumulation / completions
    # transformers: ceil(micro-batches per epoch / accumulation) optimizer steps per epoch
    steps_per_epoch = max(1, math.ceil(math.ceil(rows * completions / micro) / accumulation))
    if int(values.get("max_steps") or -1) > 0:
        steps = int(values["max_steps"])
        return TrainingLength(rows, rows_per_step, steps, steps / steps_per_epoch, "max_steps")
    epochs = float(values["num_train_epochs"])
    return TrainingLength(rows, rows_per_step, math.ceil(epochs * steps_per_epoch), epochs, "num_train_epochs")
