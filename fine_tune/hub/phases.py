"""The pipeline's phases as Jobs see them: entry script, default recipe, what a time figure counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fine_tune.constants import DEFAULT_MODELS


class JobsError(RuntimeError):
    """A job cannot be built or submitted as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Phase:
    name: str
    script: str
    default_config: str
    unit: str  # what the seconds-per-unit figures count
    trains: bool


PHASES: dict[str, Phase] = {
    "sft": Phase("sft", "scripts/train_medmcqa_sft.py", "configs/sft.yaml", "optimizer step", trains=True),
    "grpo": Phase("grpo", "scripts/train_medmcqa_grpo.py", "configs/grpo.yaml", "optimizer step", trains=True),
    "eval": Phase("eval", "scripts/eval_medmcqa.py", "configs/eval.yaml", "answer", trains=False),  # question x model
}


PIPELINE: tuple[str, ...] = ("sft", "grpo", "eval")


def parse_eval_models(value: Any) -> dict[str, str]:
    """The eval config's `models`: a mapping or 'label=source,label=source' (as fine_tune.evaluation reads it)."""
    if isinstance(value, dict):
        return {str(label): str(source) for label, source in value.items()}
    if isinstance(value, str) and value.strip():
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        return {label.strip(): source.strip() for label, _, source in pairs}
    return dict(DEFAULT_MODELS)
