"""Every task preset end to end on its made-up fixture: validated with named reasons, a few SFT and GRPO steps of the
tiny model, scored by the eval (k-shot too), the report following the task's letters."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tune.recipes.loader import parse_recipe

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
    assert medmcqa["invalid"] == {"missing_question": 1, "missing_option": 1, "cop_out_of_range": 2}  # today's names
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
    from fine_tune.evaluate.evaluation import run_evaluation
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
