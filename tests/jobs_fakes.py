"""Shared by the tests of fine_tune.hub.jobs: a copy of the project, a network guard, and a fake Hub whose every
method is bound to the real `HfApi` signature (a call the real API would reject fails the test)."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, Volume
from signatures import bound_to  # noqa: F401  (re-exported for the jobs tests)

import fine_tune.recipes.trainer_configs  # noqa: F401 (loaded: the submitter reads recipes here, not in a child)
from fine_tune.hub.jobs import estimate, job_spec, shipping
from fine_tune.hub.jobs.submit_cli import NAMESPACE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_TOKEN = "hf_FAKEtokenVALUE0123456789abcdef"
NAMESPACE = "alice"
EVAL_CONFIG = """\
models:
  base: Qwen/Qwen3-0.6B
  grpo: outputs/medmcqa-grpo/merged
eval_size: 200
split_manifest: outputs/medmcqa-sft/split_manifest.json
"""
ACCELERATE_DDP = "distributed_type: MULTI_GPU\nnum_machines: 1\nnum_processes: 2\n"
HF_API_METHODS = ("whoami", "sync_job_volume", "run_job", "fetch_job_logs", "inspect_job", "wait_for_job")


def fake_hf_api(monkeypatch, name: str, fake) -> None:
    monkeypatch.setattr(HfApi, name, bound_to(getattr(HfApi, name), fake))


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", NAMESPACE_ENV, "HF_ENDPOINT", "MY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: a developer's exported switch must not leak into tests
    # that fake the Hub's answers
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return monkeypatch


@pytest.fixture
def project(tmp_path, clean_env):
    """A copy of the shipped project (plus an eval config and the DDP accelerate config) as PROJECT_ROOT."""
    root = shipping.ShippedTree.from_project(REPO_ROOT).stage(tmp_path / "project")
    (root / "configs/eval.yaml").write_text(EVAL_CONFIG)
    accelerate_config = root / "configs/accelerate/ddp.yaml"
    if not accelerate_config.exists():
        accelerate_config.parent.mkdir(parents=True, exist_ok=True)
        accelerate_config.write_text(ACCELERATE_DDP)
    for module in (shipping, job_spec, estimate):
        clean_env.setattr(module, "PROJECT_ROOT", root)
    return root


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or HfApi call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access during a dry run")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in HF_API_METHODS:
        monkeypatch.setattr(HfApi, name, refuse)


class FakeHub:
    """Records HfApi calls; `stages` are the final (stage, message) each job reports, in submission order."""

    def __init__(self, monkeypatch, stages=("COMPLETED",) * 3, role="write", logs=(), pushed_checkpoint=True):
        self.calls: list[tuple[str, dict]] = []
        self.staged_files: dict[str, str] = {}
        self.stages = [stage if isinstance(stage, tuple) else (stage, None) for stage in stages]
        self.jobs: list[str] = []
        hub = self

        def whoami(api, token=None, *, cache=False):
            hub.calls.append(("whoami", {"token": token}))
            return {"name": "whoami-user", "auth": {"accessToken": {"role": role}}}

        def sync_job_volume(api, source, mount_path, *, remote_name=None, read_only=True, namespace=None, token=None):
            hub.calls.append(
                ("sync_job_volume", {"source": source, "mount_path": mount_path, "remote_name": remote_name})
            )
            hub.calls[-1][1].update(read_only=read_only, namespace=namespace, token=token)
            source = Path(source)
            hub.staged_files = {
                p.relative_to(source).as_posix(): p.read_text() for p in source.rglob("*") if p.is_file()
            }
            return Volume(
                type="bucket",
                source=f"{namespace}/jobs-artifacts",
                mount_path=mount_path,
                path=remote_name,
                read_only=read_only,
            )

        def run_job(api, **kwargs):
            hub.calls.append(("run_job", kwargs))
            job_id = f"job{len(hub.jobs)}"
            hub.jobs.append(job_id)
            return SimpleNamespace(id=job_id, url=f"https://huggingface.co/jobs/alice/{job_id}", status=None)

        def final(job_id):
            stage, message = hub.stages[hub.jobs.index(job_id)]
            if message is None and stage != "COMPLETED":
                message = "exit code 1"
            return SimpleNamespace(
                id=job_id,
                url=f"https://hf.co/jobs/{job_id}",
                status=SimpleNamespace(stage=stage, message=message),
                durations=None,
            )

        def wait_for_job(api, job_id, **kwargs):
            hub.calls.append(("wait_for_job", {"job_id": job_id, **kwargs}))
            return final(job_id)

        def inspect_job(api, *, job_id, **kwargs):
            hub.calls.append(("inspect_job", {"job_id": job_id, **kwargs}))
            return final(job_id)

        def fetch_job_logs(api, *, job_id, **kwargs):
            hub.calls.append(("fetch_job_logs", {"job_id": job_id, **kwargs}))
            yield from logs

        def file_exists(api, repo_id, filename, **kwargs):
            hub.calls.append(("file_exists", {"repo_id": repo_id, "filename": filename, **kwargs}))
            return pushed_checkpoint

        methods = {
            "whoami": whoami,
            "sync_job_volume": sync_job_volume,
            "run_job": run_job,
            "wait_for_job": wait_for_job,
            "inspect_job": inspect_job,
            "fetch_job_logs": fetch_job_logs,
            "file_exists": file_exists,
        }
        for name, method in methods.items():
            fake_hf_api(monkeypatch, name, method)
        monkeypatch.setattr("fine_tune.hub_access.hub_reachable", lambda endpoint, timeout=5.0: True)

    def named(self, name: str) -> list[dict]:
        return [kwargs for call, kwargs in self.calls if call == name]
