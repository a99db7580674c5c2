"""The summary of an eval run over several tasks: per-task accuracy, macro and pooled rates, pooled tests, and every
task's regressions and failures carried up to the run's verdict."""

import io
import json

import datasets
import pytest
from rich.console import Console

from fine_tune.evaluate.eval_set import EvalSet
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.evaluate.mixture_results import (
    POOLED,
    mixture_results,
    pooled_run,
    print_mixture_summary,
    render_mixture_markdown,
    write_mixture_outputs,
)
from fine_tune.evaluate.phase import EvalOutcome
from fine_tune.evaluate.regressions import parent_checks
from fine_tune.evaluate.results import ScoredSet, build_results
from fine_tune.evaluate.runs import ModelRun, generation_timings, prediction_records
from fine_tune.hub.model_card import eval_table_from_results
from fine_tune.models.precision import resolve_precision
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.scoring import score_sample
from fine_tune.task.spec import resolve_task

MEDQA, PUBMEDQA = resolve_task("medqa"), resolve_task("pubmedqa")
SFT_LINEAGE = {"phase": "sft", "base": "models/base"}


def rows(n, letters):
    return [
        {"id": f"q{i}", "question": f"Q{i}?", "options": [f"o{j}" for j in range(len(letters))],
         "answer": i % len(letters), "context": "c", "exp": None, "subject": "s"}
        for i in range(n)
    ]  # fmt: skip


def run(label, task, task_rows, right, lineage=None):
    """A model that answers the rows at positions `right` correctly and the others with a wrong letter."""
    letters = task.letters
    texts = []
    for i, row in enumerate(task_rows):
        letter = letters[row["answer"]] if i in right else letters[(row["answer"] + 1) % len(letters)]
        texts.append(json.dumps({"predicted_category": letter, "confidence": 0.8, "reason": "r"}))
    generation = GenerationResult(texts, [5] * len(texts), [True] * len(texts), seconds=1.0)
    scores = [score_sample(t, letters[r["answer"]], letters) for t, r in zip(texts, task_rows, strict=True)]
    model = ModelRun(label, f"models/{label}", resolved={"kind": "full", "base": None, "lineage": lineage})
    model.records, model.scores = prediction_records(label, task_rows, generation, scores, task), scores
    model.timings = {"load_seconds": 0.1, **generation_timings(generation)}
    return model


def task_results(task, task_rows, runs):
    """One task's results, built as a single-task run builds them."""
    info = {"task": task.name, "letters": list(task.letters), "source": "x", "eval_split": "split",
            "description": "EVAL split", "available_rows": len(task_rows), "limit": None, "rows": len(task_rows),
            "dropped": {}, "fingerprint": "f", "eval_rows_hash": "h"}  # fmt: skip
    eval_set = EvalSet(datasets.Dataset.from_list(task_rows), info, None, task)
    section = {"manifest_hash": None, "manifests_checked": [], "contaminated_rows_dropped": 0, "models": {}}
    config = EvalConfig(models="base=models/base,sft=models/sft", task=task.name, bootstrap_resamples=500)
    checks = parent_checks(runs, 500, 0)
    warnings = ["the same warning"]
    return build_results(ScoredSet(config, eval_set, section, runs, resolve_precision("fp32"), warnings, 1.0), checks)


@pytest.fixture(scope="module")
def mixture():
    config = EvalConfig(models="base=models/base,sft=models/sft", task="medqa:2,pubmedqa", bootstrap_resamples=500)
    medqa_rows, pubmed_rows = rows(40, MEDQA.letters), rows(20, PUBMEDQA.letters)
    per_task = [
        [run("base", MEDQA, medqa_rows, set(range(30))), run("sft", MEDQA, medqa_rows, set(range(10)), SFT_LINEAGE)],
        [run("base", PUBMEDQA, pubmed_rows, set(range(10))),
         run("sft", PUBMEDQA, pubmed_rows, set(range(10)), SFT_LINEAGE)],
    ]  # fmt: skip
    results = [task_results(MEDQA, medqa_rows, per_task[0]), task_results(PUBMEDQA, pubmed_rows, per_task[1])]
    summary = mixture_results(config, results, per_task, resolve_precision("fp32"), seconds=1.0)
    return config, results, per_task, summary


