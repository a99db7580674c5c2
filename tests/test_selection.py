import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from signatures import bound_to
from transformers import TrainerControl, TrainerState

from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.splits import manifest_hash, splits_only
from fine_tune.data.synthetic import generate_canonical_rows, generate_rows, write_jsonl
from fine_tune.data.task_splits import phase_split, split_normalised
from fine_tune.errors import NoImprovementError
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.evaluate.stats import mcnemar_exact
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.recipes.loader import load_recipe
from fine_tune.recipes.trainer_configs import MedSFTConfig
from fine_tune.task.spec import resolve_task
from fine_tune.train import selection, sft
from fine_tune.train.selection import (
    DevScorer,
    TargetAccuracyCallback,
    carve_dev,
    check_improvement,
    selection_score,
    selection_summary,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def metrics(correct, schema_valid, n=10):
    return {"n": n, "correct": correct, "schema_valid": schema_valid}


def test_selection_score_is_accuracy_then_schema_pass():
    assert selection_score(metrics(5, 9)) > selection_score(metrics(5, 8))
    assert selection_score(metrics(6, 0)) > selection_score(metrics(5, 10)), "schema pass never outweighs a correct"
    assert selection_score(metrics(10, 10)) < 1.1


def split_synthetic(n, sizes):
    task = resolve_task("medmcqa")
    return split_normalised(task, normalise_dataset(task, generate_rows(n, seed=1)), sizes, 42, source=None)


def test_dev_slice_is_the_tail_of_the_phase_rows_and_recorded():
    result = split_synthetic(60, {"sft": 40, "grpo": 10, "eval": 10})
    manifest = result.manifest
    before = manifest_hash(manifest)
    [(train, dev)] = carve_dev([result.splits["sft"]], manifest, "sft", 8)
    assert len(train) == 32 and len(dev) == 8
    assert set(train["id"]).isdisjoint(dev["id"])
    assert manifest["dev"]["row_ids"] == dev["id"] and manifest["dev"]["phase"] == "sft"
    assert not set(dev["id"]) & set(manifest["splits"]["eval"]["row_ids"]), "dev never takes eval rows"
    assert manifest_hash(splits_only(manifest)) == before, "the shared splits hash ignores the dev record"


def test_dev_slice_cannot_take_every_row():
    result = split_synthetic(30, {"sft": 10, "grpo": 10, "eval": 10})
    with pytest.raises(ValueError, match="dev_size 10 leaves no sft rows"):
        carve_dev([result.splits["sft"]], result.manifest, "sft", 10)


def history(*accuracies, n=10):
    return [
        {
            "step": 10 * i,
            "n": n,
            "accuracy": a,
            "valid_json_rate": 1.0,
            "schema_pass_rate": 1.0,
            "score": selection_score(metrics(round(a * n), n, n)),
            "examples": ['{"predicted_category": "A"}'],
        }
        for i, a in enumerate(accuracies)
    ]


def test_no_trained_step_better_than_the_start_fails_loudly():
    records = history(0.6, 0.4, 0.5)
    summary = selection_summary(records, best_step=20)
    with pytest.raises(NoImprovementError, match=r"no trained step beat the starting model .*step 0: 0.600") as error:
        check_improvement(summary, records, "fail")
    assert error.value.exit_code == 3


def test_a_run_with_no_scored_trained_step_is_refused():
    records = history(0.6)
    with pytest.raises(NoImprovementError, match="no trained step was scored"):
        check_improvement(selection_summary(records, best_step=None), records, "fail")


def test_no_improvement_warn_mode_hands_on_the_best_step(caplog):
    records = history(0.6, 0.6)
    check_improvement(selection_summary(records, best_step=10), records, "warn")
    assert "NO IMPROVEMENT" in caplog.text


def test_an_improving_step_is_selected_and_recorded():
    records = history(0.2, 0.5, 0.4)
    summary = selection_summary(records, best_step=10)
    check_improvement(summary, records, "fail")
    assert summary["start"]["accuracy"] == 0.2 and summary["selected"] == {
        "step": 10,
        "n": 10,
        "accuracy": 0.5,
        "valid_json_rate": 1.0,
        "schema_pass_rate": 1.0,
    }


def test_target_callback_stops_at_the_target_but_never_on_the_start():
    callback = TargetAccuracyCallback(0.8)
    for step, accuracy, stops in ((0, 0.9, False), (10, 0.7, False), (20, 0.8, True)):
        control = TrainerControl()
        callback.on_evaluate(None, TrainerState(global_step=step), control, metrics={"eval_dev_accuracy": accuracy})
        assert control.should_training_stop is stops


def test_selection_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="need a dev slice"):
        MedSFTConfig(output_dir=str(tmp_path), report_to="none", target_accuracy=0.9)
    with pytest.raises(ValueError, match="no_improvement_action"):
        MedSFTConfig(output_dir=str(tmp_path), report_to="none", dev_size=4, no_improvement_action="ignore")
    config = MedSFTConfig(output_dir=str(tmp_path), report_to="none", dev_size=4, eval_steps=5, save_strategy="no")
    assert config.load_best_model_at_end and config.metric_for_best_model == "dev_score"
    assert config.save_strategy == "best" and config.eval_strategy == "steps" and config.eval_on_start


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


