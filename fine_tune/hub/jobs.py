"""Hugging Face Jobs: ship the project, build a job specification, estimate time and cost, submit, follow, chain
SFT -> GRPO -> eval, and fetch the last Hub checkpoint when a run resumes on a fresh machine.

The project reaches the job as a read-only bucket volume (`HfApi.sync_job_volume`: the shipped files are synced to a
folder of the private `NAMESPACE/jobs-artifacts` bucket named after their content hash). The job copies it to a
writable folder, `pip install`s it (the image already has torch) and runs the same entry script a user runs locally,
with the same config plus the overrides that make a job push to the Hub and log to a trackio Space.

Nothing here imports torch or transformers, and building a specification (`--dry-run`) touches no network."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fine_tune.constants import (
    EXIT_BAD_INPUT,
    EXIT_JOB_FAILED,
    HUB_CHECKPOINT_DIR,
    PROJECT_ROOT,
    RESULTS_FILE,
    RESUME_LATEST,
    SPLIT_MANIFEST_FILE,
    TOKEN_ENV,
    TRAINER_STATE_FILE,
)
from fine_tune.hub import access as hub
from fine_tune.hub.access import HUB_TIMEOUT_S
from fine_tune.hub.estimate import Estimate, Figure, benchmark_figures, estimate, format_duration, resolve_timeout
from fine_tune.hub.phases import PHASES, PIPELINE, JobsError, Phase, parse_eval_models
from fine_tune.models.source import is_hub_id, is_local, written_as_path
from fine_tune.provenance import git_commit

logger = logging.getLogger(__name__)
PROJECT_NAME = "medmcqa-ft"
DEFAULT_IMAGE = "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime"  # torch must satisfy pyproject's torch>=2.13
DEFAULT_FLAVOR = "t4-small"
DEFAULT_REPO_PREFIX = "medmcqa"
DEFAULT_TRACKIO_SPACE = "medmcqa-trackio"
NAMESPACE_ENV = "HF_JOBS_NAMESPACE"
TOKEN_SECRET = "HF_TOKEN"  # the secret's name inside the job: what the entry scripts and huggingface_hub read
CODE_BUCKET = "jobs-artifacts"  # huggingface_hub's per-namespace private bucket for job inputs
CODE_MOUNT_PATH = "/opt/medmcqa-ft-src"  # read-only mount of the shipped tree
WORK_DIR = "/tmp/medmcqa-ft"  # the writable copy the job installs and runs from
WAIT_POLL_S = 30.0
WAIT_SLACK_S = 1800.0  # beyond the job's own timeout, before waiting gives up


# What ships: the package, the entry scripts, the recipes and what `pip install .` needs. Nothing else (no data,
# outputs or virtual environment); the job downloads models and data from the Hub.
SHIPPED_PATTERNS: tuple[str, ...] = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "fine_tune/**/*.py",
    "scripts/*.py",
    "configs/**/*.yaml",
)


JOB_MANIFEST_DIR = "/tmp/medmcqa-ft-manifest"  # where an eval job puts the SFT repo's split manifest


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """`--key value`, `--key=value`, `--flag` (true) and `--key v1 v2` (a list); the last occurrence wins."""
    values: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--") or token == "--":
            raise JobsError(f"override {token!r} is not of the form --key value (e.g. --max_steps 10)")
        key, eq, inline = token[2:].partition("=")
        index += 1
        if eq:
            values[key] = _yaml_value(inline)
            continue
        items = []
        while index < len(tokens) and not tokens[index].startswith("--"):
            items.append(_yaml_value(tokens[index]))
            index += 1
        values[key] = True if not items else items[0] if len(items) == 1 else items
    return values


def _yaml_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string; the entry scripts read it as a number
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_recipe(config: Path, overrides: list[str]) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise JobsError(f"cannot read the config {config}: {error}") from error
    if not isinstance(recipe, dict):
        raise JobsError(f"the config {config} is not a YAML mapping of option: value")
    return {**recipe, **parse_overrides(overrides)}


def looks_local(value: Any) -> bool:
    """A path the job cannot see (it only has the shipped tree and the Hub), as opposed to a Hub ID."""
    if not isinstance(value, str) or not value:
        return False
    return is_local(value) or written_as_path(value) or (PROJECT_ROOT / value).exists()


@dataclass(frozen=True)
class ShippedTree:
    root: Path
    files: tuple[str, ...]
    sha256: str

    @classmethod
    def from_project(cls, root: str | Path | None = None) -> ShippedTree:
        root = Path(root) if root is not None else PROJECT_ROOT
        found: set[str] = set()
        for pattern in SHIPPED_PATTERNS:
            for path in root.glob(pattern):
                if path.is_file() and "__pycache__" not in path.parts:
                    found.add(path.relative_to(root).as_posix())
        files = tuple(sorted(found))
        if "pyproject.toml" not in files or not any(f.startswith("fine_tune/") for f in files):
            raise JobsError(f"{root} does not look like the project (no pyproject.toml or fine_tune/)")
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
        return cls(root, files, digest.hexdigest())

    @property
    def folder(self) -> str:
        """The bucket folder: named after the content, so an unchanged tree is not uploaded again."""
        return f"{PROJECT_NAME}-{self.sha256[:12]}"

    def stage(self, dest: Path) -> Path:
        """Copy exactly the shipped files to `dest` (plus a README stub when pyproject names a missing one)."""
        for name in self.files:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / name, target)
        if "README.md" not in self.files:
            (dest / "README.md").write_text(f"# {PROJECT_NAME}\n")
        return dest

    def volume(self, namespace: str) -> dict[str, Any]:
        return {
            "type": "bucket",
            "source": f"{namespace}/{CODE_BUCKET}",
            "mount_path": CODE_MOUNT_PATH,
            "path": self.folder,
            "read_only": True,
        }

    def to_dict(self, namespace: str) -> dict[str, Any]:
        return {
            "method": "HfApi.sync_job_volume (bucket folder mounted read-only)",
            "bucket": f"{namespace}/{CODE_BUCKET}",
            "folder": self.folder,
            "mount_path": CODE_MOUNT_PATH,
            "sha256": self.sha256,
            "files": list(self.files),
            "generated": [] if "README.md" in self.files else ["README.md (stub: pyproject.toml names it)"],
        }


@dataclass
class JobSpec:
    phase: str
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    secrets: list[str]  # names only; the values are read from the local environment at submission
    flavor: str
    timeout_seconds: int
    timeout_source: str
    estimate: Estimate | None
    namespace: str
    script: str
    config: str
    script_args: list[str]
    hub_model_id: str | None  # what a training phase pushes
    model: str | None  # what a training phase starts from
    models: dict[str, str] | None  # what the eval phase scores (label -> Hub ID)
    results_repo: str | None  # the dataset repo the eval phase uploads its results to
    trackio_space_id: str | None
    labels: dict[str, str]
    shipped: ShippedTree
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "name": self.name,
            "namespace": self.namespace,
            "image": self.image,
            "command": self.command,
            "env": self.env,
            "secrets": self.secrets,
            "flavor": self.flavor,
            "timeout": format_duration(self.timeout_seconds),
            "timeout_seconds": self.timeout_seconds,
            "timeout_source": self.timeout_source,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "max_cost_usd": self.estimate.cost_usd(self.timeout_seconds) if self.estimate else None,
            "script": self.script,
            "config": self.config,
            "script_args": self.script_args,
            "model": self.model,
            "models": self.models,
            "hub_model_id": self.hub_model_id,
            "results_repo": self.results_repo,
            "trackio_space_id": self.trackio_space_id,
            "labels": self.labels,
            "volumes": [self.shipped.volume(self.namespace)],
            "shipped": self.shipped.to_dict(self.namespace),
            "notes": self.notes,
        }

    def run_job_kwargs(self, secret_values: dict[str, str], volumes: list[Any]) -> dict[str, Any]:
        """Keyword arguments for `HfApi.run_job`; the only place secret values meet the specification."""
        missing = [name for name in self.secrets if not secret_values.get(name)]
        if missing:
            raise JobsError(f"no value for the secret(s) {', '.join(missing)}")
        return {
            "image": self.image,
            "command": self.command,
            "env": self.env,
            "secrets": {name: secret_values[name] for name in self.secrets},
            "flavor": self.flavor,
            "timeout": self.timeout_seconds,
            "name": self.name,
            "labels": self.labels,
            "volumes": volumes,
            "namespace": self.namespace,
        }


@dataclass
class Options:
    """What the submit_job CLI decides for every phase."""

    namespace: str
    flavor: str = DEFAULT_FLAVOR
    timeout: str | None = None
    image: str = DEFAULT_IMAGE
    repo_prefix: str = DEFAULT_REPO_PREFIX
    trackio_space: str | None = None  # None: NAMESPACE/medmcqa-trackio
    private: bool = True
    resume: bool = False

    def hub_id(self, phase: str) -> str:
        return f"{self.namespace}/{self.repo_prefix}-{phase}"

    @property
    def results_repo(self) -> str:
        return f"{self.namespace}/{self.repo_prefix}-eval-results"

    @property
    def trackio_space_id(self) -> str:
        space = self.trackio_space or DEFAULT_TRACKIO_SPACE
        return space if "/" in space else f"{self.namespace}/{space}"


def job_command(
    script: str, script_args: list[str], before: list[str] | None = None, after: list[str] | None = None
) -> list[str]:
    """bash -c: copy the read-only shipped tree, install it, run the entry script exactly as a user would.

    `before` runs after the install (a failure stops the job); `after` runs once the script has ended, whatever its
    exit status (which stays the job's).
    """
    steps = [
        "set -euo pipefail",
        f"rm -rf {WORK_DIR} && cp -r {CODE_MOUNT_PATH} {WORK_DIR} && cd {WORK_DIR}",
        "(nvidia-smi || true)",
        "python -m pip install --no-cache-dir --progress-bar off --root-user-action=ignore .",
        *(before or []),
    ]
    run = shlex.join(["python", script, *script_args])
    if after:
        steps += [f"status=0; {run} || status=$?", *after, 'exit "$status"']
    else:
        steps.append(run)
    return ["bash", "-c", "\n".join(steps)]


def _check_shipped(phase: Phase, config: str, shipped: ShippedTree) -> str:
    """The config's path inside the project (resolved against the project first, then the working directory)."""
    config_path = Path(config).expanduser()
    candidates = [config_path] if config_path.is_absolute() else [shipped.root / config_path, Path.cwd() / config_path]
    config_abs = next((path for path in candidates if path.is_file()), candidates[0])
    try:
        config_rel = config_abs.resolve().relative_to(shipped.root.resolve()).as_posix()
    except ValueError:
        raise JobsError(f"the config {config} is outside the project {shipped.root}: only the project ships") from None
    if config_rel not in shipped.files:
        raise JobsError(f"the config {config} does not exist or is not shipped (configs/**/*.yaml)")
    if phase.script not in shipped.files:
        raise JobsError(f"{phase.script} is not in the project yet: the {phase.name} phase cannot run as a job")
    return config_rel


def build_spec(
    phase_name: str,
    options: Options,
    *,
    config: str | None = None,
    overrides: list[str] | None = None,
    handoff: dict[str, str] | None = None,
    shipped: ShippedTree | None = None,
    benchmarks: dict[tuple[str, str], Figure] | None = None,
    commit: str | None = None,
) -> JobSpec:
    """The full specification of one phase's job; pure (no network), so `--dry-run` prints exactly this.

    `handoff` maps earlier phases to the Hub models they pushed (the pipeline's chain): GRPO starts from
    handoff["sft"]; eval scores handoff's models under their phase labels.
    """
    phase = PHASES[phase_name]
    overrides = list(overrides or [])
    handoff = dict(handoff or {})
    shipped = shipped or ShippedTree.from_project()
    config_rel = _check_shipped(phase, config or phase.default_config, shipped)
    user_values = parse_overrides(overrides)
    recipe = load_recipe(shipped.root / config_rel, overrides)
    notes: list[str] = []
    job_args: list[str] = []
    hub_model_id = trackio_space_id = model = models = results_repo = None
    before: list[str] = []
    after: list[str] = []

    for key in ("model_name_or_path", "dataset_name"):
        if key in user_values and looks_local(user_values[key]):
            raise JobsError(f"--{key} {user_values[key]} is a local path the job cannot see: push it to the Hub first")
    if looks_local(recipe.get("dataset_name")):
        raise JobsError(
            f"dataset_name {recipe.get('dataset_name')!r} is a local path the job cannot see: pass a Hub dataset ID "
            "(e.g. --dataset_name openlifescienceai/medmcqa) or push the data to the Hub first"
        )

    if phase.trains:
        model = recipe.get("model_name_or_path")
        if "model_name_or_path" not in user_values:
            if phase.name == "grpo" and "sft" in handoff:
                model = handoff["sft"]
                job_args += ["--model_name_or_path", model]
            elif looks_local(model):
                if phase.name == "sft":
                    raise JobsError(
                        f"model_name_or_path {model!r} is a local path the job cannot see: pass a Hub model ID "
                        "(e.g. --model_name_or_path Qwen/Qwen3-0.6B)"
                    )
                notes.append(f"config model {model!r} is local: the job starts from {options.hub_id('sft')}")
                model = options.hub_id("sft")
                job_args += ["--model_name_or_path", model]
        hub_model_id = user_values.get("hub_model_id", options.hub_id(phase.name))
        trackio_space_id = user_values.get("trackio_space_id", options.trackio_space_id)
        job_args += [
            *("--push_to_hub", "true", "--hub_model_id", options.hub_id(phase.name)),
            *("--hub_strategy", "checkpoint", "--hub_private_repo", "true" if options.private else "false"),
            *("--report_to", "trackio", "--trackio_space_id", options.trackio_space_id),
        ]
        if options.resume:
            job_args += ["--resume_from_checkpoint", "latest"]
    else:
        models = parse_eval_models(recipe.get("models"))
        if "models" not in user_values:
            models.update(handoff)
            for label, source in list(models.items()):
                if looks_local(source):
                    if label not in ("sft", "grpo"):
                        raise JobsError(
                            f"eval model {label}={source} is a local path the job cannot see: use a Hub ID "
                            "(e.g. --models base=Qwen/Qwen3-0.6B,grpo=USER/medmcqa-grpo)"
                        )
                    notes.append(f"eval model {label}={source} is local: the job scores {options.hub_id(label)}")
                    models[label] = options.hub_id(label)
            job_args += ["--models", ",".join(f"{label}={source}" for label, source in models.items())]
        else:
            bad = {label: src for label, src in models.items() if looks_local(src)}
            if bad:
                raise JobsError(f"--models names local paths the job cannot see: {bad}; use Hub IDs")
        recipe = {**recipe, "models": models}
        manifest = recipe.get("split_manifest")
        if "split_manifest" not in user_values and isinstance(manifest, str) and looks_local(manifest):
            # The SFT repo holds the run's split_manifest.json (push_to_hub uploads it): fetch it so the eval still
            # refuses eval rows that training saw.
            sft_repo = models.get("sft") if is_hub_id(models.get("sft")) else options.hub_id("sft")
            before.append(
                shlex.join(
                    [
                        "python",
                        "-c",
                        "from huggingface_hub import hf_hub_download; "
                        f"hf_hub_download({json.dumps(sft_repo)}, {json.dumps(SPLIT_MANIFEST_FILE)}, "
                        f"local_dir={json.dumps(JOB_MANIFEST_DIR)})",
                    ]
                )
            )
            job_args += ["--split_manifest", f"{JOB_MANIFEST_DIR}/{SPLIT_MANIFEST_FILE}"]
            notes.append(f"split_manifest {manifest!r} is local: the job downloads {sft_repo}/{SPLIT_MANIFEST_FILE}")
        results_repo = options.results_repo
        output_dir = str(recipe.get("output_dir") or "eval_results")
        after = [
            shlex.join(
                [
                    "python",
                    "-c",
                    "from fine_tune.hub.jobs import publish_eval_results; "
                    f"publish_eval_results({json.dumps(output_dir)}, {json.dumps(results_repo)}, "
                    f"private={options.private!r})",
                ]
            )
        ]
    script_args = ["--config", config_rel, *job_args, *overrides]  # the user's overrides come last and win

    est = estimate(phase.name, options.flavor, recipe, benchmarks)
    if est is None:
        notes.append(f"no seconds-per-step figure for {options.flavor}: no time or cost estimate")
    timeout_seconds, timeout_source = resolve_timeout(est, options.timeout, options.flavor)
    env = {
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MEDMCQA_FT_CODE_SHA256": shipped.sha256,
    }
    if commit:
        env["MEDMCQA_FT_GIT_COMMIT"] = commit
    return JobSpec(
        phase=phase.name,
        name=f"{options.repo_prefix}-{phase.name}",
        image=options.image,
        command=job_command(phase.script, script_args, before, after),
        env=env,
        secrets=[TOKEN_SECRET],
        flavor=options.flavor,
        timeout_seconds=timeout_seconds,
        timeout_source=timeout_source,
        estimate=est,
        namespace=options.namespace,
        script=phase.script,
        config=config_rel,
        script_args=script_args,
        hub_model_id=hub_model_id,
        model=model,
        models=models,
        results_repo=results_repo,
        trackio_space_id=trackio_space_id,
        labels={"project": PROJECT_NAME, "phase": phase.name, "code": shipped.sha256[:12]},
        shipped=shipped,
        notes=notes,
    )


def build_pipeline(
    options: Options,
    *,
    configs: dict[str, str | None],
    overrides: dict[str, list[str]],
    start_at: str = "sft",
    shipped: ShippedTree | None = None,
    benchmarks=None,
    commit: str | None = None,
) -> list[JobSpec]:
    """SFT -> GRPO -> eval: each phase starts from (or scores) the Hub models the earlier ones push."""
    shipped = shipped or ShippedTree.from_project()
    start = PIPELINE.index(start_at)
    handoff = {name: options.hub_id(name) for name in PIPELINE[:start] if PHASES[name].trains}
    specs: list[JobSpec] = []
    for name in PIPELINE[start:]:
        spec = build_spec(
            name,
            options,
            config=configs.get(name),
            overrides=overrides.get(name, []),
            handoff=handoff,
            shipped=shipped,
            benchmarks=benchmarks,
            commit=commit,
        )
        specs.append(spec)
        if spec.hub_model_id:
            handoff[name] = spec.hub_model_id
    return specs


def publish_eval_results(
    folder: str | Path, repo_id: str, *, private: bool = True, update_cards: bool = True, token: str | None = None
) -> list[str]:
    """Run inside an eval job: upload `folder` (eval_results/) to a dataset repo, then write each run's table into
    the model cards of the Hub models it scored. Returns what was updated; nothing to publish is not an error."""
    folder = Path(folder)
    results_files = sorted(folder.glob(f"*/{RESULTS_FILE}")) if folder.is_dir() else []
    if not results_files:
        print(f"no {RESULTS_FILE} under {folder}: nothing to publish")
        return []
    from huggingface_hub import HfApi

    token = token or os.environ.get(TOKEN_ENV) or None
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message="eval results")
    updated = [f"https://huggingface.co/datasets/{repo_id}"]
    print(f"uploaded {folder} to {updated[0]}")
    if update_cards:
        from fine_tune.hub.model_card import update_cards_from_results

        for path in results_files:
            updated += update_cards_from_results(json.loads(path.read_text()), token=token)
    return updated


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def preflight(token_env: str = TOKEN_ENV, timeout: float = HUB_TIMEOUT_S) -> str:
    """The token, after checking (in seconds, before anything else) that there is one and the Hub is reachable."""
    token = os.environ.get(token_env) or None
    if token is None:
        raise JobsError(
            f"no Hub token: ${token_env} is not set. Create a token with write access at "
            f"https://huggingface.co/settings/tokens and `export {token_env}=hf_...` (or name another variable with "
            "--token-env). --dry-run needs no token."
        )
    if hub.offline_mode():
        raise JobsError(
            f"offline mode is set ({'/'.join(hub.OFFLINE_ENV_VARS)}): unset it to submit jobs; --dry-run works offline"
        )
    endpoint = hub.hub_endpoint()
    if not hub.hub_reachable(endpoint, timeout=timeout):
        raise JobsError(
            f"the Hugging Face Hub ({endpoint}) is unreachable (no connection within {timeout:.0f} s): check the "
            "network, proxy (HTTPS_PROXY) or HF_ENDPOINT and retry; --dry-run works offline"
        )
    return token


