"""An eval run over several tasks: each task's full results in its own folder, and a summary across them.

    eval_results/<run_name>/
        eval_results.json  report.md          the summary: strict accuracy per task and model, the macro mean,
                                              the pooled rates with Wilson CIs, pooled paired tests and parent checks
        <task>/eval_results.json, predictions.jsonl, report.md, plots   one single-task run's outputs per task

Pooled means every scored question of every task counted once (so a task weighs by its number of questions), macro
the unweighted mean of the per-task accuracies. A regression on any task, or pooled, is a regression of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fine_tune.constants import PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.evaluate import formatting, report
from fine_tune.evaluate.regressions import parent_checks, regressions
from fine_tune.evaluate.results import RESULTS_FORMAT, environment, json_safe, write_report
from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.summaries import metric_intervals, pairwise_comparisons
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_jsonl, atomic_write_text
from fine_tune.markdown import md_table
from fine_tune.models.precision import Precision
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.scoring import aggregate_metrics

POOLED = "pooled"  # the `task` of a check or regression over every task's questions together


def pooled_run(runs: Sequence[ModelRun]) -> ModelRun:
    """One model's runs over every task as one run (records and scores in task order); failed if any task failed."""
    failed = next((run for run in runs if not run.ok), None)
    first = runs[0]
    if failed is not None:
        return ModelRun(first.label, first.source, "failed", failed.stage, failed.error, resolved=first.resolved)
    return ModelRun(
        first.label,
        first.source,
        resolved=first.resolved,
        records=[record for run in runs for record in run.records],
        scores=[score for run in runs for score in run.scores],
    )


def mixture_results(
    config: EvalConfig,
    task_results: Sequence[Mapping[str, Any]],
    runs_per_task: Sequence[Sequence[ModelRun]],
    precision: Precision,
    seconds: float,
) -> dict[str, Any]:
    """The summary of a mixture run: per task and model the strict accuracy, then per model the macro mean and the
    pooled rates; pooled pairwise tests and parent checks; every task's regressions and failures."""
    tasks = [results["task"]["name"] for results in task_results]
    pooled = [pooled_run(runs) for runs in zip(*runs_per_task, strict=True)]
    checks = [{**check, "task": POOLED} for check in parent_checks(pooled, config.bootstrap_resamples, config.seed)]
    task_regressions = [
        {**check, "task": name}
        for name, results in zip(tasks, task_results, strict=True)
        for check in results["regressions"]
    ]
    models = {}
    for run in pooled:
        per_task = {
            name: results["models"][run.label].get("intervals", {}).get("accuracy")
            for name, results in zip(tasks, task_results, strict=True)
        }
        entry: dict[str, Any] = {"source": run.source, "status": run.status, "per_task_accuracy": per_task}
        if run.ok:
            accuracies = [interval["value"] for interval in per_task.values()]
            entry["macro_accuracy"] = sum(accuracies) / len(accuracies)
            entry["pooled"] = metric_intervals(aggregate_metrics(run.scores))
        else:
            entry.update(stage=run.stage, error=run.error)
        models[run.label] = entry
    return json_safe(
        {
            "format_version": RESULTS_FORMAT,
            "run_name": config.resolved_run_name,
            "config": config.to_dict(),
            "mixture": [
                {
                    "task": name,
                    "weight": entry.weight,
                    "letters": results["task"]["letters"],
                    "rows": results["dataset"]["rows"],
                    "description": results["dataset"]["description"],
                    "source": results["dataset"]["source"],
                    "eval_rows_hash": results["dataset"]["eval_rows_hash"],
                    "folder": name,
                }
                for name, entry, results in zip(tasks, config.task_entries, task_results, strict=True)
            ],
            "models": models,
            "pairwise": pairwise_comparisons(pooled, config.bootstrap_resamples, config.seed),
            "parent_checks": checks,
            "regressions": task_regressions + regressions(checks),
            "failed": [run.label for run in pooled if not run.ok],
            "warnings": task_warnings(tasks, task_results),
            "environment": environment(precision),
            "timings": {"total_seconds": seconds},
        }
    )


