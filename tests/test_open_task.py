"""The open task type: task files, per-specialty folders and term dictionaries, prompts and targets, the strict
open-answer parser, and SFT + eval end to end on the tiny model with every text metric and its interval."""

import json
from pathlib import Path

import pytest

from fine_tune.data.normalise import load_task
from fine_tune.errors import RecipeError
from fine_tune.evaluate.text_metrics import OPEN_METRICS, row_scores
from fine_tune.recipes.loader import parse_recipe
from fine_tune.task.prompts import grpo_example, sft_example
from fine_tune.task.spec import parse_task_spec, resolve_task

OPEN = Path(__file__).resolve().parent / "fixtures" / "open"
SPECIALTIES, TERMS = OPEN / "specialties.yaml", OPEN / "terms.yaml"


def test_open_task_file_and_its_refusals():
    spec = resolve_task(str(SPECIALTIES))
    assert (spec.type, spec.answer_format, spec.options, spec.letters) == ("open", "json", None, ())
    assert resolve_task("medmcqa").type == "mcq"
    assert resolve_task("pubmedqa_long").answer.field == "long_answer"
    base = {"name": "x", "type": "open", "dataset_path": "./x.jsonl", "fields": {"question": "q", "answer": "a"}}
    assert parse_task_spec(base).answer_format == "json"
    bad = [
        ({**base, "type": "essay"}, "`type` must be one of mcq, open"),
        ({**base, "answer_format": "xml"}, "`answer_format` must be one of json, text"),
        ({**base, "fields": {"question": "q"}}, "fields.answer is required"),
        ({**base, "fields": {"question": "q", "answer": "a", "options": "o"}}, "unknown key 'options'"),
        ({**base, "letters": ["A", "B"]}, "`letters` is a setting of multiple-choice tasks"),
        ({**base, "prompt": {"system": "Answer."}}, "must name the JSON keys 'answer', 'confidence'"),
    ]
    for values, message in bad:
        with pytest.raises(RecipeError, match=message):
            parse_task_spec(values, source="t.yaml")


def test_specialty_folder_rows_take_the_file_name_as_subject():
    rows = load_task(resolve_task(str(SPECIALTIES)), "train")
    assert rows.report.n_invalid == 0 and len(rows.dataset) == 30
    subjects = {row["subject"] for row in rows.dataset}
    assert subjects == {"cardiology", "nephrology", "pharmacology", "internal_medicine_ko"}
    korean = next(row for row in rows.dataset if row["id"] == "ko-0")
    assert korean["answer"] == "공복 혈당 126 mg/dL 이상이다." and korean["subject"] == "internal_medicine_ko"


def test_subject_field_wins_over_the_file_name_and_bad_rows_are_named(tmp_path):
    folder = tmp_path / "spec"
    folder.mkdir()
    rows = [
        {"q": "What is ascites?", "a": "Fluid in the peritoneal cavity.", "s": "hepatology"},
        {"q": "What is oliguria?", "a": "  ", "s": "nephrology"},
        {"q": 5, "a": "x", "s": None},
    ]
    (folder / "medicine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    spec = parse_task_spec(
        {"type": "open", "dataset_path": str(folder), "fields": {"question": "q", "answer": "a", "subject": "s"}},
        source=tmp_path / "t.yaml",
    )
    normalised = load_task(spec, "train")
    assert [row["subject"] for row in normalised.dataset] == ["hepatology"]
    assert normalised.report.invalid_counts() == {"malformed_line": 1, "missing_answer": 1, "wrong_type": 1}


def test_term_dictionary_is_one_row_per_term():
    spec = resolve_task(str(TERMS))
    rows = load_task(spec, "train").dataset
    assert len(rows) == 12 and rows[0]["question"] == "Tachycardia"
    assert rows[0]["answer"] == "A resting heart rate above 100 beats per minute."


def test_prompts_and_targets_follow_the_answer_format():
    spec, terms = resolve_task(str(SPECIALTIES)), resolve_task(str(TERMS))
    row = {"id": "x", "question": "Which drug reverses heparin?", "answer": "Protamine sulfate.", "context": None}
    example = sft_example(row, task=spec)
    assert json.loads(example["completion"][0]["content"]) == {"answer": "Protamine sulfate.", "confidence": 0.95}
    assert '"answer"' in example["prompt"][0]["content"] and example["prompt"][1]["content"].startswith("Question:")
    plain = sft_example({**row, "question": "Syncope"}, task=terms)
    assert plain["completion"][0]["content"] == "Protamine sulfate."
    assert plain["prompt"][1]["content"] == "Define: Syncope"
    with pytest.raises(RecipeError, match="GRPO is built for multiple-choice tasks only"):
        grpo_example(row, task=spec)


