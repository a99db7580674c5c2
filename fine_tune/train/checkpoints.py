"""Checkpoints: the one rule for a complete checkpoint, and which one `--resume_from_checkpoint latest` resumes (in a
job, the last one pushed to the Hub when the output folder holds none)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from fine_tune import hub_access as hub
from fine_tune.constants import HUB_CHECKPOINT_DIR, RESUME_LATEST, TOKEN_ENV, TRAINER_STATE_FILE
from fine_tune.errors import ModelSourceError

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


def fetch_hub_checkpoint(
    output_dir: str | Path, repo_id: str, *, token: str | None = None, revision: str | None = None
) -> Path | None:
    """Download `last-checkpoint/` of `repo_id` into `output_dir/checkpoint-<global_step>`; None when there is none.

    The Trainer pushes it there with `push_to_hub: true` and `hub_strategy: checkpoint`; placing it under its step's
    name lets `--resume_from_checkpoint latest` pick it up.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    hub.bound_hub_calls()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output_dir, prefix=".hub-checkpoint."))
    try:
        try:
            snapshot_download(
                repo_id,
                allow_patterns=[f"{HUB_CHECKPOINT_DIR}/*"],
                local_dir=tmp,
                token=token,
                revision=revision,
            )
        except (RepositoryNotFoundError, RevisionNotFoundError):
            logger.info("no Hub repo %s yet: nothing to resume from there", repo_id)
            return None
        state_path = tmp / HUB_CHECKPOINT_DIR / TRAINER_STATE_FILE
        if not state_path.is_file():
            logger.info("%s holds no %s/ yet: nothing to resume from there", repo_id, HUB_CHECKPOINT_DIR)
            return None
        step = int(json.loads(state_path.read_text())["global_step"])
        target = output_dir / f"checkpoint-{step}"
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / HUB_CHECKPOINT_DIR, target)
        logger.info("downloaded %s/%s (step %d) to %s", repo_id, HUB_CHECKPOINT_DIR, step, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_checkpoint_for_resume(training_args, token: str | None = None) -> Path | None:
    """When resuming from `latest` and `output_dir` holds no complete checkpoint, bring the last one from the Hub.

    Does nothing unless `resume_from_checkpoint` is true/latest, `push_to_hub` is on and `hub_model_id` is set.
    "Complete" is `last_complete_checkpoint`'s rule (a folder cut off mid-save has no trainer_state.json), the one
    the resume itself uses. A Hub that cannot be reached is an error (starting over would silently waste the run).
    """
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() not in RESUME_LATEST:
        return None
    if not (getattr(training_args, "push_to_hub", False) and getattr(training_args, "hub_model_id", None)):
        return None
    output_dir = Path(training_args.output_dir)
    if last_complete_checkpoint(output_dir) is not None:
        return None
    token = token or hub.hf_token()
    endpoint = hub.hub_endpoint()
    fix = f"check the network and ${TOKEN_ENV}, or copy the checkpoint folder into {output_dir} yourself"
    if hub.offline_mode() or not hub.hub_reachable(endpoint, timeout=hub.HUB_TIMEOUT_S):
        raise ModelSourceError(
            f"resume asked for the last checkpoint of {training_args.hub_model_id}, but {output_dir} holds none and "
            f"the Hub ({endpoint}) is offline or unreachable: {fix}"
        )
    try:
        return fetch_hub_checkpoint(
            output_dir, training_args.hub_model_id, token=token, revision=getattr(training_args, "hub_revision", None)
        )
    except Exception as error:  # auth, network and disk errors all become one explained failure
        raise ModelSourceError(
            f"cannot fetch the last checkpoint of {training_args.hub_model_id} from the Hub to resume "
            f"({type(error).__name__}: {hub.redact(str(error), token)}): {fix}"
        ) from error
