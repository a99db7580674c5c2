"""What every entry script shares: logging set-up and turning known failures into one line and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from fine_tune.errors import PipelineError


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)


def run_main(main: Callable[[], int | None]) -> None:
    """Run `main`; a known failure prints its message (no traceback) and exits with its code; a returned non-zero
    int is the exit status."""
    setup_logging()
    try:
        code = main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if code:
        sys.exit(code)
