import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState
from trl import SFTTrainer

from fine_tune.data.splits import manifest_hash, write_manifest
from fine_tune.data.synthetic import generate_canonical_rows, generate_rows, write_jsonl
from fine_tune.data.task_splits import load_task_splits
from fine_tune.errors import LineageError
from fine_tune.io import atomic_write_json
from fine_tune.recipes.trainer_configs import MedSFTConfig
from fine_tune.task.prompts import render_prompt, sft_example, target_response
from fine_tune.train.checkpoints import resolve_resume
from fine_tune.train.grpo import check_sft_lineage
from fine_tune.train.guards import CompletionRecorder, GuardThresholds, RewardHealthGuard

REPO = Path(__file__).resolve().parent.parent


def test_sft_collator_masks_the_prompt(tiny_model_dir, tmp_path):
    """Loss falls on the completion only: every label before the assistant's JSON is -100."""
    rows = generate_canonical_rows(4, seed=3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=MedSFTConfig(output_dir=str(tmp_path), report_to="none", max_length=512, precision="fp32"),
        train_dataset=Dataset.from_list([sft_example(row) for row in rows]),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for i, row in enumerate(rows):
        prompt_length = len(tokenizer(render_prompt(tokenizer, sft_example(row)["prompt"]))["input_ids"])
        labels = batch["labels"][i]
        input_ids = batch["input_ids"][i]
        assert (labels[:prompt_length] == -100).all()
        trained = input_ids[labels != -100]
        assert tokenizer.decode(trained) == target_response(row) + "<|im_end|>\n"


def test_resume_latest(tmp_path, caplog):
    args = SimpleNamespace(output_dir=str(tmp_path / "run"), resume_from_checkpoint="latest")
    assert resolve_resume(args) is None
    for step in (5, 10, 15):
        (tmp_path / "run" / f"checkpoint-{step}").mkdir(parents=True)
        if step != 15:  # checkpoint-15 was cut off mid-save
            (tmp_path / "run" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resolve_resume(args) == str(tmp_path / "run" / "checkpoint-10")
    assert resolve_resume(SimpleNamespace(output_dir="x", resume_from_checkpoint="/ckpt/7")) == "/ckpt/7"
    assert resolve_resume(SimpleNamespace(output_dir="x", resume_from_checkpoint=None)) is None


MANIFEST = {"splits": {}, "seed": 42}


def lineage(**changes):
    return {"phase": "sft", "base": "Qwen/Qwen3-0.6B", "split_manifest_hash": manifest_hash(MANIFEST), **changes}


def test_grpo_must_start_from_an_sft_model_of_the_same_split():
    check_sft_lineage("sft/merged", lineage(), MANIFEST, required=True)
    with pytest.raises(LineageError, match="has no lineage.json"):
        check_sft_lineage("Qwen/Qwen3-0.6B", None, MANIFEST, required=True)
    with pytest.raises(LineageError, match="is a 'grpo' model"):
        check_sft_lineage("grpo/merged", lineage(phase="grpo"), MANIFEST, required=True)
    with pytest.raises(LineageError, match="split manifest"):
        check_sft_lineage("sft/merged", lineage(split_manifest_hash="other"), MANIFEST, required=True)
    with_dev = lineage(split_manifest_hash="hash of the file with the SFT dev record")
    check_sft_lineage("sft/merged", {**with_dev, "splits_hash": manifest_hash(MANIFEST)}, MANIFEST, required=True)
    with pytest.raises(LineageError, match="splits hash other"):
        check_sft_lineage("sft/merged", {**with_dev, "splits_hash": "other"}, MANIFEST, required=True)
    check_sft_lineage("Qwen/Qwen3-0.6B", None, MANIFEST, required=False)


def log_step(guard, step, **logs):
    control = TrainerControl()
    guard.on_log(None, TrainerState(global_step=step), control, logs=logs)
    return control


def make_guard(patience, action="stop", completions=(), prompts=None):
    recorder = CompletionRecorder()
    recorder.completions = list(completions)
    recorder.prompts = list(prompts if prompts is not None else [f"p{i}" for i in range(len(completions))])
    return RewardHealthGuard(GuardThresholds(patience=patience), action, recorder=recorder)


def test_reward_guard_counts_consecutive_dead_steps():
    guard = make_guard(3, completions=["<think>\nhmm"])
    assert not log_step(guard, 1, reward=0.0, frac_reward_zero_std=1.0).should_training_stop
    assert not log_step(guard, 2, reward=1.5, frac_reward_zero_std=0.25).should_training_stop
    assert not log_step(guard, 3, loss=0.1).should_training_stop, "logs without reward keys are not counted"
    for step in (4, 5):
        assert not log_step(guard, step, reward=2.0, frac_reward_zero_std=1.0).should_training_stop
    assert log_step(guard, 6, reward=0.0, frac_reward_zero_std=0.5).should_training_stop
    assert "step 4: frac_reward_zero_std = 1.0" in guard.message and "mean reward = 0.0" in guard.message
    assert "'<think>\\nhmm'" in guard.message


def test_reward_guard_warn_only_keeps_training():
    guard = make_guard(1, action="warn")
    assert not log_step(guard, 1, reward=0.0, frac_reward_zero_std=1.0).should_training_stop
    assert guard.message is not None


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(generate_rows(300, seed=0), path)
    return path


def fake_sft_model(tiny_model_dir, synthetic_file, out, sizes):
    """A copy of the tiny model dressed as an SFT output of `synthetic_file` (lineage + split manifest)."""
    import shutil

    shutil.copytree(tiny_model_dir, out)
    manifest = load_task_splits(None, source=str(synthetic_file), sizes=sizes, seed=42).manifest
    write_manifest(manifest, out.parent / "split_manifest.json")
    atomic_write_json(
        out / "lineage.json",
        {"phase": "sft", "base": str(tiny_model_dir), "split_manifest_hash": manifest_hash(manifest)},
    )
    return out


def run_script(script, *args, env_extra=None, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, f"scripts/{script}", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def run_grpo_after_fake_sft(tiny_model_dir, synthetic_file, tmp_path, *args, env_extra=None, prepare_start=None):
    """The GRPO script (demo recipe, 4 completions of at most 8 tokens a step) from a fake SFT model on a 100/50/20
    split, writing tmp_path/grpo."""
    sizes = {"sft": 100, "grpo": 50, "eval": 20}
    start = fake_sft_model(tiny_model_dir, synthetic_file, tmp_path / "sft" / "merged", sizes)
    if prepare_start is not None:
        prepare_start(start)
    return run_script(
        "train_medmcqa_grpo.py",
        "--config", "configs/demo/grpo.yaml",
        "--model_name_or_path", start,
        "--dataset_name", synthetic_file,
        "--sft_size", sizes["sft"], "--grpo_size", sizes["grpo"], "--eval_size", sizes["eval"],
        "--output_dir", tmp_path / "grpo",
        "--per_device_train_batch_size", 4, "--num_generations", 4, "--max_completion_length", 8,
        *args,
        env_extra=env_extra,
    )  # fmt: skip


def test_guard_stops_grpo_on_a_constant_reward(tiny_model_dir, synthetic_file, tmp_path):
    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path,
        "--reward_funcs", "constant_reward.always_one",
        "--reward_weights", 1.0,
        "--reward_guard_patience", 2,
        "--max_steps", 6,
        "--dev_size", 0,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert "REWARD HEALTH GUARD" in result.stderr and "frac_reward_zero_std = 1.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert "unhealthy rewards for 2 consecutive logging steps (step 1: " in result.stderr
    # the rewards are wrapped by the guard's recorder (train/grpo.py): the message shows what the policy wrote
    assert "Last completions:\n  '" in result.stderr and "(none captured)" not in result.stderr
    assert not (tmp_path / "grpo" / "merged").exists(), "a run without learning signal must not hand on a model"


def test_guard_stops_grpo_when_a_reward_component_is_gamed_away(tiny_model_dir, synthetic_file, tmp_path):
    """A deliberately hackable setup: one component earned early and then lost while the total holds."""
    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path,
        "--reward_funcs", "hackable_reward.fading", "hackable_reward.rising", "hackable_reward.varied",
        "--reward_weights", 1.0, 1.0, 1.0,
        "--reward_guard_patience", 2,
        "--max_steps", 9,
        "--dev_size", 0,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert "reward component fading fell from 1.000" in result.stderr and "held or rose" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "grpo" / "merged").exists()


def test_grpo_stops_with_exit_3_at_the_first_non_finite_gradient(tiny_model_dir, synthetic_file, tmp_path):
    """NonFiniteGuard is wired into GRPO (train/grpo.py): a diverging run stops before its NaN update is applied and
    before the next generation samples from NaN logits."""
    path = os.pathsep.join(str(p) for p in (REPO / "tests" / "nan_gradients", REPO / "tests", REPO))
    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path,
        "--max_steps", 5, "--dev_size", 0, "--precision", "fp32", "--reward_guard_action", "warn",
        env_extra={"PYTHONPATH": path, "NAN_GRADIENTS_FROM_STEP": "2"},
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert "error: non-finite gradients at step 2 under precision fp32" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "grpo" / "merged").exists(), "no model is handed on"


def test_grpo_from_a_policy_with_nan_weights_stops_with_one_line(tiny_model_dir, synthetic_file, tmp_path):
    """Sampling from NaN probabilities (torch.multinomial's RuntimeError) is the non-finite failure too: exit 3."""

    def poison(start):
        model = AutoModelForCausalLM.from_pretrained(start)
        model.model.norm.weight.data.fill_(float("nan"))
        model.save_pretrained(start)

    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path, "--max_steps", 2, "--dev_size", 0, "--precision", "fp32",
        prepare_start=poison,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert "error: non-finite sampling probabilities in the generation of step 1 under precision fp32" in result.stderr
    assert "Traceback" not in result.stderr


def test_grpo_refuses_a_reward_whose_column_is_missing(tiny_model_dir, synthetic_file, tmp_path):
    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path,
        "--reward_funcs", "accuracy_reward", "needs_column_reward.by_subject",
        "--reward_weights", 1.0, 1.0,
        "--dev_size", 0,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "by_subject needs subject_name" in result.stderr and "Traceback" not in result.stderr


def test_sft_runs_data_parallel_as_two_cpu_processes(tiny_model_dir, synthetic_file, tmp_path):
    """torchrun --nproc_per_node 2 (gloo): both ranks train on their own shard, one model is saved.

    `accelerate launch --cpu --num_processes 2` would silently run a single process.
    """
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "torchrun"),
            "--nproc_per_node",
            "2",
            "scripts/train_medmcqa_sft.py",
            "--config",
            "configs/demo/sft.yaml",
            "--model_name_or_path",
            str(tiny_model_dir),
            "--dataset_name",
            str(synthetic_file),
            "--sft_size",
            "100",
            "--grpo_size",
            "20",
            "--eval_size",
            "20",
            "--output_dir",
            str(out),
            "--max_steps",
            "3",
            "--per_device_train_batch_size",
            "2",
            "--save_strategy",
            "no",
            "--dev_size",
            "0",
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 0 of 2 finished sft at step 3" in result.stderr
    assert "process 1 of 2 finished sft at step 3" in result.stderr
    config = json.loads((out / "merged" / "lineage.json").read_text())["config"]
    assert config["world_size"] == 2
    assert config["epoch"] == pytest.approx(3 * 2 * 2 / 100), "each step consumed one batch per rank"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["adapter", "merged"]


READ_TRACKIO = """
import json
from trackio.sqlite_storage import SQLiteStorage
runs = SQLiteStorage.get_runs("medmcqa-classifier")
print(json.dumps({"runs": runs, "logs": SQLiteStorage.get_logs("medmcqa-classifier", "trackio-test")}))
"""


def test_sft_metrics_land_in_the_local_trackio_store(tiny_model_dir, synthetic_file, tmp_path):
    store = {"TRACKIO_DIR": str(tmp_path / "trackio")}
    result = run_script(
        "train_medmcqa_sft.py",
        "--config", "configs/demo/sft.yaml",
        "--model_name_or_path", tiny_model_dir,
        "--dataset_name", synthetic_file,
        "--sft_size", 100, "--grpo_size", 20, "--eval_size", 20,
        "--output_dir", tmp_path / "sft",
        "--max_steps", 4, "--logging_steps", 1, "--save_strategy", "no", "--dev_size", 0,
        "--report_to", "trackio", "--run_name", "trackio-test",
        env_extra=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    read = subprocess.run(
        [sys.executable, "-c", READ_TRACKIO], capture_output=True, text=True, env={**os.environ, **store}, check=True
    )
    stored = json.loads(read.stdout.strip().splitlines()[-1])
    assert stored["runs"] == ["trackio-test"]
    losses = [entry["train/loss"] for entry in stored["logs"] if "train/loss" in entry]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)


def test_grpo_scores_its_start_and_hands_on_nothing_that_does_not_beat_it(tiny_model_dir, synthetic_file, tmp_path):
    """The random-init start scores 0 on the dev slice and so does every step: exit 3, nothing handed on."""
    result = run_grpo_after_fake_sft(
        tiny_model_dir, synthetic_file, tmp_path,
        "--max_steps", 4,
        "--reward_guard_action", "warn",
        "--dev_size", 8, "--eval_steps", 2, "--dev_max_new_tokens", 8,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    assert "dev step 0: accuracy 0.000" in result.stderr
    assert "no trained step beat the starting model on the 8-row dev slice" in result.stderr
    assert "step 0: 0.000, step 2: 0.000, step 4: 0.000" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "grpo" / "merged").exists()
    manifest = json.loads((tmp_path / "grpo" / "split_manifest.json").read_text())
    assert manifest["dev"]["phase"] == "grpo" and manifest["dev"]["size"] == 8
