"""Publishing: a trained model (merged weights at the root, the adapter under `adapter/`, model card, split
manifest) and eval results (a dataset repo, plus each scored model's card). Every Hub call here is bounded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fine_tune import hub_access as hub
from fine_tune.constants import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_DIR,
    MERGED_DIR,
    MODEL_CARD_FILE,
    RESULTS_FILE,
    SPLIT_MANIFEST_FILE,
)
from fine_tune.errors import PipelineError
from fine_tune.hub.model_card import card_for_output_dir, update_cards_from_results

logger = logging.getLogger(__name__)


def publish_phase(training_args, token: str | None) -> str | None:
    """Push a finished training phase's output folder when the recipe asks (`push_to_hub` and `hub_model_id`), from
    the main process only; the URL, or None when nothing was asked."""
    if not (training_args.push_to_hub and training_args.hub_model_id) or training_args.process_index != 0:
        return None
    url = push_to_hub(
        training_args.output_dir, training_args.hub_model_id, token=token, private=training_args.hub_private_repo
    )
    logger.info("pushed %s to %s", training_args.output_dir, url)
    return url


def push_to_hub(output_dir: str | Path, repo_id: str, *, token: str | None, private: bool = False) -> str:
    """Upload the merged model at the repo root, the adapter under `adapter/`, then the model card (README.md) and
    the split manifest; returns the repo URL. The card replaces any earlier one (e.g. the Trainer's): a retrained
    model's old eval table no longer applies. A Hub or network failure (after huggingface_hub's own retries) is one
    line that says the output is kept and how to push it again; each commit is whole or absent, so a push can be
    redone from the start."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return _push(Path(output_dir), repo_id, token=token, private=private)
    except (HfHubHTTPError, httpx2.HTTPError, ConnectionError, TimeoutError) as error:
        detail = hub.redact(str(error).splitlines()[0] if str(error) else "no answer", token)
        raise PushError(
            f"pushing {output_dir} to {repo_id} failed ({type(error).__name__}: {detail}); the trained model is kept "
            f"in {output_dir}: push it again with `python -m fine_tune.hub.publish {output_dir} {repo_id}`"
        ) from None


class PushError(PipelineError):
    """A push to the Hub failed; the local output is untouched (exit 2)."""


def _push(output_dir: Path, repo_id: str, *, token: str | None, private: bool) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    card = card_for_output_dir(output_dir, repo_id, secret=token)
    hub.bound_hub_calls()
    api = HfApi(endpoint=hub.hub_endpoint(), token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir / MERGED_DIR,
        commit_message="merged model",
        delete_patterns=["adapter_model.safetensors", ADAPTER_CONFIG_FILE],
    )
    api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir / ADAPTER_DIR,
        path_in_repo=ADAPTER_DIR,
        commit_message="LoRA adapter",
    )
    operations = [CommitOperationAdd(path_in_repo=MODEL_CARD_FILE, path_or_fileobj=card.encode())]
    if (output_dir / SPLIT_MANIFEST_FILE).is_file():
        operations.append(
            CommitOperationAdd(path_in_repo=SPLIT_MANIFEST_FILE, path_or_fileobj=str(output_dir / SPLIT_MANIFEST_FILE))
        )
    api.create_commit(repo_id=repo_id, operations=operations, commit_message="model card and split manifest")
    return str(url)


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
        for path in results_files:
            updated += update_cards_from_results(json.loads(path.read_text()), token=token)
    return updated


def main(argv: list[str] | None = None) -> None:
    """python -m fine_tune.hub.publish OUTPUT_DIR REPO_ID [--public]: push a training output again (after a failed
    push), with the token in $HF_TOKEN."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fine_tune.hub.publish", description=main.__doc__)
    parser.add_argument("output_dir")
    parser.add_argument("repo_id")
    parser.add_argument("--public", action="store_true", help="a public repo (default private)")
    args = parser.parse_args(argv)
    print(push_to_hub(args.output_dir, args.repo_id, token=hub.hf_token(), private=not args.public))


if __name__ == "__main__":
    from fine_tune.cli import run_main

    run_main(main)
