"""Hugging Face Jobs: ship the project, build a job specification, estimate time and cost, submit, follow, chain
SFT -> GRPO -> eval, and fetch the last Hub checkpoint when a run resumes on a fresh machine.

The project reaches the job as a read-only bucket volume (`HfApi.sync_job_volume`: the shipped files are synced to a
folder of the private `NAMESPACE/jobs-artifacts` bucket named after their content hash). The job copies it to a
writable folder, `pip install`s it (the image already has torch) and runs the same entry script a user runs locally,
with the same config plus the overrides that make a job push to the Hub and log to a trackio Space.

Nothing here imports torch or transformers, and building a specification (`--dry-run`) touches no network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fine_tune import hub
from fine_tune.hub import HUB_TIMEOUT_S, TOKEN_ENV

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
RESUME_LATEST = ("true", "latest", "last")
HUB_CHECKPOINT_DIR = "last-checkpoint"  # where the Trainer pushes the last checkpoint with hub_strategy=checkpoint
TRAINER_STATE_FILE = "trainer_state.json"
EXIT_BAD_INPUT = 2
EXIT_JOB_FAILED = 4

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


class JobsError(RuntimeError):
    """A job cannot be built or submitted as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Phase:
    name: str
    script: str
    default_config: str
    unit: str  # what the seconds-per-unit figures count
    trains: bool


PHASES: dict[str, Phase] = {
    "sft": Phase("sft", "scripts/train_medmcqa_sft.py", "configs/sft.yaml", "optimizer step", trains=True),
    "grpo": Phase("grpo", "scripts/train_medmcqa_grpo.py", "configs/grpo.yaml", "optimizer step", trains=True),
    "eval": Phase("eval", "scripts/eval_medmcqa.py", "configs/eval.yaml", "answer", trains=False),  # question x model
}
PIPELINE: tuple[str, ...] = ("sft", "grpo", "eval")
DEFAULT_EVAL_MODELS: dict[str, str] = {"base": "Qwen/Qwen3-0.6B"}  # = fine_tune.evaluation.DEFAULT_MODELS
EVAL_RESULTS_FILE = "eval_results.json"  # = fine_tune.evaluation.RESULTS_FILE
SPLIT_MANIFEST_FILE = "split_manifest.json"  # = fine_tune.training.SPLIT_MANIFEST_FILE
JOB_MANIFEST_DIR = "/tmp/medmcqa-ft-manifest"  # where an eval job puts the SFT repo's split manifest
LOCAL_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
OFFICIAL_SPLIT_ROWS = {"validation": 4183}  # MedMCQA's labelled dev split, for eval_split: validation


# Time and cost. ONE table of seconds per unit (SFT/GRPO: optimizer step; eval: answer, i.e. one question scored
# by one model), per flavor and phase. "projected" figures are reasoned from the sources below; "measured" ones come
# from a benchmark run.
# scripts/benchmark.py writes eval_results/benchmarks/*.json; any figure found there replaces the table's (see
# `benchmark_figures` for the accepted keys), so the estimate follows the latest measurement without a code change.


@dataclass(frozen=True)
class Figure:
    seconds: float
    kind: str  # "projected" or "measured"
    source: str


_SFT_T4 = (
    "upstream observed ~512 SFT steps/hour on a T4 with emulated bf16 (~7 s/step at 16 sequences/step); fp16 tensor "
    "cores (precision auto -> fp16 on sm_75), LoRA and short MedMCQA prompts project about half of that"
)
_GRPO_T4 = (
    "8 completions x <=256 new tokens per optimizer step with transformers generate (~35 ms/token on a T4, "
    "overhead-bound at 0.6B) plus one LoRA update on 8 sequences"
)
_EVAL_T4 = "greedy generation of one JSON answer (~80 tokens, max_new_tokens 256), batches of 16, per question x model"
_SCALED = "scaled from the T4 figure by fp16/bf16 tensor throughput (training) and memory bandwidth (generation)"


