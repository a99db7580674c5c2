from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig, SFTConfig

from fine_tune.constants import (
    PRECISIONS,
    TRACKIO_PROJECT,
)
from fine_tune.models.precision import resolve_precision
from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS


def _apply_hardware(config) -> None:
    """Precision from the hardware, and `use_cpu` without CUDA: accelerate only treats a torchrun launch on CPU as
    data-parallel (MULTI_CPU, gloo) when told it runs on the CPU; otherwise each process trains alone, unsynced."""
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    precision = resolve_precision(config.precision)
    config.bf16, config.fp16 = precision.bf16, precision.fp16
    if not torch.cuda.is_available():
        config.use_cpu = True


@dataclass
class MedSFTConfig(SFTConfig):
    precision: str = field(
        default="auto", metadata={"help": "auto (bf16 on sm>=8, fp16 on older GPUs, fp32 on CPU), fp32, fp16, bf16"}
    )
    project: str = field(default=TRACKIO_PROJECT, metadata={"help": "trackio project"})
    overlong: str = field(
        default="refuse", metadata={"help": "Examples longer than max_length: 'refuse' (stop, counted) or 'drop'"}
    )

    def __post_init__(self):
        _apply_hardware(self)
        super().__post_init__()


@dataclass
class MedGRPOConfig(GRPOConfig):
    precision: str = field(
        default="auto", metadata={"help": "auto (bf16 on sm>=8, fp16 on older GPUs, fp32 on CPU), fp32, fp16, bf16"}
    )
    project: str = field(default=TRACKIO_PROJECT, metadata={"help": "trackio project"})
    reward_guard_patience: int = field(
        default=3,
        metadata={"help": "Consecutive logging steps of zero-variance or all-zero rewards before the guard fires"},
    )
    reward_guard_action: str = field(default="stop", metadata={"help": "'stop' (exit non-zero) or 'warn'"})
    vllm: str = field(
        default="auto",
        metadata={"help": "Generate with vLLM (colocate): auto (when installed, supported and on CUDA), true, false"},
    )

    def __post_init__(self):
        _apply_hardware(self)
        if self.reward_guard_action not in ("stop", "warn"):
            raise ValueError(f"reward_guard_action must be 'stop' or 'warn', got {self.reward_guard_action!r}")
        super().__post_init__()
        self.chat_template_kwargs = {**CHAT_TEMPLATE_KWARGS, **(self.chat_template_kwargs or {})}
