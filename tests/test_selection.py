"""Held-out selection without training: the dev slice, the stop rules, the summary and the refusals."""

import math

import pytest
from dev_records import (
    FIXTURES,
    TASKS_2,
    TEXT_ROWS,
    TEXT_TASK,
    history,
    metrics,
    mixture_split,
    scored,
    selection_logs,
)
from transformers import EarlyStoppingCallback, TrainerControl, TrainerState

from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.splits import manifest_hash, splits_only
from fine_tune.data.synthetic import generate_rows
from fine_tune.data.task_splits import phase_split, split_normalised
from fine_tune.errors import NoImprovementError
from fine_tune.evaluate.stats import mcnemar_exact
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.recipes.trainer_configs import MedSFTConfig
from fine_tune.task.spec import parse_task_spec, resolve_task
from fine_tune.train import selection
from fine_tune.train.selection import (
    DevScorer,
    TargetAccuracyCallback,
    carve_dev,
    check_improvement,
    selection_score,
    selection_summary,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


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


def test_selection_summary_without_a_start_or_best():
    assert selection_summary([], None) == {"metric": "eval_dev_score", "start": None, "selected": None, "history": []}


def test_a_resumed_run_says_the_start_was_not_checked(caplog):
    records = [{**record, "step": record["step"] + 100} for record in history(0.6, 0.4)]
    check_improvement(selection_summary(records, best_step=100), records, "fail")
    assert "NOT CHECKED" in caplog.text and "resumed at step 100" in caplog.text


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


TASKS = ["medqa"] * 40 + ["pubmedqa"] * 12


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


def trainer_with(scorer, best_step, log_history=()):
    """What `selection_outcome` reads from the Trainer: its dev scorer and its state (the log: a checkpoint's)."""
    state = TrainerState(log_history=list(log_history))
    state.best_global_step = best_step
    return type("Trainer", (), {"dev_scorer": scorer, "state": state})()


def mixture_trainer(history, tasks, best_step):
    scorer = DevScorer([[]] * len(tasks), ["A"] * len(tasks), 1, 1, history=list(history), tasks=tasks)
    return trainer_with(scorer, best_step)


def test_the_per_task_guard_runs_through_selection_outcome():
    start = scored(0, [True] * 10 + [False] * 30 + [True] * 12, TASKS)
    chosen = scored(10, [True] * 40 + [False] * 12, TASKS)
    with pytest.raises(NoImprovementError, match=r"TASK REGRESSION: step 10 .* pubmedqa \(0/12 vs 12/12"):
        selection.selection_outcome(mixture_trainer([start, chosen], TASKS, 10), "fail")
    summary = selection.selection_outcome(mixture_trainer([start, chosen], TASKS, 10), "warn")
    assert summary["selected"]["step"] == 10 and summary["selected"]["per_task"] == {"medqa": 1.0, "pubmedqa": 0.0}


def test_selection_score_is_exactly_accuracy_plus_the_schema_tie_break():
    assert selection_score(metrics(5, 10)) == pytest.approx(0.5 + 10 / 110)
    assert selection_score(metrics(0, 4, n=4)) == pytest.approx(4 / 20)


def test_no_dev_size_carves_nothing_and_records_nothing():
    result = split_synthetic(30, {"sft": 10, "grpo": 10, "eval": 10})
    sft_rows = result.splits["sft"]
    assert carve_dev([sft_rows], result.manifest, "sft", 0) == [(sft_rows, None)]
    assert "dev" not in result.manifest


def test_the_dev_record_names_phase_size_rows_and_content_hashes():
    result = split_synthetic(30, {"sft": 10, "grpo": 10, "eval": 10})
    split = result.manifest["splits"]["grpo"]
    [(train, dev)] = carve_dev([result.splits["grpo"]], result.manifest, "grpo", 9)  # all but one row
    assert (len(train), len(dev)) == (1, 9)
    assert result.manifest["dev"] == {
        "phase": "grpo",
        "size": 9,
        "row_ids": split["row_ids"][1:],
        "content_hashes": split["content_hashes"][1:],
    }


def test_dev_size_equal_to_the_rows_is_refused_with_its_own_message():
    result = split_synthetic(30, {"sft": 10, "grpo": 10, "eval": 10})
    with pytest.raises(ValueError, match=r"^dev_size 10 leaves no sft rows to train on \(10 in the split\)$"):
        carve_dev([result.splits["sft"]], result.manifest, "sft", 10)


def test_a_mixture_task_whose_share_takes_all_its_rows_is_refused():
    split = mixture_split()  # sft: medqa 6 rows, pubmedqa 3; 8 dev rows share out as 5 + 3
    parts = [part.splits["sft"] for part in split.parts]
    with pytest.raises(ValueError, match=r"^dev_size 8 leaves no sft rows of one task to train on \(3 rows\)$"):
        carve_dev(parts, split.manifest, "sft", 8)


def test_a_mixture_task_with_no_dev_share_keeps_all_its_rows():
    split = mixture_split()
    parts = [part.splits["sft"] for part in split.parts]
    (medqa_train, medqa_dev), (pubmed_train, pubmed_dev) = carve_dev(parts, split.manifest, "sft", 1)
    assert (len(medqa_train), len(medqa_dev), len(pubmed_train), pubmed_dev) == (5, 1, 3, None)
    assert split.manifest["dev"]["row_ids"] == split.manifest["splits"]["sft"]["row_ids"][5:6]


def test_a_three_task_mixtures_dev_rows_are_each_tasks_tail():
    task = {name: {"weight": 1, "dataset_name": str(FIXTURES / f"{name}.jsonl")} for name in (*TASKS_2, "headqa")}
    split = phase_split(SplitArguments(task=task, sft_size=9, grpo_size=3, eval_size=2, split_seed=1))
    carved = carve_dev([part.splits["sft"] for part in split.parts], split.manifest, "sft", 3)
    assert [(len(train), len(dev)) for train, dev in carved] == [(2, 1)] * 3
    ids = split.manifest["splits"]["sft"]["row_ids"]
    assert split.manifest["dev"]["row_ids"] == [ids[2], ids[5], ids[8]]
    assert [i.split("/")[0] for i in split.manifest["dev"]["row_ids"]] == ["medqa", "pubmedqa", "headqa"]


def test_target_perplexity_stops_at_or_below_the_target_but_never_on_the_start(caplog):
    caplog.set_level("INFO", logger=selection.__name__)
    callback = selection.TargetPerplexityCallback(10.0)
    for step, metrics_, stops in (
        (0, {"eval_dev_perplexity": 2.0}, False),
        (10, {"eval_dev_perplexity": 10.5}, False),
        (10, {"eval_dev_score": -1.0}, False),
        (10, None, False),
        (20, {"eval_dev_perplexity": 10.0}, True),
        (1, {"eval_dev_perplexity": 3.0}, True),  # the first trained step
    ):
        control = TrainerControl()
        callback.on_evaluate(None, TrainerState(global_step=step), control, metrics=metrics_)
        assert control.should_training_stop is stops, (step, metrics_)
    assert selection_logs(caplog) == [
        ("INFO", "dev perplexity 10.000 reached the target 10.000 at step 20"),
        ("INFO", "dev perplexity 3.000 reached the target 10.000 at step 1"),
    ]


def test_target_accuracy_says_when_it_stops_and_ignores_missing_metrics(caplog):
    caplog.set_level("INFO", logger=selection.__name__)
    callback = TargetAccuracyCallback(0.75)
    for metrics_ in (None, {"eval_dev_score": 1.0}):
        control = TrainerControl()
        callback.on_evaluate(None, TrainerState(global_step=4), control, metrics=metrics_)
        assert not control.should_training_stop
    control = TrainerControl()
    callback.on_evaluate(None, TrainerState(global_step=1), control, metrics={"eval_dev_accuracy": 0.8})
    assert control.should_training_stop, "the first trained step can reach the target"
    assert selection_logs(caplog) == [("INFO", "dev accuracy 0.800 reached the target 0.750 at step 1")]


def selection_config(tmp_path, **values):
    return MedSFTConfig(output_dir=str(tmp_path), report_to="none", dev_size=4, eval_steps=5, save_strategy="no",
                        **values)  # fmt: skip


def test_the_recipes_stop_rules_become_callbacks(tmp_path):
    assert selection.selection_callbacks(selection_config(tmp_path)) == []
    patience, accuracy, perplexity = selection.selection_callbacks(
        selection_config(tmp_path, early_stopping_patience=2, target_accuracy=0.9, target_perplexity=5.0)
    )
    assert type(patience) is EarlyStoppingCallback and patience.early_stopping_patience == 2
    assert type(accuracy) is TargetAccuracyCallback and accuracy.target == 0.9
    assert type(perplexity) is selection.TargetPerplexityCallback and perplexity.target == 5.0
    [only] = selection.selection_callbacks(selection_config(tmp_path, target_perplexity=1.0))
    assert type(only) is selection.TargetPerplexityCallback and only.target == 1.0


def test_headline_and_per_task_accuracy():
    assert selection.headline({"perplexity": 12.3456, "accuracy": 0.5}) == "perplexity 12.346"
    assert selection.headline({"accuracy": 0.5}) == "accuracy 0.500"
    accuracy = selection.per_task_accuracy(["b", "a", "b", "a", "b"], [True, False, True, True, False])
    assert list(accuracy) == ["b", "a"] and accuracy == {"b": pytest.approx(2 / 3), "a": 0.5}


def test_the_summary_keeps_the_reported_fields_of_start_selected_and_every_evaluation():
    start = {**scored(0, [True, False, True, False], TASKS_2 * 2), "perplexity": 9.0, "tokens": 40}
    best = scored(10, [True, True, True, False], TASKS_2 * 2)
    summary = selection_summary([start, best], best_step=10)
    kept = {"step", "n", "accuracy", "valid_json_rate", "schema_pass_rate", "per_task"}
    assert summary["metric"] == "eval_dev_score"
    assert summary["start"] == {key: start[key] for key in (*kept, "perplexity", "tokens")}
    assert summary["selected"] == {key: best[key] for key in kept}
    assert summary["history"] == [summary["start"], summary["selected"]]
    assert selection_summary([start, best], best_step=0)["selected"] == summary["start"], "step 0 can be the best"
    assert selection_summary([best], best_step=20) == {
        "metric": "eval_dev_score", "start": None, "selected": None, "history": [summary["selected"]],
    }  # fmt: skip


def log_entry(step, accuracy, score):
    return {"eval_dev_accuracy": accuracy, "eval_dev_valid_json": 1.0, "eval_dev_schema_pass": 1.0,
            "eval_dev_score": score, "epoch": 1.0, "step": step}  # fmt: skip


def test_the_logged_history_is_the_dev_evaluations_of_the_trainers_log():
    log = [{"loss": 2.0, "step": 2}, log_entry(0, 0.5, 0.55), {"eval_loss": 1.0, "step": 2}, log_entry(4, 0.6, 0.65)]
    assert selection.logged_history(log, n=10) == [
        {"step": 0, "n": 10, "accuracy": 0.5, "valid_json_rate": 1.0, "schema_pass_rate": 1.0, "score": 0.55,
         "examples": []},
        {"step": 4, "n": 10, "accuracy": 0.6, "valid_json_rate": 1.0, "schema_pass_rate": 1.0, "score": 0.65,
         "examples": []},
    ]  # fmt: skip
    text = [{"eval_dev_perplexity": 9.0, "eval_dev_score": -2.2, "step": 0}]
    assert selection.logged_history(text, 3, {"perplexity": "dev_perplexity", "score": "dev_score"}) == [
        {"step": 0, "n": 3, "perplexity": 9.0, "score": -2.2, "examples": []}
    ]


def test_the_outcome_merges_the_checkpoints_log_with_this_processs_scores(caplog):
    caplog.set_level("INFO", logger=selection.__name__)
    this_process = [scored(step, [True] * k + [False] * (10 - k), ["medmcqa"] * 10) for step, k in ((4, 6), (6, 7))]
    scorer = DevScorer([[]] * 10, ["A"] * 10, 1, 1, history=this_process, tasks=["medmcqa"] * 10)
    log = [log_entry(0, 0.5, 0.55), log_entry(4, 0.1, 0.15), {"loss": 1.0, "step": 5}]
    summary = selection.selection_outcome(trainer_with(scorer, 6, log), "fail")
    assert [(r["step"], r["n"], r["accuracy"]) for r in summary["history"]] == [
        (0, 10, 0.5),
        (4, 10, 0.6),
        (6, 10, 0.7),
    ]
    assert summary["start"]["accuracy"] == 0.5 and summary["selected"]["step"] == 6
    assert selection_logs(caplog) == [("INFO", "selected step 6: dev accuracy 0.700 (start accuracy 0.500)")]


def test_the_outcome_of_a_text_task_reads_the_perplexity_log():
    scorer = DevScorer.from_parts([(parse_task_spec(TEXT_TASK), TEXT_ROWS)], 1, 0)
    scorer.history.append({"step": 4, "n": 2, "tokens": 9, "perplexity": 7.0, "score": -1.9, "examples": []})
    log = [{"eval_dev_perplexity": 9.0, "eval_dev_score": -2.2, "step": 0}]
    summary = selection.selection_outcome(trainer_with(scorer, 4, log), "fail")
    assert summary["start"] == {"step": 0, "n": 2, "perplexity": 9.0}
    assert summary["selected"] == {"step": 4, "n": 2, "perplexity": 7.0, "tokens": 9}


def test_no_dev_slice_no_outcome():
    assert selection.selection_outcome(trainer_with(None, None), "fail") is None


def test_a_task_regression_is_described_with_both_counts_and_the_p_value():
    start, chosen, tasks = drop_on_pubmedqa(6)
    assert selection.task_regressions(start, chosen, tasks) == ["pubmedqa (24/30 vs 30/30 at the start, p=0.0312)"]


def test_the_per_task_guard_refuses_or_warns_with_the_regression(caplog):
    start, chosen, tasks = drop_on_pubmedqa(6)
    message = (
        "TASK REGRESSION: step 10 beats the start on the whole dev slice but is significantly worse (exact McNemar) "
        "on pubmedqa (24/30 vs 30/30 at the start, p=0.0312)"
    )
    with pytest.raises(NoImprovementError) as error:
        selection.check_tasks(start, chosen, tasks, "fail")
    assert str(error.value) == message + ". Nothing is handed on (no_improvement_action: warn keeps it anyway)."
    assert error.value.exit_code == 3
    selection.check_tasks(start, chosen, tasks, "warn")
    assert selection_logs(caplog) == [("WARNING", message + ". no_improvement_action is 'warn': handing on step 10.")]


def test_every_regressing_task_is_named():
    tasks = ["a"] * 6 + ["b"] * 6 + ["c"] * 6
    start = scored(0, [True] * 12 + [False] * 6, tasks)
    chosen = scored(10, [False] * 12 + [True] * 6, tasks)
    with pytest.raises(NoImprovementError, match=r"on a \(0/6 vs 6/6 at the start, p=0.0312\); b \(0/6 vs 6/6"):
        selection.check_tasks(start, chosen, tasks, "fail")


def test_answers_and_tasks_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="shorter"):
        selection.per_task_accuracy(["a", "b", "a"], [True, False])


