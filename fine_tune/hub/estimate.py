"""Job time, cost and timeout estimates per flavor and phase, from projected or benchmarked seconds per unit."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT
from fine_tune.hub.phases import PHASES, JobsError
from fine_tune.recipes.arguments import parse_models as parse_eval_models

logger = logging.getLogger(__name__)
OFFICIAL_SPLIT_ROWS = {"validation": 4183}  # MedMCQA's labelled dev split, for eval_split: validation
_SFT_T4 = (
    "upstream observed ~512 SFT steps/hour on a T4 with emulated bf16 (~7 s/step at 16 sequences/step); fp16 tensor "
    "cores (precision auto -> fp16 on sm_75), LoRA and short MedMCQA prompts project about half of that"
)


_GRPO_T4 = (
    "8 completions x <=256 new tokens per optimizer step with transformers generate (~35 ms/token on a T4, "
    "overhead-bound at 0.6B) plus one LoRA update on 8 sequences"
)


_EVAL_T4 = "greedy generation of one JSON answer (~80 tokens, max_new_tokens 256), batches of 16, per question x model"
_T4_FLAVORS = ("t4-small", "t4-medium")


@dataclass(frozen=True)
class Figure:
    seconds: float
    kind: str  # "projected" or "measured"
    source: str


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
