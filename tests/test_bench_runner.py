"""The benchmark runner and its command line: the smoke run (keys and types; figures are not asserted), the GPU
command's job figures and when they may drive timeouts, and the time caps."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.lengths import STRATEGIES
from benchmarks.runner import Clock, job_figures
from benchmarks.settings import MODES
from fine_tune.hub.jobs.estimate import benchmark_figures

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/benchmark.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_smoke_run_writes_json_and_markdown_with_the_promised_keys(tmp_path):
    """`scripts/benchmark.py --smoke --json` (CI): one JSON object on stdout, the same in the output folder."""
    out = run_script("--smoke", "--json", "--out-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result == json.loads((tmp_path / "cpu-smoke.json").read_text())
    assert (tmp_path / "cpu-smoke.md").read_text().startswith("# Benchmark")
    assert result["device"]["type"] == "cpu" and number(result["device"]["peak_flops"])
    assert result["versions"]["torch"] and result["versions"]["trl"]
    assert "4*N" in result["flops"]["formula"]
    efficiency = result["sft"]["padding_efficiency"]
    assert set(efficiency) == set(STRATEGIES) and all(0 < v <= 1 for v in efficiency.values())
    for variant in result["sft"]["tiny_cpu"]["variants"].values():
        for key in ("real_tokens_per_s", "processed_tokens_per_s", "mfu", "peak_memory_bytes"):
            assert number(variant[key]), key
    assert number(result["eval"]["speedup_vs_sequential"])
    assert isinstance(result["eval"]["outputs_identical"], bool)
    assert number(result["grpo"]["measured_seconds_per_step"]) and 0 <= result["grpo"]["generation_share"] <= 1
    for phase in ("sft", "grpo", "eval"):
        assert result["t4_projection"][phase]["projected_t4_seconds_per_step"] > 0
    # The GPU command's code path ran on tiny shapes: vLLM recorded as unavailable with its reason, job figures
    # computed but not allowed to drive timeouts, and the estimates ignore the file
    assert result["grpo"]["variants"]["vllm_colocate"] == {"available": False, "reason": "vLLM needs a CUDA device"}
    assert result["eval"]["vllm"]["available"] is False and result["eval"]["vllm"]["reason"]
    jobs = result["job_figures"]
    assert (
        jobs["drives_job_timeouts"] is False and "CPU" in jobs["why_not"] and "shrinks the recipe" in jobs["why_not"]
    )
    for phase in ("sft", "grpo", "eval"):
        assert number(jobs[phase]["seconds_per_unit"]) and jobs[phase]["seconds_per_unit"] > 0
    assert (
        jobs["sft"]["seconds_per_unit"]
        == result["sft"]["tiny_cpu"]["variants"]["as_configured"]["seconds_per_step_median"]
    )
    assert "Figures for job timeouts" in (tmp_path / "cpu-smoke.md").read_text()
    assert benchmark_figures(tmp_path) == {}


def measured(device: dict) -> dict:
    return {
        "device": device,
        "sft": {
            "qwen3_0_6b_gpu": {
                "model": "qwen3",
                "variants": {"as_configured": {"seconds_per_step_median": 0.3, "steps_measured": 8}},
            }
        },
        "grpo": {"variants": {"as_configured": {"seconds_per_step": 6.0, "steps_measured": 3}}},
        "eval": {"seconds_per_question": 0.05, "prompts": 32, "max_new_tokens": 256},
    }


def test_gpu_figures_drive_timeouts_only_from_the_gpu_mode_on_qwen3_shape_of_a_jobs_gpu(tmp_path):
    h200 = {"type": "cuda", "name": "NVIDIA H200", "family": "h200"}
    figures = job_figures(measured(h200), MODES["gpu"], qwen3_shape=True)
    assert figures["drives_job_timeouts"] is True and figures["flavors"] == ["h200"]
    assert (figures["sft"]["seconds_per_unit"], figures["grpo"]["seconds_per_unit"]) == (0.3, 6.0)
    assert figures["eval"]["seconds_per_unit"] == 0.05
    (tmp_path / "h200.json").write_text(json.dumps({**measured(h200), "job_figures": figures}))
    assert benchmark_figures(tmp_path)[("h200", "sft")].seconds == 0.3

    assert "shrinks the recipe" in job_figures(measured(h200), MODES["smoke"], qwen3_shape=True)["why_not"]
    assert "Qwen3-0.6B" in job_figures(measured(h200), MODES["gpu"], qwen3_shape=False)["why_not"]
    unknown = {"type": "cuda", "name": "Some Future GPU", "family": "some-future-gpu"}
    assert "no Jobs flavor" in job_figures(measured(unknown), MODES["gpu"], qwen3_shape=True)["why_not"]


def test_the_gpu_mode_runs_the_recipe_within_eight_minutes_of_caps():
    gpu = MODES["gpu"]
    assert gpu.runs_the_recipe and gpu.time_limit_s <= 8 * 60
    assert not MODES["smoke"].runs_the_recipe and not MODES["quick"].runs_the_recipe
    assert "vllm_colocate" in gpu.grpo_variants and "as_configured" in gpu.sft_variants


def test_a_section_past_its_time_cap_is_recorded_and_the_next_one_still_runs():
    clock = Clock(limit_s=1.0)
    result: dict = {}

    def endless():
        while True:
            time.sleep(0.01)

    clock.run(result, "grpo", endless)  # its share: 0.3 s
    clock.run(result, "eval", lambda: {"done": True})
    assert "grpo" not in result and "time cap of 0.3 s" in result["stopped_by_time_cap"]["grpo"]
    assert result["eval"] == {"done": True} and clock.timings["grpo"] < 1.0
    time.sleep(1.0)
    clock.run(result, "sft", lambda: {"done": True})  # past the limit: no time left
    assert "sft" not in result and "no time left" in result["stopped_by_time_cap"]["sft"]
    assert Clock(limit_s=None).cap("sft") is None


def test_an_unknown_section_is_one_line_and_exit_2():
    out = run_script("--sections", "sft,warp", "--no-write")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error: --sections")


def test_cuda_without_a_gpu_is_one_line_and_exit_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = run_script("--device", "cuda", "--no-write")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == (
        "error: --device cuda, but torch sees no CUDA device (use --device cpu, or run on a GPU)"
    )
