from collections import Counter

import pytest

from fine_tune.data.mixture import interleave, parse_task_list, share_sizes
from fine_tune.errors import RecipeError


def test_task_lists_and_weights():
    assert parse_task_list("medmcqa") == {"medmcqa": 1.0}
    assert parse_task_list("medqa:2, medmcqa") == {"medqa": 2.0, "medmcqa": 1.0}
    assert parse_task_list("configs/tasks/mine.yaml:0.5") == {"configs/tasks/mine.yaml": 0.5}
    assert parse_task_list(["medqa", "headqa"]) == {"medqa": 1.0, "headqa": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("medqa:0", "must be a positive number"),
        ("medqa,medqa", "listed twice"),
        (" ", "expected a task"),
        (":2", "empty task name"),
        ("medqa:-1", "must be a positive number"),
    ],
)
def test_bad_task_lists(text, message):
    with pytest.raises(RecipeError, match=message):
        parse_task_list(text)


def test_sizes_are_shared_by_weight_and_sum_exactly():
    shares = share_sizes({"sft": 1000, "grpo": 500, "eval": 7}, {"medqa": 2, "medmcqa": 1, "headqa": 1})
    assert shares["medqa"] == {"sft": 500, "grpo": 250, "eval": 3}  # 3.5, 1.75, 1.75: remainders .75 win
    assert [sum(s[split] for s in shares.values()) for split in ("sft", "grpo", "eval")] == [1000, 500, 7]
    assert share_sizes({"sft": 3}, {"a": 1, "b": 1}) == {"a": {"sft": 2}, "b": {"sft": 1}}


def test_interleave_is_seeded_and_keeps_every_example():
    examples = {"a": [{"i": n} for n in range(6)], "b": [{"i": n} for n in range(3)]}
    mixed = interleave(examples, seed=1)
    assert Counter(e["task"] for e in mixed) == {"a": 6, "b": 3}
    assert mixed == interleave(examples, seed=1) and mixed != interleave(examples, seed=2)
