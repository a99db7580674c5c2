"""The T4 projection of the real recipes (read through the recipe loader)."""

import pytest

from benchmarks.lengths import STRATEGIES, synthetic_lengths
from benchmarks.projection import project_t4, sft_strategy
from benchmarks.settings import Recipe

pytestmark = pytest.mark.usefixtures("single_torch_thread")


OVERHEAD = {
    "device": "cpu",
    "decode_step_seconds_batch16_merged_greedy": 0.01,
    "decode_step_seconds_batch8_lora_sampled": 0.02,
    "train_micro_batch_seconds_lora": 0.05,
    "train_micro_batch_seconds_lora_checkpointed": 0.1,
    "optimizer_step_seconds_lora": 0.01,
}


def test_t4_projection_follows_the_configs():
    lengths = synthetic_lengths(2000)
    sft, grpo, evaluation = Recipe.load("sft"), Recipe.load("grpo"), Recipe.load("eval")
    projection = project_t4(lengths, sft, grpo, evaluation, OVERHEAD, simulation_steps=100)
    scenarios = projection["sft"]["scenarios"]
    for strategy in STRATEGIES:
        assert (
            scenarios[f"{strategy}, checkpointing on"]["seconds_per_step"]
            > (scenarios[f"{strategy}, checkpointing off"]["seconds_per_step"])
        )
    # The configs as they are: their sampler (or padding-free), checkpointing per the recipe
    checkpointing = "on" if sft["activation_checkpointing"] else "off"
    assert projection["sft"]["as_configured"]["strategy"] == sft_strategy(sft.values)
    assert projection["sft"]["projected_t4_seconds_per_step"] == pytest.approx(
        scenarios[f"{sft_strategy(sft.values)}, checkpointing {checkpointing}"]["seconds_per_step"], rel=1e-3
    )
    assert sft_strategy({"train_sampling_strategy": "batch_rebalance"}) == "batch_rebalance"
    assert sft_strategy({"padding_free": True, "train_sampling_strategy": "batch_rebalance"}) == "padding_free"
    assert sft_strategy({}) == "pad_to_longest_random"
    assert projection["sft"]["steps"] == sft["max_steps"]
    grpo_projection = projection["grpo"]
    assert grpo_projection["every_completion_to_the_cap"]["decode_steps"] == grpo["max_completion_length"]
    assert (
        grpo_projection["typical_completions"]["seconds_per_step"] < grpo_projection["projected_t4_seconds_per_step"]
    )
    faster = project_t4(lengths, sft, grpo, evaluation, OVERHEAD, mfu=0.6, simulation_steps=100)
    assert faster["sft"]["projected_t4_seconds_per_step"] < projection["sft"]["projected_t4_seconds_per_step"]
