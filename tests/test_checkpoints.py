"""One rule for a complete checkpoint: a corrupt newest checkpoint falls back to the newest intact one, naming the
folder it skipped (issue [robust] point 12)."""

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fine_tune.train.checkpoints import checkpoint_problem, last_complete_checkpoint


def write_checkpoint(output_dir: Path, step: int) -> Path:
    """The files a Trainer writes for a LoRA run, in their real formats (torch zip archives, safetensors)."""
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": [{"loss": 1.0}]}))
    save_file({"lora_A": torch.randn(8, 16), "lora_B": torch.zeros(16, 8)}, folder / "adapter_model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.randn(64)}}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    torch.save({"args": "x"}, folder / "training_args.bin")
    (folder / "adapter_config.json").write_text("{}")
    return folder


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def checkpoints(tmp_path) -> Path:
    for step in (4, 8, 12):
        write_checkpoint(tmp_path, step)
    return tmp_path


def test_intact_checkpoints_pick_the_newest(checkpoints):
    assert checkpoint_problem(checkpoints / "checkpoint-12") is None
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-12")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: truncate(f / "trainer_state.json"), "trainer_state.json is unreadable"),
        (lambda f: (f / "trainer_state.json").unlink(), "no trainer_state.json"),
        (lambda f: (f / "trainer_state.json").write_text("[]"), "trainer_state.json is not a JSON object"),
        (lambda f: truncate(f / "optimizer.pt"), "optimizer.pt is truncated or corrupt"),
        (lambda f: truncate(f / "scheduler.pt", 0.9), "scheduler.pt is truncated or corrupt"),
        (lambda f: truncate(f / "adapter_model.safetensors", 0.9), "adapter_model.safetensors is truncated"),
        (lambda f: truncate(f / "adapter_model.safetensors", 0.01), "adapter_model.safetensors is truncated"),
    ],
)
def test_a_corrupt_newest_checkpoint_falls_back_and_names_the_skipped_folder(checkpoints, caplog, damage, problem):
    damage(checkpoints / "checkpoint-12")
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-8")
    assert f"skipping checkpoint folder {checkpoints / 'checkpoint-12'}: {problem}" in caplog.text


def test_two_corrupt_checkpoints_fall_back_twice_and_none_left_is_none(checkpoints):
    truncate(checkpoints / "checkpoint-12" / "optimizer.pt")
    truncate(checkpoints / "checkpoint-8" / "trainer_state.json")
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-4")
    (checkpoints / "checkpoint-4" / "trainer_state.json").unlink()
    assert last_complete_checkpoint(checkpoints) is None


def test_no_folder_or_no_checkpoints(tmp_path):
    assert last_complete_checkpoint(tmp_path / "absent") is None
    (tmp_path / "checkpoint-latest").mkdir()
    assert last_complete_checkpoint(tmp_path) is None