def task_warnings(tasks: Sequence[str], task_results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every task's warnings once, each prefixed with the tasks that gave it."""
    given: dict[str, list[str]] = {}
    for name, results in zip(tasks, task_results, strict=True):
        for warning in results["warnings"]:
            given.setdefault(warning, []).append(name)
    return [f"{', '.join(names)}: {warning}" for warning, names in given.items()]


def regression_line(check: Mapping[str, Any]) -> str:
    return f"[{check['task']}] {report.regression_message(check)}"


def write_mixture_outputs(
    summary: Mapping[str, Any],
    task_results: Sequence[Mapping[str, Any]],
    task_records: Sequence[list[dict[str, Any]]],
    folder: Path,
) -> Path:
    """The summary and one single-task output folder per task, swapped into place as one folder."""

    def write(tmp: Path) -> None:
        for results, records in zip(task_results, task_records, strict=True):
            task_folder = tmp / results["task"]["name"]
            atomic_write_json(task_folder / RESULTS_FILE, results)
            atomic_write_jsonl(task_folder / PREDICTIONS_FILE, [json_safe(record) for record in records])
            write_report(results, task_folder)
        atomic_write_json(tmp / RESULTS_FILE, summary)
        atomic_write_text(tmp / REPORT_FILE, render_mixture_markdown(summary))

    return atomic_write_dir(folder, write)


def accuracy_rows(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table: strict accuracy [95% CI] per task, the macro mean, pooled."""
    tasks = [entry["task"] for entry in summary["mixture"]]
    header = ["model", *(f"{t} (n={e['rows']})" for t, e in zip(tasks, summary["mixture"], strict=True))]
    header += ["macro mean", "pooled [95% CI]", "pooled schema pass"]
    rows = []
    for label, model in summary["models"].items():
        cells = [formatting.rate_with_ci(model["per_task_accuracy"][t], counts=False) if model["per_task_accuracy"][t]
                 else report.FAILED for t in tasks]  # fmt: skip
        if model["status"] == "ok":
            pooled = model["pooled"]
            cells += [
                formatting.pct(model["macro_accuracy"]),
                formatting.rate_with_ci(pooled["accuracy"]),
                formatting.rate_with_ci(pooled["schema_pass_rate"], counts=False),
            ]
        else:
            cells += [report.FAILED, "", ""]
        rows.append([label, *cells])
    return header, rows


def summary_section(summary: Mapping[str, Any]) -> str:
    """The markdown summary table (the report's and the model cards')."""
    header, rows = accuracy_rows(summary)
    return (
        "## Strict accuracy per task\n\nEach task's EVAL rows scored on their own (letters and prompt of that task); "
        "macro: the mean of the task accuracies; pooled: every question counted once, with its 95% Wilson interval."
        "\n\n" + md_table(header, rows)
    )


def render_mixture_markdown(summary: Mapping[str, Any]) -> str:
    tasks = "\n".join(
        f"- [{e['task']}]({e['folder']}/{REPORT_FILE}): {e['rows']} questions, {e['description']} of "
        f"`{e['source']}`, letters {''.join(e['letters'])}, training weight {e['weight']:g}"
        for e in summary["mixture"]
    )
    sections = [
        f"# Evaluation over {len(summary['mixture'])} tasks: `{summary['run_name']}`",
        "\n".join(f"> **{regression_line(check)}**" for check in summary["regressions"]),
        "## Tasks (each with its own full report)\n\n" + tasks,
        summary_section(summary),
        report.pairwise_section(summary).replace("## Pairwise comparisons", "## Pooled pairwise comparisons", 1),
        report.parent_checks_section(summary).replace("## Regression check", "## Pooled regression check", 1),
        report.warnings_section({"models": {}, "warnings": summary["warnings"]}),
        report.config_section(summary),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def print_mixture_summary(summary: Mapping[str, Any], console: Console) -> None:
    """The summary table and pooled tests after the per-task tables; regressions (any task, pooled) last, in red."""
    header, rows = accuracy_rows(summary)
    table = Table(title=f"{len(summary['mixture'])} tasks: strict accuracy [95% CI]", title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if summary["pairwise"]:
        pairwise = report.pairwise_table(summary)
        pairwise.title = f"Pooled over the tasks: {pairwise.title}"
        console.print(pairwise)
    for check in summary["regressions"]:
        console.print(Text(regression_line(check), style="bold red"))
