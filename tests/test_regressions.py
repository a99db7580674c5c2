"""Regression flags: a model significantly worse than its lineage parent, matched across the ways a source is named."""

import json
from pathlib import Path

import pytest

from fine_tune.constants import ADAPTER_CONFIG_FILE, LINEAGE_FILE, MERGED_DIR
from fine_tune.evaluate.regressions import (
    REGRESSION_ALPHA,
    is_regression,
    paired_regression,
    parent_checks,
    regressions,
)
from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.scored_models import model_identities

N = 40


def run(label: str, source: str, correct: list[int], lineage: dict | None = None, status: str = "ok") -> ModelRun:
    resolved = {"kind": "full", "base": (lineage or {}).get("base"), "lineage": lineage}
    model = ModelRun(label, source, status=status, resolved=resolved)
    model.records = [{"correct": bool(c)} for c in correct] if status == "ok" else []
    return model


def outcomes(wrong: set[int], n: int = N) -> list[int]:
    return [0 if i in wrong else 1 for i in range(n)]


def make_training_output(root: Path, base: str) -> Path:
    """A training OUTPUT folder as saving writes it: adapter/ and merged/, each with its lineage record."""
    (root / "adapter").mkdir(parents=True)
    (root / "adapter" / ADAPTER_CONFIG_FILE).write_text(json.dumps({"base_model_name_or_path": base}))
    (root / "adapter" / LINEAGE_FILE).write_text(json.dumps({"phase": "sft", "base": base, "adapter_path": None}))
    (root / MERGED_DIR).mkdir()
    (root / MERGED_DIR / "config.json").write_text("{}")
    lineage = {"phase": "sft", "base": base, "adapter_path": str(root / "adapter")}
    (root / MERGED_DIR / LINEAGE_FILE).write_text(json.dumps(lineage))
    return root


def test_a_significantly_worse_child_is_flagged():
    parent = run("sft", "out/sft/merged", outcomes(set()), {"phase": "sft", "base": "Qwen/Qwen3-0.6B"})
    child = run("grpo", "out/grpo/merged", outcomes(set(range(8))), {"phase": "grpo", "base": "out/sft/merged"})
    unchecked, check = parent_checks([parent, child], resamples=200, seed=0)
    assert (unchecked["model"], unchecked["parent"], unchecked["regressed"]) == ("sft", None, False)
    assert (check["model"], check["parent"], check["phase"], check["regressed"]) == ("grpo", "sft", "grpo", True)
    assert (check["only_parent_right"], check["only_model_right"]) == (8, 0)
    assert check["mcnemar_p"] == pytest.approx(2 / 2**8) and check["mcnemar_p"] < REGRESSION_ALPHA
    assert check["diff"] == pytest.approx(-8 / N) and check["ci_high"] < 0
    assert regressions([check]) == [check]


@pytest.mark.parametrize(
    ("child_wrong", "parent_wrong"),
    [
        (set(), set()),  # equal
        ({0, 1, 2}, set()),  # worse, but 3 discordant pairs cannot reach p < 0.05
        (set(), set(range(8))),  # significantly better
        (set(range(10)), set(range(5, 15))),  # 5 vs 5 discordant: a swap, not a regression
    ],
)
def test_equal_better_or_not_significantly_worse_is_not_flagged(child_wrong, parent_wrong):
    parent = run("sft", "out/sft/merged", outcomes(parent_wrong))
    child = run("grpo", "out/grpo/merged", outcomes(child_wrong), {"phase": "grpo", "base": "out/sft/merged"})
    (check,) = parent_checks([parent, child], resamples=200, seed=0)
    assert check["parent"] == "sft" and not check["regressed"]


def test_the_smallest_significant_drop_is_flagged_and_one_less_is_not():
    # exact McNemar with no child-only wins: p = 2 / 2^k, below 0.05 from k = 6 discordant pairs
    parent = run("sft", "./s", outcomes(set()))
    for k, flagged in ((5, False), (6, True)):
        child = run("grpo", "./g", outcomes(set(range(k))), {"phase": "grpo", "base": "./s"})
        (check,) = parent_checks([parent, child], resamples=200, seed=0)
        assert check["regressed"] is flagged, k


def test_parent_not_scored_or_failed_is_reported_unchecked():
    child = run("grpo", "out/grpo/merged", outcomes(set(range(20))), {"phase": "grpo", "base": "out/sft/merged"})
    failed = run("sft", "out/sft/merged", [], status="failed")
    base = run("base", "Qwen/Qwen3-0.6B", outcomes(set()))
    (check,) = parent_checks([base, failed, child], resamples=200, seed=0)
    assert (check["model"], check["parent"], check["regressed"]) == ("grpo", None, False)
    assert check["parent_source"] == "out/sft/merged"
    assert parent_checks([base], resamples=200, seed=0) == []  # no lineage: nothing to check


def test_an_adapter_without_lineage_is_checked_against_the_base_it_is_loaded_onto():
    base = run("base", "Qwen/Qwen3-0.6B", outcomes(set()))
    adapter = run("lora", "someone/lora", outcomes(set(range(10))))
    adapter.resolved.update(kind="adapter", base="Qwen/Qwen3-0.6B")
    full = run("full", "someone/full", outcomes(set(range(10))))
    full.resolved["base"] = "Qwen/Qwen3-0.6B"  # a full model's base is only trusted from its lineage
    (check,) = parent_checks([base, adapter, full], resamples=200, seed=0)
    assert (check["model"], check["parent"], check["phase"], check["regressed"]) == ("lora", "base", None, True)


