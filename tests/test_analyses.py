"""The study's analyses in one eval run on the tiny model, offline: prompt variants, the error taxonomy, per-letter F1
and macro-F1, their plots, and topic-tagged subjects on a MedQA-schema set (no subject column)."""

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from fine_tune.constants import PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.errors import RecipeError
from fine_tune.evaluate.error_taxonomy import CATEGORIES
from fine_tune.evaluate.phase import run_evaluation
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.variants import load_variants

MEDQA_FIXTURE = Path(__file__).parent / "fixtures" / "tasks" / "medqa.jsonl"
pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("analyses")
    config = EvalConfig(
        models={"base": str(tiny_model_dir)},
        task="medqa",
        dataset_name=str(MEDQA_FIXTURE),
        sft_size=4,
        grpo_size=2,
        eval_size=6,
        split_manifest=None,
        prompt_variants="default",
        max_new_tokens=8,
        batch_size=8,
        bootstrap_resamples=100,
        output_dir=str(out),
        run_name="study",
    )
    outcome = run_evaluation(config, console=Console(file=io.StringIO(), width=200))
    return outcome.folder, json.loads((outcome.folder / RESULTS_FILE).read_text())


def test_each_variant_is_scored_on_every_row_and_the_headline_is_the_projects_prompt(analysed):
    _, results = analysed
    base = results["models"]["base"]
    names = [variant.name for variant in load_variants("default")]
    assert set(base["prompt_variants"]) == set(names) and names[0] == "project" and len(names) >= 5
    assert all(entry["n"] == 6 and 0 <= entry["correct"] <= 6 for entry in base["prompt_variants"].values())
    assert base["prompt_variants"]["project"]["accuracy"] == base["metrics"]["accuracy"]


def test_taxonomy_counts_add_up_and_every_record_names_its_category(analysed):
    folder, results = analysed
    base = results["models"]["base"]
    taxonomy = base["error_taxonomy"]
    assert set(taxonomy) == set(CATEGORIES)
    assert sum(taxonomy.values()) == base["metrics"]["n"] - base["metrics"]["correct_and_schema_valid"]
    records = [json.loads(line) for line in (folder / PREDICTIONS_FILE).read_text().splitlines()]
    assert sum(record["error_category"] is not None for record in records) == sum(taxonomy.values())


def test_per_letter_scores_and_macro_f1_are_in_results_and_report(analysed):
    folder, results = analysed
    base = results["models"]["base"]
    assert set(base["per_letter"]) == {"A", "B", "C", "D"}
    assert all({"precision", "recall", "f1"} <= set(scores) for scores in base["per_letter"].values())
    f1s = [scores["f1"] for scores in base["per_letter"].values()]
    assert base["metrics"]["macro_f1"] == pytest.approx(sum(f1s) / 4)
    report = (folder / REPORT_FILE).read_text()
    for heading in ("## Per-letter precision / recall / F1", "## Prompt sensitivity", "## Error taxonomy"):
        assert heading in report
    assert (folder / "plots" / "prompt_variants.png").is_file() and (folder / "plots" / "errors.png").is_file()


def test_a_set_without_a_subject_column_gets_tagged_subjects_recorded_as_tagged(analysed):
    _, results = analysed
    assert results["dataset"]["subject_source"] == "tagged"
    per_subject = results["models"]["base"]["per_subject"]
    assert per_subject and sum(entry["n"] for entry in per_subject.values()) == 6


def test_a_bad_variants_file_is_refused_before_any_model_loads(tmp_path):
    bad = tmp_path / "variants.yaml"
    bad.write_text("variants:\n  dotted: {option_format: '{letter}.'}\n")
    with pytest.raises(
        RecipeError, match=r"variants.yaml: dotted: option_format must contain \{letter\} and \{text\}"
    ):
        EvalConfig(models={"base": "x"}, prompt_variants=str(bad))
    with pytest.raises(RecipeError, match="no such variants file"):
        EvalConfig(models={"base": "x"}, prompt_variants="nope")
