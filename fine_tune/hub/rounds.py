"""Rounds: several SFT tracks trained in turn, round after round, each round scored on a target task.

A rounds file (configs/rounds/*.yaml) names the tracks (an SFT recipe + overrides, each stating its length per
round: `num_train_epochs` or `max_steps`), the target task's eval recipe, the target metric (a key of
`eval_results.json`'s `models.model.metrics`; default strict `accuracy`), its target value and direction, max_rounds
and patience, and optionally a specialty `curriculum`. Round 0 scores the start model (the first track's recipe
model). Round r trains each track in turn from the previous model (`model_name_or_path` = the previous merged
model), then scores the last merged model. The loop stops when the target is reached, after max_rounds, or after
`patience` rounds without a score better than the best before them. Every round's models and scores stay under
`<output_dir>/round-<r>/`; the best round better than the start is handed on, unless it is significantly worse than
the start (`fine_tune.evaluate.regressions.is_regression`, on the same eval rows); `rounds.json` records it all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.constants import MERGED_DIR, PREDICTIONS_FILE, RESULTS_FILE, SPLIT_MANIFEST_FILE
from fine_tune.data.curriculum import load_curriculum, parse_curriculum
from fine_tune.errors import RecipeError
from fine_tune.evaluate.recommendations import RecommendationRule, recommendations
from fine_tune.evaluate.regressions import paired_regression
from fine_tune.hub.sweep import EVAL_SCRIPT, SFT_SCRIPT, as_flags
from fine_tune.io import atomic_write_json, read_yaml
from fine_tune.recipes.loader import load_recipe, schema_keys, schema_types

ROUNDS_KEYS = (
    "tracks",
    "start_model",
    "eval_config",
    "eval_overrides",
    "target_metric",
    "target_value",
    "minimize",
    "max_rounds",
    "patience",
    "output_dir",
    "curriculum",
)
TRACK_KEYS = ("name", "sft_config", "overrides")
CURRICULUM_KEYS = ("holdout_per_subject", "start_share", "rule", "k", "step", "tracks")
LENGTH_KEYS = ("num_train_epochs", "max_steps")
MANAGED_KEYS = ("model_name_or_path", "output_dir", "curriculum")  # set by the loop, never by a track
LABEL = "model"
ROUNDS_FILE = "rounds.json"
RECOMMENDATIONS_FILE = "training_recommendations.json"
START_CURRICULUM_FILE = "curriculum.json"

Runner = Callable[[list[str]], tuple[int, str]]  # a script's argv -> (exit code, last line of its stderr)


@dataclass(frozen=True)
class Track:
    name: str
    sft_config: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class CurriculumPlan:
    holdout_per_subject: int
    start_share: float
    rule: RecommendationRule
    tracks: tuple[str, ...]  # the tracks that train under the curriculum (default: all)


@dataclass(frozen=True)
class Rounds:
    tracks: tuple[Track, ...]
    eval_config: str
    output_dir: str
    max_rounds: int
    patience: int
    target_metric: str = "accuracy"
    target_value: float | None = None
    minimize: bool = False
    eval_overrides: dict[str, Any] = field(default_factory=dict)
    curriculum: CurriculumPlan | None = None
    start_model: str | None = None  # default: the first track's recipe model


def _whole(values: Mapping[str, Any], key: str, default: int | None, where: str) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RecipeError(f"{where}: {key} must be a whole number >= 1, got {value!r}")
    return value


def _track(entry: Any, index: int, where: str) -> Track:
    if not isinstance(entry, Mapping) or set(entry) - set(TRACK_KEYS) or not entry.get("sft_config"):
        raise RecipeError(f"{where}: tracks[{index}] must be {{name, sft_config, overrides}} (sft_config required)")
    overrides = dict(entry.get("overrides") or {})
    name = str(entry.get("name") or f"track{index + 1}")
    known = schema_keys(schema_types("sft"))
    for key in overrides:
        if key not in known or key in MANAGED_KEYS:
            raise RecipeError(f"{where}: track {name!r} sets {key!r}, not an SFT recipe key it may set")
    if not any(key in overrides for key in LENGTH_KEYS):
        raise RecipeError(f"{where}: track {name!r} must state its length per round: num_train_epochs or max_steps")
    return Track(name, str(entry["sft_config"]), overrides)


def _curriculum(values: Any, names: Sequence[str], where: str) -> CurriculumPlan | None:
    if values is None:
        return None
    if not isinstance(values, Mapping) or set(values) - set(CURRICULUM_KEYS):
        raise RecipeError(f"{where}: curriculum must be a mapping of {', '.join(CURRICULUM_KEYS)}")
    start = parse_curriculum(values, f"{where}: curriculum")
    rule = RecommendationRule(str(values.get("rule", "wilson")), values.get("k", 1), values.get("step", 0.25))
    tracks = tuple(values.get("tracks") or names)
    unknown = sorted(set(tracks) - set(names))
    if unknown:
        raise RecipeError(f"{where}: curriculum.tracks names {unknown[0]!r}, not a track ({', '.join(names)})")
    return CurriculumPlan(start.holdout_per_subject, start.start_share, rule, tracks)


def load_rounds(path: str | Path, output_dir: str | None = None) -> Rounds:
    """Read and check a rounds file: its keys, each track's overrides (SFT recipe keys, a stated length), the
    stopping rules; every track's recipe and the eval recipe must load."""
    values = read_yaml(path)
    unknown = sorted(set(values) - set(ROUNDS_KEYS))
    if unknown:
        raise RecipeError(f"{path}: unknown key {unknown[0]!r}; a rounds file has {', '.join(ROUNDS_KEYS)}")
    if not values.get("eval_config") or not isinstance(values.get("tracks"), list) or not values["tracks"]:
        raise RecipeError(f"{path}: eval_config and a non-empty list of tracks are required")
    tracks = tuple(_track(entry, i, str(path)) for i, entry in enumerate(values["tracks"]))
    names = [t.name for t in tracks]
    if len(set(names)) != len(names):
        raise RecipeError(f"{path}: two tracks share a name ({', '.join(names)})")
    target = values.get("target_value")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))):
        raise RecipeError(f"{path}: target_value must be a number, got {target!r}")
    rounds = Rounds(
        tracks=tracks,
        eval_config=str(values["eval_config"]),
        output_dir=str(output_dir or values.get("output_dir") or "outputs/rounds"),
        max_rounds=_whole(values, "max_rounds", None, str(path)),
        patience=_whole(values, "patience", values.get("max_rounds"), str(path)),
        target_metric=str(values.get("target_metric", "accuracy")),
        target_value=target,
        minimize=bool(values.get("minimize", False)),
        eval_overrides=dict(values.get("eval_overrides") or {}),
        curriculum=_curriculum(values.get("curriculum"), names, str(path)),
        start_model=values.get("start_model"),
    )
    for track in tracks:  # each track must parse as the SFT script would read it
        load_recipe("sft", track.sft_config, sft_command(rounds, 1, track, "start", None)[3:])
    load_recipe("eval", rounds.eval_config, eval_command(rounds, 0, "start", None, None)[3:])
    return rounds