def check_account(api, token: str, namespace: str | None, token_env: str = TOKEN_ENV) -> str:
    """The namespace to run in (whoami when not given); refuses a rejected or read-only token."""
    from huggingface_hub.errors import HfHubHTTPError

    fix = f"create a token with write access at https://huggingface.co/settings/tokens and `export {token_env}=hf_...`"
    try:
        info = api.whoami(token=token)
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise JobsError(f"the Hub rejected the token in ${token_env} ({status}): {fix}") from None
        first_line = redact(str(error).splitlines()[0] if str(error) else type(error).__name__, token)
        raise JobsError(
            f"the Hub could not say who the token belongs to ({first_line}): check HF_ENDPOINT and the network, "
            "or pass --namespace"
        ) from None
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise JobsError(f"the token in ${token_env} is read-only, but jobs push code and models to the Hub: {fix}")
    return namespace or info["name"]


class Submitter:
    """Ships the tree, submits specs and follows jobs through an `HfApi` (intercepted in tests)."""

    def __init__(self, api, token: str, out: Callable[[str], None] = print):
        self.api = api
        self.token = token
        self.out = lambda text: out(redact(text, token))
        self._volumes: dict[tuple[str, str], Any] = {}

    def ship(self, shipped: ShippedTree, namespace: str):
        key = (namespace, shipped.folder)
        if key not in self._volumes:
            with tempfile.TemporaryDirectory(prefix="medmcqa-ft-ship-") as tmp:
                staged = shipped.stage(Path(tmp) / PROJECT_NAME)
                self.out(f"shipping {len(shipped.files)} files to {namespace}/{CODE_BUCKET}/{shipped.folder}")
                self._volumes[key] = self.api.sync_job_volume(
                    staged,
                    CODE_MOUNT_PATH,
                    remote_name=shipped.folder,
                    read_only=True,
                    namespace=namespace,
                    token=self.token,
                )
        return self._volumes[key]

    def submit(self, spec: JobSpec):
        volume = self.ship(spec.shipped, spec.namespace)
        job = self.api.run_job(**spec.run_job_kwargs({TOKEN_SECRET: self.token}, [volume]), token=self.token)
        self.out(
            f"{spec.phase}: job {job.id} submitted on {spec.flavor} (timeout {format_duration(spec.timeout_seconds)})"
            f"\n  {job.url}\n  logs: hf jobs logs -f {spec.namespace}/{job.id}"
        )
        if spec.trackio_space_id:
            self.out(f"  curves: https://huggingface.co/spaces/{spec.trackio_space_id}")
        return job

    def follow(self, job, spec: JobSpec):
        """Stream the logs until the stream ends, then wait for the final stage (a stream can end early)."""
        for line in self.api.fetch_job_logs(job_id=job.id, namespace=spec.namespace, follow=True, token=self.token):
            self.out(line)
        return self.wait(job, spec, announce=False)

    def wait(self, job, spec: JobSpec, announce: bool = True):
        if announce:
            self.out(f"{spec.phase}: waiting for job {job.id} (polling every {WAIT_POLL_S:.0f} s)")
        limit = spec.timeout_seconds + WAIT_SLACK_S
        try:
            return self.api.wait_for_job(
                job.id, timeout=limit, poll_interval=WAIT_POLL_S, namespace=spec.namespace, token=self.token
            )
        except TimeoutError:
            raise JobsError(
                f"{spec.phase} job {job.id} has not ended {format_duration(limit)} after submission (its timeout is "
                f"{format_duration(spec.timeout_seconds)}): see `hf jobs inspect {spec.namespace}/{job.id}`; later "
                "phases were not started"
            ) from None