SIZES = ["--sft_size", "20", "--grpo_size", "0", "--eval_size", "6", "--split_seed", "1"]


@pytest.mark.usefixtures("single_torch_thread")
@pytest.mark.parametrize("task_file", [SPECIALTIES, TERMS], ids=["specialties-json", "terms-text"])
def test_open_task_trains_and_is_scored_with_every_metric(task_file, tiny_model_dir, tmp_path):
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.train.sft import run_sft

    spec = resolve_task(str(task_file))
    sizes = SIZES if spec.name == "specialties" else ["--sft_size", "8", "--grpo_size", "0", "--eval_size", "4"]
    common = ["--task", str(task_file), "--dataset_name", spec.dataset_path, *sizes]
    sft = tmp_path / "sft"
    run_sft(*parse_recipe("sft", ["--config", "configs/demo/sft.yaml", *common,
        "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(sft), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--save_strategy", "no", "--logging_steps", "1", "--dev_size", "2",
        "--eval_steps", "1", "--dev_max_new_tokens", "8", "--no_improvement_action", "warn"]))  # fmt: skip
    lineage = json.loads((sft / "merged" / "lineage.json").read_text())
    assert lineage["selection"]["start"]["n"] == 2  # the dev slice was scored (ROUGE-L) at the start
    (config,) = parse_recipe("eval", ["--config", "configs/demo/eval.yaml", *common,
        "--models", f"base={tiny_model_dir},sft={sft / 'merged'}",
        "--split_manifest", str(sft / "split_manifest.json"),
        "--output_dir", str(tmp_path / "eval"), "--run_name", "open", "--max_new_tokens", "12",
        "--bootstrap_resamples", "200"])  # fmt: skip
    results = run_evaluation(config).results
    records = [json.loads(line) for line in (tmp_path / "eval" / "open" / "predictions.jsonl").open()]
    assert results["task"]["type"] == "open" and not results["failed"]
    for label, model in results["models"].items():
        assert set(OPEN_METRICS) <= set(model["metrics"]) and set(model["intervals"]) == set(OPEN_METRICS)
        for name in OPEN_METRICS:
            entry = model["intervals"][name]
            assert entry["ci_low"] <= model["metrics"][name] <= entry["ci_high"]
        mine = [r for r in records if r["model"] == label]
        assert len(mine) == model["metrics"]["n"]
        for record in mine:  # each row's scores are the metrics of the parsed answer against the reference
            assert {k: record[k] for k in row_scores("", "")} == row_scores(record["answer"], record["reference"])
        rougel = sum(r["rougeL"] for r in mine) / len(mine)
        assert model["metrics"]["rougeL"] == pytest.approx(rougel)
        assert ("valid_json_rate" in model["metrics"]) == (spec.answer_format == "json")
    (pair,) = results["pairwise"]
    assert set(pair["metrics"]) == set(OPEN_METRICS) and pair["n"] == results["models"]["base"]["metrics"]["n"]
    assert "rougeL" in (tmp_path / "eval" / "open" / "report.md").read_text()


def test_extra_metrics_are_refused_in_one_line_when_they_cannot_be_had(monkeypatch):
    from fine_tune.evaluate import extra_metrics

    with pytest.raises(RecipeError, match="unknown bleurt"):
        extra_metrics.parse_extra_metrics("meteor, bleurt")
    assert extra_metrics.parse_extra_metrics("meteor,bertscore,meteor") == ("meteor", "bertscore")
    monkeypatch.setattr(extra_metrics, "WORDNET_PATHS", ("corpora/no-such-wordnet",))
    with pytest.raises(RecipeError, match="meteor needs NLTK's WordNet data"):
        extra_metrics.require_extra_metrics(["meteor"], "roberta-large")
    with pytest.raises(RecipeError, match="bertscore"):  # no bert-score package, or its model offline
        extra_metrics.require_extra_metrics(["bertscore"], "no-such-org/no-such-model")
