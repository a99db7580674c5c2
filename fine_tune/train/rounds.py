"""Rounds: train several tracks in turn, evaluate a target task after each round, keep the best round.

A rounds recipe (YAML):

    model_name_or_path: Qwen/Qwen3-0.6B
    output_dir: outputs/rounds
    max_rounds: 10
    patience: 3                  # stop after this many rounds without a better target score
    target: {metric: accuracy, value: 0.9}   # `value` optional; perplexity (lower is better) is understood
    no_improvement_action: fail  # no round beats the starting model: fail (exit 3) or warn
    tracks:                      # each round trains every track, in order, from the previous track's model
      - {name: terms, phase: sft, config: configs/sft.yaml, args: {task: terms.yaml, num_train_epochs: 1}}
      - {name: mcq, phase: sft, config: configs/sft.yaml, args: {num_train_epochs: 1}}
    eval: {config: configs/eval.yaml, args: {limit: 200}}

Round 0 scores the starting model. Every round's models (`round-<r>/<track>/merged`), its eval folder and its scores
are kept; the best round is handed on only when it beats round 0 (the project's no-worse-model rule). `rounds.json`
is rewritten after every round: {rounds: [{round, scores, target_score, kept, model}], handed_on, model, stopped}.
`kept` marks the rounds that beat every earlier one (the candidates for handing on).

A specialty curriculum runs as rounds: tracks and eval that set `holdout_per_subject` get, from round 2 on, the
previous round's `training_recommendations.json` as `recommendations` (`curriculum_args`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.data.curriculum import RECOMMENDATIONS_FILE
from fine_tune.errors import NoImprovementError, RecipeError
from fine_tune.evaluate.phase import run_evaluation
from fine_tune.io import atomic_write_json, read_yaml
from fine_tune.recipes.loader import parse_recipe
from fine_tune.train.grpo import run_grpo
from fine_tune.train.sft import run_sft

logger = logging.getLogger(__name__)
ROUNDS_FILE = "rounds.json"
EVAL_KEY = "__eval__"  # curriculum_args: the next eval's extra arguments
PHASES: dict[str, Callable[..., dict[str, Path]]] = {"sft": run_sft, "grpo": run_grpo}
LOWER_IS_BETTER = ("perplexity",)
TOP_KEYS = (
    "model_name_or_path",
    "output_dir",
    "max_rounds",
    "patience",
    "target",
    "no_improvement_action",
    "tracks",
    "eval",
)


@dataclass(frozen=True)
class Track:
    name: str
    phase: str
    config: str | None
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundsConfig:
    model_name_or_path: str
    output_dir: str
    tracks: tuple[Track, ...]
    eval_config: str | None
    eval_args: Mapping[str, Any]
    metric: str = "accuracy"
    target: float | None = None
    max_rounds: int = 10
    patience: int = 3
    no_improvement_action: str = "fail"

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def reached(self, score: float) -> bool:
        if self.target is None:
            return False
        return score <= self.target if self.lower_is_better else score >= self.target


def load_rounds_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RoundsConfig:
    """The rounds recipe, each problem one RecipeError naming the file and the key."""
    values = {**read_yaml(path), **(overrides or {})}
    where = str(path)
    unknown = [key for key in values if key not in TOP_KEYS]
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(TOP_KEYS)}")
    for key in ("model_name_or_path", "output_dir", "tracks", "eval"):
        if not values.get(key):
            raise RecipeError(f"{where}: `{key}` is required")
    tracks = values["tracks"]
    if not isinstance(tracks, list) or not all(isinstance(t, Mapping) for t in tracks):
        raise RecipeError(f"{where}: `tracks` must be a list of {{name, phase, config, args}}")
    parsed = tuple(_track(t, i, where) for i, t in enumerate(tracks))
    if len({t.name for t in parsed}) != len(parsed):
        raise RecipeError(f"{where}: two tracks share a name: {[t.name for t in parsed]}")
    target = values.get("target") or {}
    if not isinstance(target, Mapping) or set(target) - {"metric", "value"}:
        raise RecipeError(f"{where}: `target` must be {{metric, value}}, got {target!r}")
    evaluation = values["eval"]
    if not isinstance(evaluation, Mapping) or set(evaluation) - {"config", "args"}:
        raise RecipeError(f"{where}: `eval` must be {{config, args}}, got {evaluation!r}")
    config = RoundsConfig(
        model_name_or_path=str(values["model_name_or_path"]),
        output_dir=str(values["output_dir"]),
        tracks=parsed,
        eval_config=evaluation.get("config"),
        eval_args=dict(evaluation.get("args") or {}),
        metric=str(target.get("metric", "accuracy")),
        target=None if target.get("value") is None else float(target["value"]),
        max_rounds=int(values.get("max_rounds", 10)),
        patience=int(values.get("patience", 3)),
        no_improvement_action=str(values.get("no_improvement_action", "fail")),
    )
    if config.max_rounds < 1 or config.patience < 1:
        raise RecipeError(f"{where}: max_rounds and patience must be >= 1")
    if config.no_improvement_action not in ("fail", "warn"):
        raise RecipeError(f"{where}: no_improvement_action must be fail or warn")
    return config


def _track(values: Mapping[str, Any], index: int, where: str) -> Track:
    extra = set(values) - {"name", "phase", "config", "args"}
    if extra:
        raise RecipeError(f"{where}: tracks[{index}]: unknown key(s) {', '.join(sorted(extra))}")
    phase = values.get("phase", "sft")
    if phase not in PHASES:
        raise RecipeError(f"{where}: tracks[{index}].phase must be one of {', '.join(PHASES)}, got {phase!r}")
    args = values.get("args") or {}
    if not isinstance(args, Mapping) or {"model_name_or_path", "output_dir"} & set(args):
        raise RecipeError(
            f"{where}: tracks[{index}].args: a mapping without model_name_or_path/output_dir (rounds set them)"
        )
    return Track(str(values.get("name") or f"track{index}"), phase, values.get("config"), dict(args))


def recipe_argv(config_file: str | None, args: Mapping[str, Any], **fixed: Any) -> list[str]:
    argv = ["--config", config_file] if config_file else []
    for key, value in {**args, **fixed}.items():
        argv += [f"--{key}", str(value)]
    return argv


def evaluate_round(
    config: RoundsConfig, label: str, model: str | Path, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The target task's eval of one model: its metrics (the eval's `models.<label>.metrics`)."""
    folder = Path(config.output_dir) / "evals"
    args = {**config.eval_args, **(extra or {})}
    argv = recipe_argv(config.eval_config, args, models=f"{label}={model}", output_dir=folder, run_name=label)
    (eval_config,) = parse_recipe("eval", argv)
    section = run_evaluation(eval_config).results["models"][label]
    if section["status"] != "ok":
        raise RecipeError(
            f"rounds: the eval of {label} ({model}) failed at {section.get('stage')}: {section.get('error')}"
        )
    if config.metric not in section["metrics"]:
        raise RecipeError(
            f"rounds: target metric {config.metric!r} not in the eval's metrics: {', '.join(section['metrics'])}"
        )
    return dict(section["metrics"])