def stage_of(job) -> str:
    stage = job.status.stage
    return getattr(stage, "value", str(stage))


def failure_message(spec: JobSpec, job, later: list[str]) -> str:
    status = job.status
    detail = f": {status.message}" if getattr(status, "message", None) else ""
    text = (
        f"{spec.phase} job {job.id} ended {stage_of(job)}{detail}.\n  logs: hf jobs logs {spec.namespace}/{job.id}"
        f"\n  {job.url}"
    )
    if later:
        text += f"\n  not started: {', '.join(later)}. Fix the cause, then rerun with --start-at {spec.phase}"
        if spec.phase != "eval":
            text += " (add --resume to continue from its last pushed checkpoint)"
    return text


def run_specs(specs: list[JobSpec], submitter: Submitter, *, follow: bool, wait: bool) -> int:
    """Submit each spec in turn; with several (the pipeline) wait for each and stop at the first failure."""
    for index, spec in enumerate(specs):
        job = submitter.submit(spec)
        if not (follow or wait):
            continue
        final = submitter.follow(job, spec) if follow else submitter.wait(job, spec)
        if stage_of(final) != "COMPLETED":
            submitter.out("error: " + failure_message(spec, final, [s.phase for s in specs[index + 1 :]]))
            return EXIT_JOB_FAILED
        pushed = f": {spec.hub_model_id}" if spec.hub_model_id else ""
        submitter.out(f"{spec.phase}: job {final.id} completed{pushed}")
    return 0


