"""What a benchmark run measures: the recipes (read through the one recipe loader), the variants it compares and
the sizes of each mode, with the time each section may take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT
from fine_tune.errors import RecipeError
from fine_tune.recipes.loader import DEFAULT_ORIGIN, resolve_recipe

RECIPE_PATHS = {phase: PROJECT_ROOT / "configs" / f"{phase}.yaml" for phase in ("sft", "grpo", "eval")}

# Timed runs measure training steps: no held-out selection (no dev slice, no eval, no early stopping).
NO_SELECTION = {"dev_size": 0, "eval_strategy": "no", "target_accuracy": None, "early_stopping_patience": None}


@dataclass(frozen=True)
class Recipe:
    """A phase's recipe as its entry script reads it: every schema key (defaults filled) and the keys its files set
    (the recipe and the files it extends)."""

    phase: str
    path: Path
    values: dict[str, Any]
    explicit: tuple[str, ...]

    @classmethod
    def load(cls, phase: str, path: str | Path | None = None) -> Recipe:
        path = Path(path or RECIPE_PATHS[phase])
        resolved = resolve_recipe(phase, path)
        explicit = tuple(key for key, origin in resolved.origins.items() if origin != DEFAULT_ORIGIN)
        return cls(phase, path, resolved.values, explicit)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def trainer_kwargs(self, config_class: type) -> dict[str, Any]:
        """The keys the recipe file sets that `config_class` (MedSFTConfig, MedGRPOConfig) takes."""
        fields = {field.name for field in dataclasses.fields(config_class) if field.init}
        return {key: self.values[key] for key in self.explicit if key in fields}

    def as_recorded(self) -> dict[str, Any]:
        return {key: self.values[key] for key in self.explicit}

    @cached_property
    def lora(self) -> dict[str, Any]:
        targets = self.values["lora_target_modules"]
        if not targets:
            raise RecipeError(f"{self.path}: the benchmark needs lora_target_modules (the LoRA FLOPs depend on them)")
        return {
            "r": int(self.values["lora_r"]),
            "alpha": int(self.values["lora_alpha"]),
            "dropout": float(self.values["lora_dropout"]),
            "targets": tuple(targets),
        }


def lora_config(settings: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=list(settings["targets"]),
        task_type="CAUSAL_LM",
    )


@dataclass(frozen=True)
class Settings:
    mode: str
    length_rows: int | None  # rows whose lengths are measured (None: all 4,183 validation rows)
    sft_rows: int
    sft_variants: tuple[str, ...]
    sft_rounds: int
    sft_warmup_steps: int
    sft_steps: int
    simulation_steps: int | None  # None: the configured max_steps
    eval_prompts: int
    eval_max_new_tokens: int | None  # None: as configured
    eval_batch_sizes: tuple[int, ...] | None  # None: the configured batch size
    eval_sequential_prompts: int | None  # prompts of the one-at-a-time loop (None: all of them)
    eval_rounds: int
    grpo_variants: tuple[str, ...]
    grpo_warmup_steps: int
    grpo_steps: int
    grpo_max_completion_length: int | None  # None: as configured
    grpo_micro_batch: int | None  # None: as configured
    grpo_grad_accum: int | None
    overhead_decode_tokens: int
    overhead_repeats: int
    flop_check_len: int
    time_limit_s: float | None = None  # the whole run; each section gets its SECTION_SHARES of it at most

    @property
    def runs_the_recipe(self) -> bool:
        """Whether GRPO and eval run at the recipe's sizes, so that their GPU figures may drive job timeouts."""
        return (
            self.grpo_max_completion_length is None
            and self.grpo_micro_batch is None
            and self.grpo_grad_accum is None
            and self.eval_max_new_tokens is None
            and self.eval_batch_sizes is None
        )


