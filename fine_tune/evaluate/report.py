"""Rendering of an eval run's results dict: the console tables (rich) and `report.md` (its plots: `plots`).

Everything here reads the JSON-ready results that `fine_tune.evaluate.results` builds and computes nothing new, so
the report can be rebuilt from `eval_results.json` alone (`fine_tune.evaluate.results.write_report`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fine_tune.evaluate.formatting import format_p, matrix_columns, num, ok_models, pct, rate_with_ci, task_letters
from fine_tune.evaluate.reason_metrics import REASON_METRICS
from fine_tune.evaluate.report_analyses import errors_section, per_letter_section, protocols_section, variants_section
from fine_tune.evaluate.stats import INVALID
from fine_tune.markdown import md_table

FAILED = "FAILED"
HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "valid_json_rate", "schema_pass_rate", "accuracy_on_schema")
LENIENT_METRICS: tuple[str, ...] = ("lenient_accuracy", "lenient_schema_pass_rate")
METRIC_TITLES = {
    "accuracy": "accuracy",
    "valid_json_rate": "valid JSON",
    "schema_pass_rate": "schema pass",
    "accuracy_on_schema": "accuracy on schema",
    "lenient_accuracy": "lenient accuracy",
    "lenient_schema_pass_rate": "lenient schema pass",
}


def failure_text(model: Mapping[str, Any]) -> str:
    return f"{FAILED} ({model.get('stage')}): {model.get('error')}"


def print_summary(results: Mapping[str, Any], console: Console) -> None:
    """The metric table with CIs, the pairwise tests, calibration / position bias / speed, warnings, then any
    regression, last and in bold red so that it is the line a user sees."""
    console.print(metrics_table(results))
    if results["pairwise"]:
        console.print(pairwise_table(results))
    if reason_rows(results):
        console.print(reason_table(results))
    if ok_models(results):
        console.print(diagnostics_table(results))
    for label, model in results["models"].items():
        if model["status"] != "ok":
            console.print(Text(f"{label} {failure_text(model)}", style="red"))
    for warning in results["warnings"]:
        console.print(Text.assemble(("warning:", "yellow"), f" {warning}"))
    for check in results["regressions"]:
        console.print(Text(regression_message(check), style="bold red"))


def regression_message(check: Mapping[str, Any]) -> str:
    """One line: which model regressed against which parent, by how much, and how sure the test is."""
    p_text = format_p(check["mcnemar_p"])
    p_text = p_text if p_text.startswith("<") else f"= {p_text}"
    return (
        f"REGRESSION: {check['model']} is significantly worse than its parent {check['parent']} "
        f"({check['parent_source']}): strict accuracy {pct(check['accuracy'])} vs {pct(check['parent_accuracy'])} "
        f"({100 * check['diff']:+.1f} pp [{100 * check['ci_low']:+.1f}, {100 * check['ci_high']:+.1f}]), exact "
        f"McNemar p {p_text}, below {check['alpha']}: {check['only_parent_right']} questions only the parent got "
        f"right, {check['only_model_right']} only {check['model']}"
    )


def metrics_table(results: Mapping[str, Any]) -> Table:
    dataset = results["dataset"]
    table = Table(
        title=f"{dataset['rows']} questions, {dataset['description']}: strict metrics (headline) with 95% Wilson "
        "CIs, lenient (dim) beside",
        title_justify="left",
    )
    table.add_column("model", style="bold")
    for metric in (*HEADLINE_METRICS, *LENIENT_METRICS):
        table.add_column(METRIC_TITLES[metric], style="dim" if metric in LENIENT_METRICS else None)
    for label, model in results["models"].items():
        if model["status"] != "ok":
            table.add_row(label, f"[red]{FAILED} at {model.get('stage')}[/red]", *[""] * (len(table.columns) - 2))
            continue
        table.add_row(label, *(console_cell(model["intervals"][m]) for m in (*HEADLINE_METRICS, *LENIENT_METRICS)))
    return table


def console_cell(entry: Mapping[str, Any]) -> str:
    """Two lines: `34.0% 68/200` over `[27.8, 40.8]`."""
    if entry["value"] is None:
        return f"n/a 0/{entry['total']}"
    interval = f"[{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"
    return f"{pct(entry['value'])} {entry['count']}/{entry['total']}\n{interval}"


def pairwise_table(results: Mapping[str, Any]) -> Table:
    table = Table(
        title="Pairwise strict accuracy: difference with paired-bootstrap 95% CI, exact McNemar test",
        title_justify="left",
    )
    for column in ("A vs B", "acc A", "acc B", "A - B [95% CI]", "only A / only B right", "McNemar p"):
        table.add_column(column)
    for row in results["pairwise"]:
        table.add_row(*pairwise_cells(row))
    return table


def pairwise_cells(row: Mapping[str, Any]) -> list[str]:
    diff = f"{100 * row['diff']:+.1f} pp [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"
    return [
        f"{row['a']} vs {row['b']}",
        pct(row["accuracy_a"]),
        pct(row["accuracy_b"]),
        diff,
        f"{row['b10']} / {row['b01']}",
        format_p(row["mcnemar_p"]),
    ]


def reason_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Per model: reason ROUGE-L and token F1 against the rows' explanations, each `value [95% CI] (n)`; empty when
    no eval row has an explanation."""
    rows = []
    for label, model in ok_models(results).items():
        entries = [model["intervals"].get(name) for name in REASON_METRICS]
        if all(entries):
            cells = [f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]" for e in entries]
            rows.append([label, *cells, str(entries[0]["n"])])
    return rows