def fetch_hub_checkpoint(
    output_dir: str | Path, repo_id: str, *, token: str | None = None, revision: str | None = None
) -> Path | None:
    """Download `last-checkpoint/` of `repo_id` into `output_dir/checkpoint-<global_step>`; None when there is none.

    The Trainer pushes it there with `push_to_hub: true` and `hub_strategy: checkpoint`; placing it under its step's
    name lets `get_last_checkpoint(output_dir)` (and so `--resume_from_checkpoint latest`) pick it up.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

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
    """When resuming from `latest` and `output_dir` holds no checkpoint, bring the last one from the Hub repo.

    Does nothing unless `resume_from_checkpoint` is true/latest, `push_to_hub` is on and `hub_model_id` is set.
    A Hub that cannot be reached is an error (starting over from step 0 would silently waste the run).
    """
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() not in RESUME_LATEST:
        return None
    if not (getattr(training_args, "push_to_hub", False) and getattr(training_args, "hub_model_id", None)):
        return None
    output_dir = Path(training_args.output_dir)
    if output_dir.is_dir() and any(
        p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name) for p in output_dir.iterdir()
    ):
        return None
    token = token or getattr(training_args, "hub_token", None) or os.environ.get(TOKEN_ENV) or None
    from fine_tune.errors import ModelSourceError

    endpoint = hub.hub_endpoint()
    fix = f"check the network and ${TOKEN_ENV}, or copy the checkpoint folder into {output_dir} yourself"
    if hub.offline_mode() or not hub.hub_reachable(endpoint, timeout=HUB_TIMEOUT_S):
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
            f"({type(error).__name__}: {redact(str(error), token)}): {fix}"
        ) from error


USAGE_EXAMPLES = """examples:
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --dry-run
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --follow --max_steps 200
  python scripts/submit_job.py grpo --config configs/grpo.yaml --namespace USER --flavor a10g-small
  python scripts/submit_job.py pipeline --namespace USER --sft-args "--max_steps 400"
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --resume   # continue a killed run
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="submit_job.py",
        description=(
            "Run a phase (or the whole SFT -> GRPO -> eval pipeline) on Hugging Face Jobs. Anything after the known "
            "options is passed to the entry script as config overrides (--key value), as when run locally."
        ),
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("phase", choices=[*PHASES, "pipeline"])
    parser.add_argument("--config", help="recipe for a single phase (default configs/<phase>.yaml)")
    parser.add_argument("--flavor", default=DEFAULT_FLAVOR, help=f"hardware (default {DEFAULT_FLAVOR})")
    parser.add_argument("--timeout", help="e.g. 2h, 90m (default: the estimate + margin; never the 30 min default)")
    parser.add_argument("--namespace", help=f"Hub user or org for jobs and repos (or ${NAMESPACE_ENV})")
    parser.add_argument("--dry-run", action="store_true", help="print the job specification as JSON; no network")
    parser.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint pushed to the Hub")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"Docker image (default {DEFAULT_IMAGE})")
    parser.add_argument("--repo-prefix", default=DEFAULT_REPO_PREFIX, help="Hub model IDs are NAMESPACE/PREFIX-PHASE")
    parser.add_argument("--trackio-space", help=f"trackio Space (default NAMESPACE/{DEFAULT_TRACKIO_SPACE})")
    parser.add_argument("--public", action="store_true", help="push public repos (default private)")
    parser.add_argument("--token-env", default=TOKEN_ENV, help=f"env var holding the Hub token (default {TOKEN_ENV})")
    group = parser.add_argument_group("pipeline")
    for name in PIPELINE:
        group.add_argument(f"--{name}-config", help=f"{name} recipe (default {PHASES[name].default_config})")
        group.add_argument(f"--{name}-args", default="", help=f'{name} overrides as one string, e.g. "--max_steps 10"')
    group.add_argument("--start-at", choices=PIPELINE, default="sft", help="skip the phases before this one")
    return parser


