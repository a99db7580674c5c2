"""Training length in steps and epochs (fine_tune.recipes.length)."""

import pytest

from fine_tune.recipes.length import training_length

SFT = {
    "sft_size": 1000,
    "dev_size": 50,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 4,
    "max_steps": -1,
    "num_train_epochs": 2,
}


def test_epochs_give_steps_over_the_rows_left_after_dev():
    length = training_length(SFT, "sft")
    assert (length.rows, length.steps, length.epochs, length.given) == (950, 120, 2.0, "num_train_epochs")
    assert "120 optimizer steps = 2.00 epochs over 950 training rows" in length.describe()


def test_steps_give_epochs_and_win_over_epochs():
    length = training_length({**SFT, "max_steps": 800}, "sft")
    assert (length.steps, round(length.epochs, 2), length.given) == (800, 13.33, "max_steps")


def test_processes_and_generations_count():
    assert training_length(SFT, "sft", world_size=2).steps == 60
    grpo = {**SFT, "grpo_size": 500, "per_device_train_batch_size": 2, "num_generations": 4, "max_steps": 400}
    length = training_length(grpo, "grpo")
    assert (length.rows, length.rows_per_step, round(length.epochs, 2)) == (450, 2.0, 1.78)


def test_no_rows_left_is_refused():
    with pytest.raises(ValueError, match="no training rows"):
        training_length({**SFT, "dev_size": 1000}, "sft")


def test_the_training_log_states_steps_and_epochs(caplog):
    from types import SimpleNamespace

    from fine_tune.train.common import log_training_length

    args = SimpleNamespace(
        per_device_train_batch_size=4, gradient_accumulation_steps=4, max_steps=-1, num_train_epochs=3, world_size=1
    )
    with caplog.at_level("INFO", logger="fine_tune.train.common"):
        log_training_length(args, "sft", rows=950)
    assert "training length: 180 optimizer steps = 3.00 epochs over 950 training rows" in caplog.text
