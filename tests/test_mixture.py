"""The `task` key as a weighted mixture: its forms, the weights' shares of the split sizes, and what is refused."""

import pytest

from fine_tune.errors import RecipeError
from fine_tune.recipes.arguments import EvalConfig, SplitArguments
from fine_tune.task.mixture import MixtureEntry, apportion, mixture_sizes, parse_task_mixture


def test_one_task_is_one_entry_of_weight_one():
    assert parse_task_mixture("medqa") == (MixtureEntry("medqa"),)
    assert parse_task_mixture("configs/tasks/medqa.yaml") == (MixtureEntry("configs/tasks/medqa.yaml"),)


def test_every_form_gives_the_same_entries():
    expected = (MixtureEntry("medqa", 2.0), MixtureEntry("headqa", 1.0, "data/headqa.jsonl"))
    flow = "{medqa: 2, headqa: {dataset_name: data/headqa.jsonl}}"
    listed = [{"task": "medqa", "weight": 2}, {"task": "headqa", "dataset_name": "data/headqa.jsonl"}]
    for value in ({"medqa": 2, "headqa": {"dataset_name": "data/headqa.jsonl"}}, flow, listed):
        assert parse_task_mixture(value) == expected, value
    assert parse_task_mixture(" medqa:2 , headqa ") == (MixtureEntry("medqa", 2.0), MixtureEntry("headqa"))
    assert parse_task_mixture("medqa:0.5,headqa:1.5")[0].weight == 0.5


def test_a_path_with_a_colon_is_a_name_not_a_weight():
    assert parse_task_mixture(r"C:\tasks\mine.yaml") == (MixtureEntry(r"C:\tasks\mine.yaml"),)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("medqa:0,headqa", "medqa: weight must be a finite number > 0, got '0'"),
        ("medqa:-1,headqa", "weight must be a finite number > 0"),
        ({"medqa": "lots"}, "medqa: weight must be a number > 0, got 'lots'"),
        ({"medqa": float("nan")}, "weight must be a finite number > 0"),
        ("medqa,medqa:2", "medqa listed more than once"),
        ({"medqa": {"wieght": 2}}, "medqa: unknown key 'wieght'; expected weight, dataset_name"),
        ([{"weight": 2}], "a list item needs a 'task' key"),
        ("{medqa: [", "is not a YAML mapping or list"),
        (",", "no task given"),
        (3, "expected a name, a list or a mapping, got int"),
    ],
)
def test_bad_mixtures_are_one_line_naming_the_entry(value, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_task_mixture(value)


@pytest.mark.parametrize(
    ("total", "weights", "shares"),
    [
        (6, [2, 1], [4, 2]),
        (2, [2, 1], [1, 1]),  # remainders 0.33 and 0.67: the larger gets the last row
        (10, [1, 1, 1], [4, 3, 3]),  # equal remainders: the earlier entry first
        (1000, [0.7, 0.2, 0.1], [700, 200, 100]),
        (0, [1, 3], [0, 0]),
    ],
)
def test_apportion_is_proportional_and_exact(total, weights, shares):
    assert apportion(total, weights) == shares


def test_apportion_is_within_one_row_of_the_exact_share():
    for total in range(0, 60, 7):
        weights = [0.3, 1.7, 2.0, 0.01]
        shares = apportion(total, weights)
        assert sum(shares) == total
        assert all(abs(s - total * w / sum(weights)) < 1 for s, w in zip(shares, weights, strict=True))


def test_weights_share_the_training_splits_and_every_task_gets_eval_size():
    entries = parse_task_mixture("medqa:3,headqa:1")
    assert mixture_sizes({"sft": 1000, "grpo": 500, "eval": 200}, entries) == [
        {"sft": 750, "grpo": 375, "eval": 200},
        {"sft": 250, "grpo": 125, "eval": 200},
    ]


def test_a_task_left_without_rows_of_a_split_is_refused():
    with pytest.raises(
        RecipeError, match=r"headqa \(weight 1\) gets no grpo rows of 2: raise grpo_size or its weight"
    ):
        mixture_sizes({"sft": 100, "grpo": 2, "eval": 5}, parse_task_mixture("medqa:4,headqa:1"))
    assert mixture_sizes({"sft": 4, "grpo": 0, "eval": 1}, parse_task_mixture("a,b"))[1]["grpo"] == 0


def test_recipe_keys_of_a_mixture():
    args = SplitArguments(task="medqa:2,headqa", sft_size=30, grpo_size=6, eval_size=4)
    assert args.is_mixture and args.task_label == "medqa+headqa"
    assert not SplitArguments(task="configs/tasks/medqa.yaml").is_mixture
    with pytest.raises(RecipeError, match="dataset_name names one task's data but task is a mixture of medqa, headqa"):
        SplitArguments(task="medqa,headqa", dataset_name="rows.jsonl")
    assert SplitArguments(task="medqa,headqa", dataset_name="null").dataset_name is None
    with pytest.raises(RecipeError, match="gets no grpo rows"):
        SplitArguments(task="medqa:9,headqa", grpo_size=5)
    config = EvalConfig(models="b=x", task={"medqa": 1, "pubmedqa": 1}, eval_split="official", limit=5)
    assert config.resolved_run_name == "medqa+pubmedqa-official-limit5"
