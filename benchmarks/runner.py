"""The whole benchmark: device, lengths, FLOP check, then the SFT / eval / GRPO measurements and the T4 projection,
each section under its time cap; and the figures that job timeouts may use (`job_figures`)."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.bench_report import recommendations
from benchmarks.cost import FLOPS_FORMULA, QWEN3_0_6B_SHAPE, TrainingCost, flop_check
from benchmarks.device import TimeCapReached, describe_device, resolve_device, time_cap
from benchmarks.lengths import SYNTHETIC_ROWS, padding_efficiency, real_lengths, synthetic_lengths
from benchmarks.measure_eval import benchmark_eval, eval_messages
from benchmarks.measure_grpo import benchmark_grpo
from benchmarks.measure_sft import benchmark_sft, padded_vs_padding_free, sft_training_rows
from benchmarks.models import qwen3_shape_source, tiny_source
from benchmarks.overhead import measure_host_overhead
from benchmarks.projection import DEFAULT_T4_MFU, project_t4, t4_memory_estimate
from benchmarks.settings import MODES, SECTION_SHARES, Recipe, Settings, default_mode
from fine_tune.constants import PROJECT_ROOT
from fine_tune.hub.jobs.hardware import flavors_of_family
from fine_tune.provenance import library_versions

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_SHARED_DIR = PROJECT_ROOT.parent / "shared"
SECTIONS = ("sft", "eval", "grpo", "projection")


class Clock:
    """Wall time per phase, and each section's cap: its share of the time limit, never past the deadline."""

    def __init__(self, limit_s: float | None):
        self.started = time.perf_counter()
        self.limit_s = limit_s
        self.timings: dict[str, float] = {}

    def cap(self, section: str) -> float | None:
        if self.limit_s is None:
            return None
        left = self.limit_s - (time.perf_counter() - self.started)
        return min(SECTION_SHARES.get(section, 1.0) * self.limit_s, left)

    def run(self, result: dict[str, Any], section: str, measure: Callable[[], Any], key: str | None = None) -> None:
        """result[key or section] = measure(), or the reason it stopped (under result["stopped_by_time_cap"])."""
        start = time.perf_counter()
        try:
            with time_cap(self.cap(section), section):
                result[key or section] = measure()
        except TimeCapReached as reached:
            logger.warning("%s", reached)
            result.setdefault("stopped_by_time_cap", {})[section] = str(reached)
        self.timings[section] = round(time.perf_counter() - start, 1)

    def timed(self, name: str, measure: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = measure()
        self.timings[name] = round(time.perf_counter() - start, 1)
        return value

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round(time.perf_counter() - self.started, 1)}


