"""Kill SFT mid-run, rerun with `--resume_from_checkpoint latest`: it continues from the last checkpoint and ends at
max_steps with the same final step count (the local half of the Hub resume workflow; fetching `last-checkpoint/`
from the Hub is tested offline in test_jobs.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fine_tune.data.synthetic import generate_rows, write_jsonl

REPO = Path(__file__).resolve().parent.parent
MAX_STEPS = 12
SAVE_STEPS = 4
KILL_AFTER = 8  # the last checkpoint before the kill

# Runs the real entry script; the only change is a pause once the step after KILL_AFTER has run, so that the kill
# lands at a known point (checkpoint-KILL_AFTER complete, later steps done but unsaved) however slow the machine.
RUNNER = """
import runpy, sys, time
from pathlib import Path
from transformers.trainer_callback import DefaultFlowCallback

marker, pause_after = Path(sys.argv[1]), int(sys.argv[2])
original = DefaultFlowCallback.on_step_end

def on_step_end(self, args, state, control, **kwargs):
    if state.global_step > pause_after:
        marker.write_text(str(state.global_step))
        time.sleep(600)
    return original(self, args, state, control, **kwargs)

DefaultFlowCallback.on_step_end = on_step_end
sys.argv = [sys.argv[3], *sys.argv[4:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

pytestmark = pytest.mark.slow


def sft_command(model: Path, data: Path, out: Path) -> list[str]:
    return [
        *("scripts/train_medmcqa_sft.py", "--config", "configs/demo/sft.yaml"),
        *("--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out)),
        *("--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--save_total_limit", "1"),
        *("--sft_size", "100", "--grpo_size", "50", "--eval_size", "50", "--per_device_train_batch_size", "4"),
        *("--dev_size", "0"),
        *("--max_length", "256", "--logging_steps", "1", "--report_to", "none", "--log_level", "info"),
        *("--warmup_steps", "0", "--save_strategy", "steps", "--precision", "fp32"),
    ]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def logged_steps(text: str) -> list[str]:
    """The training loss logs the Trainer prints, one per logging step."""
    return re.findall(r"\{'loss': '[^']+'", text)


def test_killed_sft_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    write_jsonl(generate_rows(400, seed=0), data)
    out = tmp_path / "out"
    marker = tmp_path / "paused-at"
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    command = sft_command(tiny_model_dir, data, out)

    log1 = (tmp_path / "run1.log").open("w")
    first = subprocess.Popen(
        [sys.executable, str(runner), str(marker), str(KILL_AFTER), *command],
        cwd=REPO,
        env=env(),
        stdout=log1,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"run 1 never reached step {KILL_AFTER + 1}:\n{(tmp_path / 'run1.log').read_text()}"
        os.killpg(first.pid, signal.SIGKILL)  # a real kill: no clean-up, no final save
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        log1.close()
    assert first.returncode == -signal.SIGKILL
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{KILL_AFTER}"], checkpoints
    assert not (out / "merged").exists()

    second = subprocess.run(
        [sys.executable, *command, "--resume_from_checkpoint", "latest"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    log2 = second.stdout + second.stderr
    assert second.returncode == 0, log2[-4000:]
    assert f"resuming from {out / f'checkpoint-{KILL_AFTER}'}" in log2
    assert f"global step {KILL_AFTER}" in log2, "the Trainer restored the checkpoint's state"
    assert len(logged_steps(log2)) == MAX_STEPS - KILL_AFTER, "only the remaining steps ran (not 0..max_steps)"

    state = json.loads((out / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS == state["max_steps"]
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == list(range(1, MAX_STEPS + 1)), "one history: steps 1-8 from run 1, 9-12 from run 2"
    lineage = json.loads((out / "merged" / "lineage.json").read_text())
    assert lineage["phase"] == "sft"