def round_dir(rounds: Rounds, number: int) -> Path:
    return Path(rounds.output_dir) / f"round-{number}"


def merged_model(rounds: Rounds, number: int, track: Track) -> str:
    return str(round_dir(rounds, number) / track.name / MERGED_DIR)


def start_model(rounds: Rounds) -> str:
    """The model round 1 starts from: `start_model`, else the first track's recipe model after its overrides."""
    if rounds.start_model:
        return rounds.start_model
    track = rounds.tracks[0]
    script_args, training_args, model_args = load_recipe("sft", track.sft_config, as_flags(track.overrides))
    return model_args.model_name_or_path


def sft_command(rounds: Rounds, number: int, track: Track, model: str, curriculum: str | None) -> list[str]:
    overrides = {
        **track.overrides,
        "model_name_or_path": model,
        "output_dir": str(round_dir(rounds, number) / track.name),
    }
    if curriculum and rounds.curriculum and track.name in rounds.curriculum.tracks:
        overrides["curriculum"] = curriculum
    return [SFT_SCRIPT, "--config", track.sft_config, *as_flags(overrides)]


def eval_command(rounds: Rounds, number: int, model: str, manifest: str | None, curriculum: str | None) -> list[str]:
    overrides = {
        **rounds.eval_overrides,
        "models": f"{LABEL}={model}",
        "split_manifest": manifest or "null",
        "output_dir": str(round_dir(rounds, number)),
        "run_name": "eval",
    }
    if curriculum:
        overrides["curriculum"] = curriculum
    return [EVAL_SCRIPT, "--config", rounds.eval_config, *as_flags(overrides)]


