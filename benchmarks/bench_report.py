"""The benchmark's report: what the figures support (in words), the markdown tables, and the output files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.settings import default_mode
from fine_tune.constants import BENCHMARK_DIR, PROJECT_ROOT
from fine_tune.hub.jobs.hardware import GIB, gpu_family
from fine_tune.io import atomic_write_json, atomic_write_text
from fine_tune.markdown import md_table

DEFAULT_OUT_DIR = PROJECT_ROOT / BENCHMARK_DIR


# Whether a batching strategy leaves training exactly as it was. padding_free: the loss and gradients of every batch
# equal the padded ones (checked at run time and in tests/test_benchmark.py). batch_rebalance: every optimizer step
# still holds a uniformly random set of rows, only split differently into micro-batches, and the token-normalised
# loss makes the step's gradient independent of that split (tested). group_by_length: optimizer steps hold rows of
# similar length, a different (length-correlated) sampling of the data: faster, not exact.
EXACT_STRATEGIES = {
    "pad_to_longest_random": "the seed's behaviour",
    "batch_rebalance": "same rows per optimizer step, split differently; same step gradient",
    "padding_free": "same loss and gradients per batch",
}


def vllm_finding(variant: dict[str, Any] | None) -> str:
    if not variant:
        return "vLLM was not measured"
    if not variant.get("available", True):
        return f"vLLM did not run ({variant['reason']})"
    return f"with vLLM colocated a step took {variant['seconds_per_step']:.3f} s"


def recommendations(result: dict[str, Any]) -> list[str]:
    """Which levers the measurements support, in words (the figures are in the result)."""
    out = []
    sft = result.get("sft") or {}
    exact = sft.get("exactness") or {}
    efficiency = sft.get("padding_efficiency") or {}
    projection = result.get("t4_projection") or {}
    sft_projection = projection.get("sft") or {}
    memory = sft_projection.get("memory") or {}
    scenarios = sft_projection.get("scenarios") or {}
    if scenarios:
        checkpointing = "on" if not memory.get("fits_without_checkpointing") else "off"
        candidates = {
            strategy: scenarios[f"{strategy}, checkpointing {checkpointing}"]["seconds_per_step"]
            for strategy in EXACT_STRATEGIES
            if f"{strategy}, checkpointing {checkpointing}" in scenarios
        }
        best = min(candidates, key=candidates.get)
        seed = scenarios.get("pad_to_longest_random, checkpointing on", {}).get("seconds_per_step")
        out.append(
            f"SFT on a T4: {best} with activation checkpointing {checkpointing} projects to {candidates[best]:.3f} "
            f"s/step ({candidates[best] * sft_projection['steps'] / 60:.1f} min for {sft_projection['steps']} steps) "
            f"against {seed:.3f} s/step for the seed (pad to longest, checkpointing on); the fastest exact strategy "
            f"({EXACT_STRATEGIES[best]})"
        )
    if exact and efficiency:
        verdict = "exact" if exact.get("abs_loss_difference", 1) < 1e-5 else "NOT exact"
        out.append(
            f"padding_free is {verdict} (|loss difference| {exact['abs_loss_difference']:.1e}, max gradient "
            f"difference {exact['max_abs_grad_difference']:.1e}) with padding efficiency "
            f"{efficiency.get('padding_free')} vs "
            f"{efficiency.get('pad_to_longest_random')}, but with SDPA (no varlen kernel on a T4) the packed row's "
            "attention is a dense square: keep it off on a T4; it pays with a varlen flash-attention kernel "
            "(sm >= 8.0)"
        )
    if memory:
        out.append(
            f"activation_checkpointing: {'false' if memory.get('fits_without_checkpointing') else 'true'} for SFT "
            f"on a T4: the worst micro-batch ({memory['micro_batch']} x {memory['worst_sequence_tokens']} tokens) "
            f"needs about {memory['total_bytes'] / GIB:.1f} GiB without it, of the T4's "
            f"{memory['t4_memory_bytes'] / GIB:.1f} GiB; "
            "checkpointing costs one extra forward per step"
        )
    grpo = result.get("grpo") or {}
    grpo_projection = projection.get("grpo") or {}
    if grpo.get("generation_share") is not None:
        share = grpo_projection.get("every_completion_to_the_cap", {}).get("generation_share")
        out.append(
            f"GRPO is generation-bound ({grpo['generation_share']:.0%} of a step here"
            + (f", {share:.0%} projected on a T4" if share is not None else "")
            + "): generation is the lever. TRL already generates the whole generation batch in one generate() call; "
            + vllm_finding(grpo.get("variants", {}).get("vllm_colocate"))
        )
    evaluation = result.get("eval") or {}
    if evaluation.get("speedup_vs_sequential") is not None:
        out.append(
            f"eval: batched generation (batch {evaluation['best_batch_size']}) is "
            f"{evaluation['speedup_vs_sequential']:.1f}x the one-prompt-at-a-time loop; outputs identical: "
            f"{evaluation['outputs_identical']}"
        )
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}"
        return f"{value:.{digits}g}"
    return str(value)


def render_markdown(result: dict[str, Any]) -> str:
    device = result["device"]
    lines = [
        f"# Benchmark: {device['name']} ({device['type']}, {result['mode']} mode)",
        "",
        f"Created {result['created']} with torch {result['versions']['torch']}, transformers "
        f"{result['versions']['transformers']}, trl {result['versions']['trl']}, peft {result['versions']['peft']}. "
        f"Peak used for MFU: {_fmt(device['peak_flops'])} FLOP/s ({device['peak_source']}).",
        "",
        f"Lengths: {result['lengths']['source']}; full sequence mean {result['lengths']['full']['mean']}, "
        f"p95 {result['lengths']['full']['p95']}, max {result['lengths']['full']['max']} tokens; completion mean "
        f"{result['lengths']['completion']['mean']}.",
        "",
        f"FLOPs: {result['flops']['formula']}",
        "",
    ]
    for render in (_sft_lines, _eval_lines, _grpo_lines, _projection_lines, _job_figure_lines, _accelerator_lines):
        lines += render(result)
    if result.get("stopped_by_time_cap"):
        lines += ["## Stopped by the time cap", ""]
        lines += [f"- {why}" for why in result["stopped_by_time_cap"].values()] + [""]
    if result.get("recommendations"):
        lines += ["## What the figures support", ""] + [f"- {r}" for r in result["recommendations"]] + [""]
    lines += [f"Benchmark wall time: {result['timings_seconds']}.", ""]
    return "\n".join(lines)


def _sft_lines(result: dict[str, Any]) -> list[str]:
    sft, device = result.get("sft"), result["device"]
    if not sft:
        return []
    sim = sft["simulation"]
    lines = [
        f"## SFT padding efficiency (simulated over {sim['steps']} steps of {sim['micro_batch']} x "
        f"{sim['gradient_accumulation_steps']} sequences)",
        "",
        md_table(
            ("strategy", "padding efficiency", "attention efficiency", "processed tokens / step"),
            [
                (
                    name,
                    _fmt(s["padding_efficiency"]),
                    _fmt(s["attention_efficiency"]),
                    _fmt(s["processed_tokens_per_step"]),
                )
                for name, s in sim["strategies"].items()
            ],
        ),
    ]
    exact = sft["exactness"]
    lines += [
        "",
        f"Exactness on a fixed batch of 4 (tiny model, SDPA): loss padded {exact['loss_padded']:.7f}, "
        f"padding-free {exact['loss_padding_free']:.7f}, |difference| {_fmt(exact['abs_loss_difference'])}, "
        "max LoRA gradient "
        f"difference {_fmt(exact['max_abs_grad_difference'])} (max gradient {_fmt(exact['max_abs_grad'])}).",
        "",
    ]
    for key in ("tiny_cpu", "tiny", "qwen3_0_6b_gpu"):
        block = sft.get(key)
        if not block:
            continue
        header = (
            "variant",
            "s / step",
            "real tok/s",
            "processed tok/s",
            "padding eff.",
            "MFU",
            "peak MiB",
            "speed-up",
        )
        rows = [
            (
                name,
                _fmt(v["seconds_per_step_median"]),
                _fmt(v["real_tokens_per_s"], 4),
                _fmt(v["processed_tokens_per_s"], 4),
                _fmt(v["padding_efficiency_measured"]),
                _fmt(v["mfu"]),
                f"{v['peak_memory_bytes'] / 2**20:.0f}",
                _fmt(v["speedup_vs_pad_to_longest_random"]),
            )
            for name, v in block["variants"].items()
        ]
        lines += [f"## SFT throughput: {block['model']} on {device['type']}", "", md_table(header, rows), ""]
    if sft.get("qwen3_0_6b_gpu_skipped"):
        lines += [f"Qwen3-0.6B-shape SFT: skipped ({sft['qwen3_0_6b_gpu_skipped']}).", ""]
    return lines


def _eval_lines(result: dict[str, Any]) -> list[str]:
    evaluation = result.get("eval")
    if not evaluation:
        return []
    sequential = evaluation["sequential"]
    subset = sequential.get("prompts", evaluation["prompts"])
    label = "1 (upstream's loop)" + ("" if subset == evaluation["prompts"] else f", first {subset} prompts")

    def rate(block: dict[str, Any], prompts: int) -> float:
        return block.get("prompts_per_s", prompts / block["seconds_median"])

    def row(name: Any, seconds: float, prompts_per_s: float, tokens_per_s: float, speedup: Any) -> tuple[Any, ...]:
        return (name, _fmt(seconds), _fmt(prompts_per_s, 4), _fmt(tokens_per_s, 4), speedup)

    rows = [row(label, sequential["seconds_median"], rate(sequential, subset), sequential["tokens_per_s"], 1)]
    rows += [
        row(
            size,
            b["seconds_median"],
            rate(b, evaluation["prompts"]),
            b["tokens_per_s"],
            _fmt(b["speedup_vs_sequential"]),
        )
        for size, b in evaluation["batched"].items()
    ]
    vllm = evaluation.get("vllm") or {}
    if vllm.get("available"):
        rows.append(row("vLLM (all prompts)", vllm["seconds"], vllm["prompts_per_s"], vllm["tokens_per_s"], ""))
    lines = [
        f"## Eval generation: {evaluation['prompts']} prompts ({evaluation['prompts_from']}), "
        f"{evaluation['max_new_tokens']} new tokens, {evaluation['model']}",
        "",
        md_table(("batch size", "seconds", "prompts/s", "generated tok/s", "speed-up"), rows),
        "",
        f"Outputs identical to the sequential loop: {_fmt(evaluation['outputs_identical'])}.",
    ]
    if vllm and not vllm.get("available"):
        lines.append(f"vLLM: not measured ({vllm['reason']}).")
    return lines + [""]


def _grpo_lines(result: dict[str, Any]) -> list[str]:
    grpo = result.get("grpo")
    if not grpo:
        return []
    rows = []
    for name, v in grpo["variants"].items():
        if not v.get("available", True):
            rows.append((name, "unavailable", "", "", v["reason"]))
            continue
        rows.append(
            (
                name,
                _fmt(v["seconds_per_step"]),
                _fmt(v["generation_share"]),
                _fmt(v["generated_tokens_per_step"]),
                f"{v['per_device_train_batch_size']} x {v['gradient_accumulation_steps']}",
            )
        )
    header = ("variant", "s / step", "generation share", "generated tokens / step", "micro-batch x accumulation")
    return [f"## GRPO: {grpo['model']}", "", md_table(header, rows), "", grpo["note"], ""]


def _projected_row(label: str, phase: dict[str, Any], unit: str = "optimizer step") -> tuple[Any, ...]:
    total = phase.get("projected_total_seconds")
    return (
        label,
        _fmt(phase["projected_t4_seconds_per_step"]),
        unit,
        phase.get("steps", ""),
        "" if total is None else f"{total / 60:.1f}",
    )


def _projection_lines(result: dict[str, Any]) -> list[str]:
    projection = result.get("t4_projection")
    if not projection:
        return []
    sft_p, grpo_p, eval_p = projection["sft"], projection["grpo"], projection["eval"]
    phases = [
        _projected_row("SFT", sft_p),
        _projected_row("GRPO (every completion to the cap)", grpo_p),
        _projected_row("eval (every answer to the cap)", eval_p, unit="question"),
    ]
    scenarios = [
        (
            name,
            _fmt(s["seconds_per_step"]),
            f"{s['total_seconds'] / 60:.1f}",
            _fmt(s["device_seconds_per_step"]),
            _fmt(s["host_seconds_per_step"]),
            _fmt(s["physics_floor_seconds_per_step"]),
        )
        for name, s in sft_p["scenarios"].items()
    ]
    typical = grpo_p["typical_completions"]
    lines = [
        f"## T4 projection (fp16, assumed MFU {projection['assumed_mfu']}, bandwidth efficiency "
        f"{projection['assumed_bandwidth_efficiency']})",
        "",
        md_table(("phase", "as configured: s / unit", "unit", "units", "total minutes"), phases),
        "",
        md_table(("SFT scenario", "s / step", "total minutes", "device s", "host s", "floor at 100% peak"), scenarios),
        "",
        f"GRPO with typical completions ({typical['decode_steps']:.0f} decode steps): "
        f"{_fmt(typical['seconds_per_step'])} s/step, generation share {_fmt(typical['generation_share'])}; "
        f"at the cap: generation share {_fmt(grpo_p['every_completion_to_the_cap']['generation_share'])}.",
    ]
    memory = sft_p.get("memory")
    if memory:
        lines.append(
            f"SFT memory without activation checkpointing (worst micro-batch {memory['micro_batch']} x "
            f"{memory['worst_sequence_tokens']} tokens): about {memory['total_bytes'] / GIB:.2f} GiB of "
            f"{memory['t4_memory_bytes'] / GIB:.0f} GiB."
        )
    return lines + [""]


def _job_figure_lines(result: dict[str, Any]) -> list[str]:
    figures = result.get("job_figures")
    if not figures:
        return []
    rows = [
        (phase, _fmt(figures[phase]["seconds_per_unit"]), figures[phase]["unit"], figures[phase]["how"])
        for phase in ("sft", "grpo", "eval")
        if phase in figures
    ]
    verdict = (
        f"these drive the job timeouts of {', '.join(figures['flavors'])}"
        if figures["drives_job_timeouts"]
        else f"these do not drive job timeouts: {figures['why_not']}"
    )
    return [
        "## Figures for job timeouts",
        "",
        md_table(("phase", "seconds", "per", "how"), rows),
        "",
        verdict + ".",
        "",
    ]


def _accelerator_lines(result: dict[str, Any]) -> list[str]:
    accelerators = result.get("accelerators") or {}
    if not accelerators:
        return []
    return [
        "## Optional accelerators on this machine",
        "",
        f"- use_vllm auto: {_fmt(accelerators['use_vllm_auto']['enabled'])} "
        f"({accelerators['use_vllm_auto']['reason']}); vllm extra {accelerators['vllm_extra']}",
        "",
    ]


def output_stem(device: dict[str, Any], mode: str) -> str:
    """cpu[-mode] (full mode unsuffixed); on CUDA the GPU family, e.g. h200 (gpu mode unsuffixed) or t4-smoke."""
    if device["type"] == "cuda":
        family = device.get("family") or gpu_family(device["name"])
        return family if mode == default_mode("cuda") else f"{family}-{mode}"
    return "cpu" if mode == default_mode("cpu") else f"cpu-{mode}"


def write_outputs(result: dict[str, Any], out_dir: Path = DEFAULT_OUT_DIR) -> dict[str, Path]:
    stem = output_stem(result["device"], result["mode"])
    json_path = atomic_write_json(Path(out_dir) / f"{stem}.json", result)
    md_path = atomic_write_text(Path(out_dir) / f"{stem}.md", render_markdown(result))
    return {"json": json_path, "markdown": md_path}


def main_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True, default=str)
