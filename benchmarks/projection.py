"""The T4 projection of the real recipes: seconds per SFT/GRPO optimizer step and per eval question from counted
FLOPs, bytes read per decode step and the measured host overhead, and SFT's memory without activation checkpointing.
These are projections, reported beside the measurements; job timeouts use them only through
`fine_tune.hub.jobs.estimate`'s rules (a CPU run never overrides a GPU figure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from benchmarks.cost import QWEN3_0_6B_SHAPE, TrainingCost, activation_bytes
from benchmarks.lengths import STRATEGIES, SYNTHETIC_FULL_STATS, Lengths, step_flops
from benchmarks.settings import Recipe
from fine_tune.hub.jobs.estimate import phase_units
from fine_tune.hub.jobs.hardware import T4

DEFAULT_T4_MFU = 0.30  # assumed share of the fp16 tensor-core peak a LoRA step of this size sustains on a T4
DEFAULT_T4_BANDWIDTH_EFFICIENCY = 0.75  # share of GDDR6 bandwidth a decode step's weight reads achieve
FP16_BYTES = 2


def sft_strategy(config: Mapping[str, Any]) -> str:
    """The batching strategy a recipe's SFT keys amount to."""
    if config.get("padding_free") or config.get("packing"):
        return "padding_free"
    return {"group_by_length": "group_by_length", "batch_rebalance": "batch_rebalance"}.get(
        str(config.get("train_sampling_strategy") or ""), "pad_to_longest_random"
    )


def project_sft_step(
    lengths: Lengths,
    recipe: Recipe,
    overhead: dict[str, Any],
    *,
    strategy: str,
    recompute: bool,
    mfu: float,
    steps: int,
) -> dict[str, Any]:
    lora = recipe.lora
    micro, accum = int(recipe["per_device_train_batch_size"]), int(recipe["gradient_accumulation_steps"])
    cost = TrainingCost(QWEN3_0_6B_SHAPE, lora["r"], lora["targets"], recompute=recompute)
    flops = step_flops(lengths, cost, strategy, micro, accum, steps, scored="completion")
    peak = T4.peak_flops["fp16"]
    device_s = flops["processed_flops_per_step"] / (peak * mfu)
    micro_key = "train_micro_batch_seconds_lora_checkpointed" if recompute else "train_micro_batch_seconds_lora"
    host_s = accum * overhead[micro_key] + overhead["optimizer_step_seconds_lora"]
    return {
        "strategy": strategy,
        "activation_checkpointing": recompute,
        "micro_batch": micro,
        "gradient_accumulation_steps": accum,
        **flops,
        "device_seconds_per_step": device_s,
        "host_seconds_per_step": host_s,
        "physics_floor_seconds_per_step": flops["processed_flops_per_step"] / peak,
        "lower_bound_seconds_per_step": max(device_s, host_s),
        "seconds_per_step": device_s + host_s,
    }


def decode_seconds(
    steps: float, batch: int, context: float, overhead_step: float, bandwidth_efficiency: float, lora_bytes: int
) -> tuple[float, float]:
    """(device, host) seconds of `steps` decode steps of `batch` rows at mean context `context`: each step reads the
    fp16 weights and the KV cache once (memory-bandwidth bound at this size)."""
    shape = QWEN3_0_6B_SHAPE
    per_step_bytes = (
        shape.weight_bytes(FP16_BYTES) + lora_bytes + batch * context * shape.kv_bytes_per_token(FP16_BYTES)
    )
    device = steps * per_step_bytes / (T4.memory_bandwidth * bandwidth_efficiency)
    return device, steps * overhead_step


def expected_max(rng: np.random.Generator, values: np.ndarray, k: int, draws: int = 2000) -> float:
    return float(np.mean(rng.choice(values, size=(draws, k)).max(axis=1)))


def projected_phase(
    phase: str, seconds_per_unit: float, steps: int | None = None, unit: str = "optimizer step"
) -> dict[str, Any]:
    """The head every projected phase result starts with (totals only for phases counted in steps)."""
    out = {
        "phase": phase,
        "kind": "projected",
        "projected_t4_seconds_per_step": round(seconds_per_unit, 4),
        "unit": unit,
    }
    if steps is not None:
        out |= {"steps": steps, "projected_total_seconds": round(seconds_per_unit * steps, 1)}
    return out


