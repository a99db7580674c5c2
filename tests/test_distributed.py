"""Multi-process training under `accelerate launch` with the shipped configs/accelerate/ files.

On CPU the DDP and FSDP2 configs start 2 gloo processes through accelerate's own launcher (accelerate 1.15 applies
FSDP sharding only on accelerator devices, so on CPU the FSDP2 launch trains as plain data parallel); each rank
writes its trainable weights just before saving (tests/distributed_probe.py) and the ranks must agree. DeepSpeed is
not installed: its configs are checked as far as accelerate's launcher parses them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from fine_tune.data.synthetic import generate_rows, write_jsonl

REPO = Path(__file__).resolve().parent.parent
ACCELERATE_CONFIGS = REPO / "configs" / "accelerate"
STEPS, PER_DEVICE_BATCH, SFT_SIZE = 2, 2, 100


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(generate_rows(SFT_SIZE + 40, seed=0), path)
    return path


def parsed_launch(config: str, *extra: str):
    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(ACCELERATE_CONFIGS / config), *extra, "train.py"])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as accelerate's launch_command does before it starts the DeepSpeed launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_precision_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    return args


def test_every_config_is_checked():
    assert sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")) == [
        "ddp.yaml",
        "fsdp2.yaml",
        "zero2.yaml",
        "zero3.yaml",
    ]


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp2.yaml", "zero2.yaml", "zero3.yaml"])
def test_config_leaves_precision_to_the_recipe_and_takes_the_process_count(config):
    """mixed_precision 'no' in the launch env, so an fp32 recipe stays fp32 (TrainingArguments reads the env)."""
    args = parsed_launch(config, "--num_processes", "4")
    assert args.num_processes == 4 and args.mixed_precision == "no"
    assert args.num_machines == 1


def test_ddp_config_launches_multi_gpu():
    args = parsed_launch("ddp.yaml")
    assert args.multi_gpu and not (args.use_fsdp or args.use_deepspeed or args.cpu)
    env = prepare_multi_gpu_env(args)
    assert args.nproc_per_node == "2" and env["ACCELERATE_MIXED_PRECISION"] == "no"


def test_fsdp2_config_builds_an_fsdp2_plugin():
    args = parsed_launch("fsdp2.yaml")
    assert args.use_fsdp and not args.multi_gpu
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true"
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is True
    assert plugin.cpu_ram_efficient_loading is True
    assert not plugin.activation_checkpointing, "the recipe's activation_checkpointing decides, not the launcher"
    assert plugin.auto_wrap_policy is not None
    assert str(plugin.state_dict_type).endswith("FULL_STATE_DICT"), "rank 0 saves whole adapter/merged files"


@pytest.mark.parametrize(("config", "stage"), [("zero2.yaml", "2"), ("zero3.yaml", "3")])
def test_deepspeed_configs_parse(config, stage):
    """Structure only: deepspeed is not installed here, so no ZeRO run is possible on this machine."""
    args = parsed_launch(config)
    assert args.use_deepspeed and not (args.multi_gpu or args.use_fsdp)
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == "none"
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    if stage == "3":
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp2.yaml"])
def test_sft_script_runs_unchanged_under_accelerate_launch_and_ranks_agree(
    config, tiny_model_dir, synthetic_file, tmp_path
):
    probe = tmp_path / "probe"
    probe.mkdir()
    out = tmp_path / "sft"
    command = [
        str(Path(sys.executable).parent / "accelerate"), "launch",
        "--config_file", str(ACCELERATE_CONFIGS / config), "--main_process_port", "0",
        "tests/distributed_probe.py", "scripts/train_medmcqa_sft.py",
        "--config", "configs/demo/sft.yaml",
        "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(synthetic_file),
        "--sft_size", str(SFT_SIZE), "--grpo_size", "20", "--eval_size", "20",
        "--output_dir", str(out), "--max_steps", str(STEPS),
        "--per_device_train_batch_size", str(PER_DEVICE_BATCH), "--save_strategy", "no",
    ]  # fmt: skip
    env = {**os.environ, "PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert f"process {rank} of 2 finished sft at step {STEPS}" in result.stderr
    ranks = [torch.load(probe / f"rank{rank}.pt") for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    first, second = (r["weights"] for r in ranks)
    assert first.keys() == second.keys() and first
    assert all(torch.equal(first[name], second[name]) for name in first), "the ranks' weights diverged"
    lora_b = [w for name, w in first.items() if "lora_B" in name]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b), "LoRA B starts at zero: no step was taken"
    config_saved = json.loads((out / "merged" / "lineage.json").read_text())["config"]
    assert config_saved["world_size"] == 2
    assert config_saved["epoch"] == pytest.approx(STEPS * PER_DEVICE_BATCH * 2 / SFT_SIZE), "one batch per rank"