def reason_differences(results: Mapping[str, Any]) -> list[str]:
    return [
        f"{row['a']} - {row['b']}: "
        + ", ".join(f"{name} {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" for name, d in diffs.items())
        for row in results["pairwise"]
        if (diffs := row.get("reason"))
    ]


REASON_HEADER = ("model", "reason ROUGE-L [95% CI]", "reason token F1 [95% CI]", "rows with explanation")


def reason_table(results: Mapping[str, Any]) -> Table:
    table = Table(
        title="Reason vs explanation (strict answers; bootstrap CIs; paired differences below)", title_justify="left"
    )
    for column in REASON_HEADER:
        table.add_column(column)
    for row in reason_rows(results):
        table.add_row(*row)
    for line in reason_differences(results):
        table.add_row(line, "", "", "")
    return table


def reason_section(results: Mapping[str, Any]) -> str:
    rows = reason_rows(results)
    if not rows:
        return ""
    text = (
        "## Reason vs explanation\n\nROUGE-L F and token F1 of each strict answer's `reason` against the row's "
        "explanation (rows with one; an answer failing the schema scores 0), 95% bootstrap intervals.\n\n"
    )
    diffs = "".join(f"\n- paired: {line}" for line in reason_differences(results))
    return text + md_table(list(REASON_HEADER), rows) + diffs


def diagnostics_table(results: Mapping[str, Any]) -> Table:
    table = Table(title="Calibration (schema-valid answers), position bias and speed", title_justify="left")
    for column in ("model", "n valid", "ECE", "Brier", "letters vs gold p", "samples/s", "tokens/s"):
        table.add_column(column)
    for label, model in ok_models(results).items():
        calibration, timing = model["calibration"], model["timings"]
        table.add_row(
            label,
            str(calibration["n"]),
            num(calibration["ece"]),
            num(calibration["brier"]),
            format_p(model["letter_distribution"]["p_value"]),
            f"{timing['samples_per_second']:.2f}",
            f"{timing['tokens_per_second']:.1f}",
        )
    return table