def project_t4(
    lengths: Lengths,
    sft_config: Recipe,
    grpo_config: Recipe,
    eval_config: Recipe,
    overhead: dict[str, Any],
    *,
    mfu: float = DEFAULT_T4_MFU,
    bandwidth_efficiency: float = DEFAULT_T4_BANDWIDTH_EFFICIENCY,
    simulation_steps: int | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Seconds per optimizer step (SFT, GRPO) and per scored question (eval) of the configs on a T4 in fp16.

    Device time = counted FLOPs / (65 TFLOP/s x assumed MFU) for training and prefill, bytes read / (320 GB/s x
    assumed efficiency) for decode steps; host time = the narrow twin's measured dispatch cost. The projection used
    for job timeouts adds the two (no overlap) and, for generation, decodes to the length cap every time.
    """
    rng = np.random.default_rng(0)
    shape = QWEN3_0_6B_SHAPE
    sft_steps = phase_units("sft", sft_config.values)
    sim_steps = simulation_steps or sft_steps
    configured = project_sft_step(
        lengths,
        sft_config,
        overhead,
        strategy=sft_strategy(sft_config.values),
        recompute=bool(sft_config["activation_checkpointing"]),
        mfu=mfu,
        steps=sim_steps,
    )
    scenarios = {
        f"{strategy}, checkpointing {'on' if recompute else 'off'}": project_sft_step(
            lengths, sft_config, overhead, strategy=strategy, recompute=recompute, mfu=mfu, steps=sim_steps
        )
        for strategy in STRATEGIES
        for recompute in (True, False)
    }
    sft = {
        **projected_phase("sft", configured["seconds_per_step"], sft_steps),
        "as_configured": configured,
        "mfu_sensitivity": {
            str(value): round(
                project_sft_step(
                    lengths,
                    sft_config,
                    overhead,
                    strategy=configured["strategy"],
                    recompute=configured["activation_checkpointing"],
                    mfu=value,
                    steps=sim_steps,
                )["seconds_per_step"],
                4,
            )
            for value in (0.15, 0.3, 0.45)
        },
        "scenarios": {
            name: {**s, "total_seconds": s["seconds_per_step"] * sft_steps} for name, s in scenarios.items()
        },
        "memory": memory,
    }

    # GRPO: one generation batch per optimizer step (steps_per_generation = gradient_accumulation_steps)
    g_micro = int(grpo_config["per_device_train_batch_size"])
    g_accum = int(grpo_config["gradient_accumulation_steps"])
    generations = int(grpo_config["num_generations"])
    completions = g_micro * g_accum
    prompts = max(completions // generations, 1)
    cap = int(grpo_config["max_completion_length"])
    g_lora = grpo_config.lora
    lora_bytes = shape.lora_params(g_lora["r"], g_lora["targets"]) * 4
    prompt_max = expected_max(rng, lengths.prompt, prompts)
    typical_decode = min(expected_max(rng, lengths.completion, completions), cap)
    recompute = bool(grpo_config["activation_checkpointing"])
    train_cost = TrainingCost(shape, g_lora["r"], g_lora["targets"], recompute=recompute)
    prefill_cost = 2 * (shape.backbone_linear_params + shape.lm_head_params / max(prompt_max, 1))
    peak = T4.peak_flops["fp16"]

    def prefill_seconds(sequences: int, prompt_tokens: float) -> float:
        flops = sequences * (prompt_tokens * prefill_cost + 4 * shape.attention_coefficient * prompt_tokens**2)
        return flops / (peak * mfu)

    def grpo_step(decode_steps: float) -> dict[str, float]:
        prefill = prefill_seconds(completions, prompt_max)
        dev, host = decode_seconds(
            decode_steps,
            completions,
            prompt_max + decode_steps / 2,
            overhead["decode_step_seconds_batch8_lora_sampled"],
            bandwidth_efficiency,
            lora_bytes,
        )
        length = prompt_max + decode_steps
        train_flops = train_cost.flops(completions * length, completions * length**2, completions * decode_steps)
        micro_key = "train_micro_batch_seconds_lora_checkpointed" if recompute else "train_micro_batch_seconds_lora"
        train_device = train_flops / (peak * mfu)
        train_host = g_accum * overhead[micro_key] + overhead["optimizer_step_seconds_lora"]
        generation = prefill + dev + host
        train = train_device + train_host
        return {
            "decode_steps": decode_steps,
            "generation_seconds": generation,
            "generation_device_seconds": prefill + dev,
            "generation_host_seconds": host,
            "train_seconds": train,
            "seconds_per_step": generation + train,
            "lower_bound_seconds_per_step": max(prefill + dev, host) + max(train_device, train_host),
            "generation_share": generation / (generation + train),
        }

    grpo_cap = grpo_step(cap)
    grpo_typical = grpo_step(typical_decode)
    grpo_steps = phase_units("grpo", grpo_config.values)
    grpo = {
        **projected_phase("grpo", grpo_cap["seconds_per_step"], grpo_steps),
        "completions_per_step": completions,
        "prompts_per_step": prompts,
        "max_completion_length": cap,
        "every_completion_to_the_cap": grpo_cap,
        "typical_completions": {
            **grpo_typical,
            "note": "8 completions drawn from the target lengths; the step waits for the longest",
        },
        "activation_checkpointing": recompute,
    }

    # Eval: batches of `batch_size` prompts sorted by length, greedy, merged weights
    batch = int(eval_config["batch_size"])
    new_tokens = int(eval_config["max_new_tokens"])
    prompt_mean = float(np.mean(lengths.prompt))

    def eval_question(decode_steps: float) -> dict[str, float]:
        prefill = prefill_seconds(batch, prompt_mean)
        dev, host = decode_seconds(
            decode_steps,
            batch,
            prompt_mean + decode_steps / 2,
            overhead["decode_step_seconds_batch16_merged_greedy"],
            bandwidth_efficiency,
            0,
        )
        return {
            "decode_steps": decode_steps,
            "seconds_per_batch": prefill + dev + host,
            "seconds_per_question": (prefill + dev + host) / batch,
        }

    eval_cap = eval_question(new_tokens)
    evaluation = {
        **projected_phase("eval", eval_cap["seconds_per_question"], unit="question (one model)"),
        "batch_size": batch,
        "max_new_tokens": new_tokens,
        "every_answer_to_the_cap": eval_cap,
        "typical_answers": eval_question(min(expected_max(rng, lengths.completion, batch), new_tokens)),
    }
    return {
        "device": T4.name,
        "precision": "fp16 (T4 has no bf16 tensor cores)",
        "peak_flops": peak,
        "memory_bandwidth": T4.memory_bandwidth,
        "assumed_mfu": mfu,
        "assumed_bandwidth_efficiency": bandwidth_efficiency,
        "host_overhead_source": overhead.get("device"),
        "method": (
            "training/prefill: counted FLOPs / (peak x assumed MFU); decode: (fp16 weights + KV cache bytes) / "
            "(bandwidth x efficiency) per step; plus the narrow twin's measured host dispatch time, added (no "
            "overlap) for projected_t4_seconds_per_step; generation decodes to the length cap every time"
        ),
        "lengths": lengths.source,
        "sft": sft,
        "grpo": grpo,
        "eval": evaluation,
    }


def t4_memory_estimate(lengths: Lengths, recipe: Recipe) -> dict[str, Any]:
    """Peak training memory of the SFT config on a T4 without activation checkpointing, for the worst micro-batch:
    `micro_batch` sequences padded to the longest row (the real one, or the train split's 876 tokens if longer)."""
    shape = QWEN3_0_6B_SHAPE
    lora = recipe.lora
    micro = int(recipe["per_device_train_batch_size"])
    longest = max(int(lengths.full.max()), int(SYNTHETIC_FULL_STATS["max"]))
    saved = activation_bytes(shape, micro, longest, lora["r"], lora["targets"], torch.float16)
    mask = micro * longest * longest  # SDPA's boolean 4D padding mask, built once per forward
    weights = shape.weight_bytes(FP16_BYTES)  # tied embedding counted once
    lora_state = shape.lora_params(lora["r"], lora["targets"]) * 16  # fp32 weights, grads, Adam m and v
    trained = micro * int(lengths.completion.max())
    head_workspace = trained * 32_768 * 4 * 3  # TRL's fused head: fp32 logit chunks of 32,768 vocab entries
    total = weights + lora_state + saved["activations"] + mask + head_workspace
    return {
        "micro_batch": micro,
        "worst_sequence_tokens": longest,
        "weights_bytes": weights,
        "lora_state_bytes": lora_state,
        "activation_bytes_no_checkpointing": saved["activations"],
        "attention_mask_bytes": mask,
        "math_path_score_bytes_not_counted": saved["square"],
        "lm_head_workspace_bytes": head_workspace,
        "total_bytes": total,
        "t4_memory_bytes": T4.memory_bytes,
        "fits_without_checkpointing": total < 0.8 * T4.memory_bytes,
        "method": (
            "every tensor autograd saves in the backbone for the worst micro-batch (fp16, meta device, deduplicated "
            "by storage); T x T score tensors of the math attention path are left out (SDPA's memory-efficient "
            "kernel, the one a T4 runs, saves none) and listed apart; plus weights, LoRA optimizer state, the "
            "padding mask and TRL's chunked LM-head workspace. Fits: under 80% of the T4's 16 GB"
        ),
    }