def start_curriculum(rounds: Rounds) -> dict[str, Any] | None:
    """The curriculum round 1 trains under: every subject at the start share."""
    plan = rounds.curriculum
    if plan is None:
        return None
    return {"holdout_per_subject": plan.holdout_per_subject, "start_share": plan.start_share, "recommended_shares": {}}


def round_commands(rounds: Rounds, number: int, model: str, curriculum: str | None) -> list[list[str]]:
    """The SFT command of each track (each from the previous track's merged model), then the target eval."""
    commands = []
    for track in rounds.tracks:
        commands.append(sft_command(rounds, number, track, model, curriculum))
        model = merged_model(rounds, number, track)
    last = round_dir(rounds, number) / rounds.tracks[-1].name / SPLIT_MANIFEST_FILE
    return [*commands, eval_command(rounds, number, model, str(last), curriculum)]


def run_subprocess(command: list[str], python: str = sys.executable) -> tuple[int, str]:
    result = subprocess.run([python, *command], capture_output=True, text=True)
    return result.returncode, (result.stderr.strip().splitlines() or ["(no output)"])[-1]


def read_eval(rounds: Rounds, number: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The scored model's section of eval_results.json and its predictions (in eval-row order)."""
    folder = round_dir(rounds, number) / "eval"
    results = json.loads((folder / RESULTS_FILE).read_text())
    lines = (folder / PREDICTIONS_FILE).read_text().splitlines()
    predictions = [record for record in map(json.loads, lines) if record["model"] == LABEL]
    return {**results["models"][LABEL], "eval_rows_hash": results["dataset"].get("eval_rows_hash")}, predictions


def scores_of(model: Mapping[str, Any], metric: str) -> dict[str, Any]:
    metrics = model.get("metrics") or {}
    if metrics.get(metric) is None:
        raise RecipeError(f"target_metric {metric!r} is not in the eval results' metrics ({', '.join(metrics)})")
    return {name: metrics.get(name) for name in dict.fromkeys((metric, "accuracy", "valid_json_rate"))}


def no_worse_check(start: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], same_rows: bool) -> dict:
    """The round against the start on the same eval rows (paired strict correctness); unchecked rows disqualify."""
    if not same_rows or [r["id"] for r in start] != [r["id"] for r in current]:
        return {"checked": False, "regressed": True, "why": "the round and the start were not scored on the same rows"}
    return {"checked": True, **paired_regression([r["correct"] for r in current], [r["correct"] for r in start])}


def better(a: float, b: float, minimize: bool) -> bool:
    return a < b if minimize else a > b


def stop_reason(rounds: Rounds, history: Sequence[float], start: float) -> str | None:
    """Why the loop stops after the last of `history` (the rounds' target scores), or None to go on."""
    last = history[-1]
    if rounds.target_value is not None and not better(rounds.target_value, last, rounds.minimize):
        return "target reached"
    best, since = start, 0
    for score in history:
        best, since = (score, 0) if better(score, best, rounds.minimize) else (best, since + 1)
    if since >= rounds.patience:
        return f"patience: {since} round(s) without improvement"
    if len(history) >= rounds.max_rounds:
        return "max_rounds"
    return None


def handed_on(rounds: Rounds, entries: Sequence[Mapping[str, Any]], start: float) -> int | None:
    """The best round that beats the start and is not significantly worse than it; earliest on ties."""
    eligible = [
        e
        for e in entries
        if e["status"] == "ok"
        and not e["no_worse"]["regressed"]
        and better(e["scores"][rounds.target_metric], start, rounds.minimize)
    ]
    if not eligible:
        return None
    sign = 1 if rounds.minimize else -1
    return min(eligible, key=lambda e: (sign * e["scores"][rounds.target_metric], e["round"]))["round"]


