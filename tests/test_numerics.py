"""Training stops at the first non-finite loss or gradient norm, exit 3, naming the step and the precision
(issue [robust] point 20)."""

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback, TrainerControl, TrainerState
from trl import SFTTrainer

from fine_tune.constants import EXIT_NO_LEARNING_SIGNAL
from fine_tune.data.synthetic import generate_canonical_rows, generate_rows, write_jsonl
from fine_tune.errors import NumericsError
from fine_tune.recipes.trainer_configs import MedSFTConfig
from fine_tune.task.prompts import sft_example
from fine_tune.train.numerics import NonFiniteGuard

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class PoisonWeights(TrainerCallback):
    """Turns the final norm's weights to NaN after `step`: the next forward pass gives a NaN loss."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.model.norm.weight.fill_(math.nan)


def test_a_nan_loss_on_the_tiny_model_stops_training_at_its_step(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = MedSFTConfig(
        output_dir=str(tmp_path),
        report_to="none",
        max_length=256,
        precision="fp32",
        max_steps=6,
        per_device_train_batch_size=2,
        logging_steps=5,  # the logs alone would see the NaN late (and the Trainer filters NaN losses out)
        save_strategy="no",
    )
    trainer = SFTTrainer(
        model=str(tiny_model_dir),
        args=args,
        train_dataset=Dataset.from_list([sft_example(row) for row in generate_canonical_rows(16, seed=0)]),
        processing_class=tokenizer,
        callbacks=[PoisonWeights(step=2), NonFiniteGuard()],
    )
    with pytest.raises(NumericsError) as error:
        trainer.train()
    assert str(error.value).startswith("non-finite gradients at step 3 under precision fp32")
    assert "--precision fp32" in str(error.value) and "bf16" in str(error.value)
    assert error.value.exit_code == EXIT_NO_LEARNING_SIGNAL == 3
    assert trainer.state.global_step == 2, "no optimizer step was taken on NaN gradients"


def model_with_grads(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(2, 2)
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, value)
    return model


def fake_args(precision: str) -> SimpleNamespace:
    return SimpleNamespace(fp16=precision == "fp16", bf16=precision == "bf16", precision="auto")


def test_fp16_overflows_are_the_scaler_s_until_they_persist():
    guard = NonFiniteGuard(fp16_patience=3)
    state, control = TrainerState(), TrainerControl()
    for step in range(2):
        state.global_step = step
        guard.on_pre_optimizer_step(fake_args("fp16"), state, control, model=model_with_grads(math.inf))
    guard.on_pre_optimizer_step(fake_args("fp16"), state, control, model=model_with_grads(1.0))  # the scaler recovered
    for _ in range(2):
        guard.on_pre_optimizer_step(fake_args("fp16"), state, control, model=model_with_grads(math.inf))
    state.global_step = 40
    with pytest.raises(NumericsError, match=r"step 41 \(3 steps in a row\) under precision fp16 \(precision: auto\)"):
        guard.on_pre_optimizer_step(fake_args("fp16"), state, control, model=model_with_grads(math.nan))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_without_fp16_the_first_non_finite_gradient_stops(precision):
    state = TrainerState(global_step=7)
    with pytest.raises(NumericsError, match=f"step 8 under precision {precision}"):
        NonFiniteGuard().on_pre_optimizer_step(
            fake_args(precision), state, TrainerControl(), model=model_with_grads(math.nan)
        )


@pytest.mark.parametrize(
    ("logs", "stops"),
    [({"loss": math.nan}, True), ({"grad_norm": math.inf}, True), ({"loss": 1.2, "grad_norm": 0.5}, False)],
)
def test_logged_loss_and_grad_norm_are_checked(logs, stops):
    guard, state = NonFiniteGuard(), TrainerState(global_step=10)
    if stops:
        with pytest.raises(NumericsError, match="logged at step 10"):
            guard.on_log(fake_args("fp32"), state, TrainerControl(), logs=logs)
    else:
        guard.on_log(fake_args("fp32"), state, TrainerControl(), logs=logs)


REPO = Path(__file__).resolve().parent.parent
# The real SFT entry script, with the model's final norm turned to NaN after step 2 (a diverged run, injected).
RUNNER = """
import math, runpy, sys, torch
from transformers.trainer_callback import DefaultFlowCallback

original = DefaultFlowCallback.on_step_end

def on_step_end(self, args, state, control, model=None, **kwargs):
    if state.global_step == 2:
        with torch.no_grad():
            model.get_base_model().model.norm.weight.fill_(math.nan)
    return original(self, args, state, control, model=model, **kwargs)

DefaultFlowCallback.on_step_end = on_step_end
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sft_command(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *("scripts/train_medmcqa_sft.py", "--config", "configs/demo/sft.yaml", "--model_name_or_path", str(model)),
        *("--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "5", "--save_strategy", "no"),
        *("--sft_size", "40", "--grpo_size", "10", "--eval_size", "10", "--per_device_train_batch_size", "2"),
        *("--dev_size", "0"),
        *("--logging_steps", "5", "--report_to", "none", "--precision", "fp32", *extra),
    ]


@pytest.mark.slow
def test_the_sft_script_exits_3_on_nan_and_2_on_overlong_rows(tmp_path, tiny_model_dir):
    data = tmp_path / "rows.jsonl"
    write_jsonl(generate_rows(80, seed=0), data)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    nan = run(sys.executable, str(runner), *sft_command(tiny_model_dir, data, tmp_path / "nan"))
    assert nan.returncode == 3, nan.stderr[-3000:]
    assert "error: non-finite gradients at step 3 under precision fp32" in nan.stderr
    assert "Traceback" not in nan.stderr
    assert not (tmp_path / "nan" / "merged").exists(), "no model is handed on"

    overlong = run(sys.executable, *sft_command(tiny_model_dir, data, tmp_path / "long", "--max_length", "100"))
    assert overlong.returncode == 2, overlong.stderr[-3000:]
    assert "error: 40 of 40 SFT examples are longer than max_length 100 tokens" in overlong.stderr
