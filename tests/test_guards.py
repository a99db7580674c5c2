import inspect
import random

from transformers import TrainerControl, TrainerState

from fine_tune.task.rewards import accuracy_reward, required_columns
from fine_tune.train.guards import CompletionRecorder, GuardThresholds, RewardHealthGuard

SCHEMA = "rewards/schema_compliance_reward/mean"
JSON = "rewards/json_validity_reward/mean"
ACCURACY = "rewards/accuracy_reward/mean"


def make_guard(patience=3, action="stop", prompts=(), completions=()):
    recorder = CompletionRecorder()
    recorder.prompts, recorder.completions = list(prompts), list(completions)
    return RewardHealthGuard(GuardThresholds(patience=patience), action, recorder=recorder)


def feed(guard, rows):
    """Log rows (dicts of component means) in order; the step at which the guard stopped training, or None."""
    for step, components in enumerate(rows, start=1):
        control = TrainerControl()
        logs = {"reward": sum(components.values()), "frac_reward_zero_std": 0.25, **components}
        guard.on_log(None, TrainerState(global_step=step), control, logs=logs)
        if control.should_training_stop:
            return step
    return None


def test_a_component_gamed_away_while_the_total_holds_trips_the_guard():
    """The issue's run: valid JSON rises to 1.0 while schema compliance falls to 0: the total holds."""
    rows = [{JSON: 0.2 + 0.08 * i, SCHEMA: max(0.0, 0.8 - 0.1 * i)} for i in range(12)]
    guard = make_guard(
        completions=['{"predicted_category": "zz"}', '{"predicted_category": "zy"}'], prompts=["a", "b"]
    )
    stopped = feed(guard, rows)
    assert stopped is not None
    assert "schema_compliance_reward fell from" in guard.message and "held or rose" in guard.message
    assert "trajectory: step 1: 0.800" in guard.message
    assert '\'{"predicted_category": "zz"}\'' in guard.message


def test_a_falling_component_is_named_when_the_total_falls_too():
    rows = [{JSON: 1.0, SCHEMA: 0.9, ACCURACY: 0.5}] * 4 + [{JSON: 1.0, SCHEMA: 0.9, ACCURACY: 0.0}] * 8
    guard = make_guard(prompts=["a", "b"], completions=["x", "y"])
    assert feed(guard, rows) is not None
    assert "accuracy_reward fell from 0.500" in guard.message and "total reward fell" in guard.message


def test_noisy_healthy_rewards_and_never_learned_components_do_not_trip():
    rng = random.Random(0)
    rows = [
        {JSON: rng.uniform(0.7, 1.0), SCHEMA: rng.uniform(0.4, 0.9), ACCURACY: rng.choice([0.0, 0.1, 0.15])}
        for _ in range(60)
    ]
    guard = make_guard(prompts=["a", "b", "c", "d"], completions=["1", "2", "3", "4"])
    assert feed(guard, rows) is None and guard.message is None


def test_prompt_independent_completions_trip_the_guard():
    guard = make_guard(prompts=[f"q{i}" for i in range(4) for _ in range(4)], completions=['{"a": 1}'] * 16)
    assert feed(guard, [{JSON: 1.0}] * 3) == 3
    assert "1 distinct completions for 4 distinct prompts" in guard.message


def test_collapsing_length_trips_the_guard():
    guard = make_guard(prompts=["a", "b"], completions=["x", "y"])
    for step, length in enumerate([40, 42, 41, 38, 9, 8, 8, 8, 8], start=1):
        control = TrainerControl()
        logs = {"reward": 1.0, "frac_reward_zero_std": 0.2, JSON: 1.0, "completions/mean_length": length}
        guard.on_log(None, TrainerState(global_step=step), control, logs=logs)
    assert guard.message is not None and "mean completion length fell from 41.0" in guard.message


def test_warn_mode_reports_and_keeps_training():
    guard = make_guard(patience=2, action="warn", prompts=["a", "b"], completions=["z", "z"])
    assert feed(guard, [{JSON: 1.0}] * 4) is None
    assert guard.message is not None


def test_recorder_keeps_name_signature_and_the_last_batch():
    recorder = CompletionRecorder()
    wrapped = recorder.wrap([accuracy_reward])[0]
    completions = [[{"role": "assistant", "content": '{"predicted_category": "A"}'}]]
    assert wrapped(prompts=[[{"role": "user", "content": "q"}]], completions=completions, ground_truth=["A"]) == [1.0]
    assert wrapped.__name__ == "accuracy_reward" and required_columns(wrapped) == ["ground_truth"]
    assert inspect.signature(wrapped) == inspect.signature(accuracy_reward)
    assert recorder.completions == ['{"predicted_category": "A"}'] and len(recorder.prompts) == 1


