"""A hyperparameter sweep: a preset grid of SFT configurations, each trained and scored on the dev split, one table.

A sweep file names the SFT and eval recipes, the flavor (for cost), and `configurations`: {name: {key: value}}
overrides of the SFT recipe. Each configuration runs `train_medmcqa_sft.py` then `eval_medmcqa.py` on its merged
model (locally, or printed as commands for jobs), and the table gives dev accuracy, valid-JSON rate, wall time and
cost (time x the flavor's hourly price). The base model is scored 0-shot and `baseline_shots`-shot on the same rows,
and a summary (JSON + markdown) sets them beside each configuration; the configurations' dev curves are overlaid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import MERGED_DIR, PHASE_SCRIPTS, RESULTS_FILE, SPLIT_MANIFEST_FILE, TRAINER_STATE_FILE
from fine_tune.errors import RecipeError
from fine_tune.hub.jobs.estimate import HOURLY_USD
from fine_tune.io import read_yaml
from fine_tune.recipes.loader import load_recipe, schema_keys, schema_types
from fine_tune.train.curves import DEV_SCORE_KEY, curve

SWEEP_KEYS = (
    "sft_config",
    "eval_config",
    "output_dir",
    "flavor",
    "configurations",
    "sft_overrides",
    "eval_overrides",
    "baseline_shots",
)
BASELINE_LABEL = "base"
BASELINE_RUN = "baseline"
DEFAULT_BASELINE_SHOTS = 3
SUMMARY_STEM = "sweep_summary"
OVERLAY_FILE = "sweep_dev_curves.png"
SFT_SCRIPT, EVAL_SCRIPT = PHASE_SCRIPTS["sft"], PHASE_SCRIPTS["eval"]
EVAL_LABEL = "sft"


@dataclass(frozen=True)
class Sweep:
    sft_config: str
    eval_config: str
    output_dir: str
    flavor: str | None
    configurations: dict[str, dict[str, Any]]
    sft_overrides: dict[str, Any]
    eval_overrides: dict[str, Any]
    baseline_shots: int = DEFAULT_BASELINE_SHOTS


def as_flags(values: Mapping[str, Any]) -> list[str]:
    flags = []
    for key, value in values.items():
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        flags += [f"--{key}", text]
    return flags


def load_sweep(path: str | Path, output_dir: str | None = None) -> Sweep:
    """Read and check a sweep file: every override key must be a key of the SFT recipe, every recipe must load."""
    values = read_yaml(path)
    unknown = sorted(set(values) - set(SWEEP_KEYS))
    if unknown:
        raise RecipeError(f"{path}: unknown key {unknown[0]!r}; a sweep has {', '.join(SWEEP_KEYS)}")
    for key in ("sft_config", "eval_config", "configurations"):
        if not values.get(key):
            raise RecipeError(f"{path}: {key} is required")
    configurations = values["configurations"]
    if not isinstance(configurations, Mapping) or not all(isinstance(c, Mapping) for c in configurations.values()):
        raise RecipeError(f"{path}: configurations must map a name to {{key: value}} overrides of the SFT recipe")
    known = schema_keys(schema_types("sft"))
    for name, overrides in configurations.items():
        for key in overrides:
            if key not in known or key == "output_dir":
                raise RecipeError(f"{path}: configuration {name!r} sets {key!r}, not an SFT recipe key it may set")
    sweep = Sweep(
        sft_config=str(values["sft_config"]),
        eval_config=str(values["eval_config"]),
        output_dir=str(output_dir or values.get("output_dir") or "outputs/sweep"),
        flavor=values.get("flavor"),
        configurations={str(k): dict(v) for k, v in configurations.items()},
        sft_overrides=dict(values.get("sft_overrides") or {}),
        eval_overrides=dict(values.get("eval_overrides") or {}),
        baseline_shots=_shots(values.get("baseline_shots", DEFAULT_BASELINE_SHOTS), path),
    )
    for name in sweep.configurations:  # every configuration must parse as the SFT script would read it
        load_recipe("sft", sweep.sft_config, sft_command(sweep, name)[3:])
    return sweep


def _shots(value: Any, path: str | Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecipeError(f"{path}: baseline_shots must be a whole number >= 0, got {value!r}")
    return value


def run_dir(sweep: Sweep, name: str) -> Path:
    return Path(sweep.output_dir) / name


def sft_command(sweep: Sweep, name: str) -> list[str]:
    overrides = {**sweep.sft_overrides, **sweep.configurations[name], "output_dir": str(run_dir(sweep, name) / "sft")}
    return [SFT_SCRIPT, "--config", sweep.sft_config, *as_flags(overrides)]


def eval_command(sweep: Sweep, name: str) -> list[str]:
    sft_dir = run_dir(sweep, name) / "sft"
    overrides = {
        **sweep.eval_overrides,
        "models": f"{EVAL_LABEL}={sft_dir / MERGED_DIR}",
        "split_manifest": str(sft_dir / SPLIT_MANIFEST_FILE),
        "output_dir": str(run_dir(sweep, name)),
        "run_name": "eval",
    }
    return [EVAL_SCRIPT, "--config", sweep.eval_config, *as_flags(overrides)]


def base_model(sweep: Sweep) -> str:
    """The base every configuration starts from (the SFT recipe's model, after the sweep's overrides)."""
    script_args, training_args, model_args = load_recipe("sft", sweep.sft_config, as_flags(sweep.sft_overrides))
    return model_args.model_name_or_path


def baseline_command(sweep: Sweep) -> list[str]:
    """The base model scored 0-shot and k-shot (exemplars from the SFT split) on the same eval rows."""
    overrides = {
        **sweep.eval_overrides,
        "models": f"{BASELINE_LABEL}={base_model(sweep)}",
        "shots": sweep.baseline_shots,
        "split_manifest": "null",
        "output_dir": sweep.output_dir,
        "run_name": BASELINE_RUN,
    }
    return [EVAL_SCRIPT, "--config", sweep.eval_config, *as_flags(overrides)]


def run_baseline(sweep: Sweep, python: str = sys.executable) -> dict[str, Any]:
    result = subprocess.run([python, *baseline_command(sweep)], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": f"failed: {tail}"}
    return {"status": "ok", **json.loads((Path(sweep.output_dir) / BASELINE_RUN / RESULTS_FILE).read_text())}


def comparison_summary(sweep: Sweep, rows: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> dict:
    """Zero-shot vs k-shot (the base model) vs each fine-tuned configuration, on the same eval rows: strict accuracy
    with its interval and the valid-JSON rate of each."""
    entries = []
    for label, name in ((BASELINE_LABEL, "zero-shot"), (f"{BASELINE_LABEL}-{sweep.baseline_shots}shot", "k-shot")):
        model = (baseline.get("models") or {}).get(label)
        if model and model.get("status") == "ok":
            entries.append(_summary_entry(f"{name} ({label})", "base", model))
    for row in rows:
        if row.get("status") == "ok":
            model = json.loads(eval_results_path(sweep, row["name"]).read_text())["models"][EVAL_LABEL]
            entries.append(_summary_entry(row["name"], "fine-tuned", model, row.get("seconds")))
    return {"baseline_status": baseline.get("status"), "shots": sweep.baseline_shots, "rows": entries}


def _summary_entry(name: str, kind: str, model: Mapping[str, Any], seconds: float | None = None) -> dict[str, Any]:
    if "pooled" in model:  # a mixture: the pooled rates over its tasks
        accuracy, valid = model["pooled"]["accuracy"], model["pooled"]["valid_json_rate"]
    else:
        accuracy, valid = model["intervals"]["accuracy"], model["intervals"]["valid_json_rate"]
    return {
        "name": name,
        "kind": kind,
        "accuracy": accuracy["value"],
        "ci_low": accuracy.get("ci_low"),
        "ci_high": accuracy.get("ci_high"),
        "valid_json_rate": valid["value"],
        "seconds": seconds,
    }


def summary_markdown(summary: Mapping[str, Any]) -> str:
    lines = ["| run | kind | strict accuracy [95% CI] | valid JSON |", "|---|---|---|---|"]
    for entry in summary["rows"]:
        interval = f" [{entry['ci_low']:.1%}, {entry['ci_high']:.1%}]" if entry["ci_low"] is not None else ""
        accuracy = _fmt(entry["accuracy"], "{:.1%}") + interval
        lines.append(
            f"| {entry['name']} | {entry['kind']} | {accuracy} | {_fmt(entry['valid_json_rate'], '{:.1%}')} |"
        )
    if summary["baseline_status"] != "ok":
        lines.append(f"\nbaseline: {summary['baseline_status']}")
    return "\n".join(lines)


def dev_curves(sweep: Sweep, names: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """Each configuration's dev-score history, read from its SFT run's trainer_state.json."""
    curves = {}
    for name in names:
        state = run_dir(sweep, name) / "sft" / TRAINER_STATE_FILE
        history = json.loads(state.read_text()).get("log_history", []) if state.is_file() else []
        curves[name] = curve(history, DEV_SCORE_KEY)
    return curves


def eval_results_path(sweep: Sweep, name: str) -> Path:
    return run_dir(sweep, name) / "eval" / RESULTS_FILE


def run_configuration(sweep: Sweep, name: str, python: str = sys.executable) -> dict[str, Any]:
    """Train and score one configuration locally; the row of the table."""
    start = time.perf_counter()
    for command in (sft_command(sweep, name), eval_command(sweep, name)):
        result = subprocess.run([python, *command], capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            return {"name": name, "status": f"failed in {Path(command[0]).name}: {tail}"}
    seconds = time.perf_counter() - start
    return {"name": name, "status": "ok", "seconds": seconds, **read_metrics(eval_results_path(sweep, name))}


def read_metrics(path: Path) -> dict[str, Any]:
    """Strict accuracy and valid-JSON rate of the scored model; pooled over the tasks for a mixture."""
    model = json.loads(path.read_text())["models"][EVAL_LABEL]
    if "pooled" in model:
        return {name: model["pooled"][name]["value"] for name in ("accuracy", "valid_json_rate")}
    metrics = model.get("metrics") or {}
    return {"accuracy": metrics.get("accuracy"), "valid_json_rate": metrics.get("valid_json_rate")}


def cost_usd(seconds: float | None, flavor: str | None) -> float | None:
    if seconds is None or flavor is None or flavor not in HOURLY_USD:
        return None
    return seconds / 3600 * HOURLY_USD[flavor]


def _fmt(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def sweep_table(sweep: Sweep, rows: Sequence[Mapping[str, Any]]) -> str:
    """One markdown table: configuration, its overrides, dev accuracy, valid JSON, time, cost."""
    header = ["configuration", "overrides", "dev accuracy", "valid JSON", "time", f"cost ({sweep.flavor or 'local'})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        overrides = ", ".join(f"{k}={v}" for k, v in sweep.configurations[row["name"]].items())
        if row.get("status") != "ok":
            lines.append(f"| {row['name']} | {overrides} | {row.get('status')} | | | |")
            continue
        cells = [
            row["name"],
            overrides,
            _fmt(row.get("accuracy"), "{:.1%}"),
            _fmt(row.get("valid_json_rate"), "{:.1%}"),
            _fmt(row.get("seconds"), "{:.0f} s"),
            _fmt(cost_usd(row.get("seconds"), sweep.flavor), "${:.2f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
