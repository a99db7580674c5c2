"""What every entry script shares: logging set-up and turning known failures into a message and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from fine_tune.data.loading import DatasetError
from fine_tune.models.source import ModelSourceError
from fine_tune.train.grpo import LineageError
from fine_tune.train.guards import RewardHealthError

EXIT_BAD_INPUT = 2
EXIT_NO_LEARNING_SIGNAL = 3
KNOWN_FAILURES: dict[type[Exception], int] = {
    DatasetError: EXIT_BAD_INPUT,
    ModelSourceError: EXIT_BAD_INPUT,
    LineageError: EXIT_BAD_INPUT,
    RewardHealthError: EXIT_NO_LEARNING_SIGNAL,
}


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)


def run_main(main: Callable[[], object]) -> None:
    """Run `main`; a known failure prints its message (no traceback) and exits with its code."""
    setup_logging()
    try:
        main()
    except tuple(KNOWN_FAILURES) as error:
        code = next(code for kind, code in KNOWN_FAILURES.items() if isinstance(error, kind))
        print(f"error: {error}", file=sys.stderr)
        sys.exit(code)