def test_dead_signal_names_zero_variance_or_zero_reward():
    from fine_tune.train.guards import dead_signal

    assert dead_signal({"frac_reward_zero_std": 1.0, "reward": 0.5}) == "frac_reward_zero_std = 1.0 (reward 0.5)"
    assert dead_signal({"frac_reward_zero_std": 0.5, "reward": 0.0}) == "mean reward = 0.0"
    assert dead_signal({"frac_reward_zero_std": 0.99, "reward": 0.3}) is None
    assert dead_signal({}) is None


def test_a_trajectory_samples_about_eight_points_and_always_the_last():
    from fine_tune.train.guards import _sampled

    steps, values = list(range(100, 116)), [i / 10 for i in range(16)]
    assert [step for step, _ in _sampled(steps, values)] == [100, 102, 104, 106, 108, 110, 112, 114, 115]
    assert _sampled(steps[:3], values[:3]) == [(100, 0.0), (101, 0.1), (102, 0.2)]
    assert [step for step, _ in _sampled(list(range(17)), [0.0] * 17)] == [0, 2, 4, 6, 8, 10, 12, 14, 16]


def test_thresholds_come_from_the_recipe_options():
    from types import SimpleNamespace

    args = SimpleNamespace(
        reward_guard_patience=7,
        hacking_peak_min=0.3,
        hacking_floor_ratio=0.2,
        collapse_distinct_ratio=0.4,
        collapse_length_ratio=0.1,
    )
    assert GuardThresholds.from_args(args) == GuardThresholds(7, 0.3, 0.2, 0.4, 0.1)


def test_the_recorder_wraps_only_the_first_reward():
    def second(completions, **kwargs):
        return [0.0] * len(completions)

    first, other = CompletionRecorder().wrap([accuracy_reward, second])
    assert other is second and first is not accuracy_reward


