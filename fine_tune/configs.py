"""Dataclass configs, subclassing TRL's, parsed from a YAML recipe with command-line overrides (`TrlParser`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

from fine_tune.data import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES, MEDMCQA_HUB_ID
from fine_tune.hub import TOKEN_ENV
from fine_tune.modeling import PRECISIONS, resolve_precision
from fine_tune.prompts import CHAT_TEMPLATE_KWARGS
from fine_tune.rewards import REWARD_FUNCS

TRACKIO_PROJECT = "medmcqa-classifier"


@dataclass
class SplitArguments:
    """Where the data comes from and how it is split: the same in every phase, so each can prove its rows disjoint."""

    dataset_name: str | None = field(
        default=MEDMCQA_HUB_ID, metadata={"help": "Hub dataset ID or local path (JSONL/JSON/Parquet/CSV/save_to_disk)"}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split of the source that is shuffled"})
    split_seed: int = field(default=DEFAULT_SPLIT_SEED, metadata={"help": "Seed of the upstream shuffle"})
    sft_size: int = field(default=DEFAULT_SPLIT_SIZES["sft"])
    grpo_size: int = field(default=DEFAULT_SPLIT_SIZES["grpo"])
    eval_size: int = field(default=DEFAULT_SPLIT_SIZES["eval"])
    hf_token_env: str = field(default=TOKEN_ENV, metadata={"help": "Name of the env var holding the Hub token"})

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"sft": self.sft_size, "grpo": self.grpo_size, "eval": self.eval_size}


@dataclass
class MedMCQAScriptArguments(SplitArguments, ScriptArguments):
    """TRL's script arguments with the project's data source and split."""


@dataclass
class GRPOScriptArguments(MedMCQAScriptArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["json_validity_reward", "schema_compliance_reward", "accuracy_reward"],
        metadata={"help": f"Reward functions by registry name: {sorted(REWARD_FUNCS)}"},
    )
    require_sft_lineage: bool = field(
        default=True, metadata={"help": "Refuse a starting model whose lineage.json does not say phase 'sft'"}
    )


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


def parse_config(script_args_cls, training_args_cls, argv: list[str] | None = None) -> tuple[Any, Any, ModelConfig]:
    """`--config recipe.yaml` plus `--key value` overrides, one schema for both."""
    parser = TrlParser((script_args_cls, training_args_cls, ModelConfig))
    return parser.parse_args_and_config(args=argv)
