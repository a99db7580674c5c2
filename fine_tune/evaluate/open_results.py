"""An open task's eval results: every text metric with its bootstrap interval per model, paired differences of
every two models on the same resamples, per-subject scores, the JSON checks; written and shown like the
multiple-choice results (`eval_results.json`, `predictions.jsonl`, `report.md`, a console table).

Keys: `models.<label>.metrics` holds rouge1, rouge2, rougeL, bleu, token_f1, exact_match (meteor and bertscore
when asked for with extra_metrics; for answer_format json, valid_json_rate and schema_pass_rate too);
`models.<label>.intervals.<metric>` is {value, n, ci_low, ci_high, method}. `pairwise` is one entry per pair:
{a, b, n, metrics: {metric: {diff, ci_low, ci_high}}}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fine_tune.constants import PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.evaluate.extra_metrics import EXTRA_METRICS
from fine_tune.evaluate.results import ScoredSet, greedy_generation, json_safe, run_section
from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.text_metrics import OPEN_METRICS, ROW_METRICS, CorpusBleu, metric_intervals, paired_differences
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_jsonl, atomic_write_text
from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS, task_system_prompt


def scored(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[float]], CorpusBleu]:
    """Per-row metric values and the corpus BLEU statistics of one model's records."""
    names = [*ROW_METRICS, *(name for name in EXTRA_METRICS if records and name in records[0])]
    rows = {name: [float(record[name]) for record in records] for name in names}
    return rows, CorpusBleu.of([r["answer"] for r in records], [r["reference"] for r in records])


def per_subject(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each subject's n and mean per-row metrics (rows without a subject under 'unknown')."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record.get("subject") or "unknown", []).append(record)
    return {
        subject: {"n": len(rows), **{name: sum(r[name] for r in rows) / len(rows) for name in ROW_METRICS}}
        for subject, rows in sorted(groups.items())
    }


def open_model_section(
    run: ModelRun, verdict: str | None, answer_format: str, resamples: int, seed: int
) -> dict[str, Any]:
    section = run_section(run, verdict)
    if not run.ok:
        return section
    metrics, intervals = metric_intervals(*scored(run.records), resamples, seed)
    if answer_format == "json":
        n = len(run.records)
        metrics["valid_json_rate"] = sum(bool(r["json_valid"]) for r in run.records) / n
        metrics["schema_pass_rate"] = sum(bool(r["schema_valid"]) for r in run.records) / n
    metrics["n"] = len(run.records)
    return {**section, "metrics": metrics, "intervals": intervals, "per_subject": per_subject(run.records)}


def open_pairwise(runs: Sequence[ModelRun], resamples: int, seed: int) -> list[dict[str, Any]]:
    """Every two successful models: each metric's difference a - b with a paired bootstrap interval."""
    return [
        {
            "a": a.label,
            "b": b.label,
            "n": len(a.records),
            "metrics": paired_differences(scored(a.records), scored(b.records), resamples, seed),
        }
        for a, b in combinations([run for run in runs if run.ok], 2)
    ]


def build_open_results(scored: ScoredSet) -> dict[str, Any]:
    """An open task's results, with the multiple-choice results' top-level keys; no parent checks (the no-worse-model
    check reads strict accuracy, which open tasks do not have)."""
    config, task = scored.config, scored.eval_set.task
    resamples, seed = config.bootstrap_resamples, config.seed
    models = {
        run.label: open_model_section(run, scored.verdict(run), task.answer_format, resamples, seed)
        for run in scored.runs
    }
    return scored.results(
        prompt={"system_prompt": task_system_prompt(task), "chat_template_kwargs": CHAT_TEMPLATE_KWARGS},
        generation=greedy_generation(config),
        models=models,
        pairwise=open_pairwise(scored.runs, resamples, seed),
        parent_checks=[],
        regressions=[],
    )


def _cell(entry: Mapping[str, Any], digits: int) -> str:
    return f"{entry['value']:.{digits}f} [{entry['ci_low']:.{digits}f}, {entry['ci_high']:.{digits}f}]"


def metric_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per model: each metric with its 95% interval (BLEU on 0..100, the others 0..1)."""
    rows = []
    for label, model in results["models"].items():
        if model["status"] != "ok":
            rows.append([label, *(["failed"] * len(OPEN_METRICS))])
            continue
        rows.append([label, *(_cell(model["intervals"][m], 1 if m == "bleu" else 3) for m in OPEN_METRICS)])
    return rows


def print_open_summary(results: Mapping[str, Any], console: Console) -> None:
    table = Table(title=f"{results['task']['name']}: open answers (95% bootstrap intervals)")
    for column in ("model", *OPEN_METRICS):
        table.add_column(column)
    for row in metric_rows(results):
        table.add_row(*row)
    console.print(table)
    for pair in results["pairwise"]:
        diffs = ", ".join(
            f"{name} {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" for name, d in pair["metrics"].items()
        )
        console.print(f"{pair['a']} - {pair['b']} (paired, n={pair['n']}): {diffs}", markup=False)


def render_open_markdown(results: Mapping[str, Any]) -> str:
    lines = [f"# {results['run_name']}: {results['task']['name']} (open answers)", ""]
    lines += ["| model | " + " | ".join(OPEN_METRICS) + " |", "|---" * (len(OPEN_METRICS) + 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in metric_rows(results)]
    lines += ["", "Values with 95% bootstrap intervals; BLEU is sacrebleu corpus BLEU (0..100)."]
    for pair in results["pairwise"]:
        lines += ["", f"## {pair['a']} - {pair['b']} (paired bootstrap, n={pair['n']})", ""]
        lines += [
            f"- {name}: {d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
            for name, d in pair["metrics"].items()
        ]
    return "\n".join(lines) + "\n"


def write_open_outputs(results: Mapping[str, Any], records: list[dict[str, Any]], folder: Path) -> Path:
    def write(tmp: Path) -> None:
        atomic_write_json(tmp / RESULTS_FILE, results)
        atomic_write_jsonl(tmp / PREDICTIONS_FILE, [json_safe(record) for record in records])
        atomic_write_text(tmp / REPORT_FILE, render_open_markdown(results))

    return atomic_write_dir(folder, write)