def test_windowed_means_trail_over_the_window():
    from fine_tune.train.guards import windowed

    assert windowed([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert windowed([3.0, 0.0, 0.0, 6.0], 3) == [3.0, 1.5, 1.0, 2.0]


def log(guard, step, logs):
    control = TrainerControl()
    guard.on_log(None, TrainerState(global_step=step), control, logs=logs)
    return control.should_training_stop


def test_a_dead_signal_alone_trips_after_patience_and_other_logs_are_ignored():
    guard = make_guard(patience=2)
    assert not log(guard, 1, {"frac_reward_zero_std": 1.0})  # no "reward" key: still a reward log
    assert not log(guard, 2, {"loss": 0.5})  # not a reward log: ignored, the count holds
    assert log(guard, 3, {"reward": 0.0})  # no zero-std key: still a reward log
    assert guard.message.startswith(
        "REWARD HEALTH GUARD: unhealthy rewards for 2 consecutive logging steps (step 1: frac_reward_zero_std = 1.0 "
        "(reward None); step 3: mean reward = 0.0). Zero reward variance gives zero advantages (GRPO learns nothing)"
    )
    assert guard.message.endswith("Last completions:\n  (none captured)")


def test_a_healthy_log_resets_the_count_and_the_message_shows_the_last_four_completions():
    guard = make_guard(patience=2, completions=[f"c{i}" for i in range(6)], prompts=[f"p{i}" for i in range(6)])
    assert not log(guard, 1, {"reward": 0.0})
    assert not log(guard, 2, {"reward": 0.5, "frac_reward_zero_std": 0.1})
    assert not log(guard, 3, {"reward": 0.0})
    assert log(guard, 4, {"reward": 0.0})
    assert guard.message.endswith("Last completions:\n  'c2'\n  'c3'\n  'c4'\n  'c5'")
    assert guard.recent.maxlen == 2


def test_only_reward_component_means_are_components():
    guard = make_guard()
    guard.observe(1, {"reward": 1.0, JSON: 0.5, "rewards/json_validity_reward/std": 0.1, "other/mean": 0.2,
                      SCHEMA: None})  # fmt: skip
    assert guard.components == {"json_validity_reward": [0.5]}


def test_the_gamed_component_thresholds_at_their_edges():
    from fine_tune.train.guards import gamed_component

    thresholds = GuardThresholds(patience=1, hacking_peak_min=0.5, hacking_floor_ratio=0.25)
    steps = [1, 2]
    found = gamed_component({"x": [0.5, 0.125]}, [1.0, 1.0], steps, thresholds)  # peak == min, now == floor * peak
    assert found.startswith("reward component x fell from 0.500 (mean of 1 logs to step 1) to 0.125 while the total")
    assert "held or rose (1.000 -> 1.000); trajectory: step 1: 0.500, step 2: 0.125" in found
    assert gamed_component({"x": [0.5, 0.13]}, [1.0, 1.0], steps, thresholds) is None
    assert gamed_component({"x": [0.49, 0.0]}, [1.0, 1.0], steps, thresholds) is None
    assert gamed_component({"x": [0.5]}, [1.0], [1], thresholds) is None, "the peak must be a full window back"
    assert "total reward fell (1.000 -> 0.940)" in gamed_component({"x": [0.5, 0.1]}, [1.0, 0.94], steps, thresholds)
    assert "held or rose (1.000 -> 0.950)" in gamed_component({"x": [0.5, 0.1]}, [1.0, 0.95], steps, thresholds)
    two = GuardThresholds(patience=2, hacking_peak_min=0.5, hacking_floor_ratio=0.25)
    assert gamed_component({"x": [1.0, 0.0]}, [1.0, 1.0], steps, two) is None, "the window's mean 0.5 is the peak"


def test_collapse_thresholds_at_their_edges():
    from fine_tune.train.guards import collapsed

    thresholds = GuardThresholds(patience=2, collapse_distinct_ratio=0.5, collapse_length_ratio=0.25)
    assert collapsed(["a", "b", "c", "d"], ["x", "x", "y", "y"], [], thresholds) == (
        "2 distinct completions for 4 distinct prompts"
    )
    assert collapsed(["a", "a"], ["x", "x"], [], thresholds) is None, "one prompt says nothing about collapse"
    assert collapsed(["a", "b"], [], [], thresholds) is None
    lengths = [40.0, 40.0, 10.0, 10.0]  # exactly 2 windows; now == 0.25 * first
    assert collapsed([], [], lengths, thresholds) == "mean completion length fell from 40.0 to 10.0 tokens"
    assert collapsed([], [], lengths[1:], thresholds) is None
    assert collapsed([], [], [40.0, 40.0, 10.5, 10.5], thresholds) is None


def test_a_fresh_guard_logs_its_whole_message(caplog):
    guard = RewardHealthGuard(GuardThresholds(patience=1), "stop")  # its own recorder: nothing captured yet
    assert log(guard, 5, {"reward": 0.0})
    assert guard.message == (
        "REWARD HEALTH GUARD: unhealthy rewards for 1 consecutive logging steps (step 5: mean reward = 0.0). Zero "
        "reward variance gives zero advantages (GRPO learns nothing); a reward component earned early and then lost, "
        "or prompt-independent completions, mean the policy is gaming the rewards. Check that the reward functions "
        "parse TRL's conversational completions, that Qwen3 runs with enable_thinking=False, and lower the learning "
        "rate. A smoke run of a few steps from a barely trained model earns no reward: that is expected there; add "
        "--reward_guard_action warn to let it finish. Last completions:\n  (none captured)"
    )
    assert guard.message in caplog.text


def test_the_gamed_verdict_and_window_edges():
    from fine_tune.train.guards import collapsed, gamed_component

    half = GuardThresholds(patience=2, hacking_peak_min=0.5, hacking_floor_ratio=0.5)
    assert gamed_component({"x": [1.0, 0.0]}, [1.0, 1.0], [1, 2], half) is not None, "as many logs as the window"
    one = GuardThresholds(patience=1, hacking_peak_min=0.5, hacking_floor_ratio=0.25)
    assert "held or rose (2.000 -> 1.920)" in gamed_component({"x": [0.5, 0.1]}, [2.0, 1.92], [1, 2], one)
    assert collapsed([], [], [100.0, 0.0, 0.0], GuardThresholds(patience=2)) is None, "two full windows needed"


def test_a_log_before_any_recorded_batch_is_judged_on_the_rewards_alone():
    guard = RewardHealthGuard(GuardThresholds(patience=2), "stop")
    assert guard.observe(1, {"reward": 0.5, "reward_std": 0.3, "frac_reward_zero_std": 0.0}) is None