def test_the_per_task_guard_needs_two_tasks_and_every_rows_answer(caplog):
    start, chosen, tasks = drop_on_pubmedqa(6)
    selection.check_tasks(start, chosen, ["pubmedqa"] * 70, "fail")  # one task: the whole dev slice decides
    selection.check_tasks(start, chosen, None, "fail")
    assert selection_logs(caplog) == []
    resumed = "NOT CHECKED per task: the dev answers of step 0 or step 10 came from a checkpoint's log (resumed run)"
    for before, after in ((start, without_answers(chosen)), (without_answers(start), chosen)):
        caplog.clear()
        selection.check_tasks(before, after, tasks, "fail")
        assert selection_logs(caplog) == [("WARNING", resumed)]


def without_answers(record):
    return {key: value for key, value in record.items() if key != "correct"}


def test_a_resumed_run_without_its_start_is_not_checked_and_says_so(caplog):
    records = [{**record, "step": record["step"] + 100} for record in history(0.6, 0.4)]
    check_improvement(selection_summary(records, best_step=100), records, "fail")
    assert selection_logs(caplog) == [
        (
            "WARNING",
            "NOT CHECKED: this run resumed at step 100, so the starting model's dev score is not known here and no "
            "step could be compared with it; rerun from step 0 to check for an improvement",
        )
    ]
    caplog.clear()
    check_improvement(selection_summary([], best_step=None), [], "fail")
    assert selection_logs(caplog) == []


