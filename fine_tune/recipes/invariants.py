"""The project's invariants over a resolved recipe: what every shipped training recipe holds unless it says why not.

A recipe that breaks one on purpose names it under `invariant_exceptions: {NAME: "why"}` (fine_tune.recipes.loader
refuses an unknown name or an empty reason); `broken_invariants` reports the others. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fine_tune.recipes.length import training_length
from fine_tune.task.rewards import REWARD_MODES

MAX_SFT_EPOCHS = 3  # QLoRA practice and the project's Mistral sweep (configs/sweeps) span 1-3 epochs


def _selection(phase: str, values: Mapping[str, Any]) -> str | None:
    dev = values.get("dev_size") or 0
    return None if dev > 0 else f"dev_size is {dev}: no held-out selection, no refusal of a run that did not improve"


def _early_stopping(phase: str, values: Mapping[str, Any]) -> str | None:
    patience = values.get("early_stopping_patience")
    return None if patience and patience > 0 else f"early_stopping_patience is {patience}: early stopping is off"


def _gated_reward(phase: str, values: Mapping[str, Any]) -> str | None:
    if phase != "grpo":
        return None
    funcs = list(values.get("reward_funcs") or [])
    summed = [f for f in funcs if f in REWARD_MODES["summed"] and f not in REWARD_MODES["gated"]]
    if summed or "gated_accuracy_reward" not in funcs:
        return f"reward_funcs {funcs}: accuracy must be paid only for a schema-valid answer (gated_accuracy_reward)"
    return None


def _sft_epochs(phase: str, values: Mapping[str, Any]) -> str | None:
    if phase != "sft":
        return None
    length = training_length(values, "sft")
    if length.epochs <= MAX_SFT_EPOCHS + 1e-9:
        return None
    return f"{length.describe()}: more than {MAX_SFT_EPOCHS} epochs"


INVARIANTS: dict[str, Callable[[str, Mapping[str, Any]], str | None]] = {
    "dev_size": _selection,
    "early_stopping": _early_stopping,
    "gated_reward": _gated_reward,
    "sft_epochs": _sft_epochs,
}
TRAINING_PHASES = ("sft", "grpo")


def broken_invariants(phase: str, values: Mapping[str, Any], exceptions: Mapping[str, str]) -> dict[str, str]:
    """Invariant name -> what is wrong, for each invariant the recipe breaks without saying why (eval: none apply)."""
    if phase not in TRAINING_PHASES:
        return {}
    broken = {name: check(phase, values) for name, check in INVARIANTS.items() if name not in exceptions}
    return {name: problem for name, problem in broken.items() if problem}
