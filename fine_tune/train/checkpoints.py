from __future__ import annotations

import logging
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from fine_tune.constants import RESUME_LATEST
from fine_tune.hub.jobs.in_job import fetch_checkpoint_for_resume

logger = logging.getLogger(__name__)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest `checkpoint-N` that finished saving; a folder cut off mid-save has no trainer_state.json."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = {
        int(path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")): path
        for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit() and (path / "trainer_state.json").is_file()
    }
    return str(steps[max(steps)]) if steps else None


def resolve_resume(training_args) -> str | None:
    """A checkpoint path, or for true/latest the last complete checkpoint in output_dir, fetched from the Hub repo
    (`hub_model_id`, pushed with hub_strategy checkpoint) when output_dir has none; none anywhere: a fresh start."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() not in RESUME_LATEST:
        return value
    fetch_checkpoint_for_resume(training_args)
    last = last_complete_checkpoint(training_args.output_dir)
    if last is None:
        logger.warning("resume requested but %s holds no checkpoint: starting from step 0", training_args.output_dir)
    else:
        logger.info("resuming from %s", last)
    return last
