from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from transformers import TrainingArguments
from trl import GRPOConfig, SFTConfig

from fine_tune.constants import (
    PRECISIONS,
    TRACKIO_PROJECT,
)
from fine_tune.models.precision import resolve_precision
from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS

# transformers 5.17, the newest release the [vllm] extra can install (vLLM 0.31 needs < 5.18), still calls
# `activation_checkpointing` `gradient_checkpointing`: there the recipes' key is declared here and passed on.
LEGACY_CHECKPOINTING_NAME = "activation_checkpointing" not in {f.name for f in fields(TrainingArguments)}
CHECKPOINTING_HELP = "Recompute activations in the backward pass instead of storing them (less memory, slower)"


def _apply_checkpointing_name(config) -> None:
    if LEGACY_CHECKPOINTING_NAME and config.activation_checkpointing:
        config.gradient_checkpointing = True


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
    if LEGACY_CHECKPOINTING_NAME:
        activation_checkpointing: bool = field(default=False, metadata={"help": CHECKPOINTING_HELP})

    def __post_init__(self):
        _apply_hardware(self)
        _apply_checkpointing_name(self)
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
    if LEGACY_CHECKPOINTING_NAME:
        activation_checkpointing: bool = field(default=False, metadata={"help": CHECKPOINTING_HELP})

    def __post_init__(self):
        _apply_hardware(self)
        _apply_checkpointing_name(self)
        if self.reward_guard_action not in ("stop", "warn"):
            raise ValueError(f"reward_guard_action must be 'stop' or 'warn', got {self.reward_guard_action!r}")
        super().__post_init__()
        self.chat_template_kwargs = {**CHAT_TEMPLATE_KWARGS, **(self.chat_template_kwargs or {})}
