"""The trainer configs: TRL's SFTConfig / GRPOConfig plus the project's fields (precision, guards, selection)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from transformers import TrainingArguments
from trl import GRPOConfig, SFTConfig

from fine_tune.constants import (
    TRACKIO_PROJECT,
)
from fine_tune.models.acceleration import VLLM_SERVER, parse_switch
from fine_tune.models.precision import MODEL_TYPE_HELP, resolve_precision
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
    # ValueError naming the choices for an unknown one, or for fp16 on an architecture that overflows in it
    precision = resolve_precision(config.precision, model_type=config.model_type)
    config.bf16, config.fp16 = precision.bf16, precision.fp16
    if not torch.cuda.is_available():
        config.use_cpu = True


NO_IMPROVEMENT_ACTIONS = ("fail", "warn")
PRECISION_HELP = (
    "auto (bf16 on sm>=8, fp16 on older GPUs unless model_type overflows in it, then fp32; fp32 on CPU), fp32, "
    "fp16, bf16"
)


@dataclass
class SelectionArguments:
    """Held-out selection (fine_tune.train.selection): dev slice, best checkpoint, early stop, target."""

    dev_size: int = field(
        default=0,
        metadata={"help": "Rows carved from the phase's training rows and scored every eval_steps (0: no selection)"},
    )
    dev_batch_size: int = field(default=16, metadata={"help": "Prompts per generate() call when scoring dev"})
    dev_max_new_tokens: int = field(default=256, metadata={"help": "Generation budget per dev answer"})
    target_accuracy: float | None = field(
        default=None, metadata={"help": "Stop once a trained step reaches this dev strict accuracy"}
    )
    target_perplexity: float | None = field(
        default=None, metadata={"help": "Text tasks: stop once a trained step's dev perplexity is at or below this"}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many dev evaluations without a better dev score"}
    )
    no_improvement_action: str = field(
        default="fail",
        metadata={"help": "No trained step beats the start on dev: 'fail' (hand on nothing, exit 3) or 'warn'"},
    )


def _apply_selection(config) -> None:
    """With a dev slice, transformers scores the start, keeps and restores the best checkpoint by the dev score (set
    before TrainingArguments validates save/eval strategies)."""
    if config.no_improvement_action not in NO_IMPROVEMENT_ACTIONS:
        raise ValueError(
            f"no_improvement_action must be one of {NO_IMPROVEMENT_ACTIONS}, got {config.no_improvement_action!r}"
        )
    if config.target_accuracy is not None and not 0.0 < config.target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in (0, 1], got {config.target_accuracy}")
    if config.target_perplexity is not None and not config.target_perplexity >= 1.0:
        raise ValueError(f"target_perplexity must be >= 1 (a perplexity), got {config.target_perplexity}")
    if config.dev_size < 0:
        raise ValueError(f"dev_size must be >= 0, got {config.dev_size}")
    if config.dev_size == 0:
        targets = (config.target_accuracy, config.target_perplexity)
        if any(t is not None for t in targets) or config.early_stopping_patience:
            raise ValueError(
                "target_accuracy, target_perplexity and early_stopping_patience need a dev slice: set dev_size > 0"
            )
        return
    if str(config.eval_strategy) in ("no", "IntervalStrategy.NO"):
        config.eval_strategy = "steps"
    if str(config.save_strategy) in ("no", "SaveStrategy.NO"):
        config.save_strategy = "best"
    config.eval_on_start = True  # the starting model's dev score: what every trained step must beat
    config.metric_for_best_model = "dev_score"
    config.greater_is_better = True
    config.load_best_model_at_end = True


@dataclass
class ProjectArguments(SelectionArguments):
    """The fields both trainer configs add to TRL's, and their checks. A base listed before TRL's config, so that its
    defaults (precision, the trackio project) win over TrainingArguments' own."""

    precision: str = field(default="auto", metadata={"help": PRECISION_HELP})
    model_type: str | None = field(default=None, metadata={"help": MODEL_TYPE_HELP})
    project: str = field(default=TRACKIO_PROJECT, metadata={"help": "trackio project"})
    if LEGACY_CHECKPOINTING_NAME:
        activation_checkpointing: bool = field(default=False, metadata={"help": CHECKPOINTING_HELP})

    def __post_init__(self):
        _apply_hardware(self)
        _apply_checkpointing_name(self)
        _apply_selection(self)
        super().__post_init__()


@dataclass
class MedSFTConfig(ProjectArguments, SFTConfig):
    overlong: str = field(
        default="refuse", metadata={"help": "Examples longer than max_length: 'refuse' (stop, counted) or 'drop'"}
    )


@dataclass
class MedGRPOConfig(ProjectArguments, GRPOConfig):
    reward_guard_patience: int = field(
        default=3,
        metadata={"help": "Consecutive logging steps of zero-variance or all-zero rewards before the guard fires"},
    )
    reward_guard_action: str = field(default="stop", metadata={"help": "'stop' (exit non-zero) or 'warn'"})
    hacking_peak_min: float = field(
        default=0.2,
        metadata={"help": "A reward component counts as learned once its windowed mean reached this (of max 1)"},
    )
    hacking_floor_ratio: float = field(
        default=0.1,
        metadata={"help": "A learned component whose windowed mean falls to this fraction of its peak is gamed away"},
    )
    collapse_distinct_ratio: float = field(
        default=0.5,
        metadata={"help": "Collapse: distinct completions per distinct prompt in a batch at or below this"},
    )
    collapse_length_ratio: float = field(
        default=0.25,
        metadata={"help": "Collapse: mean completion length at or below this fraction of its first window's"},
    )
    vllm: str = field(
        default="auto",
        metadata={
            "help": "Generate with vLLM: auto (colocated, when installed, supported and on CUDA), true, false, or "
            "server (TRL's `trl vllm-serve` at vllm_server_host:vllm_server_port)"
        },
    )

    def __post_init__(self):
        if self.reward_guard_action not in ("stop", "warn"):
            raise ValueError(f"reward_guard_action must be 'stop' or 'warn', got {self.reward_guard_action!r}")
        if str(self.vllm).strip().lower() != VLLM_SERVER:
            parse_switch(self.vllm)  # a bad value is refused here, not after the data has loaded
        super().__post_init__()
        self.chat_template_kwargs = {**CHAT_TEMPLATE_KWARGS, **(self.chat_template_kwargs or {})}