def test_no_scored_trained_step_refuses_or_warns_with_the_reason(caplog):
    records = history(0.6)
    message = (
        "NO IMPROVEMENT: no trained step was scored on the 10-row dev slice (is max_steps below eval_steps?), so "
        "nothing shows the model beats its start"
    )
    with pytest.raises(NoImprovementError) as error:
        check_improvement(selection_summary(records, best_step=None), records, "fail")
    assert str(error.value) == f"{message}. Nothing is handed on. {selection.SMOKE_RUN_HINT}"
    check_improvement(selection_summary(records, best_step=None), records, "warn")
    assert selection_logs(caplog) == [
        ("WARNING", f"{message}. no_improvement_action is 'warn': handing on the last step.")
    ]


def test_no_improvement_names_the_trajectory_and_the_latest_answers(caplog):
    records = history(0.6, 0.5, 0.4)
    records[-1]["examples"] = ["x" * 130, "B"]
    message = (
        "NO IMPROVEMENT: no trained step beat the starting model on the 10-row dev slice (dev strict accuracy "
        f"step 0: 0.600, step 10: 0.500, step 20: 0.400; start schema pass 1.000). Latest dev answers: '{'x' * 120}'; "
        "'B'"
    )
    summary = selection_summary(records, best_step=10)
    with pytest.raises(NoImprovementError) as error:
        check_improvement(summary, records, "fail")
    assert str(error.value) == f"{message}. Nothing is handed on. {selection.SMOKE_RUN_HINT}"
    check_improvement(summary, records, "warn")
    assert selection_logs(caplog) == [
        ("WARNING", f"{message}. no_improvement_action is 'warn': handing on trained step 10.")
    ]


def perplexities(*values):
    return [{"step": 4 * i, "n": 2, "tokens": 9, "perplexity": p, "score": -math.log(p), "examples": []}
            for i, p in enumerate(values)]  # fmt: skip


def test_a_text_task_is_checked_on_its_perplexity(caplog):
    caplog.set_level("INFO", logger=selection.__name__)
    worse = perplexities(5.0, 6.0)
    with pytest.raises(NoImprovementError) as error:
        check_improvement(selection_summary(worse, best_step=4), worse, "fail")
    assert str(error.value).startswith(
        "NO IMPROVEMENT: no trained step beat the starting model on the 2-row dev slice (dev perplexity step 0: "
        "5.000, step 4: 6.000). Latest dev answers: none (perplexity). Nothing is handed on."
    )
    better = perplexities(5.0, 4.0)
    check_improvement(selection_summary(better, best_step=4), better, "fail")
    assert selection_logs(caplog) == [("INFO", "selected step 4: dev perplexity 4.000 (start perplexity 5.000)")]
