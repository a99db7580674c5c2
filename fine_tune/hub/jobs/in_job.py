"""What runs inside a job beside the entry script: bring the last checkpoint pushed to the Hub back for a resume,
fetch a scored model's split manifest, publish eval results. Every Hub call here is bounded (`bound_hub_calls`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fine_tune.constants import (
    HUB_CHECKPOINT_DIR,
    RESULTS_FILE,
    RESUME_LATEST,
    SPLIT_MANIFEST_FILE,
    TOKEN_ENV,
    TRAINER_STATE_FILE,
)
from fine_tune.errors import ModelSourceError
from fine_tune.hub import access as hub

logger = logging.getLogger(__name__)


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
    from fine_tune.train.checkpoints import last_complete_checkpoint  # it imports this module: at call time

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


def fetch_split_manifest(repo_id: str, local_dir: str | Path, token: str | None = None) -> Path:
    """The split_manifest.json a training job pushed to `repo_id`, downloaded to `local_dir`."""
    from huggingface_hub import hf_hub_download

    hub.bound_hub_calls()
    hub.require_hub(repo_id, "model", file=SPLIT_MANIFEST_FILE)
    return Path(hf_hub_download(repo_id, SPLIT_MANIFEST_FILE, local_dir=local_dir, token=token or hub.hf_token()))


def publish_eval_results(
    folder: str | Path, repo_id: str, *, private: bool = True, update_cards: bool = True, token: str | None = None
) -> list[str]:
    """Upload `folder` (eval_results/) to a dataset repo, then write each run's table into the model cards of the Hub
    models it scored. Returns what was updated; nothing to publish is not an error."""
    folder = Path(folder)
    results_files = sorted(folder.glob(f"*/{RESULTS_FILE}")) if folder.is_dir() else []
    if not results_files:
        print(f"no {RESULTS_FILE} under {folder}: nothing to publish")
        return []
    from huggingface_hub import HfApi

    hub.bound_hub_calls()
    token = token or hub.hf_token()
    api = HfApi(endpoint=hub.hub_endpoint(), token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message="eval results")
    updated = [f"https://huggingface.co/datasets/{repo_id}"]
    print(f"uploaded {folder} to {updated[0]}")
    if update_cards:
        from fine_tune.hub.model_card import update_cards_from_results

        for path in results_files:
            updated += update_cards_from_results(json.loads(path.read_text()), token=token)
    return updated
