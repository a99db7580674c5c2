"""One phase's job specification, built from its recipe (read through `fine_tune.recipes.loader`, as the entry script
reads it) and the submit options; pure, so `--dry-run` prints exactly what would be submitted."""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT, SPLIT_MANIFEST_FILE, TOKEN_ENV
from fine_tune.hub.jobs.estimate import Estimate, Figure, estimate, format_duration, resolve_timeout
from fine_tune.hub.jobs.hardware import JOBS_FLAVORS
from fine_tune.hub.jobs.launch import VLLM_SERVER_ARGS, Launch, plan_launch
from fine_tune.hub.jobs.memory import (
    RUNTIME_OVERHEAD_GIB,
    MemoryPlan,
    cheapest_fitting_flavor,
    fit_on_flavor,
    fits,
    plan_on_flavor,
)
from fine_tune.hub.jobs.options import DEFAULT_FLAVOR, Options
from fine_tune.hub.jobs.recipe import check_recipe_files, given_keys, job_precision, job_recipe, read_recipe
from fine_tune.hub.jobs.shipping import PROJECT_NAME, ShippedTree, job_command
from fine_tune.hub.phases import PHASES, PIPELINE, JobsError, Phase
from fine_tune.hub_access import is_hub_id, is_local, written_as_path
from fine_tune.models.known_shapes import offline_model_config
from fine_tune.models.precision import Precision
from fine_tune.recipes.length import TrainingLength, training_length

TOKEN_SECRET = TOKEN_ENV  # the secret's name inside the job: what the entry scripts and huggingface_hub read
JOB_MANIFEST_DIR = "/tmp/medmcqa-ft-manifest"  # where an eval job puts a scored model's split manifest
RESUME_ARGS = ("--resume_from_checkpoint", "latest")


def looks_local(value: Any) -> bool:
    """A path the job cannot see (it only has the shipped tree and the Hub), as opposed to a Hub ID."""
    if not isinstance(value, str) or not value:
        return False
    return is_local(value) or written_as_path(value) or (PROJECT_ROOT / value).exists()


@dataclass
class JobSpec:
    phase: str
    name: str
    image: str
    env: dict[str, str]
    secrets: list[str]  # names only; the values are read from the local environment at submission
    flavor: str
    timeout_seconds: int
    timeout_source: str
    estimate: Estimate | None
    memory: dict[str, Any] | None  # the memory plan (fine_tune.hub.jobs.memory) and any --fit, when the shape is known
    precision: Precision  # what the job's script resolves on the flavor's GPU, and why
    length: TrainingLength | None  # a training phase's steps and epochs
    recipe: Any  # fine_tune.recipes.loader.ResolvedRecipe: every key the job's script reads, with its origin
    namespace: str
    script: str
    config: str
    script_args: list[str]
    launch: Launch
    hub_model_id: str | None  # what a training phase pushes
    model: str | None  # what a training phase starts from
    models: dict[str, str] | None  # what the eval phase scores (label -> Hub ID)
    results_repo: str | None  # the dataset repo the eval phase uploads its results to
    trackio_space_id: str | None
    labels: dict[str, str]
    shipped: ShippedTree
    before: list[str] = field(default_factory=list)  # steps before the script (a failure stops the job)
    after: list[str] = field(default_factory=list)  # steps after it (their failure never replaces its exit status)
    notes: list[str] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        launch = self.launch
        return job_command(launch.run, [*self.before, *launch.before], [*self.after, *launch.after], launch.extras)

    @property
    def resumes(self) -> bool:
        return "--resume_from_checkpoint" in self.script_args

    def resumed(self) -> JobSpec:
        """The same job continuing from the last checkpoint its run pushed (`--resume_from_checkpoint latest`)."""
        if self.resumes:
            return self
        script_args = [*self.script_args, *RESUME_ARGS]
        launch = plan_launch(
            PHASES[self.phase],
            self.flavor,
            script_args,
            self.shipped.files,
            model=self.model,
            vllm_server=self.launch.vllm_server is not None,
        )
        return dataclasses.replace(self, script_args=script_args, launch=launch, notes=list(self.notes))

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
            "launch": self.launch.to_dict(),
            "timeout": format_duration(self.timeout_seconds),
            "timeout_seconds": self.timeout_seconds,
            "timeout_source": self.timeout_source,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "max_cost_usd": self.estimate.cost_usd(self.timeout_seconds) if self.estimate else None,
            "memory": self.memory,
            "precision": {"name": self.precision.name, "reason": self.precision.reason},
            "training_length": self.length.to_dict() if self.length else None,
            "recipe": self.recipe.to_dict(),
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


