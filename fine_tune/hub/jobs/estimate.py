"""Job time, cost and timeout estimates per flavor and phase: the one source of seconds per step.

Rules: a flavor's figure is measured only by `scripts/benchmark.py --device cuda --write` on its GPU family; until
then it is the conservative T4 figure scaled by the hardware table (`fine_tune.hub.jobs.hardware`), monotone in the
hardware, so a faster flavor never gets a longer estimate; a CPU run or a projection never overrides a figure."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import BENCHMARK_DIR, PROJECT_ROOT
from fine_tune.hub.jobs.hardware import JOBS_FLAVORS, T4, DeviceSpec, flavor_gpus, flavors_of_family, gpu_family
from fine_tune.hub.phases import PHASES, JobsError
from fine_tune.models.precision import ELEMENT_BYTES
from fine_tune.recipes.arguments import SPLIT_EVAL, parse_models
from fine_tune.recipes.length import training_length

logger = logging.getLogger(__name__)
OFFICIAL_SPLIT_ROWS = {"validation": 4183}  # MedMCQA's labelled dev split, for eval_split: validation


@dataclass(frozen=True)
class Figure:
    seconds: float
    kind: str  # "projected" or "measured"
    source: str


# The conservative T4 figures: what a T4 flavor's timeout uses until a T4 has run `benchmark.py --device cuda --write`.
CONSERVATIVE_T4: dict[str, Figure] = {
    "sft": Figure(
        3.5,
        "projected",
        "upstream observed ~512 SFT steps/hour on a T4 with emulated bf16 (~7 s/step at 16 sequences/step); fp16 "
        "tensor cores (precision auto -> fp16 on sm_75), LoRA and short MedMCQA prompts: half of that",
    ),
    "grpo": Figure(
        12.0,
        "projected",
        "8 completions x <=256 new tokens per optimizer step with transformers generate (~35 ms/token on a T4, "
        "overhead-bound at 0.6B) plus one LoRA update on 8 sequences",
    ),
    "eval": Figure(
        0.5,
        "projected",
        "greedy generation of one JSON answer (~80 tokens, max_new_tokens 256), batches of 16, per question x model",
    ),
}
# How a T4 step splits into host time (Python and kernel launches: does not speed up with the GPU), compute (scales
# with the training precision's tensor peak) and memory traffic (decode steps: scales with bandwidth). The shares are
# those of the committed T4 projection (eval_results/benchmarks/cpu.json, t4_projection: SFT host 0.42 of 0.94 s;
# GRPO host 5.3, decode 1.6, training 1.0 of 7.9 s; eval host 0.67 of each question), rounded toward host time.
STEP_SHARES: dict[str, dict[str, float]] = {
    "sft": {"host": 0.45, "compute": 0.55},
    "grpo": {"host": 0.67, "bandwidth": 0.20, "compute": 0.13},
    "eval": {"host": 0.67, "bandwidth": 0.33},
}


def speedup_over_t4(phase: str, device: DeviceSpec) -> float:
    """T4 seconds / this device's seconds for a step of `phase` under STEP_SHARES (host time does not scale)."""
    shares = STEP_SHARES[phase]
    relative = (
        shares.get("host", 0.0)
        + shares.get("compute", 0.0) * T4.training_flops / device.training_flops
        + shares.get("bandwidth", 0.0) * T4.memory_bandwidth / device.memory_bandwidth
    )
    return 1 / relative


def precision_slowdown(phase: str, device: DeviceSpec, precision: str) -> float:
    """A step in `precision` over a step in the precision the figures assume (`device.training_precision`): the
    compute share scales by the two tensor peaks, the memory-traffic share by the element widths (fp32 moves twice
    the bytes of fp16/bf16); host time does not change."""
    assumed = device.training_precision
    if precision == assumed:
        return 1.0
    shares = STEP_SHARES[phase]
    return (
        shares.get("host", 0.0)
        + shares.get("compute", 0.0) * device.peak_flops[assumed] / device.peak_flops[precision]
        + shares.get("bandwidth", 0.0) * ELEMENT_BYTES[precision] / ELEMENT_BYTES[assumed]
    )


def scaled_figure(flavor: str, phase: str) -> Figure:
    """The conservative T4 figure scaled to the flavor's GPU by the hardware table (monotone: a device at least as
    fast in compute and bandwidth never gets a longer figure)."""
    device = JOBS_FLAVORS[flavor].device
    base = CONSERVATIVE_T4[phase]
    if device == T4:
        return base
    speedup = speedup_over_t4(phase, device)
    return Figure(
        round(base.seconds / speedup, 4),
        "projected",
        f"the conservative T4 figure ({base.seconds} s) / {speedup:.2f}: {device.name} vs T4 by the hardware table "
        f"(host share {STEP_SHARES[phase]['host']} unscaled; compute by {device.training_precision} tensor peak, "
        "decode by memory bandwidth)",
    )


