"""The pipeline's phases as Jobs see them: entry script, default recipe, what a time figure counts."""

from __future__ import annotations

from dataclasses import dataclass

from fine_tune.constants import PHASE_SCRIPTS
from fine_tune.errors import PipelineError


class JobsError(PipelineError, RuntimeError):
    """A job cannot be built or submitted as asked; the message says why and what to do (exit 2)."""


@dataclass(frozen=True)
class Phase:
    name: str
    script: str
    default_config: str
    unit: str  # what the seconds-per-unit figures count
    trains: bool


PHASES: dict[str, Phase] = {
    "sft": Phase("sft", PHASE_SCRIPTS["sft"], "configs/sft.yaml", "optimizer step", trains=True),
    "grpo": Phase("grpo", PHASE_SCRIPTS["grpo"], "configs/grpo.yaml", "optimizer step", trains=True),
    "eval": Phase("eval", PHASE_SCRIPTS["eval"], "configs/eval.yaml", "answer", trains=False),  # question x model
}


PIPELINE: tuple[str, ...] = ("sft", "grpo", "eval")
