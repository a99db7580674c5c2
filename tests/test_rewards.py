import json
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st
from signatures import bound_to
from trl import GRPOTrainer

from fine_tune.errors import RecipeError
from fine_tune.task.prompts import grpo_example, target_response
from fine_tune.task.rewards import (
    REWARD_FUNCS,
    REWARD_MODES,
    accuracy_reward,
    calibration_reward,
    check_reward_columns,
    gated_accuracy_reward,
    get_reward_funcs,
    json_validity_reward,
    required_columns,
    schema_compliance_reward,
)

ROW = {"question": "Which?", "options": ["w", "x", "y", "z"], "answer": 1, "exp": "Because x."}
VALID_B = target_response(ROW)
VALID_C = json.dumps({"predicted_category": "C", "confidence": 0.6, "reason": "Guess."})
BAD_KEYS_B = json.dumps({"predicted_category": "B", "confidence": 0.6})
CONTENTS = [VALID_B, VALID_C, BAD_KEYS_B, f"```json\n{VALID_B}\n```", "B"]


def trl_call(reward_func, contents, ground_truth):
    """Call a reward function the way TRL's GRPOTrainer does for a conversational dataset."""
    example = grpo_example(ROW)
    return reward_func(
        prompts=[example["prompt"]] * len(contents),
        completions=[[{"role": "assistant", "content": content}] for content in contents],
        completion_ids=[[1, 2, 3]] * len(contents),
        ground_truth=ground_truth,
        trainer_state=object(),
        log_extra=bound_to(partial(GRPOTrainer._log_completion_extra, None), lambda column, values: None),
        log_metric=bound_to(partial(GRPOTrainer._log_metric, None), lambda name, value: None),
    )


@pytest.mark.parametrize(
    ("reward_func", "expected"),
    [
        (json_validity_reward, [1.0, 1.0, 1.0, 0.0, 0.0]),
        (schema_compliance_reward, [1.0, 1.0, 0.0, 0.0, 0.0]),
        (accuracy_reward, [1.0, 0.0, 1.0, 0.0, 0.0]),
        (gated_accuracy_reward, [1.0, 0.0, 0.0, 0.0, 0.0]),
        (calibration_reward, [1 - (0.95 - 1) ** 2, 1 - 0.6**2, 0.0, 0.0, 0.0]),
    ],
)
def test_rewards_on_trl_conversational_completions(reward_func, expected):
    """The upstream bug: rewards expected strings, got message lists, and were all 0.0."""
    assert trl_call(reward_func, CONTENTS, ["B"] * len(CONTENTS)) == expected


def test_plain_string_completions_give_the_same_rewards():
    for reward_func in REWARD_FUNCS.values():
        as_messages = trl_call(reward_func, CONTENTS, ["B"] * len(CONTENTS))
        assert reward_func(CONTENTS, ground_truth=["B"] * len(CONTENTS)) == as_messages


def test_accuracy_uses_the_aligned_ground_truth():
    assert accuracy_reward([VALID_B, VALID_B, VALID_C], ground_truth=["B", "C", "C"]) == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("ground_truth", [None, [], ["b", "b"], [1, 1], [None, None], ["B ", "\nB"], [["B"], {}]])
def test_missing_or_invalid_ground_truth_gives_zero(ground_truth):
    assert accuracy_reward([VALID_B, VALID_B], ground_truth=ground_truth) == [0.0, 0.0]


def test_ground_truth_shorter_than_completions_pads_with_zero():
    assert accuracy_reward([VALID_B, VALID_B], ground_truth=["B"]) == [1.0, 0.0]


def test_ground_truth_longer_than_completions_is_cut():
    assert accuracy_reward([VALID_B], ground_truth=["B", "C"]) == [1.0]


def test_registry_and_lookup():
    assert set(REWARD_FUNCS) == {
        "json_validity_reward",
        "schema_compliance_reward",
        "accuracy_reward",
        "gated_accuracy_reward",
        "calibration_reward",
    }
    assert get_reward_funcs(["accuracy_reward", "json_validity_reward"]) == [accuracy_reward, json_validity_reward]
    assert get_reward_funcs("accuracy_reward") == [accuracy_reward]
    assert get_reward_funcs([]) == []


def test_unknown_reward_name_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="format_reward") as error:
        get_reward_funcs(["accuracy_reward", "format_reward"])
    assert all(name in str(error.value) for name in REWARD_FUNCS)
    assert f"known: {', '.join(REWARD_FUNCS)} (or a dotted import path)" in str(error.value)


def test_reward_by_dotted_import_path():
    assert get_reward_funcs(["fine_tune.task.rewards.accuracy_reward"]) == [accuracy_reward]
    with pytest.raises(ValueError, match="cannot import reward function 'fine_tune.task.rewards.nope'"):
        get_reward_funcs(["fine_tune.task.rewards.nope"])
    with pytest.raises(ValueError, match="not callable"):
        get_reward_funcs(["fine_tune.task.rewards.REWARD_FUNCS"])


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "x"]), inner),
    max_leaves=10,
)