def check_task_data(values: dict[str, Any], shipped: ShippedTree) -> None:
    """Each task of the recipe (one, or a mixture's) must reach the job: its task file shipped with the project, its
    rows on the Hub (a mixture entry's dataset_name, else the recipe's, else the task file's dataset_path)."""
    from fine_tune.task.mixture import parse_task_mixture
    from fine_tune.task.spec import resolve_task

    for entry in parse_task_mixture(values.get("task")):
        task_file = Path(entry.task)
        is_file = task_file.suffix in (".yaml", ".yml") or "/" in entry.task
        if is_file and (task_file.is_absolute() or task_file.as_posix() not in shipped.files):
            raise JobsError(
                f"task file {entry.task} is not shipped with the project: put it under configs/tasks/ and pass "
                "its path relative to the project"
            )
        data = entry.dataset_name or values.get("dataset_name") or resolve_task(entry.task).dataset_path
        if looks_local(data):
            raise JobsError(
                f"task {entry.task}: its rows ({data}) are at a local path the job cannot see: push them to the Hub "
                "and name the dataset ID"
            )


def check_shipped(phase: Phase, config: str, shipped: ShippedTree) -> str:
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


def training_job_args(
    phase: Phase, options: Options, values: dict[str, Any], given: set[str], handoff: dict[str, str], notes: list[str]
) -> tuple[str | None, list[str]]:
    """What a training job adds to the script's command line: the starting model when the recipe's is local or the
    pipeline hands one on, the Hub push (checkpoints included, so a killed job can resume) and trackio."""
    job_args: list[str] = []
    model = values.get("model_name_or_path")
    if "model_name_or_path" not in given:
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
    job_args += [
        *("--push_to_hub", "true", "--hub_model_id", options.hub_id(phase.name)),
        *("--hub_strategy", "checkpoint", "--hub_private_repo", "true" if options.private else "false"),
        *("--report_to", "trackio", "--trackio_space_id", options.trackio_space_id),
    ]
    if options.vllm_server:
        job_args += VLLM_SERVER_ARGS
    if options.resume:
        job_args += RESUME_ARGS
    return model, job_args


def eval_models(
    options: Options, values: dict[str, Any], given: set[str], handoff: dict[str, str], notes: list[str]
) -> dict[str, str]:
    """The models an eval job scores: the recipe's, with the pipeline's handoff and local trained models replaced by
    the Hub IDs their jobs push; a local path the job cannot see is refused."""
    models = dict(values["models"])
    if "models" in given:
        bad = {label: src for label, src in models.items() if looks_local(src)}
        if bad:
            raise JobsError(f"--models names local paths the job cannot see: {bad}; use Hub IDs")
        return models
    models.update(handoff)
    for label, source in list(models.items()):
        if looks_local(source):
            if not (label in PHASES and PHASES[label].trains):
                raise JobsError(
                    f"eval model {label}={source} is a local path the job cannot see: use a Hub ID "
                    "(e.g. --models base=Qwen/Qwen3-0.6B,grpo=USER/medmcqa-grpo)"
                )
            notes.append(f"eval model {label}={source} is local: the job scores {options.hub_id(label)}")
            models[label] = options.hub_id(label)
    return models


def manifest_source(models: dict[str, str], options: Options, handoff: dict[str, str]) -> str | None:
    """The Hub repo whose split_manifest.json the eval job fetches: one the job scores that a training job of this
    project pushed (the pipeline's phases share one split); None when it scores none."""
    pushed = {options.hub_id(name) for name in PIPELINE if PHASES[name].trains} | set(handoff.values())
    scored = [source for source in models.values() if is_hub_id(source) and source in pushed]
    return scored[0] if scored else None


def model_shape_config(phase: Phase, model: Any, notes: list[str]) -> dict[str, Any] | None:
    """The config.json of what the phase loads when its shape is known offline: a local config.json or the stored
    shape of a known base. `model`: what a training job starts from, or the eval's models."""
    sources = list(model.values()) if isinstance(model, dict) else [model]
    for source in sources:
        config = offline_model_config(source) if source else None
        if config is not None:
            return config
    notes.append(f"no memory plan: the shape of {', '.join(map(str, sources))} is not known offline")
    return None


