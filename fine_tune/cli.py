"""What every entry script shares: logging set-up, turning known failures into one line and an exit code, one-line
argument errors with did-you-mean suggestions, and the parse-only mode the documentation test runs commands in."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable

from fine_tune.constants import EXIT_BAD_INPUT
from fine_tune.errors import PipelineError

# Set to 1: every entry script reads its arguments and recipe in full (unknown keys, bad values and missing recipe
# files fail as usual), prints one "parse only" line and exits 0 before loading data, models or calling the Hub.
PARSE_ONLY_ENV = "FINE_TUNE_PARSE_ONLY"

# Names other tools (TRL/transformers scripts, axolotl, unsloth, peft examples) use for our keys, and renamed keys.
KEY_ALIASES = {
    "lora_rank": "lora_r",
    "rank": "lora_r",
    "r": "lora_r",
    "alpha": "lora_alpha",
    "lr": "learning_rate",
    "max_seq_length": "max_length",
    "max_seq_len": "max_length",
    "sequence_len": "max_length",
    "epochs": "num_train_epochs",
    "num_epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "micro_batch_size": "per_device_train_batch_size",
    "train_batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "gradient_accumulation": "gradient_accumulation_steps",
    "model": "model_name_or_path",
    "model_name": "model_name_or_path",
    "base_model": "model_name_or_path",
    "dataset": "dataset_name",
    "dataset_path": "dataset_name",
    "data": "dataset_name",
    "output": "output_dir",
    "out_dir": "output_dir",
    "gradient_checkpointing": "activation_checkpointing",
}
MAX_SUGGESTIONS = 3

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


def did_you_mean(key: str, known: Iterable[str], *, prefix: str = "'", suffix: str = "'") -> str:
    """` (did you mean 'x'?)` for an unknown `key`: its alias from other tools or its other dash/underscore spelling
    when that is known (alone: it is certainly meant), else the known keys it starts (several may share the prefix)
    and the closest spellings, at most three; "" when nothing is close. `prefix`/`suffix` quote each name."""
    known = sorted(set(known))
    bare = key.lstrip("-")
    certain = [
        name
        for name in (KEY_ALIASES.get(bare.replace("-", "_")), bare.replace("-", "_"), bare.replace("_", "-"))
        if name and name != bare and name in known
    ]
    if certain:
        matches = certain[:1]
    else:
        started = sorted((name for name in known if len(bare) >= 3 and name.startswith(bare)), key=len)
        close = difflib.get_close_matches(bare, known, n=MAX_SUGGESTIONS, cutoff=0.75)
        matches = list(dict.fromkeys([*close, *started]))[:MAX_SUGGESTIONS]
    if not matches:
        return ""
    quoted = [f"{prefix}{name}{suffix}" for name in matches]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f" (did you mean {listed}?)"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (`command line: ...`, exit 2 through `run_main`) instead of the usage
    block, with a did-you-mean for an unknown option."""

    def error(self, message: str):
        known = {option[2:] for action in self._actions for option in action.option_strings if option[:2] == "--"}
        hint = ""
        if "unrecognized arguments" in message:
            if "[" in message:
                hint = " (square brackets in usage text mark optional parts: leave the brackets out)"
            unknown = [flag for flag in re.findall(r"(?<![\w-])--([\w-]+)", message) if flag not in known]
            hint = hint or (did_you_mean(unknown[0], known, prefix="--", suffix="") if unknown else "")
        raise PipelineError(f"command line: {message}{hint}")


def parse_only() -> bool:
    """Whether this run only parses its command line and recipe (`FINE_TUNE_PARSE_ONLY=1`)."""
    return os.environ.get(PARSE_ONLY_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def parse_only_exit(what: str) -> None:
    """In parse-only mode: say what was parsed and exit 0."""
    if parse_only():
        print(f"parse only ({PARSE_ONLY_ENV}=1): {what} parsed", file=sys.stderr)
        sys.exit(0)


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    quiet_unactionable()


def launch_problem() -> str | None:
    """Under `accelerate launch`/torchrun: more processes on this machine than it has GPUs (each rank would fail on
    its own device ordinal). Process counts on a CPU-only machine are gloo processes and always start."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE") or 0)
    if processes <= 1:
        return None
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0 or processes <= gpus:
        return None
    return (
        f"{processes} processes were launched on this machine (accelerate launch --num_processes {processes}) but it "
        f"has {gpus} GPU(s): launch with --num_processes {gpus} or fewer"
    )


def check_launch() -> None:
    """One line from local rank 0 only, and exit 2 in every rank, when the launch asked for more processes than
    GPUs (instead of one device error per rank). torchrun still reports the failed ranks after it: its own output."""
    problem = launch_problem()
    if problem is None:
        return
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def run_main(main: Callable[[], int | None]) -> None:
    """Run `main`; a known failure prints its message (no traceback) and exits with its code; a returned non-zero
    int is the exit status."""
    setup_logging()
    check_launch()
    try:
        code = main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if code:
        sys.exit(code)
