"""Sequence lengths and batching: padding and attention counts per micro-batch, the samplers' schedules, padding
efficiency per strategy."""

import numpy as np
import pytest
import torch

from benchmarks.lengths import (
    STRATEGIES,
    batch_tokens,
    padding_efficiency,
    schedule_micro_batches,
    synthetic_lengths,
)


def test_batch_tokens_counts_padding_and_the_packed_square():
    assert batch_tokens([2, 4, 3], [0, 1], padding_free=False) == {
        "real": 6,
        "processed": 8,
        "real_pairs": 20,
        "processed_pairs": 32,
    }
    assert batch_tokens([2, 4, 3], [0, 1], padding_free=True) == {
        "real": 6,
        "processed": 6,
        "real_pairs": 20,
        "processed_pairs": 36,
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_sees_every_row_once_per_epoch(strategy):
    lengths = list(np.random.default_rng(0).integers(20, 400, 64))
    batches = schedule_micro_batches(lengths, strategy, micro_batch=4, grad_accum=4, steps=4)
    rows = [i for batch in batches for i in batch]
    assert sorted(rows) == list(range(64))
    assert len(batches) == 16


def test_batch_rebalance_keeps_each_optimizer_steps_rows():
    """The rebalanced micro-batches of each step are a split of one 16-row slice of the epoch's permutation."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    lengths = list(np.random.default_rng(1).integers(20, 400, 64))
    sampler = BatchRebalanceSampler(lengths, 16, dp_size=1, grad_accum=4, seed=42, drop_last=False)
    batches = list(sampler)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(42)).tolist()
    for step in range(4):
        rows = sorted(i for batch in batches[4 * step : 4 * step + 4] for i in batch)
        assert rows == sorted(order[16 * step : 16 * step + 16])


def test_padding_efficiency_of_grouping_and_padding_free_beats_pad_to_longest():
    result = padding_efficiency(synthetic_lengths(1000), micro_batch=4, grad_accum=4, steps=200)
    assert result["padding_free"]["padding_efficiency"] == 1.0
    assert result["group_by_length"]["padding_efficiency"] >= 0.95
    base = result["pad_to_longest_random"]["padding_efficiency"]
    assert base < result["batch_rebalance"]["padding_efficiency"] < 1
    # batch_rebalance closes each epoch with one short step (1,000 rows = 62.5 steps of 16); the others run on
    assert all(15.5 <= r["sequences_per_step"] <= 16 for r in result.values())
