"""What every entry script shares: logging set-up and turning known failures into one line and an exit code."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

from fine_tune.errors import PipelineError

# Third-party log lines a user cannot act on: logger name -> start of the message format to drop. bitsandbytes logs
# this at import on CPUs with AVX-512 BF16 when `kernels` has no build of its CPU kernel (fine_tune.bounds pins none:
# no Hub lookup), and falls back to its own 4-bit kernel, which gives the same results.
UNACTIONABLE_LOG_LINES = {
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
}

# Deprecation warnings that transformers raises about its own or TRL's internal calls (TRL 1.16 still reads and sets
# the pre-5.x `gradient_checkpointing` names); the recipes already use `activation_checkpointing`.
UNACTIONABLE_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated",
    r"`gradient_checkpointing` is deprecated",
)


class DropMessages(logging.Filter):
    """Drops the records whose (unformatted) message starts with `prefix`; passes every other record."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_unactionable() -> None:
    """Drop the third-party log lines and warnings a user cannot act on. Runs when this module is imported: entry
    scripts import it before the libraries (bitsandbytes logs at its own import)."""
    for name, prefix in UNACTIONABLE_LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropMessages(prefix))
    for message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


quiet_unactionable()


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    quiet_unactionable()


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