def test_macro_is_the_mean_of_task_accuracies_and_pooled_counts_every_question(mixture):
    _, _, _, summary = mixture
    base = summary["models"]["base"]
    assert [base["per_task_accuracy"][t]["value"] for t in ("medqa", "pubmedqa")] == [0.75, 0.5]
    assert base["macro_accuracy"] == pytest.approx(0.625)
    pooled = base["pooled"]["accuracy"]
    assert (pooled["count"], pooled["total"], pooled["value"]) == (40, 60, pytest.approx(40 / 60))
    assert pooled["ci_low"] < 40 / 60 < pooled["ci_high"]
    assert [(e["task"], e["weight"], e["rows"], e["letters"]) for e in summary["mixture"]] == [
        ("medqa", 2.0, 40, list("ABCD")), ("pubmedqa", 1.0, 20, list("ABC"))
    ]  # fmt: skip


def test_a_regression_on_one_task_is_a_regression_of_the_run(mixture):
    config, _, _, summary = mixture
    by_task = {(r["task"], r["model"]) for r in summary["regressions"]}
    assert ("medqa", "sft") in by_task and ("pubmedqa", "sft") not in by_task  # 10 vs 30 of 40: p < 0.001
    assert (POOLED, "sft") in by_task, "20 of 60 vs 40 of 60 pooled"
    pooled_check = next(c for c in summary["parent_checks"] if c["model"] == "sft")
    assert (pooled_check["n"], pooled_check["only_parent_right"]) == (60, 20)
    outcome = EvalOutcome(summary, folder=None, fail_on_regression=True)
    assert outcome.regressed == ["sft"] and outcome.exit_code == 5
    pair = summary["pairwise"][0]
    assert (pair["a"], pair["b"], pair["n"], pair["b10"]) == ("base", "sft", 60, 20)


def test_warnings_given_by_several_tasks_are_listed_once(mixture):
    assert mixture[3]["warnings"] == ["medqa, pubmedqa: the same warning"]


def test_a_model_failing_on_one_task_fails_the_run_but_keeps_its_other_scores(mixture):
    config, results, per_task, _ = mixture
    broken = ModelRun("sft", "models/sft", status="failed", stage="generate", error="RuntimeError: boom")
    runs = [per_task[0], [per_task[1][0], broken]]
    results = [results[0], task_results(PUBMEDQA, rows(20, PUBMEDQA.letters), runs[1])]
    summary = mixture_results(config, results, runs, resolve_precision("fp32"), seconds=1.0)
    assert summary["failed"] == ["sft"] and summary["models"]["sft"]["status"] == "failed"
    assert summary["models"]["sft"]["per_task_accuracy"]["medqa"]["value"] == 0.25
    assert summary["models"]["sft"]["per_task_accuracy"]["pubmedqa"] is None
    assert "FAILED" in render_mixture_markdown(summary)
    assert pooled_run(runs[1][1:]).error == "RuntimeError: boom"


def test_outputs_are_one_folder_per_task_beside_the_summary(mixture, tmp_path):
    _, results, per_task, summary = mixture
    records = [[r for run in runs for r in run.records] for runs in per_task]
    folder = write_mixture_outputs(summary, results, records, tmp_path / "run")
    assert json.loads((folder / "eval_results.json").read_text())["mixture"][1]["folder"] == "pubmedqa"
    assert len((folder / "medqa" / "predictions.jsonl").read_text().splitlines()) == 80
    report = (folder / "report.md").read_text()
    assert "> **[medqa] REGRESSION: sft" in report and "> **[pooled] REGRESSION: sft" in report
    assert "| base | 75.0% [" in report
    console = Console(file=io.StringIO(), width=200)
    print_mixture_summary(summary, console)
    text = console.file.getvalue()
    assert "[pooled] REGRESSION: sft" in text and "macro mean" in text
    card = eval_table_from_results(summary, "sft")
    assert "over 2 tasks: medqa (40 questions), pubmedqa (20 questions). This model is **sft**." in card
    assert "### Strict accuracy per task" in card