def render_markdown(results: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The whole report; `plots` maps PLOT_FILES keys to paths relative to the report."""
    sections = [
        f"# {(results.get('task') or {}).get('name', 'medmcqa')} evaluation: `{results['run_name']}`",
        regressions_banner(results),
        header_section(results),
        models_section(results),
        metrics_section(results),
        pairwise_section(results),
        reason_section(results),
        parent_checks_section(results),
        calibration_section(results, plots.get("reliability")),
        subject_section(results, plots.get("per_subject")),
        letters_section(results, plots.get("letters")),
        confusion_section(results, plots.get("confusion")),
        per_letter_section(results),
        variants_section(results, plots.get("variants")),
        protocols_section(results),
        errors_section(results, plots.get("errors")),
        failures_section(results),
        speed_section(results),
        warnings_section(results),
        config_section(results),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def regressions_banner(results: Mapping[str, Any]) -> str:
    """A quoted line per regression, right under the title block, where nobody scrolls past it."""
    return "\n".join(f"> **{regression_message(check)}**" for check in results["regressions"])


def header_section(results: Mapping[str, Any]) -> str:
    dataset, split = results["dataset"], results["split_check"]
    dropped = ", ".join(f"{k}: {v}" for k, v in dataset["dropped"].items()) or "none"
    lines = [
        f"- Eval set: **{dataset['rows']} questions**, {dataset['description']} of `{dataset['source']}`"
        + (f" (first {dataset['limit']})" if dataset["limit"] else ""),
        f"- Rows dropped before evaluation: {dropped}",
        f"- Eval rows hash: `{dataset['eval_rows_hash']}`; split manifest hash: `{split['manifest_hash'] or 'n/a'}`",
        f"- Split check: {split_check_text(split)}",
        f"- Greedy decoding, batch size {results['generation']['batch_size']}, max_new_tokens "
        f"{results['generation']['max_new_tokens']}, precision {results['environment']['precision']} on "
        f"{results['environment']['device']}",
        "",
        "Strict metrics are the headline: the contract is *exactly one JSON object* with the keys "
        "`predicted_category`, `confidence`, `reason`. The lenient columns (think blocks, code fences and text around "
        "the first JSON object ignored) are only for comparison with upstream's numbers, which were lenient. "
        "Intervals are 95% Wilson score intervals.",
    ]
    return "\n".join(lines)


def split_check_text(split: Mapping[str, Any]) -> str:
    checked = split["manifests_checked"]
    if not checked:
        return "no training split manifest was checked"
    parts = [f"`{m['path']}` ({m['origin']}): overlap {m['overlap_total']}" for m in checked]
    return "eval rows checked against " + "; ".join(parts)


def models_section(results: Mapping[str, Any]) -> str:
    rows = []
    for label, model in results["models"].items():
        resolved = model.get("resolved") or {}
        lineage = resolved.get("lineage") or {}
        rows.append(
            [
                f"**{label}**",
                f"`{model['source']}`",
                "ok" if model["status"] == "ok" else FAILED,
                resolved.get("kind") or "n/a",
                f"`{resolved.get('base')}`" if resolved.get("base") else "n/a",
                lineage.get("phase") or "n/a",
                model.get("split_check") or "n/a",
            ]
        )
    header = ["model", "source", "status", "kind", "base", "phase", "split check"]
    return "## Models\n\n" + md_table(header, rows)


def metrics_section(results: Mapping[str, Any]) -> str:
    header = ["model", *(METRIC_TITLES[m] for m in HEADLINE_METRICS), *(METRIC_TITLES[m] for m in LENIENT_METRICS)]
    rows = []
    for label, model in results["models"].items():
        if model["status"] != "ok":
            rows.append([f"**{label}**", FAILED, *[""] * (len(header) - 2)])
            continue
        cells = [rate_with_ci(model["intervals"][m]) for m in HEADLINE_METRICS]
        cells += [f"_{rate_with_ci(model['intervals'][m])}_" for m in LENIENT_METRICS]
        rows.append([f"**{label}**", *cells])
    return "## Metrics (strict headline, lenient in italics)\n\nEach cell: rate [95% CI] count/total.\n\n" + md_table(
        header, rows
    )


def pairwise_section(results: Mapping[str, Any]) -> str:
    if not results["pairwise"]:
        return ""
    header = ["A vs B", "acc A", "acc B", "A - B [95% bootstrap CI]", "only A / only B right", "McNemar exact p"]
    rows = [pairwise_cells(row) for row in results["pairwise"]]
    return (
        "## Pairwise comparisons (strict accuracy)\n\nSame questions for every model, so differences are paired: "
        f"a percentile bootstrap over questions ({results['config']['bootstrap_resamples']} resamples) and an exact "
        "McNemar test on the questions exactly one model got right.\n\n" + md_table(header, rows)
    )


def parent_checks_section(results: Mapping[str, Any]) -> str:
    checks = results["parent_checks"]
    if not checks:
        return ""
    rows = []
    for check in checks:
        if check["parent"] is None:
            rows.append([check["model"], f"`{check['parent_source']}`", "not scored in this run", "", "", "", "n/a"])
            continue
        rows.append(
            [
                check["model"],
                f"`{check['parent_source']}`",
                check["parent"],
                f"{pct(check['accuracy'])} vs {pct(check['parent_accuracy'])}",
                f"{100 * check['diff']:+.1f} pp [{100 * check['ci_low']:+.1f}, {100 * check['ci_high']:+.1f}]",
                format_p(check["mcnemar_p"]),
                "**REGRESSED**" if check["regressed"] else "no",
            ]
        )
    header = ["model", "lineage parent", "scored as", "accuracy vs parent", "difference [95% CI]", "McNemar p"]
    return (
        "## Regression check against the lineage parent\n\nEach fine-tuned model against the model its lineage "
        "says it started from, when that model was scored here too: regressed when its strict accuracy is lower and "
        f"the exact McNemar test gives p < {checks[0]['alpha']}.\n\n" + md_table([*header, "regressed"], rows)
    )


def calibration_section(results: Mapping[str, Any], plot: str | None) -> str:
    models = ok_models(results)
    if not models:
        return ""
    rows = []
    for label, model in models.items():
        c = model["calibration"]
        rows.append([label, c["n"], pct(c["accuracy"]), num(c["mean_confidence"]), num(c["ece"]), num(c["brier"])])
    header = ["model", "schema-valid answers", "accuracy", "mean confidence", "ECE (10 bins)", "Brier"]
    text = (
        "## Calibration of the stated confidence\n\nAmong schema-valid answers only (the others state no usable "
        "confidence).\n\n" + md_table(header, rows)
    )
    return text + (f"\n\n![reliability diagram]({plot})" if plot else "")


def subject_section(results: Mapping[str, Any], plot: str | None) -> str:
    models = ok_models(results)
    if not models:
        return ""
    subjects = sorted({s for m in models.values() for s in m["per_subject"]}, key=str)
    rows = []
    for subject in subjects:
        entries = [m["per_subject"].get(subject) for m in models.values()]
        n = next(e["n"] for e in entries if e)
        rows.append([subject, n, *(f"{pct(e['accuracy'])} ({e['correct']})" if e else "n/a" for e in entries)])
    text = "## Per-subject strict accuracy\n\n" + md_table(["subject", "n", *models], rows)
    return text + (f"\n\n![per-subject accuracy]({plot})" if plot else "")


def letters_section(results: Mapping[str, Any], plot: str | None) -> str:
    models = ok_models(results)
    if not models:
        return ""
    letters = task_letters(results)
    first = next(iter(models.values()))
    gold = first["letter_distribution"]["gold_counts"]
    rows = [["gold", *(gold[letter] for letter in letters), "", "", ""]]
    for label, model in models.items():
        dist = model["letter_distribution"]
        invalid = model["metrics"]["n"] - sum(dist["predicted_counts"].values())
        chi2 = num(dist["chi2"], 2) if dist["chi2"] is not None else "n/a"
        rows.append([label, *(dist["predicted_counts"][letter] for letter in letters), invalid, chi2])
        rows[-1].append(format_p(dist["p_value"]))
    text = (
        "## Position bias: predicted letters against the gold distribution\n\nChi-square goodness of fit of the "
        "valid predicted letters against the gold letters' proportions; a small p means the model favours some "
        "positions.\n\n" + md_table(["", *letters, INVALID, "chi2", "p"], rows)
    )
    return text + (f"\n\n![letter distribution]({plot})" if plot else "")


def confusion_section(results: Mapping[str, Any], plot: str | None) -> str:
    models = ok_models(results)
    if not models:
        return ""
    parts = ["## Confusion matrices\n\nRows: gold letter; columns: strictly parsed prediction (invalid: none)."]
    for label, model in models.items():
        matrix = model["confusion_matrix"]
        columns = matrix_columns(results)
        rows = [[f"gold {g}", *(matrix[g][c] for c in columns)] for g in task_letters(results)]
        parts.append(f"**{label}**\n\n" + md_table(["", *columns], rows))
    if plot:
        parts.append(f"![confusion matrices]({plot})")
    return "\n\n".join(parts)


def failures_section(results: Mapping[str, Any]) -> str:
    models = ok_models(results)
    if not models:
        return ""
    rows = []
    for label, model in models.items():
        counts = model["metrics"]["failure_counts"]
        rows.append([label, ", ".join(f"{name}: {count}" for name, count in counts.items()) or "none"])
    return "## Strict parse failures\n\n" + md_table(["model", "failure reasons (count)"], rows)


def speed_section(results: Mapping[str, Any]) -> str:
    rows = []
    for label, model in results["models"].items():
        t = model.get("timings") or {}
        if model["status"] != "ok":
            rows.append([label, num(t.get("load_seconds"), 1), FAILED, "", "", "", ""])
            continue
        rows.append(
            [
                label,
                num(t["load_seconds"], 1),
                num(t["generation_seconds"], 1),
                f"{t['samples_per_second']:.2f}",
                f"{t['tokens_per_second']:.1f}",
                f"{t['mean_generated_tokens']:.1f}",
                t["hit_max_new_tokens"],
            ]
        )
    header = ["model", "load s", "generate s", "samples/s", "tokens/s", "mean tokens", "hit max_new_tokens"]
    return f"## Generation ({results['environment']['device']})\n\n" + md_table(header, rows)


def warnings_section(results: Mapping[str, Any]) -> str:
    failed = [f"- **{label}**: {failure_text(m)}" for label, m in results["models"].items() if m["status"] != "ok"]
    warnings = [f"- {w}" for w in results["warnings"]]
    parts = []
    if failed:
        parts.append("## Failed models\n\n" + "\n".join(failed))
    if warnings:
        parts.append("## Warnings\n\n" + "\n".join(warnings))
    return "\n\n".join(parts)


def config_section(results: Mapping[str, Any]) -> str:
    config = json.dumps(results["config"], indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return f"<details><summary>Configuration</summary>\n\n```json\n{config}\n```\n\n</details>"