@pytest.mark.slow  # trains the tiny model through the real Trainer
def test_training_stops_at_the_target(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = {0: 0.0, 2: 0.2, 4: 0.5, 6: 0.8, 8: 0.9, 10: 1.0}
    run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script, "--target_accuracy", "0.8")
    lineage = json.loads((tmp_path / "merged" / "lineage.json").read_text())
    assert lineage["config"]["global_step"] == 6, "stops at the first evaluation that reaches the target"
    assert lineage["selection"]["selected"]["step"] == 6 and lineage["selection"]["start"]["accuracy"] == 0.0


@pytest.mark.slow  # trains the tiny model through the real Trainer
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


@pytest.mark.slow  # trains the tiny model through the real Trainer
def test_nothing_is_handed_on_when_no_step_beats_the_start(monkeypatch, tiny_model_dir, small_file, tmp_path):
    script = dict.fromkeys(range(0, 11, 2), 0.3) | {0: 0.5}
    with pytest.raises(NoImprovementError, match="no trained step beat the starting model"):
        run_scripted_sft(monkeypatch, tiny_model_dir, small_file, tmp_path, script)
    assert not (tmp_path / "merged").exists()


@pytest.mark.slow  # trains the tiny model through the real Trainer
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


def test_dev_scoring_uses_the_strict_greedy_eval(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = generate_canonical_rows(4, seed=2)
    scorer = DevScorer.from_rows(rows, batch_size=2, max_new_tokens=8)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "right"
    record = scorer.score(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, step=0)
    assert record["n"] == 4 and record["accuracy"] == 0.0 and record["valid_json_rate"] == 0.0
    assert tokenizer.padding_side == "right", "scoring restores the tokenizer's padding side"
    assert scorer.history == [record]


def test_selection_summary_without_a_start_or_best():
    assert selection_summary([], None) == {"metric": "eval_dev_score", "start": None, "selected": None, "history": []}


def test_a_resumed_run_says_the_start_was_not_checked(caplog):
    records = [{**record, "step": record["step"] + 100} for record in history(0.6, 0.4)]
    check_improvement(selection_summary(records, best_step=100), records, "fail")
    assert "NOT CHECKED" in caplog.text and "resumed at step 100" in caplog.text


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks"


def mixture_split():
    task = {name: {"weight": weight, "dataset_name": str(FIXTURES / f"{name}.jsonl")}
            for name, weight in (("medqa", 2), ("pubmedqa", 1))}  # fmt: skip
    return phase_split(SplitArguments(task=task, sft_size=9, grpo_size=2, eval_size=2, split_seed=1))


def test_a_mixtures_dev_slice_is_each_tasks_tail_in_proportion():
    split = mixture_split()
    manifest = split.manifest
    (medqa_train, medqa_dev), (pubmed_train, pubmed_dev) = carve_dev(
        [part.splits["sft"] for part in split.parts], manifest, "sft", 3
    )
    assert (len(medqa_train), len(medqa_dev), len(pubmed_train), len(pubmed_dev)) == (4, 2, 2, 1)
    ids = manifest["splits"]["sft"]["row_ids"]
    assert manifest["dev"]["row_ids"] == ids[4:6] + ids[8:9]
    assert [i.split("/")[0] for i in manifest["dev"]["row_ids"]] == ["medqa", "medqa", "pubmedqa"]
    assert medqa_dev["question"] == split.parts[0].splits["sft"]["question"][4:6]


def test_dev_rows_of_a_mixture_are_scored_with_their_own_tasks_letters(monkeypatch):
    split = mixture_split()
    parts = [(part.task, part.splits["sft"]) for part in split.parts]
    scorer = DevScorer.from_parts(parts, batch_size=4, max_new_tokens=8)
    answer = '{"predicted_category": "D", "confidence": 0.5, "reason": "r"}'
    n = len(scorer.golds)
    monkeypatch.setattr(
        selection,
        "generate_responses",
        bound_to(
            selection.generate_responses, lambda *a, **k: GenerationResult([answer] * n, [1] * n, [True] * n, 1.0)
        ),
    )
    record = scorer.score(model=None, tokenizer=type("T", (), {"padding_side": "left"})(), step=0)
    medqa_rows = len(split.parts[0].splits["sft"])
    assert [len(letters) for letters in scorer.letters] == [4] * medqa_rows + [3] * (n - medqa_rows)
    assert record["schema_pass_rate"] == medqa_rows / n, "D is no letter of PubMedQA's A-C"
    medqa_golds = scorer.golds[:medqa_rows]
    assert record["accuracy"] == medqa_golds.count("D") / n


def scored(step, correct, tasks):
    """A dev record as DevScorer writes it, from per-row correctness."""
    n, k = len(correct), sum(correct)
    return {"step": step, "n": n, "accuracy": k / n, "valid_json_rate": 1.0, "schema_pass_rate": 1.0,
            "score": selection_score(metrics(k, n, n)), "examples": [], "correct": correct,
            "per_task": selection.per_task_accuracy(tasks, correct)}  # fmt: skip


TASKS = ["medqa"] * 40 + ["pubmedqa"] * 12
TASKS_2 = ("medqa", "pubmedqa")


def test_a_mixture_step_that_wins_overall_but_loses_one_task_is_not_handed_on(caplog):
    start = scored(0, [True] * 10 + [False] * 30 + [True] * 12, TASKS)  # 22/52: medqa 10/40, pubmedqa 12/12
    chosen = scored(10, [True] * 40 + [False] * 12, TASKS)  # 40/52: medqa 40/40, pubmedqa 0/12
    history = [start, chosen]
    summary = selection_summary(history, best_step=10)
    assert summary["selected"]["per_task"] == {"medqa": 1.0, "pubmedqa": 0.0}
    with pytest.raises(NoImprovementError, match=r"TASK REGRESSION: step 10 .* pubmedqa \(0/12 vs 12/12 at the start"):
        check_improvement(summary, history, "fail", TASKS)
    check_improvement(summary, history, "warn", TASKS)
    assert "handing on step 10" in caplog.text
    check_improvement(summary, history, "fail", None)  # one task: the whole dev slice decides


def test_a_small_drop_on_one_task_is_within_noise(caplog):
    start = scored(0, [True] * 10 + [False] * 30 + [True] * 12, TASKS)
    chosen = scored(10, [True] * 40 + [True] * 10 + [False] * 2, TASKS)  # pubmedqa 10/12: McNemar p = 0.5
    caplog.set_level("INFO", logger=selection.__name__)
    check_improvement(selection_summary([start, chosen], best_step=10), [start, chosen], "fail", TASKS)
    assert "selected step 10: dev accuracy 0.962 (start accuracy 0.423)" in caplog.text
    assert "TASK REGRESSION" not in caplog.text


def drop_on_pubmedqa(lost: int, gained: int = 0):
    """Start and chosen records where pubmedqa loses `lost` rows and gains `gained` (discordant pairs), and medqa
    gains enough that the chosen step wins overall."""
    tasks = ["medqa"] * 40 + ["pubmedqa"] * 30
    pubmed_start = [True] * lost + [False] * gained + [True] * (30 - lost - gained)
    pubmed_chosen = [False] * lost + [True] * gained + [True] * (30 - lost - gained)
    start = scored(0, [False] * 40 + pubmed_start, tasks)
    chosen = scored(10, [True] * 40 + pubmed_chosen, tasks)
    return start, chosen, tasks


@pytest.mark.parametrize(
    ("lost", "gained", "flagged"),
    [
        (5, 0, False),  # p = 2 / 2**5 = 0.0625: just above 0.05
        (6, 0, True),  # p = 0.03125
        (17, 6, True),  # p = 0.0347
        (16, 6, False),  # p = 0.0525: just above 0.05
        (15, 5, True),  # p = 0.0414
    ],
)
def test_the_per_task_mcnemar_threshold_at_its_edge(lost, gained, flagged):
    start, chosen, tasks = drop_on_pubmedqa(lost, gained)
    p_value = mcnemar_exact(chosen["correct"][40:], start["correct"][40:])["mcnemar_p"]
    assert (p_value < 0.05) is flagged, p_value
    found = selection.task_regressions(start, chosen, tasks)
    assert [entry.split(" ")[0] for entry in found] == (["pubmedqa"] if flagged else [])


def test_a_p_value_equal_to_alpha_is_not_significant():
    start, chosen, tasks = drop_on_pubmedqa(5)  # p = 0.0625 exactly
    assert selection.task_regressions(start, chosen, tasks, alpha=0.0625) == []
    assert selection.task_regressions(start, chosen, tasks, alpha=0.0626) != []


def test_a_task_that_improved_is_never_a_regression():
    start, chosen, tasks = drop_on_pubmedqa(6)
    # reversed: medqa 40/40 -> 0/40 is flagged; pubmedqa 24/30 -> 30/30 (p = 0.03125) is a gain, never flagged
    assert [entry.split(" ")[0] for entry in selection.task_regressions(chosen, start, tasks)] == ["medqa"]


def mixture_trainer(history, tasks, best_step):
    """What `selection_outcome` reads from the Trainer: its dev scorer (tasks, history) and its state."""
    scorer = DevScorer([[]] * len(tasks), ["A"] * len(tasks), 1, 1, history=list(history), tasks=tasks)
    state = TrainerState()
    state.best_global_step = best_step
    return type("Trainer", (), {"dev_scorer": scorer, "state": state})()


def test_the_per_task_guard_runs_through_selection_outcome():
    start = scored(0, [True] * 10 + [False] * 30 + [True] * 12, TASKS)
    chosen = scored(10, [True] * 40 + [False] * 12, TASKS)
    with pytest.raises(NoImprovementError, match=r"TASK REGRESSION: step 10 .* pubmedqa \(0/12 vs 12/12"):
        selection.selection_outcome(mixture_trainer([start, chosen], TASKS, 10), "fail")
    summary = selection.selection_outcome(mixture_trainer([start, chosen], TASKS, 10), "warn")
    assert summary["selected"]["step"] == 10 and summary["selected"]["per_task"] == {"medqa": 1.0, "pubmedqa": 0.0}


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


@pytest.mark.slow  # trains the tiny model through the real Trainer
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
