"""GRPO measurements: seconds per optimizer step and the share spent generating, with HF generate and (where it is
importable) vLLM colocated."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

import torch

from benchmarks.device import PeakMemory, TimeCapReached, median, synchronize
from benchmarks.measure_sft import jsonable, step_clock
from benchmarks.models import ModelSource
from benchmarks.settings import GRPO_VARIANTS, NO_SELECTION, Recipe, Settings, lora_config

logger = logging.getLogger(__name__)


def timed_grpo_trainer_class():
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        generation_seconds = 0.0
        generated_tokens = 0

        def _generate_single_turn(self, *args, **kwargs):
            device = self.accelerator.device
            synchronize(device)
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            synchronize(device)
            self.generation_seconds += time.perf_counter() - start
            self.generated_tokens += sum(len(ids) for ids in out[0])
            return out

    return TimedGRPOTrainer


def grpo_args(recipe: dict[str, Any], overrides: dict[str, Any], settings: Settings, output_dir: str, device):
    """MedGRPOConfig of the recipe's training keys (`Recipe.trainer_kwargs`), the mode's sizes and a variant's
    overrides, for a run that logs, saves and reports nothing."""
    from fine_tune.recipes.trainer_configs import MedGRPOConfig

    values = dict(recipe)
    if settings.grpo_max_completion_length is not None:
        values["max_completion_length"] = settings.grpo_max_completion_length
    if settings.grpo_micro_batch is not None:
        values["per_device_train_batch_size"] = settings.grpo_micro_batch
    if settings.grpo_grad_accum is not None:
        values["gradient_accumulation_steps"] = settings.grpo_grad_accum
    values.update(overrides)
    values.update(
        output_dir=output_dir,
        max_steps=settings.grpo_warmup_steps + settings.grpo_steps,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        **NO_SELECTION,
    )
    if device.type == "cpu":
        values["precision"] = "fp32"
    return MedGRPOConfig(**values)


def benchmark_grpo(source: ModelSource, recipe: Recipe, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Seconds per GRPO step and the share spent generating, per variant; a vLLM variant runs only where vLLM is
    importable on CUDA (otherwise it is recorded as unavailable, with the reason). At a time cap the remaining
    variants are recorded as stopped."""
    from datasets import Dataset

    from benchmarks.measure_eval import vllm_unavailable
    from fine_tune.data.synthetic import generate_canonical_rows
    from fine_tune.task.prompts import grpo_example

    dataset = Dataset.from_list([grpo_example(row) for row in generate_canonical_rows(64, seed=11)])
    variants: dict[str, Any] = {}
    for variant in settings.grpo_variants:
        uses_vllm = bool(GRPO_VARIANTS[variant].get("use_vllm"))
        unavailable = vllm_unavailable(device) if uses_vllm else None
        if unavailable:
            variants[variant] = {"available": False, "reason": unavailable}
            continue
        logger.info("GRPO %s: %s", source.name, variant)
        try:
            variants[variant] = run_grpo_variant(source, recipe, dataset, variant, settings, device)
        except TimeCapReached as reached:
            variants[variant] = {"available": False, "reason": str(reached)}
            break
        except Exception as error:  # an optional engine that fails to start is a finding, not a crash
            if not uses_vllm:
                raise
            variants[variant] = {"available": False, "reason": f"vLLM failed: {type(error).__name__}: {error}"}
    measured = {name: v for name, v in variants.items() if v.get("available", True)}
    if not measured:
        raise TimeCapReached(f"GRPO: no variant finished ({variants})")
    first = next(iter(measured.values()))
    return {
        "model": source.name,
        "note": (
            "a random-init model rarely emits end-of-turn, so nearly every completion runs to max_completion_length: "
            "the generation share is the worst case"
        ),
        "variants": variants,
        "measured_seconds_per_step": first["seconds_per_step"],
        "generation_share": first["generation_share"],
    }


def run_grpo_variant(
    source: ModelSource, recipe: Recipe, dataset, variant: str, settings: Settings, device: torch.device
) -> dict[str, Any]:
    from fine_tune.models.loading import load_tokenizer
    from fine_tune.models.precision import resolve_precision
    from fine_tune.recipes.trainer_configs import MedGRPOConfig
    from fine_tune.task.rewards import get_reward_funcs
    from fine_tune.train.common import training_dtype

    if GRPO_VARIANTS[variant].get("use_vllm"):
        # vLLM's colocated engine joins torch.distributed: a single process is rank 0 of 1
        for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "localhost"}.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("MASTER_PORT", "29517")
    with tempfile.TemporaryDirectory() as tmp:
        args = grpo_args(recipe.trainer_kwargs(MedGRPOConfig), GRPO_VARIANTS[variant], settings, tmp, device)
        precision = resolve_precision(args.precision)
        trainer = timed_grpo_trainer_class()(
            model=source.build(training_dtype(precision, use_peft=True)),
            reward_funcs=get_reward_funcs(recipe["reward_funcs"]),
            args=args,
            train_dataset=dataset,
            processing_class=load_tokenizer(source.tokenizer_dir, padding_side="left"),
            peft_config=lora_config(recipe.lora),
        )
        clock = step_clock(
            device,
            lambda t=trainer: {"generation_seconds": t.generation_seconds, "generated_tokens": t.generated_tokens},
        )
        trainer.add_callback(clock)
        with PeakMemory(device) as memory:
            trainer.train()
        steps = clock.steps(skip=settings.grpo_warmup_steps)
        seconds = sum(s["seconds"] for s in steps)
        generation = sum(s["generation_seconds"] for s in steps)
        return {
            "overrides": jsonable(GRPO_VARIANTS[variant]),
            "steps_measured": len(steps),
            "seconds_per_step": median([s["seconds"] for s in steps]),
            "seconds_per_step_all": [round(s["seconds"], 4) for s in steps],
            "generation_seconds_per_step": generation / len(steps),
            "generation_share": generation / seconds if seconds else None,
            "generated_tokens_per_step": sum(s["generated_tokens"] for s in steps) / len(steps),
            "peak_memory_bytes": memory.peak,
            "memory_kind": memory.kind,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "num_generations": args.num_generations,
            "generation_batch_size": args.generation_batch_size,
            "max_completion_length": args.max_completion_length,
            "activation_checkpointing": args.activation_checkpointing,
        }