def parse_cli(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    if args.phase == "pipeline":
        if overrides:
            parser.error(
                "pipeline takes per-phase overrides (--sft-args, --grpo-args, --eval-args), "
                f"not {shlex.join(overrides)}"
            )
        if args.config:
            parser.error("pipeline takes --sft-config/--grpo-config/--eval-config, not --config")
    else:
        used = [name for name in PIPELINE if getattr(args, f"{name}_args") or getattr(args, f"{name}_config")]
        if used or args.start_at != "sft":
            parser.error("--<phase>-config/--<phase>-args/--start-at are for the pipeline; pass overrides directly")
    return args, overrides


def specs_from_args(args: argparse.Namespace, overrides: list[str], namespace: str) -> list[JobSpec]:
    options = Options(
        namespace=namespace,
        flavor=args.flavor,
        timeout=args.timeout,
        image=args.image,
        repo_prefix=args.repo_prefix,
        trackio_space=args.trackio_space,
        private=not args.public,
        resume=args.resume,
    )
    shipped = ShippedTree.from_project()
    benchmarks = benchmark_figures()
    commit = git_commit()
    if args.phase == "pipeline":
        return build_pipeline(
            options,
            configs={name: getattr(args, f"{name}_config") for name in PIPELINE},
            overrides={name: shlex.split(getattr(args, f"{name}_args")) for name in PIPELINE},
            start_at=args.start_at,
            shipped=shipped,
            benchmarks=benchmarks,
            commit=commit,
        )
    return [
        build_spec(
            args.phase,
            options,
            config=args.config,
            overrides=overrides,
            shipped=shipped,
            benchmarks=benchmarks,
            commit=commit,
        )
    ]


def dry_run_document(specs: list[JobSpec], phase: str) -> dict[str, Any]:
    if phase != "pipeline":
        return specs[0].to_dict()
    return {
        "pipeline": [spec.to_dict() for spec in specs],
        "handoff": [
            {"from": a.phase, "to": b.phase, "model": a.hub_model_id} for a, b in zip(specs, specs[1:], strict=False)
        ],
        "total_timeout_seconds": sum(spec.timeout_seconds for spec in specs),
    }


def summary_lines(specs: list[JobSpec]) -> list[str]:
    lines = []
    for spec in specs:
        est = spec.estimate
        if est is None:
            timeout = format_duration(spec.timeout_seconds)
            lines.append(f"{spec.phase}: no estimate for {spec.flavor}; timeout {timeout}")
            continue
        cost = est.cost_usd(est.total_seconds)
        lines.append(
            f"{spec.phase}: {est.units} {est.unit}s x {est.seconds_per_unit} s ({est.figure_kind}) + setup -> "
            f"~{format_duration(est.total_seconds)} on {spec.flavor}"
            + (f" (~${cost:.2f})" if cost is not None else "")
            + f", timeout {format_duration(spec.timeout_seconds)} ({spec.timeout_source})"
        )
    return lines


def default_api(token: str):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def main(argv: list[str] | None = None, api_factory: Callable[[str], Any] = default_api) -> int:
    args, overrides = parse_cli(argv)
    token: str | None = None
    try:
        namespace = args.namespace or os.environ.get(NAMESPACE_ENV) or None
        if args.dry_run:
            if namespace is None:
                raise JobsError(
                    f"--dry-run needs --namespace USER (or ${NAMESPACE_ENV}): Hub IDs are built from it and a dry "
                    "run never asks the Hub who you are"
                )
            specs = specs_from_args(args, overrides, namespace)
            print(json.dumps(dry_run_document(specs, args.phase), indent=2))
            return 0
        specs = specs_from_args(args, overrides, namespace) if namespace else None  # local checks first
        token = preflight(args.token_env)
        api = api_factory(token)
        namespace = check_account(api, token, namespace, args.token_env)
        specs = specs or specs_from_args(args, overrides, namespace)
        for line in summary_lines(specs):
            print(line)
        return run_specs(specs, Submitter(api, token), follow=args.follow, wait=args.phase == "pipeline")
    except JobsError as error:
        print(f"error: {redact(str(error), token)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: submitted jobs keep running (hf jobs ps; hf jobs cancel JOB_ID)", file=sys.stderr)
        return 130
    except (OSError, *_http_errors()) as error:  # network and Hub errors: one explained line, never the token
        print(
            f"error: the Hub call failed ({type(error).__name__}: {redact(str(error), token)}); check the network, "
            f"the token in ${args.token_env} and the namespace, then retry",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _http_errors() -> tuple[type[BaseException], ...]:
    """huggingface_hub's HTTP client errors (its transport library is an implementation detail)."""
    from huggingface_hub.errors import HfHubHTTPError

    return tuple(kind for kind in HfHubHTTPError.__mro__ if kind not in (OSError, Exception, BaseException, object))
