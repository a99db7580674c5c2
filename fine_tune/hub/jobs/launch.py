"""How a phase's entry script starts on a flavor: plain `python` on one GPU; `accelerate launch` with one process per
GPU on a multi-GPU flavor; for GRPO, optionally TRL's vLLM server (`trl vllm-serve`) on the first GPU and training on
the others.

The GPU count of a flavor comes from the hardware table (`fine_tune.hub.jobs.hardware.flavor_gpus`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from fine_tune.hub.jobs.hardware import flavor_gpus
from fine_tune.hub.phases import JobsError, Phase

ACCELERATE_CONFIG = "configs/accelerate/ddp.yaml"  # data parallel on the GPUs of one machine
VLLM_EXTRA = "[vllm]"
VLLM_HOST = "127.0.0.1"
VLLM_PORT = 8000
# What the GRPO script is told when its generations come from the server (the project's `vllm` switch, server mode)
VLLM_SERVER_ARGS = ("--vllm", "server", "--vllm_server_host", VLLM_HOST, "--vllm_server_port", str(VLLM_PORT))


@dataclass
class Launch:
    """The launch of one phase: `run` starts the script; `before`/`after` start and stop a vLLM server."""

    gpus: int
    processes: int
    run: str
    accelerate_config: str | None = None
    vllm_server: str | None = None
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    extras: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": self.gpus,
            "processes": self.processes,
            "accelerate_config": self.accelerate_config,
            "train_command": self.run,
            "vllm_server_command": self.vllm_server,
        }


def plan_launch(
    phase: Phase,
    flavor: str,
    script_args: list[str],
    shipped_files: tuple[str, ...],
    *,
    model: str | None,
    vllm_server: bool = False,
) -> Launch:
    """The launch of `phase` on `flavor`; refuses a vLLM server where it cannot run (not GRPO, fewer than 2 GPUs).
    With the server, `script_args` must hold VLLM_SERVER_ARGS (the spec puts them before the user's overrides)."""
    gpus = flavor_gpus(flavor)
    if vllm_server and (phase.name != "grpo" or gpus < 2):
        raise JobsError(
            f"--vllm-server puts TRL's vLLM server on one GPU and trains on the others: it needs the grpo phase on a "
            f"flavor with at least 2 GPUs (got {phase.name} on {flavor}, {gpus} GPU(s))"
        )
    if not phase.trains or gpus < 2:
        return Launch(gpus, 1, shlex.join(["python", phase.script, *script_args]))
    if ACCELERATE_CONFIG not in shipped_files:
        raise JobsError(
            f"{flavor} has {gpus} GPUs, launched with `accelerate launch --config_file {ACCELERATE_CONFIG}`, but that "
            "file is not in the project: add it, or pick a one-GPU flavor"
        )
    train_gpus = list(range(1 if vllm_server else 0, gpus))
    launch = [
        *("accelerate", "launch", "--config_file", ACCELERATE_CONFIG, "--num_processes", str(len(train_gpus))),
        *(phase.script, *script_args),
    ]
    if not vllm_server:
        return Launch(gpus, gpus, shlex.join(launch), ACCELERATE_CONFIG)
    server = shlex.join(["trl", "vllm-serve", "--model", str(model), "--host", VLLM_HOST, "--port", str(VLLM_PORT)])
    run = f"CUDA_VISIBLE_DEVICES={','.join(map(str, train_gpus))} {shlex.join(launch)}"
    return Launch(
        gpus,
        len(train_gpus),
        run,
        ACCELERATE_CONFIG,
        vllm_server=f"CUDA_VISIBLE_DEVICES=0 {server}",
        before=[f"CUDA_VISIBLE_DEVICES=0 {server} & vllm_pid=$!"],
        after=['kill "$vllm_pid"'],
        extras=VLLM_EXTRA,
    )
