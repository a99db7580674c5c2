"""The eval run's outputs: the strict-JSON results dict (`eval_results.json`), the per-sample predictions and the
report, written as one folder that replaces the previous run's atomically."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fine_tune.constants import PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.evaluate import report
from fine_tune.evaluate.eval_set import EvalSet
from fine_tune.evaluate.reason_metrics import reason_summary
from fine_tune.evaluate.regressions import regressions
from fine_tune.evaluate.runs import ModelRun, inference_device
from fine_tune.evaluate.summaries import model_summary, pairwise_comparisons
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_jsonl, atomic_write_text
from fine_tune.models.precision import Precision
from fine_tune.provenance import provenance
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS, LETTERS, system_prompt

# 2: pairwise `p_value` renamed `mcnemar_p`; `parent_checks` and `regressions` added
RESULTS_FORMAT = 2


def json_safe(value: Any) -> Any:
    """Non-finite floats become None so the file is strict JSON (a chi2 of inf keeps its p-value of 0)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run_section(run: ModelRun, verdict: str | None) -> dict[str, Any]:
    """What every model's results hold, and a failed model's error."""
    section = {
        "source": run.source,
        "status": run.status,
        "resolved": run.resolved,
        "split_check": verdict,
        "timings": run.timings,
    }
    if not run.ok:
        return {**section, "stage": run.stage, "error": run.error, "traceback": run.traceback}
    return section


def model_section(
    run: ModelRun, verdict: str | None, letters: Sequence[str] = LETTERS, resamples: int = 10000, seed: int = 42
) -> dict[str, Any]:
    """A model's results; where eval rows carry an explanation, `reason_rougeL` and `reason_token_f1` join its
    metrics and intervals (`fine_tune.evaluate.reason_metrics`)."""
    section = run_section(run, verdict)
    if not run.ok:
        return section
    summary = {**section, **model_summary(run.records, run.scores, letters)}
    metrics, intervals = reason_summary(run.records, resamples, seed)
    summary["metrics"] = {**summary["metrics"], **metrics}
    summary["intervals"] = {**summary["intervals"], **intervals}
    if run.prompt_variants:
        summary["prompt_variants"] = run.prompt_variants
    if run.harness is not None:
        summary["harness"] = run.harness
    return summary


def environment(precision: Precision) -> dict[str, Any]:
    device = inference_device()
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)",
        "precision": precision.name,
        "precision_reason": precision.reason,
        "torch_threads": torch.get_num_threads(),
        **provenance(),
    }


@dataclass(frozen=True)
class ScoredSet:
    """One eval set and what the run measured on it: what the results of every task type are built from."""

    config: EvalConfig
    eval_set: EvalSet
    split_section: dict[str, Any]
    runs: Sequence[ModelRun]
    precision: Precision
    warnings: list[str]
    seconds: float
    shots: Mapping[str, Any] | None = None  # what `eval_set.fewshot_exemplars` drew for the k-shot runs

    def verdict(self, run: ModelRun) -> str | None:
        return self.split_section["models"].get(run.label)

    def results(self, prompt: Any, generation: Mapping[str, Any], models: Mapping[str, Any], **rest: Any) -> dict:
        """The results dict every task type writes, JSON-ready: these keys, then the task type's own."""
        config, eval_set = self.config, self.eval_set
        return json_safe(
            {
                "format_version": RESULTS_FORMAT,
                "run_name": config.resolved_run_name,
                "config": config.to_dict(),
                "task": eval_set.task.to_dict(),
                "shots": dict(self.shots or {"k": 0}),
                "dataset": eval_set.info,
                "split_check": self.split_section,
                "prompt": prompt,
                "generation": dict(generation),
                "models": dict(models),
                "failed": [run.label for run in self.runs if not run.ok],
                "warnings": self.warnings,
                "environment": environment(self.precision),
                "timings": {"total_seconds": self.seconds},
                **rest,
            }
        )


def greedy_generation(config: EvalConfig) -> dict[str, Any]:
    return {
        "decoding": "greedy",
        "batch_size": config.batch_size,
        "max_new_tokens": config.max_new_tokens,
        "padding_side": "left",
    }


def build_results(scored: ScoredSet, checks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Everything a multiple-choice run measured, JSON-ready; `checks` are the parent checks
    (`regressions.parent_checks`)."""
    config, task = scored.config, scored.eval_set.task
    resamples, seed = config.bootstrap_resamples, config.seed
    return scored.results(
        prompt={
            "system_prompt": system_prompt(task.letters, task.system),
            "chat_template_kwargs": CHAT_TEMPLATE_KWARGS,
        },
        generation=greedy_generation(config),
        models={
            run.label: model_section(run, scored.verdict(run), task.letters, resamples, seed) for run in scored.runs
        },
        pairwise=pairwise_comparisons(scored.runs, resamples, seed),
        parent_checks=list(checks),
        regressions=regressions(checks),
    )


def write_report(results: Mapping[str, Any], folder: str | Path, report_file: str = REPORT_FILE) -> Path:
    """`report.md` and its plots in `folder` (called on the run's temporary folder, which is moved into place)."""
    from fine_tune.evaluate.plots import write_plots  # matplotlib is imported only to draw

    folder = Path(folder)
    plots = write_plots(results, folder)
    return atomic_write_text(folder / report_file, report.render_markdown(results, plots))


def write_outputs(results: Mapping[str, Any], records: list[dict[str, Any]], folder: Path) -> Path:
    """eval_results.json, predictions.jsonl, report.md and plots, swapped into place as one folder."""

    def write(tmp: Path) -> None:
        atomic_write_json(tmp / RESULTS_FILE, results)
        atomic_write_jsonl(tmp / PREDICTIONS_FILE, [json_safe(record) for record in records])
        write_report(results, tmp)

    return atomic_write_dir(folder, write)