SFT_VARIANTS: dict[str, dict[str, Any]] = {
    # name: overrides of the configured SFT arguments (activation checkpointing as configured unless named)
    "as_configured": {},
    "pad_to_longest_random": {"train_sampling_strategy": "random"},
    "group_by_length": {"train_sampling_strategy": "group_by_length"},
    "batch_rebalance": {"train_sampling_strategy": "batch_rebalance"},
    "padding_free": {"train_sampling_strategy": "random", "padding_free": True, "max_length": None},
    "padding_free_no_checkpointing": {
        "train_sampling_strategy": "random",
        "padding_free": True,
        "max_length": None,
        "activation_checkpointing": False,
    },
    "batch_rebalance_no_checkpointing": {
        "train_sampling_strategy": "batch_rebalance",
        "activation_checkpointing": False,
    },
    "eager_attention": {"train_sampling_strategy": "random", "attn_implementation": "eager"},
}
GRPO_VARIANTS: dict[str, dict[str, Any]] = {
    "as_configured": {},
    "vllm_colocate": {"use_vllm": True, "vllm_mode": "colocate"},
    "no_checkpointing": {"activation_checkpointing": False},
}

FULL_SETTINGS = Settings(
    mode="full",
    length_rows=None,
    sft_rows=1000,
    sft_variants=tuple(name for name in SFT_VARIANTS if name != "as_configured"),
    sft_rounds=4,
    sft_warmup_steps=1,
    sft_steps=8,
    simulation_steps=None,
    eval_prompts=64,
    eval_max_new_tokens=64,
    eval_batch_sizes=(16, 32),
    eval_sequential_prompts=None,
    eval_rounds=3,
    grpo_variants=("as_configured", "no_checkpointing", "vllm_colocate"),
    grpo_warmup_steps=1,
    grpo_steps=6,
    grpo_max_completion_length=None,
    grpo_micro_batch=None,
    grpo_grad_accum=None,
    overhead_decode_tokens=24,
    overhead_repeats=9,
    flop_check_len=256,
)
# The other modes, by what they change from the full one
MODES: dict[str, Settings] = {
    "smoke": dataclasses.replace(
        FULL_SETTINGS,
        mode="smoke",
        length_rows=400,
        sft_rows=64,
        sft_variants=("as_configured", "pad_to_longest_random", "padding_free"),
        sft_rounds=1,
        sft_steps=1,
        simulation_steps=100,
        eval_prompts=4,
        eval_max_new_tokens=6,
        eval_batch_sizes=None,
        eval_rounds=1,
        grpo_variants=("as_configured", "vllm_colocate"),
        grpo_warmup_steps=0,
        grpo_steps=1,
        grpo_max_completion_length=8,
        grpo_micro_batch=2,
        grpo_grad_accum=2,
        overhead_decode_tokens=3,
        overhead_repeats=1,
        flop_check_len=64,
    ),
    "quick": dataclasses.replace(
        FULL_SETTINGS,
        mode="quick",
        sft_variants=("pad_to_longest_random", "group_by_length", "batch_rebalance", "padding_free"),
        sft_rounds=2,
        sft_steps=3,
        eval_prompts=16,
        eval_max_new_tokens=32,
        eval_batch_sizes=(16,),
        eval_rounds=2,
        grpo_variants=("as_configured", "vllm_colocate"),
        grpo_steps=2,
        grpo_max_completion_length=64,
        overhead_decode_tokens=12,
        overhead_repeats=3,
    ),
    "full": FULL_SETTINGS,
    # One GPU, the real recipe on Qwen3-0.6B's shape, within 420 s (7 minutes): the figures that drive job timeouts
    "gpu": dataclasses.replace(
        FULL_SETTINGS,
        mode="gpu",
        sft_rows=512,
        sft_variants=("as_configured", "pad_to_longest_random", "padding_free"),
        sft_rounds=2,
        sft_steps=4,
        eval_prompts=32,
        eval_max_new_tokens=None,
        eval_batch_sizes=None,
        eval_sequential_prompts=4,
        eval_rounds=2,
        grpo_variants=("as_configured", "vllm_colocate"),
        grpo_steps=3,
        overhead_repeats=5,
        time_limit_s=420.0,
    ),
}
# The most of the time limit each timed section may take (the rest: device, lengths, FLOP check, start-up)
SECTION_SHARES = {"sft": 0.3, "eval": 0.25, "grpo": 0.3, "projection": 0.1}


def default_mode(device_type: str) -> str:
    return "gpu" if device_type == "cuda" else "full"