def train_round(
    config: RoundsConfig, number: int, start: str | Path, extra_args: Mapping[str, Mapping[str, Any]]
) -> Path:
    """Every track once, each from the previous one's merged model; the last merged model."""
    model = start
    for track in config.tracks:
        output = Path(config.output_dir) / f"round-{number}" / track.name
        args = {**track.args, **extra_args.get(track.name, {})}
        argv = recipe_argv(track.config, args, model_name_or_path=model, output_dir=output)
        paths = PHASES[track.phase](*parse_recipe(track.phase, argv))
        model = paths["merged"]
        logger.info("round %d: track %s trained -> %s", number, track.name, model)
    return Path(model)


def curriculum_args(config: RoundsConfig, number: int) -> dict[str, dict[str, Any]]:
    """A specialty curriculum: the round's training_recommendations.json (written by its eval) goes to the next
    round's tracks that split by subject (`holdout_per_subject`), and to the next eval (for the change since)."""
    path = Path(config.output_dir) / "evals" / f"round-{number}" / RECOMMENDATIONS_FILE
    if not path.is_file():
        return {}
    named = {track.name: {"recommendations": path} for track in config.tracks if track.args.get("holdout_per_subject")}
    return {**named, EVAL_KEY: {"recommendations": path}}


def run_rounds(config: RoundsConfig) -> dict[str, Any]:
    """Round 0 (the start) and up to max_rounds rounds; returns what rounds.json holds."""
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    start_metrics = evaluate_round(config, "round-0", config.model_name_or_path)
    history = [_entry(0, start_metrics, config, True, config.model_name_or_path)]
    best, stale, stopped, model = history[0], 0, "max_rounds", config.model_name_or_path
    extra = curriculum_args(config, 0)
    for number in range(1, config.max_rounds + 1):
        model = train_round(config, number, model, extra)
        metrics = evaluate_round(config, f"round-{number}", model, extra.get(EVAL_KEY))
        improved = config.better(metrics[config.metric], best["target_score"])
        entry = _entry(number, metrics, config, improved, model)
        history.append(entry)
        best, stale = (entry, 0) if improved else (best, stale + 1)
        extra = curriculum_args(config, number)
        atomic_write_json(output / ROUNDS_FILE, _summary(config, history, best, "running"))
        logger.info("round %d: %s %.4f (best: round %d)", number, config.metric, entry["target_score"], best["round"])
        if config.reached(entry["target_score"]):
            stopped = "target"
            break
        if stale >= config.patience:
            stopped = "patience"
            break
    summary = _summary(config, history, best, stopped)
    atomic_write_json(output / ROUNDS_FILE, summary)
    if summary["handed_on"] is None:
        message = (
            f"NO IMPROVEMENT: no round beat the starting model's {config.metric} "
            f"({history[0]['target_score']:.4f}); rounds: {[round(e['target_score'], 4) for e in history[1:]]}"
        )
        if config.no_improvement_action == "fail":
            raise NoImprovementError(message + f". Nothing is handed on ({output / ROUNDS_FILE}).")
        logger.warning("%s. no_improvement_action is 'warn': handing on nothing, every round is kept.", message)
    return summary


def _entry(number: int, metrics: Mapping[str, Any], config: RoundsConfig, kept: bool, model) -> dict[str, Any]:
    return {
        "round": number,
        "scores": dict(metrics),
        "target_score": float(metrics[config.metric]),
        "kept": kept,
        "model": str(model),
    }


def _summary(
    config: RoundsConfig, history: Sequence[Mapping[str, Any]], best: Mapping[str, Any], stopped: str
) -> dict[str, Any]:
    handed_on = best["round"] if best["round"] > 0 else None
    return {
        "metric": config.metric,
        "lower_is_better": config.lower_is_better,
        "target": config.target,
        "rounds": list(history),
        "handed_on": handed_on,
        "model": best["model"] if handed_on is not None else None,
        "stopped": stopped,
    }
