"""The lifecycle's Hub steps, each run against the fake Hub (tests/fake_hub.py) as the project runs it; shared by the
fault matrix (tests/test_faults.py) and docs/faults.md's table."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from fine_tune.constants import HUB_CHECKPOINT_DIR, LINEAGE_FILE, SPLIT_MANIFEST_FILE, TRAINER_STATE_FILE

TOKEN = "hf_FAKEtokenVALUE0123456789abcdef"
SFT_REPO = "alice/medmcqa-sft"
MANIFEST = json.dumps({"splits": {"sft": {"rows": 8}}, "padding": "x" * 4000}).encode()
LINEAGE = json.dumps({"phase": "sft", "base": "Qwen/Qwen3-0.6B", "padding": "y" * 4000}).encode()
CHECKPOINT = {
    f"{HUB_CHECKPOINT_DIR}/{TRAINER_STATE_FILE}": json.dumps({"global_step": 4}).encode(),
    f"{HUB_CHECKPOINT_DIR}/adapter_model.safetensors": bytes(range(256)) * 64,
}


@dataclass
class Result:
    """What a step did: its exit code (0: done), the lines it printed (stdout and stderr), and its seconds."""

    code: int
    lines: list[str]
    seconds: float
    value: object = None


@dataclass(frozen=True)
class Step:
    name: str
    endpoint: str  # the endpoint the matrix faults (the step's own Hub call)
    what: str
    run: Callable[[object, Path], Result]


def run_guarded(body: Callable[[], object]) -> Result:
    """Run `body` as an entry script would (a PipelineError is `error: ...` and its exit code; anything else escapes:
    a traceback is a failure of the matrix)."""
    from fine_tune.errors import PipelineError

    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code, value = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            value = body()
            if isinstance(value, int) and not isinstance(value, bool):
                code = value
        except PipelineError as error:
            print(f"error: {error}", file=err)
            code = error.exit_code
    lines = [line for line in (out.getvalue() + err.getvalue()).splitlines() if line.strip()]
    return Result(code, lines, time.monotonic() - started, value)


def hub_api():
    from huggingface_hub import HfApi

    from fine_tune import hub_access

    api = HfApi(endpoint=hub_access.hub_endpoint(), token=TOKEN)
    api.sync_job_volume = ship  # buckets (the code's shipping) are not part of the fake
    return api


def ship(source, mount_path, *, remote_name, read_only, namespace, token):
    from huggingface_hub import Volume

    return Volume(type="bucket", source=f"{namespace}/jobs-artifacts", mount_path=mount_path, path=remote_name,
                  read_only=read_only)  # fmt: skip


def submit(hub, tmp: Path) -> Result:
    from fine_tune.hub.jobs import submit_cli

    return run_guarded(
        lambda: submit_cli.main(["sft", "--namespace", "alice", "--max_steps", "5"], lambda token: hub_api())
    )


def follow(hub, tmp: Path) -> Result:
    from fine_tune.hub.jobs.submit import Submitter

    api = hub_api()
    job = api.run_job(image="python:3.12", command=["true"], namespace="alice")
    spec = SimpleNamespace(phase="sft", namespace="alice", timeout_seconds=60)
    return run_guarded(lambda: Submitter(api, TOKEN).follow(job, spec).status.stage)


def download_manifest(hub, tmp: Path) -> Result:
    from fine_tune.evaluate.split_check import fetch_split_manifest

    hub.add_file(SFT_REPO, SPLIT_MANIFEST_FILE, MANIFEST)
    return run_guarded(lambda: Path(fetch_split_manifest(SFT_REPO, tmp / "manifest", token=TOKEN)).read_bytes())


def resume(hub, tmp: Path) -> Result:
    from fine_tune.train.checkpoints import fetch_checkpoint_for_resume

    for path, data in CHECKPOINT.items():
        hub.add_file(SFT_REPO, path, data)
    args = SimpleNamespace(
        resume_from_checkpoint="latest", push_to_hub=True, hub_model_id=SFT_REPO, output_dir=str(tmp / "out")
    )
    return run_guarded(lambda: fetch_checkpoint_for_resume(args, token=TOKEN))


def saved_output(tmp: Path) -> Path:
    output = tmp / "sft"
    for folder, name in (("merged", "model.safetensors"), ("adapter", "adapter_model.safetensors")):
        (output / folder).mkdir(parents=True, exist_ok=True)
        (output / folder / name).write_bytes(b"weights of " + folder.encode())
    (output / "merged" / LINEAGE_FILE).write_bytes(LINEAGE)
    (output / SPLIT_MANIFEST_FILE).write_bytes(MANIFEST)
    return output


def push(hub, tmp: Path) -> Result:
    from fine_tune.hub.publish import push_to_hub

    output = saved_output(tmp)
    return run_guarded(lambda: push_to_hub(output, SFT_REPO, token=TOKEN))


def eval_download(hub, tmp: Path) -> Result:
    from fine_tune.evaluate.scored_models import model_lineages

    hub.add_file(SFT_REPO, LINEAGE_FILE, LINEAGE)
    return run_guarded(lambda: model_lineages({"sft": SFT_REPO}, token=TOKEN)["sft"])


STEPS = {
    step.name: step
    for step in (
        Step("submit", "jobs_run", "scripts/submit_job.py sft (whoami, then POST the job)", submit),
        Step("follow", "jobs_logs", "follow the job's logs to its end (Submitter.follow)", follow),
        Step("download", "resolve", "in-job: the parent's split manifest (fetch_split_manifest)", download_manifest),
        Step("resume", "resolve", "in-job: last-checkpoint/ back for a resume (fetch_checkpoint_for_resume)", resume),
        Step("push", "commit", "in-job: merged model, adapter, card, manifest (publish.push_to_hub)", push),
        Step("eval", "resolve", "a scored model's lineage as the eval reads it (model_lineages)", eval_download),
    )
}