def run_benchmark(
    mode: str | None = None,
    device: str = "cpu",
    shared_dir: Path | None = DEFAULT_SHARED_DIR,
    work_dir: Path | None = None,
    t4_mfu: float = DEFAULT_T4_MFU,
    sections: Sequence[str] = SECTIONS,
    argv: Sequence[str] | None = None,
    time_limit_s: float | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its result (nothing written; see `benchmarks.bench_report.write_outputs`).

    `mode` None: `gpu` on CUDA (the real recipe on Qwen3-0.6B's shape within 8 minutes), `full` on the CPU.
    `time_limit_s` None: the mode's limit."""
    from fine_tune.models.acceleration import VLLM_EXTRA_HINT, resolve_use_vllm
    from fine_tune.models.precision import resolve_precision

    torch_device = resolve_device(device)
    mode = mode or default_mode(torch_device.type)
    settings = MODES[mode]
    clock = Clock(time_limit_s if time_limit_s is not None else settings.time_limit_s)
    shared_dir = shared_dir if shared_dir is not None and (shared_dir / "data" / "medmcqa").is_dir() else None
    precision = resolve_precision("auto") if torch_device.type == "cuda" else resolve_precision("fp32")
    recipes = {phase: Recipe.load(phase) for phase in ("sft", "grpo", "eval")}
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(argv) if argv is not None else None,
        "versions": library_versions(),
        "settings": asdict(settings),
        "time_limit_s": clock.limit_s,
        "config": {phase: recipe.as_recorded() for phase, recipe in recipes.items()},
        "flops": {"formula": FLOPS_FORMULA},
        "accelerators": {
            "use_vllm_auto": asdict(resolve_use_vllm("auto")),
            "vllm_extra": VLLM_EXTRA_HINT,
            "attn_implementation": "sdpa",
        },
    }
    result["device"] = clock.timed("device", lambda: describe_device(torch_device, precision.name))
    peak = result["device"]["peak_flops"]
    sft_recipe = recipes["sft"]
    lora = sft_recipe.lora

    if shared_dir is not None:
        lengths = clock.timed("lengths", lambda: real_lengths(shared_dir, settings.length_rows))
    else:
        lengths = clock.timed("lengths", lambda: synthetic_lengths(settings.length_rows or SYNTHETIC_ROWS))
    result["lengths"] = lengths.stats()
    micro, accum = int(sft_recipe["per_device_train_batch_size"]), int(sft_recipe["gradient_accumulation_steps"])
    sim_steps = settings.simulation_steps or project_steps(sft_recipe)
    simulated = padding_efficiency(lengths, micro, accum, sim_steps)

    result["flops"]["qwen3_0_6b"] = clock.timed(
        "flop_check",
        lambda: {
            "shape": asdict(QWEN3_0_6B_SHAPE),
            "backbone_linear_params": QWEN3_0_6B_SHAPE.backbone_linear_params,
            "lm_head_params": QWEN3_0_6B_SHAPE.lm_head_params,
            "lora_params": QWEN3_0_6B_SHAPE.lora_params(lora["r"], lora["targets"]),
            "lora_training_flops_per_token_at_mean_length": TrainingCost(
                QWEN3_0_6B_SHAPE, lora["r"], lora["targets"]
            ).flops(1, float(lengths.full.mean()), float(lengths.completion.mean() / lengths.full.mean())),
            "flop_counter_check": flop_check(QWEN3_0_6B_SHAPE, settings.flop_check_len, lora["r"], lora["targets"]),
        },
    )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        tiny = tiny_source(work)
        real_tokenizer = shared_dir / "tokenizers" / "qwen3" if shared_dir is not None else None
        # On CUDA every measurement runs on Qwen3-0.6B's shape; on the CPU the same code runs on the tiny model
        target = qwen3_shape_source(str(real_tokenizer or tiny.tokenizer_dir)) if torch_device.type == "cuda" else tiny

        def sft() -> dict[str, Any]:
            block: dict[str, Any] = {
                "padding_efficiency": {k: v["padding_efficiency"] for k, v in simulated.items()},
                "simulation": {
                    "steps": sim_steps,
                    "micro_batch": micro,
                    "gradient_accumulation_steps": accum,
                    "strategies": simulated,
                    "note": (
                        "padding_free with SDPA packs each micro-batch into one row; its block-diagonal mask is "
                        "dense, so attention_efficiency counts the whole packed square (flash-attention varlen "
                        "kernels would skip it; they do not run on a T4)"
                    ),
                },
                "exactness": padded_vs_padding_free(
                    tiny, sft_training_rows(lengths, 4, tiny.shape().vocab_size, seed=3), lora
                ),
            }
            measured = benchmark_sft(target, lengths, sft_recipe, settings, torch_device, peak)
            if torch_device.type == "cuda":
                block["qwen3_0_6b_gpu"] = measured
            else:
                block["tiny_cpu"] = measured
                block["qwen3_0_6b_gpu"] = None
                block["qwen3_0_6b_gpu_skipped"] = "no CUDA device: run `scripts/benchmark.py --device cuda` on a GPU"
            return block

        def evaluation() -> dict[str, Any]:
            messages, origin = eval_messages(shared_dir, settings.eval_prompts)
            source = target
            if torch_device.type == "cpu" and real_tokenizer is not None:
                source = tiny_source(work, real_tokenizer, name="tiny-qwen3-tokenizer")
            measured = benchmark_eval(source, messages, settings, torch_device, precision.torch_dtype, recipes["eval"])
            return {"prompts_from": origin, **measured}

        if "sft" in sections:
            clock.run(result, "sft", sft)
        if "eval" in sections:
            clock.run(result, "eval", evaluation)
        if "grpo" in sections:
            clock.run(result, "grpo", lambda: benchmark_grpo(target, recipes["grpo"], settings, torch_device))
        result["job_figures"] = job_figures(result, settings, target.is_qwen3_0_6b_shape)

    if "projection" in sections:

        def projection() -> dict[str, Any]:
            overhead = measure_host_overhead(QWEN3_0_6B_SHAPE, lora, settings, torch_device, precision.torch_dtype)
            result["host_overhead"] = overhead
            memory = t4_memory_estimate(lengths, sft_recipe)
            return project_t4(
                lengths,
                sft_recipe,
                recipes["grpo"],
                recipes["eval"],
                overhead,
                mfu=t4_mfu,
                simulation_steps=settings.simulation_steps,
                memory=memory,
            )

        clock.run(result, "projection", projection, key="t4_projection")
    result["timings_seconds"] = clock.total()
    result["recommendations"] = recommendations(result)
    return result


def project_steps(recipe: Recipe) -> int:
    from fine_tune.hub.jobs.estimate import phase_units

    return phase_units(recipe.phase, recipe.values)


def job_figures(result: dict[str, Any], settings: Settings, qwen3_shape: bool) -> dict[str, Any]:
    """Seconds per optimizer step (SFT, GRPO) and per scored question (eval) as the jobs run them, and whether they
    may drive job timeouts: only when measured on a GPU, on Qwen3-0.6B's shape, at the recipe's sizes, for a GPU
    family that Jobs flavors run on. `fine_tune.hub.jobs.estimate` reads them."""
    device = result["device"]
    family = device.get("family")
    reasons = []
    if device["type"] != "cuda":
        reasons.append("measured on the CPU, not on a GPU")
    if not qwen3_shape:
        reasons.append("not measured on Qwen3-0.6B's shape with its real vocabulary")
    if not settings.runs_the_recipe:
        reasons.append(f"mode {settings.mode} shrinks the recipe (GRPO completions, eval lengths or batches)")
    if device["type"] == "cuda" and not flavors_of_family(family):
        reasons.append(f"no Jobs flavor runs on {device['name']}")
    figures: dict[str, Any] = {
        "drives_job_timeouts": not reasons,
        "why_not": "; ".join(reasons) or None,
        "family": family,
        "flavors": list(flavors_of_family(family)) if family else [],
    }
    sft = result.get("sft") or {}
    sft_block = sft.get("qwen3_0_6b_gpu") or sft.get("tiny_cpu") or {}
    configured = (sft_block.get("variants") or {}).get("as_configured")
    if configured:
        figures["sft"] = {
            "seconds_per_unit": configured["seconds_per_step_median"],
            "unit": "optimizer step",
            "how": f"median of {configured['steps_measured']} SFTTrainer steps of the recipe ({sft_block['model']})",
        }
    grpo = ((result.get("grpo") or {}).get("variants") or {}).get("as_configured")
    if grpo and grpo.get("seconds_per_step"):
        figures["grpo"] = {
            "seconds_per_unit": grpo["seconds_per_step"],
            "unit": "optimizer step",
            "how": (
                f"median of {grpo['steps_measured']} GRPOTrainer steps of the recipe with HF generate, every "
                "completion to max_completion_length (random init)"
            ),
        }
    evaluation = result.get("eval") or {}
    if evaluation.get("seconds_per_question"):
        figures["eval"] = {
            "seconds_per_unit": evaluation["seconds_per_question"],
            "unit": "question (one model)",
            "how": (
                f"{evaluation['prompts']} prompts at the recipe's batch size and max_new_tokens "
                f"{evaluation['max_new_tokens']}, HF generate, every answer to the cap (random init)"
            ),
        }
    return figures