@given(st.lists(junk, max_size=5), junk, st.dictionaries(st.text(), junk, max_size=3))
def test_rewards_never_raise(completions, ground_truth, extra_kwargs):
    extra_kwargs.pop("ground_truth", None)
    extra_kwargs.pop("completions", None)
    for reward_func in REWARD_FUNCS.values():
        rewards = reward_func(completions, ground_truth=ground_truth, **extra_kwargs)
        assert len(rewards) == len(completions)
        assert all(r in (0.0, 1.0) and isinstance(r, float) for r in rewards)


@given(st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from("ABCD")), min_size=1, max_size=8))
def test_accuracy_matches_letters(pairs):
    contents = [json.dumps({"predicted_category": p, "confidence": 0.5, "reason": "r"}) for p, _ in pairs]
    golds = [g for _, g in pairs]
    assert trl_call(accuracy_reward, contents, golds) == [float(p == g) for p, g in pairs]


def test_calibration_reward_pays_most_for_the_real_certainty():
    def stated(confidence, letter="B"):
        return json.dumps({"predicted_category": letter, "confidence": confidence, "reason": "r"})

    right = calibration_reward([stated(c) for c in (1.0, 0.5, 0.0)], ground_truth=["B"] * 3)
    wrong = calibration_reward([stated(c, "A") for c in (1.0, 0.5, 0.0)], ground_truth=["B"] * 3)
    assert right == [1.0, 0.75, 0.0] and wrong == [0.0, 0.75, 1.0]


def test_reward_modes_name_registered_functions():
    assert all(name in REWARD_FUNCS for names in REWARD_MODES.values() for name in names)
    assert set(REWARD_MODES["summed"]) ^ set(REWARD_MODES["gated"]) == {"accuracy_reward", "gated_accuracy_reward"}


def test_required_columns_are_the_non_trl_parameters():
    def custom(prompts, completions, subject_name, trainer_state=None, **kwargs):
        return [0.0] * len(completions)

    assert required_columns(accuracy_reward) == ["ground_truth"]
    assert required_columns(json_validity_reward) == []
    assert required_columns(custom) == ["subject_name"]


def test_a_reward_whose_column_is_missing_is_refused_before_training():
    funcs = get_reward_funcs(["json_validity_reward", "accuracy_reward"])
    check_reward_columns(funcs, ["prompt", "ground_truth"])
    with pytest.raises(RecipeError, match="accuracy_reward needs ground_truth") as error:
        check_reward_columns(funcs, ["prompt"])
    assert error.value.exit_code == 2 and "json_validity_reward" not in str(error.value)


def test_the_missing_columns_message_names_every_reward_and_column():
    def by_subject(completions, subject_name, topic_name, **kwargs):
        return [0.0] * len(completions)

    class Scorer:  # a callable without __name__ is named by its repr
        def __call__(self, completions, ground_truth, **kwargs):
            return [0.0] * len(completions)

        def __repr__(self):
            return "Scorer()"

    with pytest.raises(RecipeError) as error:
        check_reward_columns([by_subject, Scorer()], ["prompt", "solution"])
    assert str(error.value) == (
        "the GRPO dataset lacks reward input column(s): by_subject needs subject_name, topic_name; "
        "Scorer() needs ground_truth (columns: prompt, solution)"
    )


def test_gated_accuracy_pays_for_a_letter_of_the_rows_own_task():
    """A five-option row's E is a real answer; on a three-option row a D is no answer at all."""
    answer = json.dumps({"predicted_category": "E", "confidence": 0.9, "reason": "r"})
    five, three = ["A", "B", "C", "D", "E"], ["A", "B", "C"]
    assert gated_accuracy_reward([answer], ground_truth=["E"], letters=[five]) == [1.0]
    d_answer = answer.replace('"E"', '"D"')
    assert gated_accuracy_reward([d_answer, d_answer], ground_truth=["D", "D"], letters=[three, None]) == [0.0, 1.0]


@pytest.mark.parametrize("reward", [accuracy_reward, gated_accuracy_reward, calibration_reward])
def test_every_reward_reads_the_rows_own_letters(reward):
    answer = json.dumps({"predicted_category": "E", "confidence": 1.0, "reason": "r"})
    five = ["A", "B", "C", "D", "E"]
    assert reward([answer], ground_truth=["E"], letters=[five]) == [1.0]
    assert reward([answer], ground_truth=["E"]) == [0.0], "no letters column: A-D"
    a_answer = answer.replace('"E"', '"A"')
    assert reward([a_answer], ground_truth=["A"], letters=[[]]) == [1.0], "an empty letters cell means A-D"


def test_a_single_completion_and_gold_are_a_batch_of_one():
    answer = json.dumps({"predicted_category": "B", "confidence": 1.0, "reason": "r"})
    assert accuracy_reward(answer, ground_truth="B") == [1.0]
    assert json_validity_reward(answer) == [1.0]