def _figures(sft: float, grpo: float, evaluation: float, source: str | None = None) -> dict[str, Figure]:
    return {
        "sft": Figure(sft, "projected", source or _SFT_T4),
        "grpo": Figure(grpo, "projected", source or _GRPO_T4),
        "eval": Figure(evaluation, "projected", source or _EVAL_T4),
    }


SECONDS_PER_UNIT: dict[str, dict[str, Figure]] = {
    "t4-small": _figures(3.5, 12.0, 0.5),
    "t4-medium": _figures(3.5, 12.0, 0.5),
    "l4x1": _figures(2.0, 9.0, 0.35, _SCALED),
    "a10g-small": _figures(1.8, 7.0, 0.25, _SCALED),
    "a10g-large": _figures(1.8, 7.0, 0.25, _SCALED),
    "l40sx1": _figures(1.2, 6.0, 0.2, _SCALED),
    "a100-large": _figures(0.9, 5.0, 0.15, _SCALED),
    "h200": _figures(0.6, 4.0, 0.12, _SCALED),
}
# Image pull (~3 GB PyTorch runtime image) + `pip install .` + model and dataset download, before step 1.
SETUP_SECONDS = 600.0
# Eval only: downloading and loading each scored model (~1.2 GB for Qwen3-0.6B).
EVAL_MODEL_LOAD_SECONDS = 60.0
# Saving the adapter, rebuilding the merged model and pushing both (plus the model card) after the last step.
FINALIZE_SECONDS = 180.0
# The default timeout is the estimate plus this fraction, rounded up to TIMEOUT_ROUNDING_S.
TIMEOUT_MARGIN = 0.5
TIMEOUT_ROUNDING_S = 300
# US$ per hour, list prices from https://huggingface.co/docs/hub/jobs-pricing (billed per minute; `hf jobs hardware`
# shows today's). Only used to print a cost estimate.
HOURLY_USD: dict[str, float] = {
    "t4-small": 0.40,
    "t4-medium": 0.60,
    "l4x1": 0.80,
    "a10g-small": 1.00,
    "a10g-large": 1.50,
    "l40sx1": 1.80,
    "a100-large": 2.50,
    "h200": 5.00,
}
BENCHMARK_DIR = "eval_results/benchmarks"  # under the project root
_T4_FLAVORS = ("t4-small", "t4-medium")
_BENCHMARK_SECONDS_KEYS = {
    "seconds_per_step": None,  # for the record's "flavor"
    "seconds_per_unit": None,
    "t4_seconds_per_step": _T4_FLAVORS,
    "projected_t4_seconds_per_step": _T4_FLAVORS,
}


def benchmark_figures(directory: str | Path | None = None) -> dict[tuple[str, str], Figure]:
    """Figures from benchmark JSON files: {(flavor, phase): Figure}; later files (by name) win.

    A record is any JSON object holding a `phase` (sft/grpo/eval; or nested under a key named after the phase) and
    one of: `seconds_per_step` or `seconds_per_unit` with a `flavor`; `t4_seconds_per_step` or
    `projected_t4_seconds_per_step` (applies to t4-small and t4-medium). `kind` ("measured"/"projected") defaults to
    "projected" for the projected_* key and to "measured" otherwise.
    """
    figures: dict[tuple[str, str], Figure] = {}
    directory = Path(directory) if directory is not None else PROJECT_ROOT / BENCHMARK_DIR
    if not directory.is_dir():
        return figures
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("ignoring benchmark file %s: %s", path, error)
            continue
        for record in _benchmark_records(data, phase=None):
            for key, flavors in _BENCHMARK_SECONDS_KEYS.items():
                value = record.get(key)
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                    continue
                targets = flavors or ((record["flavor"],) if isinstance(record.get("flavor"), str) else ())
                kind = record.get("kind") or ("projected" if key.startswith("projected") else "measured")
                for flavor in targets:
                    figures[(flavor, record["phase"])] = Figure(float(value), str(kind), f"{path.name} ({key})")
    return figures