def memory_record(plan: MemoryPlan, fitted: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "peak_gib": round(plan.peak_gib, 2),
        "precision": plan.precision,
        "parts_gib": {name: round(value / 2**30, 3) for name, value in plan.parts.items()},
        "runtime_overhead_gib": RUNTIME_OVERHEAD_GIB,
        "plan": plan.describe(),
        "notes": plan.notes,
        "fit": fitted,
    }


def choose_flavor(
    requested: str | None, fit: bool, phase: str, values: dict[str, Any], config: dict[str, Any] | None, notes: list
) -> tuple[str, dict[str, int], dict[str, Any] | None]:
    """The flavor, the overrides `--fit` applies, and the memory record. Unrequested: the cheapest flavor that fits
    at the recipe's own batch. Requested and too small: refused, naming the micro-batch x accumulation (same
    effective batch) and length cap that would fit, which `--fit` applies."""
    if config is None:
        return requested or DEFAULT_FLAVOR, {}, None
    if requested is None:
        flavor = cheapest_fitting_flavor(values, config, phase)
        if flavor is None:
            largest = plan_on_flavor(values, config, phase, list(JOBS_FLAVORS)[-1])
            raise JobsError(f"no listed flavor fits {largest.describe()}: pass --flavor (and --timeout) explicitly")
        plan = plan_on_flavor(values, config, phase, flavor)
        notes.append(f"flavor {flavor}: the cheapest whose GPU fits {plan.describe()}")
        return flavor, {}, memory_record(plan)
    if requested not in JOBS_FLAVORS:
        return requested, {}, None
    plan = plan_on_flavor(values, config, phase, requested)
    usable = JOBS_FLAVORS[requested].device.usable_memory_gib
    if fits(plan, usable):
        if fit:
            notes.append(f"--fit on {requested}: the recipe's micro-batch fits ({plan.describe()}); nothing changed")
        return requested, {}, memory_record(plan)
    fitted = fit_on_flavor(values, config, phase, requested)
    too_small = (
        f"--flavor {requested} has {usable:.2f} GiB per GPU, too small for {plan.describe()} plus "
        f"{RUNTIME_OVERHEAD_GIB} GiB CUDA runtime"
    )
    if fitted is None:
        cheapest = cheapest_fitting_flavor(values, config, phase)
        raise JobsError(f"{too_small}, at any micro-batch: use {cheapest or 'a larger flavor'}")
    if not fit:
        raise JobsError(f"{too_small}: {fitted.describe()} fits (same effective batch); pass --fit to apply it")
    notes.append(f"--fit on {requested}: {fitted.describe()} (same effective batch): {fitted.plan.describe()}")
    return requested, fitted.overrides, memory_record(fitted.plan, fitted.overrides)


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
    in_pipeline: bool = False,
) -> JobSpec:
    """The full specification of one phase's job; pure (no network), so `--dry-run` prints exactly this.

    `handoff` maps earlier phases to the Hub models they pushed (the pipeline's chain): GRPO starts from
    handoff["sft"]; eval scores handoff's models under their phase labels. In the pipeline an eval job fails on a
    significant regression against a model's parent (`--fail_on_regression true`).
    """
    phase = PHASES[phase_name]
    overrides = list(overrides or [])
    handoff = dict(handoff or {})
    shipped = shipped or ShippedTree.from_project()
    config_rel = check_shipped(phase, config or phase.default_config, shipped)
    recipe = read_recipe(phase.name, shipped.root / config_rel, overrides)
    check_recipe_files(recipe, shipped)
    values, given = recipe.values, given_keys(recipe)
    notes: list[str] = []
    job_args: list[str] = []
    hub_model_id = trackio_space_id = model = models = results_repo = None
    before: list[str] = []
    after: list[str] = []

    for key in ("model_name_or_path", "dataset_name"):
        if key in given and looks_local(values.get(key)):
            raise JobsError(f"--{key} {values[key]} is a local path the job cannot see: push it to the Hub first")
    if looks_local(values.get("dataset_name")):
        raise JobsError(
            f"dataset_name {values.get('dataset_name')!r} is a local path the job cannot see: pass a Hub dataset ID "
            "(e.g. --dataset_name openlifescienceai/medmcqa) or push the data to the Hub first"
        )
    check_task_data(values, shipped)

    if phase.trains:
        model, job_args = training_job_args(phase, options, values, given, handoff, notes)
        hub_model_id = values["hub_model_id"] if "hub_model_id" in given else options.hub_id(phase.name)
        trackio_space_id = values["trackio_space_id"] if "trackio_space_id" in given else options.trackio_space_id
    else:
        models = eval_models(options, values, given, handoff, notes)
        if "models" not in given:
            job_args += ["--models", ",".join(f"{label}={source}" for label, source in models.items())]
        values = {**values, "models": models}
        manifest = values.get("split_manifest")
        if "split_manifest" not in given and isinstance(manifest, str) and looks_local(manifest):
            # A trained model's repo holds its run's split_manifest.json (push_to_hub uploads it): the job fetches it
            # from a model it scores, so the eval still refuses eval rows that training saw.
            repo = manifest_source(models, options, handoff)
            if repo is None:
                job_args += ["--split_manifest", "none"]
                notes.append(f"split_manifest {manifest!r} is local and the job scores no model trained here: none")
            else:
                before.append(
                    shlex.join(
                        [
                            "python",
                            "-c",
                            "from fine_tune.evaluate.split_check import fetch_split_manifest; "
                            f"fetch_split_manifest({json.dumps(repo)}, {json.dumps(JOB_MANIFEST_DIR)})",
                        ]
                    )
                )
                job_args += ["--split_manifest", f"{JOB_MANIFEST_DIR}/{SPLIT_MANIFEST_FILE}"]
                notes.append(f"split_manifest {manifest!r} is local: the job downloads {repo}/{SPLIT_MANIFEST_FILE}")
        if in_pipeline:
            job_args += ["--fail_on_regression", "true"]
        results_repo = options.results_repo
        after.append(
            shlex.join(
                [
                    "python",
                    "-c",
                    "from fine_tune.hub.publish import publish_eval_results; "
                    f"publish_eval_results({json.dumps(str(values['output_dir']))}, {json.dumps(results_repo)}, "
                    f"private={options.private!r})",
                ]
            )
        )
    shape = model_shape_config(phase, model if phase.trains else models, notes)
    flavor, fitted, memory = choose_flavor(options.flavor, options.fit, phase.name, values, shape, notes)
    values = {**values, **fitted}
    fit_args = [arg for key, value in fitted.items() for arg in (f"--{key}", str(value))]
    # the user's overrides come after the recipe's job arguments and win; what --fit applies comes last
    script_args = ["--config", config_rel, *job_args, *overrides, *fit_args]
    precision = job_precision(phase, values, flavor, notes)
    launch = plan_launch(phase, flavor, script_args, shipped.files, model=model, vllm_server=options.vllm_server)
    length = None
    if phase.trains:
        length = training_length(values, phase.name, world_size=launch.processes)
        notes.append(f"training length: {length.describe()}")

    est = estimate(phase.name, flavor, values, benchmarks, precision=precision.name)
    if est is None:
        notes.append(f"no seconds-per-step figure for {flavor}: no time or cost estimate")
    timeout_seconds, timeout_source = resolve_timeout(est, options.timeout, flavor)
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
        env=env,
        secrets=[TOKEN_SECRET],
        flavor=flavor,
        memory=memory,
        precision=precision,
        length=length,
        recipe=job_recipe(phase, config_rel, script_args, overrides, shipped, precision),
        timeout_seconds=timeout_seconds,
        timeout_source=timeout_source,
        estimate=est,
        namespace=options.namespace,
        script=phase.script,
        config=config_rel,
        script_args=script_args,
        launch=launch,
        hub_model_id=hub_model_id,
        model=model,
        models=models,
        results_repo=results_repo,
        trackio_space_id=trackio_space_id,
        labels={"project": PROJECT_NAME, "phase": phase.name, "code": shipped.sha256[:12]},
        shipped=shipped,
        before=before,
        after=after,
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
            in_pipeline=True,
        )
        specs.append(spec)
        if spec.hub_model_id:
            handoff[name] = spec.hub_model_id
    return specs
