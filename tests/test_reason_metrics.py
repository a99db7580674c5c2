"""Reason vs explanation on the MCQ eval: ROUGE-L and token F1 of the strict answer's reason against the row's `exp`,
with intervals and paired differences, in eval_results.json, the console and report.md."""

import json

import pytest
from signatures import bound_to

from fine_tune.constants import REPORT_FILE, RESULTS_FILE
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.data.task_splits import load_task_split
from fine_tune.evaluate.reason_metrics import reason_pairwise, reason_rows, reason_summary
from fine_tune.evaluate.text_metrics import rouge, token_f1

SIZES = {"sft_size": 40, "grpo_size": 20, "eval_size": 12}


def record(reason, explanation, schema_valid=True):
    return {"reason": reason, "explanation": explanation, "schema_valid": schema_valid}


def test_rows_with_an_explanation_only_and_a_failed_schema_scores_zero():
    records = [
        record("Insulin lowers glucose.", "Insulin lowers blood glucose."),
        record("Insulin lowers glucose.", "Insulin lowers blood glucose.", schema_valid=False),
        record("anything", None),
        record("anything", "   "),
    ]
    rows = reason_rows(records)
    expected = rouge("Insulin lowers glucose.", "Insulin lowers blood glucose.")["rougeL"]
    assert rows["reason_rougeL"] == [pytest.approx(expected), 0.0]
    f1 = token_f1("Insulin lowers glucose.", "Insulin lowers blood glucose.")
    assert rows["reason_token_f1"] == [pytest.approx(f1), 0.0]
    assert reason_rows([record("x", None)]) is None and reason_summary([record("x", None)], 100, 0) == ({}, {})
    metrics, intervals = reason_summary(records, 200, 0)
    assert set(metrics) == set(intervals) == {"reason_rougeL", "reason_token_f1"}
    assert metrics["reason_rougeL"] == pytest.approx(expected / 2) and intervals["reason_rougeL"]["n"] == 2
    worse = [record("", "Insulin lowers blood glucose."), record("", "Insulin lowers blood glucose.")]
    diff = reason_pairwise(records, worse, 200, 0)["reason_rougeL"]
    assert diff["diff"] == pytest.approx(expected / 2) and diff["ci_low"] <= diff["diff"] <= diff["ci_high"]


def test_mcq_eval_reports_reason_vs_explanation(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from fine_tune.evaluate import runs
    from fine_tune.evaluate.generation import GenerationResult, generate_responses
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.recipes.loader import parse_recipe
    from fine_tune.task.prompts import format_question, gold_letter

    data = tmp_path / "synthetic.jsonl"
    write_jsonl(generate_rows(120, seed=0), data)
    sizes = {name.removesuffix("_size"): size for name, size in SIZES.items()}
    rows = load_task_split("medmcqa", "eval", source=str(data), sizes=sizes, seed=42)[0]
    by_question = {format_question(row): row for row in rows}
    assert any(row["exp"] for row in rows) and not all(row["exp"] for row in rows)

    @bound_to(generate_responses)
    def generate(model, tokenizer, messages, **kwargs):  # "copy" repeats the explanation, "short" says "Because."
        texts = []
        for conversation in messages:
            row = by_question[conversation[-1]["content"]]
            reason = (row["exp"] or "No explanation.") if model_label[0] == "copy" else "Because."
            texts.append(json.dumps({"predicted_category": gold_letter(row), "confidence": 0.9, "reason": reason}))
        return GenerationResult(texts, [20] * len(texts), [True] * len(texts), seconds=1.0)

    labels, model_label = iter(["copy", "short"]), [None]

    def generator_for(backend):
        model_label[0] = next(labels)
        return generate

    monkeypatch.setattr(runs, "generator_for", generator_for)
    argv = ["--dataset_name", str(data), "--split_seed", "42",
            *(f"--{k}={v}" for k, v in SIZES.items()), "--models", f"copy={tiny_model_dir},short={tiny_model_dir}",
            "--output_dir", str(tmp_path / "eval"), "--run_name", "r", "--bootstrap_resamples", "200"]  # fmt: skip
    (config,) = parse_recipe("eval", argv)
    results = run_evaluation(config).results
    with_exp = sum(1 for row in rows if row["exp"])
    copy, short = results["models"]["copy"], results["models"]["short"]
    assert copy["metrics"]["reason_rougeL"] == pytest.approx(1.0) and copy["metrics"]["reason_token_f1"] == 1.0
    assert copy["intervals"]["reason_rougeL"]["n"] == with_exp
    assert short["metrics"]["reason_rougeL"] < 0.5
    entry = short["intervals"]["reason_token_f1"]
    assert entry["ci_low"] <= short["metrics"]["reason_token_f1"] <= entry["ci_high"]
    (pair,) = results["pairwise"]
    assert pair["reason"]["reason_rougeL"]["diff"] == pytest.approx(1.0 - short["metrics"]["reason_rougeL"])
    assert pair["reason"]["reason_rougeL"]["ci_low"] > 0
    assert "Reason vs explanation" in (tmp_path / "eval" / "r" / REPORT_FILE).read_text()
    assert "Reason vs explanation" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval" / "r" / RESULTS_FILE).read_text())["models"]["copy"]["metrics"]["n"] == 12