# Every flavor's figure without GPU measurements: the conservative T4 figure, scaled by the hardware table
SECONDS_PER_UNIT: dict[str, dict[str, Figure]] = {
    flavor: {phase: scaled_figure(flavor, phase) for phase in CONSERVATIVE_T4} for flavor in JOBS_FLAVORS
}
HOURLY_USD: dict[str, float] = {name: flavor.hourly_usd for name, flavor in JOBS_FLAVORS.items()}


# Image pull (~3 GB PyTorch runtime image) + `pip install .` + model and dataset download, before step 1.
SETUP_SECONDS = 600.0


# Eval only: downloading and loading each scored model (~1.2 GB for Qwen3-0.6B).
EVAL_MODEL_LOAD_SECONDS = 60.0


# Saving the adapter, rebuilding the merged model and pushing both (plus the model card) after the last step.
FINALIZE_SECONDS = 180.0


# The default timeout is the estimate plus this fraction, rounded up to TIMEOUT_ROUNDING_S.
TIMEOUT_MARGIN = 0.5
TIMEOUT_ROUNDING_S = 300


def benchmark_figures(directory: str | Path | None = None) -> dict[tuple[str, str], Figure]:
    """GPU-measured figures from benchmark results: {(flavor, phase): Figure}; later files (by name) win.

    Only a result measured on a GPU whose `job_figures.drives_job_timeouts` holds counts (`scripts/benchmark.py
    --device cuda`: Qwen3-0.6B's shape, the real recipes): its figures apply to the flavors of that GPU family. A
    CPU run, a shrunken mode or a projection never replaces a figure.
    """
    figures: dict[tuple[str, str], Figure] = {}
    directory = Path(directory) if directory is not None else PROJECT_ROOT / BENCHMARK_DIR
    if not directory.is_dir():
        return figures
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            logger.warning("ignoring benchmark file %s: %s", path, error)
            continue
        jobs = data.get("job_figures") if isinstance(data, dict) else None
        device = data.get("device") if isinstance(data, dict) else None
        if not isinstance(jobs, dict) or not isinstance(device, dict) or device.get("type") != "cuda":
            continue
        if jobs.get("drives_job_timeouts") is not True:
            continue
        flavors = flavors_of_family(str(device.get("family") or gpu_family(str(device.get("name", "")))))
        for phase in PHASES:
            record = jobs.get(phase)
            value = record.get("seconds_per_unit") if isinstance(record, dict) else None
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                continue
            source = f"{path.name} (measured on {device.get('name')}: {record.get('how', 'scripts/benchmark.py')})"
            for flavor in flavors:
                figures[(flavor, phase)] = Figure(float(value), "measured", source)
    return figures


def resolved_figures(benchmarks: dict[tuple[str, str], Figure] | None = None) -> dict[str, dict[str, Figure]]:
    """Every flavor's figure per phase: measured where a GPU of its family measured it, else the scaled conservative
    figure, bounded so that a flavor at least as fast as a measured one never gets a longer figure and one slower
    never a shorter (a bound that would undercut a measurement lifts instead: the safe side)."""
    benchmarks = benchmark_figures() if benchmarks is None else benchmarks
    out: dict[str, dict[str, Figure]] = {flavor: {} for flavor in JOBS_FLAVORS}
    for phase in CONSERVATIVE_T4:
        speed = {flavor: speedup_over_t4(phase, JOBS_FLAVORS[flavor].device) for flavor in JOBS_FLAVORS}
        measured = {flavor: benchmarks[(flavor, phase)] for flavor in JOBS_FLAVORS if (flavor, phase) in benchmarks}
        for flavor in JOBS_FLAVORS:
            if flavor in measured:
                out[flavor][phase] = measured[flavor]
                continue
            figure = SECONDS_PER_UNIT[flavor][phase]
            slower = [m for other, m in measured.items() if speed[other] <= speed[flavor]]
            faster = [m for other, m in measured.items() if speed[other] >= speed[flavor]]
            cap = min(slower, key=lambda m: m.seconds, default=None)
            if cap is not None and cap.seconds < figure.seconds:
                figure = Figure(cap.seconds, cap.kind, f"bounded by a slower GPU's measurement: {cap.source}")
            lift = max(faster, key=lambda m: m.seconds, default=None)
            if lift is not None and lift.seconds > figure.seconds:
                figure = Figure(lift.seconds, lift.kind, f"bounded by a faster GPU's measurement: {lift.source}")
            out[flavor][phase] = figure
    return out


