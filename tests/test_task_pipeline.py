"""Every task preset end to end on its made-up fixture: validated with named reasons, a few SFT and GRPO steps of the
tiny model, scored by the eval (k-shot too), the report following the task's letters."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tune.recipes.loader import parse_recipe
from fine_tune.task.mixture import parse_task_mixture

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "tasks"
PRESETS = ("medmcqa", "medqa", "medqa5", "kormedmcqa", "mmlu_medical", "headqa", "pubmedqa")
SIZES = ["--sft_size", "6", "--grpo_size", "2", "--eval_size", "3", "--split_seed", "1"]


def fixture(task: str) -> str:
    folder = FIXTURES / task
    return str(folder if folder.is_dir() else FIXTURES / f"{task}.jsonl")


def validate(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "scripts/validate_dataset.py", *args, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_validator_json_keeps_todays_keys_and_adds_task_and_letters():
    medmcqa = validate("--dataset_name", fixture("medmcqa"), *SIZES)
    kor = validate("--task", "kormedmcqa", "--dataset_name", fixture("kormedmcqa"), *SIZES, "--stratify_by", "subject")
    today = {"rows", "valid", "invalid", "flags", "examples", "conflicts", "duplicates", "subjects", "splits",
             "skipped", "contamination", "usable", "manifest_hash", "requested_sizes", "source"}  # fmt: skip
    for report in (medmcqa, kor):
        assert today <= set(report)
    assert (medmcqa["task"], medmcqa["letters"]) == ("medmcqa", list("ABCD"))
    assert medmcqa["invalid"] == {"missing_question": 1, "missing_option": 1, "answer_out_of_range": 2}
    assert (kor["task"], kor["letters"], kor["valid"]) == ("kormedmcqa", list("ABCDE"), 16)
    assert kor["invalid"] == {"missing_option": 1, "missing_answer": 1, "answer_out_of_range": 2}
    assert set(kor["strata"]["sft"]) == {"doctor", "nurse", "pharm", "dentist"}


def phase_args(phase: str, task: str, **values) -> list[str]:
    common = ["--config", f"configs/demo/{phase}.yaml", "--task", task, "--dataset_name", fixture(task), *SIZES]
    return common + [item for key, value in values.items() for item in (f"--{key}", str(value))]


@pytest.mark.slow
@pytest.mark.usefixtures("single_torch_thread")
@pytest.mark.parametrize("task", PRESETS)
def test_each_preset_trains_and_is_scored(task, tiny_model_dir, tmp_path):
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.train.grpo import run_grpo
    from fine_tune.train.sft import run_sft

    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    five_letters = task in ("medqa5", "kormedmcqa")
    dev_size = 2 if five_letters else 0  # the dev scorer (held-out selection) reads the task's letters too
    run_sft(*parse_recipe("sft", phase_args(
        "sft", task, model_name_or_path=tiny_model_dir, output_dir=sft, max_steps=2, per_device_train_batch_size=2,
        save_strategy="no", logging_steps=1, max_length=512, dev_size=dev_size, eval_steps=1,
        no_improvement_action="warn",
    )))  # fmt: skip
    run_grpo(*parse_recipe("grpo", phase_args(
        "grpo", task, model_name_or_path=sft / "merged", output_dir=grpo, max_steps=1, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, reward_guard_patience=100, dev_size=0,
    )))  # fmt: skip
    models = f"base={tiny_model_dir},sft={sft / 'merged'},grpo={grpo / 'merged'}"
    (config,) = parse_recipe("eval", phase_args(
        "eval", task, models=models, split_manifest=sft / "split_manifest.json", output_dir=tmp_path / "eval",
        run_name=task, max_new_tokens=8, bootstrap_resamples=200, shots=3 if five_letters else 0,
    ))  # fmt: skip
    outcome = run_evaluation(config)
    results = outcome.results
    letters = results["task"]["letters"]
    assert outcome.failed == [] and results["task"]["name"] == task
    assert results["dataset"]["rows"] == 3 and results["dataset"]["letters"] == letters
    manifest = json.loads((sft / "split_manifest.json").read_text())
    lineage = json.loads((grpo / "merged" / "lineage.json").read_text())
    assert lineage["phase"] == "grpo" and results["split_check"]["models"]["sft"] == "verified"
    assert manifest.get("task", {"letters": list("ABCD")})["letters"] == letters
    for label, model in results["models"].items():
        assert list(model["confusion_matrix"]) == letters, label
        assert list(model["letter_distribution"]["gold_counts"]) == letters
    report = (outcome.folder / "report.md").read_text()
    assert "| gold " + letters[-1] + " |" in report
    if five_letters:
        assert manifest["dev"]["size"] == 2  # the SFT dev slice was scored with the task's letters
        assert letters == list("ABCDE") and "| E |" in report
        assert results["shots"]["k"] == 3 and len(results["shots"]["content_hashes"]) == 3
        assert set(results["models"]) == {"base", "base-3shot", "sft", "grpo"}
        sft_hashes = set(manifest["splits"]["sft"]["content_hashes"])
        assert set(results["shots"]["content_hashes"]) <= sft_hashes  # exemplars are training rows, never eval rows
        assert not set(results["shots"]["content_hashes"]) & set(manifest["splits"]["eval"]["content_hashes"])
    if task == "pubmedqa":
        record = json.loads((outcome.folder / "predictions.jsonl").read_text().splitlines()[0])
        assert record["gold"] in ("A", "B", "C")


MIXTURE = ("medqa", "medqa5", "pubmedqa")  # 4, 5 and 3 letters; PubMedQA with its abstract as context


def mixture_args(phase: str, **values) -> list[str]:
    weights = {"medqa": 2, "medqa5": 1, "pubmedqa": 1}
    task = "{" + ", ".join(f"{t}: {{weight: {weights[t]}, dataset_name: '{fixture(t)}'}}" for t in MIXTURE) + "}"
    sizes = ["--sft_size", "8", "--grpo_size", "4", "--eval_size", "3", "--split_seed", "1"]
    common = ["--config", f"configs/demo/{phase}.yaml", "--task", task, "--dataset_name", "null", *sizes]
    return common + [item for key, value in values.items() for item in (f"--{key}", str(value))]


@pytest.mark.slow
@pytest.mark.usefixtures("single_torch_thread")
def test_a_mixture_of_tasks_trains_once_and_is_scored_task_by_task(tiny_model_dir, tmp_path):
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.train.grpo import run_grpo
    from fine_tune.train.sft import run_sft

    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    run_sft(*parse_recipe("sft", mixture_args(
        "sft", model_name_or_path=tiny_model_dir, output_dir=sft, max_steps=2, per_device_train_batch_size=2,
        save_strategy="no", logging_steps=1, max_length=512, dev_size=3, eval_steps=1, no_improvement_action="warn",
    )))  # fmt: skip
    run_grpo(*parse_recipe("grpo", mixture_args(
        "grpo", model_name_or_path=sft / "merged", output_dir=grpo, max_steps=1, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, reward_guard_patience=100, dev_size=0,
    )))  # fmt: skip
    manifest = json.loads((sft / "split_manifest.json").read_text())
    assert manifest["splits"]["sft"]["tasks"] == {"medqa": 4, "medqa5": 2, "pubmedqa": 2}
    assert [row_id.split("/")[0] for row_id in manifest["dev"]["row_ids"]] == list(MIXTURE)  # 3 of 4/2/2 rows
    lineage = json.loads((grpo / "merged" / "lineage.json").read_text())
    recorded = parse_task_mixture(lineage["config"]["script"]["task"])
    assert recorded == parse_task_mixture(parse_recipe("grpo", mixture_args("grpo"))[0].task), "the lineage replays it"

    models = f"base={tiny_model_dir},sft={sft / 'merged'},grpo={grpo / 'merged'}"
    (config,) = parse_recipe("eval", mixture_args(
        "eval", models=models, output_dir=tmp_path / "eval", run_name="mix", max_new_tokens=8,
        bootstrap_resamples=200, shots=2, split_manifest=sft / "split_manifest.json",
    ))  # fmt: skip
    outcome = run_evaluation(config)
    summary = outcome.results
    assert outcome.failed == [] and outcome.exit_code == 0
    assert [entry["task"] for entry in summary["mixture"]] == list(MIXTURE)
    assert set(summary["models"]) == {"base", "base-2shot", "sft", "grpo"}
    for task in MIXTURE:
        results = json.loads((outcome.folder / task / "eval_results.json").read_text())
        letters = results["task"]["letters"]
        assert results["dataset"]["rows"] == 3 and len(letters) == {"medqa": 4, "medqa5": 5, "pubmedqa": 3}[task]
        assert results["split_check"]["models"]["grpo"] == "verified"  # the mixture manifest found beside the model
        assert list(results["models"]["sft"]["confusion_matrix"]) == letters
        task_hashes = set(manifest["tasks"][task]["splits"]["sft"]["content_hashes"])
        assert set(results["shots"]["content_hashes"]) <= task_hashes, "exemplars come from the same task's SFT rows"
        records = (outcome.folder / task / "predictions.jsonl").read_text().splitlines()
        assert len(records) == 4 * 3 and all(json.loads(r)["gold"] in letters for r in records)
        assert (outcome.folder / task / "report.md").read_text().startswith(f"# {task} evaluation")
    base = summary["models"]["base"]
    assert base["pooled"]["accuracy"]["total"] == 9
    per_task = [base["per_task_accuracy"][task]["value"] for task in MIXTURE]
    assert base["macro_accuracy"] == pytest.approx(sum(per_task) / 3)
    report = (outcome.folder / "report.md").read_text()
    assert "| model | medqa (n=3) | medqa5 (n=3) | pubmedqa (n=3) | macro mean |" in report
    assert "[medqa5](medqa5/report.md)" in report