def write_rounds(rounds: Rounds, summary: Mapping[str, Any]) -> Path:
    return atomic_write_json(Path(rounds.output_dir) / ROUNDS_FILE, summary)


def run_rounds(rounds: Rounds, runner: Runner = run_subprocess, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The loop; rounds.json is rewritten after every round, so a stopped run still says where it was."""
    summary: dict[str, Any] = {
        "target_metric": rounds.target_metric,
        "target_value": rounds.target_value,
        "minimize": rounds.minimize,
        "rounds": [],
        "handed_on": None,
        "handed_on_model": None,
        "stopped": None,
    }
    curriculum = None
    if rounds.curriculum is not None:
        curriculum = str(atomic_write_json(round_dir(rounds, 0) / START_CURRICULUM_FILE, start_curriculum(rounds)))
    model = start_model(rounds)
    code, tail = runner(eval_command(rounds, 0, model, None, curriculum))
    if code != 0:
        summary["stopped"] = f"failed in the start model's eval: {tail}"
        write_rounds(rounds, summary)
        return summary
    start_model_results, start_predictions = read_eval(rounds, 0)
    start_scores = scores_of(start_model_results, rounds.target_metric)
    start = start_scores[rounds.target_metric]
    summary["start"] = {"model": model, "scores": start_scores}
    history, previous_low = [], None
    for number in range(1, rounds.max_rounds + 1):
        entry = {"round": number, "status": "ok", "kept": False, "curriculum": curriculum}
        for command in round_commands(rounds, number, model, curriculum):
            code, tail = runner(command)
            if code != 0:
                entry["status"] = f"failed in {Path(command[0]).name} (exit {code}): {tail}"
                break
        if entry["status"] != "ok":
            summary["rounds"].append(entry)
            summary["stopped"] = entry["status"]
            break
        model = merged_model(rounds, number, rounds.tracks[-1])
        results, predictions = read_eval(rounds, number)
        entry["model"] = model
        entry["scores"] = scores_of(results, rounds.target_metric)
        same_rows = results["eval_rows_hash"] == start_model_results["eval_rows_hash"]
        entry["no_worse"] = no_worse_check(start_predictions, predictions, same_rows)
        if rounds.curriculum is not None:
            current = load_curriculum(curriculum)
            advice = recommendations(results, current, rounds.curriculum.rule, previous_low, number)
            curriculum = str(atomic_write_json(round_dir(rounds, number) / RECOMMENDATIONS_FILE, advice))
            entry["recommendations"], previous_low = curriculum, advice["low_performing"]
        summary["rounds"].append(entry)
        history.append(entry["scores"][rounds.target_metric])
        log(f"round {number}: {rounds.target_metric} {history[-1]} (start {start})")
        summary["stopped"] = stop_reason(rounds, history, start)
        write_rounds(rounds, summary)
        if summary["stopped"]:
            break
    chosen = handed_on(rounds, summary["rounds"], start)
    for entry in summary["rounds"]:
        entry["kept"] = entry["round"] == chosen
    summary["handed_on"] = chosen
    summary["handed_on_model"] = merged_model(rounds, chosen, rounds.tracks[-1]) if chosen else None
    write_rounds(rounds, summary)
    return summary


def planned_commands(rounds: Rounds) -> list[list[str]]:
    """Every command of a run that goes the full max_rounds (what `--print_only` prints): the start's eval, then per
    round each track's SFT and the eval. A curriculum round reads the previous round's recommendations file."""
    plan = rounds.curriculum
    start = str(round_dir(rounds, 0) / START_CURRICULUM_FILE) if plan else None
    model = start_model(rounds)
    commands = [eval_command(rounds, 0, model, None, start)]
    for number in range(1, rounds.max_rounds + 1):
        curriculum = start if number == 1 or not plan else str(round_dir(rounds, number - 1) / RECOMMENDATIONS_FILE)
        commands += round_commands(rounds, number, model, curriculum)
        model = merged_model(rounds, number, rounds.tracks[-1])
    return commands
