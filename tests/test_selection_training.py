"""Held-out selection through the real Trainer on the tiny model (slow: each test trains): target, patience, the best
checkpoint handed on, the refusal, a resumed run, and a mixture's per-task guard."""

import json

import pytest
from dev_records import FIXTURES, TASKS_2, metrics, scored
from safetensors.torch import load_file

from fine_tune.data.splits import manifest_hash
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.errors import NoImprovementError
from fine_tune.recipes.loader import load_recipe
from fine_tune.train import sft
from fine_tune.train.selection import DevScorer, selection_score

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]


class ScriptedScorer(DevScorer):
    """Dev accuracy by step from a script instead of generation: drives the real Trainer's selection machinery."""

    script: dict[int, float] = {}

    @classmethod
    def from_parts(cls, parts, batch_size, max_new_tokens):
        n = sum(len(rows) for _, rows in parts)
        return cls([[]] * n, ["A"] * n, batch_size, max_new_tokens)

    def score(self, model, tokenizer, step):
        n = len(self.golds)
        correct = round(self.script[step] * n)
        record = {
            "step": step,
            "n": n,
            "accuracy": correct / n,
            "valid_json_rate": 1.0,
            "schema_pass_rate": 1.0,
            "score": selection_score(metrics(correct, n, n)),
            "examples": [],
        }
        self.history.append(record)
        return record


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(generate_rows(120, seed=0), path)
    return path


def run_scripted_sft(monkeypatch, tiny_model_dir, small_file, out, script, *overrides):
    monkeypatch.setattr(ScriptedScorer, "script", script)
    monkeypatch.setattr(sft, "DevScorer", ScriptedScorer)
    args = load_recipe(
        "sft",
        "configs/demo/sft.yaml",
        ["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(small_file), "--output_dir", str(out),
         "--sft_size", "60", "--grpo_size", "10", "--eval_size", "10", "--dev_size", "10",
         "--max_steps", "10", "--eval_steps", "2", "--save_steps", "2", "--save_total_limit", "10",
         "--per_device_train_batch_size", "4", "--logging_steps", "2",
         *overrides],
    )  # fmt: skip
    return sft.run_sft(*args)


def test_training_stops_at_the_target(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = {0: 0.0, 2: 0.2, 4: 0.5, 6: 0.8, 8: 0.9, 10: 1.0}
    run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script, "--target_accuracy", "0.8")
    lineage = json.loads((tmp_path / "merged" / "lineage.json").read_text())
    assert lineage["config"]["global_step"] == 6, "stops at the first evaluation that reaches the target"
    assert lineage["selection"]["selected"]["step"] == 6 and lineage["selection"]["start"]["accuracy"] == 0.0


def test_the_best_step_is_handed_on_and_patience_stops(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = {0: 0.1, 2: 0.6, 4: 0.3, 6: 0.2, 8: 0.9, 10: 0.9}
    run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script, "--early_stopping_patience", "2")
    lineage = json.loads((tmp_path / "merged" / "lineage.json").read_text())
    assert lineage["config"]["global_step"] == 6, "two evaluations without a gain stop training"
    assert lineage["selection"]["selected"] == {
        "step": 2, "n": 10, "accuracy": 0.6, "valid_json_rate": 1.0, "schema_pass_rate": 1.0,
    }  # fmt: skip
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    best = load_file(tmp_path / "checkpoint-2" / "adapter_model.safetensors")
    last = load_file(tmp_path / "checkpoint-6" / "adapter_model.safetensors")
    assert all((saved[key] == best[key]).all() for key in best), "the adapter handed on is the best checkpoint's"
    assert any((saved[key] != last[key]).any() for key in last)
    manifest = json.loads((tmp_path / "split_manifest.json").read_text())
    assert manifest["dev"]["size"] == 10 and manifest_hash(manifest) == lineage["split_manifest_hash"]


def test_nothing_is_handed_on_when_no_step_beats_the_start(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = dict.fromkeys(range(0, 11, 2), 0.3) | {0: 0.5}
    with pytest.raises(NoImprovementError, match="no trained step beat the starting model"):
        run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script)
    assert not (tmp_path / "merged").exists()


def test_a_resumed_run_still_compares_with_the_start_it_logged(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = dict.fromkeys(range(0, 11, 2), 0.3) | {0: 0.5}
    with pytest.raises(NoImprovementError):
        run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script)
    with pytest.raises(NoImprovementError, match=r"step 0: 0\.500.*step 6: 0\.300"):  # step 0 from checkpoint-4's log
        run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script,
                         "--resume_from_checkpoint", str(tmp_path / "checkpoint-4"))  # fmt: skip
    script = script | {8: 0.9}
    run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script,
                     "--resume_from_checkpoint", str(tmp_path / "checkpoint-4"))  # fmt: skip
    selection = json.loads((tmp_path / "merged" / "lineage.json").read_text())["selection"]
    assert selection["start"]["accuracy"] == 0.5 and selection["selected"]["step"] == 8
    assert [record["step"] for record in selection["history"]] == [0, 2, 4, 6, 8, 10]


class TaskScriptedScorer(DevScorer):
    """Per-task dev accuracy by step from a script (the real `from_parts` gives each dev row its task): drives the
    real Trainer, `selection_outcome` and the per-task guard on a mixture without generating."""

    script: dict[int, dict[str, int]] = {}  # step -> task -> how many of its dev rows are right

    def score(self, model, tokenizer, step):
        right = dict(self.script[step])
        correct = []
        for task in self.tasks:
            correct.append(right[task] > 0)
            right[task] -= 1
        record = scored(step, correct, self.tasks)
        self.history.append(record)
        return record


def test_a_mixture_run_with_fail_hands_nothing_on_when_one_task_regresses(monkeypatch, tiny_model_dir, tmp_path):
    task = "{" + ", ".join(f"{name}: {{weight: 1, dataset_name: '{FIXTURES / name}.jsonl'}}" for name in TASKS_2) + "}"
    # start 7/14 (medqa 0/7, pubmedqa 7/7); step 2: 8/14 overall, but pubmedqa 7/7 -> 1/7 (McNemar p = 0.031)
    script = {0: {"medqa": 0, "pubmedqa": 7}, 2: {"medqa": 7, "pubmedqa": 1}}
    monkeypatch.setattr(TaskScriptedScorer, "script", script)
    monkeypatch.setattr(sft, "DevScorer", TaskScriptedScorer)
    args = load_recipe(
        "sft",
        "configs/demo/sft.yaml",
        ["--model_name_or_path", str(tiny_model_dir), "--task", task, "--dataset_name", "null",
         "--output_dir", str(tmp_path), "--sft_size", "20", "--grpo_size", "2", "--eval_size", "1",
         "--split_seed", "1",
         "--dev_size", "14", "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2",
         "--per_device_train_batch_size", "2", "--logging_steps", "1", "--max_length", "512",
         "--no_improvement_action", "fail"],
    )  # fmt: skip
    with pytest.raises(NoImprovementError, match=r"TASK REGRESSION: step 2 .* pubmedqa \(1/7 vs 7/7 at the start"):
        sft.run_sft(*args)
    assert not (tmp_path / "merged").exists(), "nothing is handed on"