def test_hub_ids_match_case_insensitively():
    base = run("base", "qwen/qwen3-0.6b", outcomes(set()))
    sft = run("sft", "./sft", outcomes(set(range(10))), {"phase": "sft", "base": "Qwen/Qwen3-0.6B"})
    (check,) = parent_checks([base, sft], resamples=200, seed=0)
    assert check["parent"] == "base" and check["regressed"]


@pytest.mark.parametrize("parent_as", ["output_folder", "merged", "adapter"])
def test_parent_matched_through_its_training_output_folder_merged_model_or_adapter(tmp_path, parent_as):
    sft = make_training_output(tmp_path / "sft", "Qwen/Qwen3-0.6B")
    source = {"output_folder": sft, "merged": sft / MERGED_DIR, "adapter": sft / "adapter"}[parent_as]
    path = sft / MERGED_DIR if parent_as == "output_folder" else source  # what resolve_source makes of it
    parent = run("sft", str(source), outcomes(set()), json.loads((path / LINEAGE_FILE).read_text()))
    parent.resolved["path"] = str(path)
    child = run("grpo", "g", outcomes(set(range(10))), {"phase": "grpo", "base": str(sft / MERGED_DIR)})
    other = run("other", str(tmp_path), outcomes(set()))  # a folder above the parent is not the parent
    checks = parent_checks([other, parent, child], resamples=200, seed=0)
    matched = [(c["model"], c["parent"], c["regressed"]) for c in checks if c["parent"] is not None]
    assert matched == [("grpo", "sft", True)]


def test_relative_paths_match_the_same_folder_written_differently(tmp_path, monkeypatch):
    make_training_output(tmp_path / "outputs" / "sft", "Qwen/Qwen3-0.6B")
    monkeypatch.chdir(tmp_path)
    assert model_identities("outputs/sft") & model_identities(str(tmp_path / "outputs" / "sft" / "merged"))
    assert model_identities("./outputs/sft/adapter") & model_identities("outputs/sft/merged/")
    assert not model_identities("outputs/sft/adapter") & model_identities("Qwen/Qwen3-0.6B")
    assert model_identities("missing/run/merged") == model_identities("./missing/run/merged")


def test_the_check_records_the_comparison_and_is_reproducible_by_seed():
    parent = run("sft", "out/sft/merged", outcomes({0}), {"phase": "sft", "base": "Qwen/Qwen3-0.6B"})
    child = run("grpo", "out/grpo/merged", outcomes(set(range(9))), {"phase": "grpo", "base": "out/sft/merged"})
    check = parent_checks([parent, child], resamples=200, seed=0)[1]
    assert {key: check[key] for key in ("n", "accuracy", "parent_accuracy")} == {
        "n": N,
        "accuracy": (N - 9) / N,
        "parent_accuracy": (N - 1) / N,
    }
    assert check["ci_low"] < check["diff"] < check["ci_high"] < 0
    assert (check["parent_source"], check["alpha"]) == ("out/sft/merged", REGRESSION_ALPHA)
    again = parent_checks([parent, child], resamples=200, seed=0)[1]
    assert (again["ci_low"], again["ci_high"]) == (check["ci_low"], check["ci_high"]), "the seed fixes the bootstrap"


def test_a_p_value_equal_to_alpha_is_not_a_regression():
    parent = run("sft", "out/sft/merged", outcomes(set()), {"phase": "sft", "base": "Qwen/Qwen3-0.6B"})
    child = run("grpo", "out/grpo/merged", outcomes(set(range(8))), {"phase": "grpo", "base": "out/sft/merged"})
    p_value = 2 / 2**8
    assert parent_checks([parent, child], resamples=50, seed=0, alpha=p_value)[1]["regressed"] is False
    assert parent_checks([parent, child], resamples=50, seed=0, alpha=p_value * 1.01)[1]["regressed"] is True


def lost_and_gained(lost: int, gained: int, same: int = 4) -> tuple[list[bool], list[bool]]:
    """(model, start) correctness: the model loses `lost` rows the start had and gains `gained` it had not."""
    start = [True] * lost + [False] * gained + [True] * same
    model = [False] * lost + [True] * gained + [True] * same
    return model, start


@pytest.mark.parametrize(
    ("lost", "gained", "alpha", "regressed"),
    [
        (6, 0, REGRESSION_ALPHA, True),  # exact McNemar p = 2 / 2**6 = 0.031
        (5, 0, REGRESSION_ALPHA, False),  # p = 0.0625
        (5, 0, 0.1, True),
        (0, 6, REGRESSION_ALPHA, False),  # as significant, but better
    ],
)
def test_a_paired_regression_is_lower_accuracy_on_the_same_rows_at_p_below_alpha(lost, gained, alpha, regressed):
    model, start = lost_and_gained(lost, gained)
    n = lost + gained + 4
    check = paired_regression(model, start, alpha)
    assert check == {
        "n": n,
        "diff": pytest.approx((gained - lost) / n),
        "b01": lost,
        "b10": gained,
        "mcnemar_p": pytest.approx(2 * 0.5 ** max(lost, gained)),
        "alpha": alpha,
        "regressed": regressed,
    }


def test_a_paired_regression_reads_truthy_outcomes_and_no_rows_is_no_regression():
    assert paired_regression([1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1])["diff"] == pytest.approx(-6 / 7)
    assert paired_regression([], []) == {
        "n": 0, "diff": 0.0, "b01": 0, "b10": 0, "mcnemar_p": 1.0, "alpha": REGRESSION_ALPHA, "regressed": False
    }  # fmt: skip


def test_the_default_rule_is_p_below_five_percent():
    assert REGRESSION_ALPHA == 0.05
    assert is_regression(-0.1, 0.049) and not is_regression(-0.1, 0.05) and not is_regression(0.1, 0.001)
    assert paired_regression(*lost_and_gained(6, 0))["alpha"] == 0.05