def _benchmark_records(data: Any, phase: str | None) -> Iterable[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _benchmark_records(item, phase)
    elif isinstance(data, dict):
        own_phase = data.get("phase", phase)
        if own_phase in PHASES:
            yield {**data, "phase": own_phase}
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                yield from _benchmark_records(value, key if key in PHASES else own_phase)


def figure_for(flavor: str, phase: str, benchmarks: dict[tuple[str, str], Figure] | None = None) -> Figure | None:
    benchmarks = benchmark_figures() if benchmarks is None else benchmarks
    return benchmarks.get((flavor, phase)) or SECONDS_PER_UNIT.get(flavor, {}).get(phase)


@dataclass
class Estimate:
    phase: str
    flavor: str
    units: int
    unit: str
    seconds_per_unit: float
    figure_kind: str
    figure_source: str
    setup_seconds: float = SETUP_SECONDS
    finalize_seconds: float = FINALIZE_SECONDS

    @property
    def compute_seconds(self) -> float:
        return self.units * self.seconds_per_unit

    @property
    def total_seconds(self) -> float:
        return self.setup_seconds + self.compute_seconds + self.finalize_seconds

    @property
    def default_timeout_seconds(self) -> int:
        padded = self.total_seconds * (1 + TIMEOUT_MARGIN)
        return int(math.ceil(padded / TIMEOUT_ROUNDING_S) * TIMEOUT_ROUNDING_S)

    def cost_usd(self, seconds: float) -> float | None:
        hourly = HOURLY_USD.get(self.flavor)
        return None if hourly is None else round(hourly * seconds / 3600, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "unit": self.unit,
            "seconds_per_unit": self.seconds_per_unit,
            "figure_kind": self.figure_kind,
            "figure_source": self.figure_source,
            "setup_seconds": self.setup_seconds,
            "compute_seconds": round(self.compute_seconds, 1),
            "finalize_seconds": self.finalize_seconds,
            "total_seconds": round(self.total_seconds, 1),
            "margin": TIMEOUT_MARGIN,
            "default_timeout_seconds": self.default_timeout_seconds,
            "hourly_usd": HOURLY_USD.get(self.flavor),
            "estimated_cost_usd": self.cost_usd(self.total_seconds),
        }


def phase_units(phase: str, recipe: dict[str, Any]) -> int:
    """Optimizer steps (SFT/GRPO) or scored questions (eval) a recipe runs."""
    if PHASES[phase].trains:
        max_steps = _as_int(recipe.get("max_steps"), -1)
        if max_steps > 0:
            return max_steps
        rows = _as_int(recipe.get(f"{phase}_size"), 0)
        per_step = _as_int(recipe.get("per_device_train_batch_size"), 8) * _as_int(
            recipe.get("gradient_accumulation_steps"), 1
        )
        completions = _as_int(recipe.get("num_generations"), 1) if phase == "grpo" else 1
        epochs = float(recipe.get("num_train_epochs") or 3.0)
        return max(1, math.ceil(rows * completions * epochs / max(per_step, 1)))
    split = recipe.get("eval_split") or "split"
    rows = _as_int(recipe.get("eval_size"), 200) if split == "split" else OFFICIAL_SPLIT_ROWS.get(split, 200)
    limit = _as_int(recipe.get("limit"), 0)
    questions = min(rows, limit) if limit > 0 else rows
    return questions * max(1, len(parse_eval_models(recipe.get("models"))))


def estimate(phase: str, flavor: str, recipe: dict[str, Any], benchmarks=None) -> Estimate | None:
    figure = figure_for(flavor, phase, benchmarks)
    if figure is None:
        return None
    setup = SETUP_SECONDS
    if not PHASES[phase].trains:
        setup += EVAL_MODEL_LOAD_SECONDS * len(parse_eval_models(recipe.get("models")))
    return Estimate(
        phase,
        flavor,
        phase_units(phase, recipe),
        PHASES[phase].unit,
        figure.seconds,
        figure.kind,
        figure.source,
        setup_seconds=setup,
    )


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> int:
    """'2h', '90m', '1h30m', '5400' or '5400s' -> seconds."""
    match = _DURATION.match(str(text).strip().lower())
    if not match or not any(match.groups()):
        raise JobsError(f"cannot read the duration {text!r}: use e.g. 2h, 90m, 1h30m or 5400 (seconds)")
    days, hours, minutes, seconds = (float(group or 0) for group in match.groups())
    total = int(round(days * 86400 + hours * 3600 + minutes * 60 + seconds))
    if total <= 0:
        raise JobsError(f"the duration {text!r} is not positive")
    return total


def format_duration(seconds: float) -> str:
    seconds = int(math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def resolve_timeout(est: Estimate | None, given: str | None, flavor: str) -> tuple[int, str]:
    """The job timeout in seconds and where it came from; refuses a timeout shorter than the estimate."""
    if given is None:
        if est is None:
            raise JobsError(
                f"no seconds-per-step figure for flavor {flavor!r} (known: {', '.join(SECONDS_PER_UNIT)}), so no "
                "default timeout can be derived; pass --timeout (e.g. --timeout 3h) or pick a known flavor"
            )
        return est.default_timeout_seconds, "estimate"
    timeout = parse_duration(given)
    if est is not None and timeout < est.total_seconds:
        raise JobsError(
            f"--timeout {given} ({timeout} s) is shorter than the {est.phase} estimate on {flavor}: "
            f"{est.units} {est.unit}s x {est.seconds_per_unit} s ({est.figure_kind}) = {est.compute_seconds:.0f} s "
            f"+ {est.setup_seconds:.0f} s setup + {est.finalize_seconds:.0f} s save/push = {est.total_seconds:.0f} s "
            f"({format_duration(est.total_seconds)}). The job would be killed before it finishes: raise --timeout "
            f"(default {format_duration(est.default_timeout_seconds)}), lower max_steps, or pick a faster --flavor"
        )
    if est is not None and timeout < est.total_seconds * (1 + TIMEOUT_MARGIN):
        logger.warning(
            "--timeout %s leaves less than %d%% margin over the %s estimate (%s)",
            given,
            TIMEOUT_MARGIN * 100,
            est.phase,
            format_duration(est.total_seconds),
        )
    return timeout, "--timeout"


# Recipes: the YAML config plus `--key value` overrides, read without importing TRL (the job parses them for real).


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


def is_hub_id(value: Any) -> bool:
    return isinstance(value, str) and value.count("/") == 1 and not looks_local(value)


def looks_local(value: Any) -> bool:
    """A path the job cannot see (it only has the shipped tree and the Hub), as opposed to a Hub ID."""
    if not isinstance(value, str) or not value:
        return False
    if value.startswith((".", "/", "~")) or value.count("/") > 1 or value.endswith(LOCAL_FILE_SUFFIXES):
        return True
    return Path(value).expanduser().exists() or (PROJECT_ROOT / value).exists()


# The shipped tree


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


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


# Job specifications


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


def parse_eval_models(value: Any) -> dict[str, str]:
    """The eval config's `models`: a mapping or 'label=source,label=source' (as fine_tune.evaluation reads it)."""
    if isinstance(value, dict):
        return {str(label): str(source) for label, source in value.items()}
    if isinstance(value, str) and value.strip():
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        return {label.strip(): source.strip() for label, _, source in pairs}
    return dict(DEFAULT_EVAL_MODELS)


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
                    "from fine_tune.jobs import publish_eval_results; "
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
    results_files = sorted(folder.glob(f"*/{EVAL_RESULTS_FILE}")) if folder.is_dir() else []
    if not results_files:
        print(f"no {EVAL_RESULTS_FILE} under {folder}: nothing to publish")
        return []
    from huggingface_hub import HfApi

    token = token or os.environ.get(TOKEN_ENV) or None
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message="eval results")
    updated = [f"https://huggingface.co/datasets/{repo_id}"]
    print(f"uploaded {folder} to {updated[0]}")
    if update_cards:
        from fine_tune.model_card import update_cards_from_results

        for path in results_files:
            updated += update_cards_from_results(json.loads(path.read_text()), token=token)
    return updated


# Pre-flight, submission, following


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


# Resume from the Hub (called by training.resolve_resume before it looks for a local checkpoint)


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
    from fine_tune.modeling import ModelSourceError

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


# CLI (scripts/submit_job.py)

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
