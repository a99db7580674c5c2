"""report.md, the PNG plots and the console tables, rendered from results built by the evaluation code."""

import io
import json
import random
from pathlib import Path

import pytest
from rich.console import Console

from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.evaluate.eval_set import load_eval_sets
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.evaluate.plots import PLOT_FILES
from fine_tune.evaluate.report import print_summary, render_markdown
from fine_tune.evaluate.results import ScoredSet, build_results, write_report
from fine_tune.evaluate.runs import ModelRun, generation_timings, prediction_records
from fine_tune.evaluate.split_check import check_split
from fine_tune.models.precision import resolve_precision
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.prompts import LETTERS, gold_letter
from fine_tune.task.scoring import score_sample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rows.jsonl"
    write_jsonl(generate_rows(40, seed=3), path)
    config = EvalConfig(models={"x": "x/y"}, dataset_name=str(path), eval_split="validation")
    return config, load_eval_sets(config)[0]


def answer(letter: str, confidence: float) -> str:
    return json.dumps({"predicted_category": letter, "confidence": confidence, "reason": "Because."})


def fake_run(label: str, rows, skill: float, seed: int, always: str | None = None) -> ModelRun:
    """A model that answers right with probability `skill` (or always `always`), with some broken outputs."""
    rng = random.Random(seed)
    texts = []
    for row in rows:
        roll = rng.random()
        if roll < 0.1:
            texts.append("I think the answer is B.")
        elif roll < 0.15:
            texts.append(f"```json\n{answer(gold_letter(row), 0.9)}\n```")
        else:
            right = rng.random() < skill
            letter = always or (gold_letter(row) if right else rng.choice(LETTERS))
            texts.append(answer(letter, round(rng.uniform(0.5, 1.0) if right else rng.uniform(0.2, 0.9), 2)))
    generation = GenerationResult(texts, [12] * len(texts), [True] * len(texts), seconds=2.0)
    scores = [score_sample(text, gold_letter(row)) for text, row in zip(texts, rows, strict=True)]
    run = ModelRun(label, f"models/{label}", resolved={"kind": "full", "base": None, "lineage": None})
    run.records, run.scores = prediction_records(label, rows, generation, scores), scores
    run.timings = {"load_seconds": 0.5, **generation_timings(generation)}
    return run


def results_for(eval_set, runs):
    config, rows = eval_set
    rows_set, split, warnings = check_split(config, rows, {run.label: None for run in runs})
    return build_results(ScoredSet(config, rows_set, split, runs, resolve_precision("fp32"), warnings, seconds=3.0))


@pytest.fixture(scope="module")
def results(eval_set):
    rows = eval_set[1].rows
    failed = ModelRun("broken", "models/broken", status="failed", stage="load", error="OSError: no config.json")
    runs = [fake_run("base", rows, 0.3, 1), fake_run("sft", rows, 0.7, 2), failed, fake_run("biased", rows, 0, 3, "A")]
    return results_for(eval_set, runs)


def test_report_and_plots(results, tmp_path):
    path = write_report(results, tmp_path)
    text = path.read_text()
    for heading in ("## Models", "## Metrics", "## Pairwise", "## Calibration", "## Per-subject", "## Position bias"):
        assert heading in text
    assert "## Confusion matrices" in text and "## Failed models" in text and "OSError: no config.json" in text
    for key, name in PLOT_FILES.items():
        if key == "variants":  # drawn only when --prompt_variants was given (tests/test_analyses.py)
            assert not (tmp_path / "plots" / name).exists() and "## Prompt sensitivity" not in text
            continue
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE
        assert f"(plots/{name})" in text
    assert text.count("| **broken** |") == 2  # in the models table and the metrics table, marked FAILED
    assert "sft vs biased" in text and "base vs sft" in text and "broken vs" not in text


def test_metric_cells_show_rate_interval_and_counts(results, tmp_path):
    text = render_markdown(results, {})
    accuracy = results["models"]["sft"]["intervals"]["accuracy"]
    cell = f"{100 * accuracy['value']:.1f}% [{100 * accuracy['ci_low']:.1f}, {100 * accuracy['ci_high']:.1f}]"
    assert f"{cell} {accuracy['count']}/{accuracy['total']}" in text
    assert "![" not in text  # no plots passed, none referenced


def test_position_bias_is_flagged(results):
    biased = results["models"]["biased"]["letter_distribution"]
    assert biased["predicted_counts"]["B"] == biased["predicted_counts"]["C"] == 0
    assert biased["p_value"] < 0.01


def test_results_are_strict_json(results, tmp_path):
    text = json.dumps(results, allow_nan=False)  # raises on NaN/inf
    assert json.loads(text)["models"]["broken"]["status"] == "failed"


def test_console_summary(results):
    buffer = io.StringIO()
    print_summary(results, Console(file=buffer, width=200))
    out = buffer.getvalue()
    assert "FAILED at load" in out and "OSError: no config.json" in out
    assert "McNemar" in out and "base vs sft" in out and "ECE" in out and "samples/s" in out


def test_no_schema_valid_answers(eval_set, tmp_path):
    rows = eval_set[1].rows
    garbage = fake_run("garbage", rows, 0.5, 4)
    garbage.records = [
        {**r, "schema_valid": False, "confidence": None, "failure": "not_json"} for r in garbage.records
    ]
    garbage.scores = [score_sample("not json", gold_letter(row)) for row in rows]
    results = results_for(eval_set, [garbage])
    calibration = results["models"]["garbage"]["calibration"]
    assert (calibration["n"], calibration["ece"], calibration["brier"]) == (0, None, None)
    text = write_report(results, tmp_path).read_text()
    assert "n/a" in text and (tmp_path / "plots" / PLOT_FILES["reliability"]).is_file()


def test_only_failed_models(eval_set, tmp_path):
    failed = ModelRun("x", "x/y", status="failed", stage="generate", error="RuntimeError: boom")
    results = results_for(eval_set, [failed])
    text = write_report(results, tmp_path).read_text()
    assert "RuntimeError: boom" in text and not (tmp_path / "plots").exists()
    buffer = io.StringIO()
    print_summary(results, Console(file=buffer, width=200))
    assert "FAILED at generate" in buffer.getvalue()


def test_report_renders_from_the_saved_json(results, tmp_path):
    saved = json.loads(json.dumps(results))
    assert write_report(saved, tmp_path).read_text() == render_markdown(
        results, {k: f"plots/{v}" for k, v in PLOT_FILES.items()}
    )
    assert Path(tmp_path / "report.md").is_file()
