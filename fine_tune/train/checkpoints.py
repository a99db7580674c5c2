"""Checkpoints: the one rule for a complete checkpoint, and which one `--resume_from_checkpoint latest` resumes."""

from __future__ import annotations

import json
import logging
import struct
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from fine_tune.constants import RESUME_LATEST, TRAINER_STATE_FILE
from fine_tune.hub.jobs.in_job import fetch_checkpoint_for_resume

logger = logging.getLogger(__name__)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest `checkpoint-N` that is complete (`checkpoint_problem` is None); each newer folder that is not is
    skipped with a warning naming it and why, so a corrupt newest checkpoint falls back to the one before."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = {
        int(path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")): path
        for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if path.is_dir() and path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit()
    }
    for step in sorted(steps, reverse=True):
        problem = checkpoint_problem(steps[step])
        if problem is None:
            return str(steps[step])
        logger.warning("skipping checkpoint folder %s: %s", steps[step], problem)
    return None


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None: the one rule for "complete checkpoint".

    Complete: `trainer_state.json` is a JSON object; every `*.safetensors` file (adapter or
    model weights) is as long as its header says; every torch-saved file (`*.pt`, `*.pth`, `*.bin`: optimizer,
    scheduler, RNG state, training args) is a readable zip archive. A save cut off mid-way, or a truncated file,
    fails one of these; the files are not loaded, so the check is cheap even for large optimizer states.
    """
    folder = Path(checkpoint)
    state = folder / TRAINER_STATE_FILE
    if not state.is_file():
        return f"no {TRAINER_STATE_FILE} (the save did not finish)"
    try:
        values = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{TRAINER_STATE_FILE} is unreadable ({type(error).__name__})"
    if not isinstance(values, dict):
        return f"{TRAINER_STATE_FILE} is not a JSON object"
    for path in sorted(folder.rglob("*")):
        problem = _file_problem(path)
        if problem is not None:
            return f"{path.relative_to(folder)} {problem}"
    return None


def _file_problem(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
        return "is truncated or corrupt (not a readable torch archive)"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """safetensors layout: 8-byte little-endian header length, a JSON header of tensor offsets, then the data."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return "is truncated (no header)"
        (header_length,) = struct.unpack("<Q", prefix)
        if 8 + header_length > size:
            return "is truncated (header cut off)"
        try:
            header = json.loads(handle.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "is corrupt (unreadable header)"
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    expected = 8 + header_length + max(ends, default=0)
    if size < expected:
        return f"is truncated ({size} of {expected} bytes)"
    return None


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