def single_gpu_flavor(flavor: str) -> str | None:
    """The table's single-GPU flavor of the same GPU as a multi-GPU flavor named `<name>xN` (`l4x4` -> `l4x1`,
    `a10g-largex4` -> `a10g-large`, `h200x8` -> `h200`); None when there is none."""
    match = _MULTI_GPU.match(flavor)
    if flavor in JOBS_FLAVORS or not match or int(match.group(2)) < 2:
        return None
    prefix = match.group(1)
    return next((name for name in (prefix, f"{prefix}x1") if name in JOBS_FLAVORS), None)


_MULTI_GPU = re.compile(r"^(.+?)x(\d+)$")


def figure_for(flavor: str, phase: str, benchmarks: dict[tuple[str, str], Figure] | None = None) -> Figure | None:
    """The flavor's seconds per step. A multi-GPU flavor gets its GPU's single-GPU figure unchanged: no credit for
    the extra GPUs (data-parallel steps take at least as long as one GPU's, and the step count is not divided)."""
    figures = resolved_figures(benchmarks)
    if flavor in figures:
        return figures[flavor].get(phase)
    single = single_gpu_flavor(flavor)
    figure = figures[single].get(phase) if single else None
    if figure is None:
        return None
    return Figure(
        figure.seconds,
        figure.kind,
        f"{single}'s single-GPU figure, no credit for the {flavor_gpus(flavor)} GPUs of {flavor}: {figure.source}",
    )


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
    """Optimizer steps (SFT/GRPO) or scored questions (eval) of a recipe's values (`recipes.loader.recipe_values`:
    every key is there, with the schema's default)."""
    if PHASES[phase].trains:
        if recipe["max_steps"] > 0:
            return int(recipe["max_steps"])
        return training_length(recipe, phase).steps
    split = recipe["eval_split"]
    rows = recipe["eval_size"] if split == SPLIT_EVAL else OFFICIAL_SPLIT_ROWS.get(split, recipe["eval_size"])
    questions = min(rows, recipe["limit"]) if recipe["limit"] else rows
    return questions * max(1, len(parse_models(recipe["models"])))


def estimate(
    phase: str, flavor: str, recipe: dict[str, Any], benchmarks=None, precision: str | None = None
) -> Estimate | None:
    """`precision`: what the precision rule resolves to on the flavor (the figures assume the GPU's fp16/bf16)."""
    figure = figure_for(flavor, phase, benchmarks)
    if figure is None:
        return None
    device = JOBS_FLAVORS[flavor].device if flavor in JOBS_FLAVORS else None
    if precision is not None and device is not None and precision != device.training_precision:
        slowdown = precision_slowdown(phase, device, precision)
        figure = Figure(
            round(figure.seconds * slowdown, 4),
            figure.kind,
            f"{figure.source}; x {slowdown:.2f} in {precision} instead of {device.training_precision} (compute by "
            "the tensor peaks, memory traffic by the element widths)",
        )
    setup = SETUP_SECONDS
    if not PHASES[phase].trains:
        setup += EVAL_MODEL_LOAD_SECONDS * len(parse_models(recipe.get("models")))
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


def cost_table(recipes: dict[str, dict[str, Any]], benchmarks: dict[tuple[str, str], Figure] | None = None) -> str:
    """The cost table of docs/jobs.md: per flavor, each phase's estimated time, cost and (in brackets) default timeout
    for the given recipes (`{phase: recipe values}`), and the pipeline total."""
    from fine_tune.markdown import md_table

    benchmarks = benchmark_figures() if benchmarks is None else benchmarks
    units = {phase: phase_units(phase, recipe) for phase, recipe in recipes.items()}
    models = len(parse_models(recipes["eval"].get("models")))
    header = [
        "flavor",
        "$/hour",
        f"SFT, {units['sft']} steps",
        f"GRPO, {units['grpo']} steps",
        f"eval, {units['eval'] // models} questions x {models} models",
        "pipeline total",
        "figures",
    ]
    rows = []
    for flavor in JOBS_FLAVORS:
        cells, total, kinds = [], 0.0, set()
        for phase in ("sft", "grpo", "eval"):
            est = estimate(phase, flavor, recipes[phase], benchmarks)
            total += est.total_seconds
            kinds.add(est.figure_kind)
            cells.append(
                f"{format_duration(est.total_seconds)}, ${est.cost_usd(est.total_seconds):.2f} "
                f"({format_duration(est.default_timeout_seconds)})"
            )
        cost = HOURLY_USD[flavor] * total / 3600
        rows.append(
            [
                f"`{flavor}`",
                f"{HOURLY_USD[flavor]:.2f}",
                *cells,
                f"{format_duration(total)}, ${cost:.2f}",
                "/".join(sorted(kinds)),
            ]
        )
    return md_table(header, rows)
