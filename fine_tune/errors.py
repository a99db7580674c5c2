"""The failures a user can act on: each carries the exit code its script ends with, and its message is one line."""

from __future__ import annotations

from fine_tune.constants import EXIT_BAD_INPUT, EXIT_NO_LEARNING_SIGNAL, PHASE_SCRIPTS


def handoff_hint(phase: str) -> str:
    """What to say about a missing model that a training phase hands on."""
    return (
        f"it is written by the {phase.upper()} phase ({PHASE_SCRIPTS[phase]}): run it first; if it exited 3 (NO "
        "IMPROVEMENT, or unhealthy rewards or NaN) it handed nothing on"
    )


class PipelineError(Exception):
    """A known failure: the entry script prints `error: <message>` (no traceback) and exits with `exit_code`."""

    exit_code = EXIT_BAD_INPUT


class RecipeError(PipelineError, ValueError):
    """A recipe (YAML file or command-line override) that cannot be run: names the file or key and why."""


class DatasetError(PipelineError, ValueError):
    """Rows that cannot be loaded or used: names the source (file, line, row id) and what was expected."""


class ModelSourceError(PipelineError, ValueError):
    """A model source that cannot be used as asked: says why and what to do."""


class LineageError(PipelineError, RuntimeError):
    """The starting model is not what this phase must start from."""


class RewardHealthError(PipelineError, RuntimeError):
    """GRPO rewards carried no learning signal, or were being gamed, for too long: no model is handed on."""

    exit_code = EXIT_NO_LEARNING_SIGNAL


class NumericsError(PipelineError, RuntimeError):
    """The loss or the gradient norm became NaN or infinite: training stops at once instead of burning hours on NaN."""

    exit_code = EXIT_NO_LEARNING_SIGNAL


class NoImprovementError(PipelineError, RuntimeError):
    """No trained step scored above the starting model on the phase's dev slice: no model is handed on."""

    exit_code = EXIT_NO_LEARNING_SIGNAL
