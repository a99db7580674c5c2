"""Seconds per step per phase and flavor: one source (the conservative T4 figures scaled by the hardware table),
replaced only by GPU measurements of the flavor's GPU family, monotone in the hardware."""

import itertools
import json
from pathlib import Path

import pytest

from fine_tune.hub.jobs import estimate
from fine_tune.hub.jobs.hardware import JOBS_FLAVORS, T4, device_spec, flavors_of_family, gpu_family

REPO = Path(__file__).resolve().parent.parent
PHASES = ("sft", "grpo", "eval")


def gpu_result(name: str, sft: float, grpo: float = 9.0, evaluation: float = 0.3, drives: bool = True) -> dict:
    """The part of a `scripts/benchmark.py --device cuda` result that estimates read."""
    return {
        "device": {"type": "cuda", "name": name, "family": gpu_family(name)},
        "job_figures": {
            "drives_job_timeouts": drives,
            "sft": {"seconds_per_unit": sft, "unit": "optimizer step", "how": "test"},
            "grpo": {"seconds_per_unit": grpo, "unit": "optimizer step", "how": "test"},
            "eval": {"seconds_per_unit": evaluation, "unit": "question (one model)", "how": "test"},
        },
    }


def dominates(fast: str, slow: str) -> bool:
    a, b = JOBS_FLAVORS[fast].device, JOBS_FLAVORS[slow].device
    return a.training_flops >= b.training_flops and a.memory_bandwidth >= b.memory_bandwidth


def assert_monotone(figures: dict[str, dict[str, estimate.Figure]]) -> None:
    for phase in PHASES:
        speed = {f: estimate.speedup_over_t4(phase, JOBS_FLAVORS[f].device) for f in JOBS_FLAVORS}
        for fast, slow in itertools.permutations(JOBS_FLAVORS, 2):
            if dominates(fast, slow) or speed[fast] >= speed[slow]:
                assert figures[fast][phase].seconds <= figures[slow][phase].seconds, (phase, fast, slow)


def test_the_default_sft_timeout_covers_800_steps_at_the_conservative_t4_figure():
    """Before: the committed CPU benchmark's 0.94 s/step projection replaced the T4 figure, so the default timeout was
    40 min and a job at 3.5 s/step was killed near step 460-510 of 800."""
    est = estimate.estimate("sft", "t4-small", {"max_steps": 800})
    assert est.default_timeout_seconds >= (estimate.SETUP_SECONDS + 800 * 3.5 + estimate.FINALIZE_SECONDS) * 1.5
    assert est.seconds_per_unit == 3.5 == estimate.CONSERVATIVE_T4["sft"].seconds
    assert est.default_timeout_seconds - estimate.SETUP_SECONDS - estimate.FINALIZE_SECONDS > 800 * 3.5 * 1.4


def test_a_cpu_benchmark_never_overrides_a_figure(tmp_path):
    """Before: any JSON with t4_projection.<phase>.projected_t4_seconds_per_step replaced the T4 flavors' figures."""
    committed = json.loads((REPO / "eval_results" / "benchmarks" / "cpu.json").read_text())
    (tmp_path / "cpu.json").write_text(json.dumps(committed))
    (tmp_path / "h200-smoke.json").write_text(json.dumps(gpu_result("NVIDIA H200", 0.1, drives=False)))
    (tmp_path / "old.json").write_text(json.dumps({"phase": "sft", "projected_t4_seconds_per_step": 0.5}))
    (tmp_path / "broken.json").write_text("{not json")
    assert estimate.benchmark_figures(tmp_path) == {}
    assert estimate.resolved_figures({}) == estimate.SECONDS_PER_UNIT


def test_the_repository_figures_are_the_conservative_table_until_a_gpu_measures():
    figures = estimate.resolved_figures()
    assert all(figure.kind == "projected" for phases in figures.values() for figure in phases.values())
    for phase in PHASES:
        assert figures["t4-small"][phase] == estimate.CONSERVATIVE_T4[phase]


def test_a_faster_flavor_never_gets_a_longer_estimate():
    """Before: l4x1 had 2.0 s/step for SFT and a100-large 5.0 for GRPO against the T4's 0.94 and 7.9 from cpu.json."""
    assert_monotone(estimate.resolved_figures())
    # Training phases: every flavor has more tensor throughput than a T4 in its training precision
    for phase in ("sft", "grpo"):
        t4 = estimate.SECONDS_PER_UNIT["t4-small"][phase].seconds
        assert all(estimate.SECONDS_PER_UNIT[f][phase].seconds <= t4 for f in JOBS_FLAVORS)
    # Decode-bound eval: an L4 reads memory slower than a T4 (300 vs 320 GB/s) and is estimated slower
    assert estimate.SECONDS_PER_UNIT["l4x1"]["eval"].seconds > estimate.SECONDS_PER_UNIT["t4-small"]["eval"].seconds
    for phase in PHASES:
        assert estimate.SECONDS_PER_UNIT["h200"][phase].seconds < estimate.SECONDS_PER_UNIT["l4x1"][phase].seconds


def test_host_time_keeps_scaled_figures_conservative():
    """Only the device share scales: an H200 is ~15x a T4's fp16 peak, the SFT figure shrinks by less than 2.2x."""
    h200 = device_spec("NVIDIA H200")
    assert h200.training_flops / T4.training_flops > 15
    assert 1 < estimate.speedup_over_t4("sft", h200) < 1 / estimate.STEP_SHARES["sft"]["host"]
    assert estimate.speedup_over_t4("sft", T4) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("gpu", "sft"),
    [("NVIDIA H200", 0.4), ("Tesla T4", 1.2), ("NVIDIA A100-SXM4-80GB", 9.0), ("NVIDIA L4", 0.05)],
)
def test_a_gpu_measurement_drives_its_family_and_bounds_the_others(tmp_path, gpu, sft):
    (tmp_path / f"{gpu_family(gpu)}.json").write_text(json.dumps(gpu_result(gpu, sft)))
    measured = estimate.benchmark_figures(tmp_path)
    family = flavors_of_family(gpu_family(gpu))
    assert family and {flavor for flavor, _ in measured} == set(family)
    figures = estimate.resolved_figures(measured)
    for flavor in family:
        assert figures[flavor]["sft"].seconds == sft and figures[flavor]["sft"].kind == "measured"
        assert gpu in figures[flavor]["sft"].source
    assert_monotone(figures)
    est = estimate.estimate("sft", family[0], {"max_steps": 800}, measured)
    assert est.seconds_per_unit == sft and est.figure_kind == "measured"


def test_an_unknown_gpu_drives_nothing(tmp_path):
    (tmp_path / "future.json").write_text(json.dumps(gpu_result("Some Future GPU", 0.2)))
    assert estimate.benchmark_figures(tmp_path) == {}


def test_the_jobs_doc_cost_table_is_the_generated_one():
    from benchmarks.settings import Recipe

    table = estimate.cost_table({phase: Recipe.load(phase).values for phase in PHASES})
    doc = (REPO / "docs" / "jobs.md").read_text()
    assert table in doc, "regenerate it: python scripts/benchmark.py --cost-table"
    # README's T4 plan quotes the t4-small row: each phase's job time and (timeout), and the pipeline total
    t4_row = next(line for line in table.splitlines() if line.startswith("| `t4-small`"))
    cells = [cell.strip() for cell in t4_row.strip("|").split("|")]
    readme = (REPO / "README.md").read_text()
    for cell in cells[2:5]:  # "59m40s, $0.40 (1h30m)"
        time, timeout = cell.split(",")[0], cell.rsplit("(", 1)[1].rstrip(")")
        assert f"{time} ({timeout})" in readme, f"README's T4 table: {time} ({timeout})"
    total_time, total_cost = cells[5].split(", ")
    assert total_cost in readme and total_time[:5] in readme, f"README's pipeline total: {cells[5]}"


def test_a_multi_gpu_flavor_gets_its_gpus_single_gpu_figure_with_no_credit_for_the_others():
    from fine_tune.hub.jobs.estimate import figure_for, single_gpu_flavor

    assert [single_gpu_flavor(f) for f in ("l4x4", "a10g-largex4", "h200x8", "l4x1", "foox4")] == [
        "l4x1", "a10g-large", "h200", None, None,
    ]  # fmt: skip
    for phase in ("sft", "grpo", "eval"):
        multi, single = figure_for("l4x4", phase, {}), figure_for("l4x1", phase, {})
        assert multi.seconds == single.seconds and multi.kind == single.kind
        assert multi.source.startswith("l4x1's single-GPU figure, no credit for the 4 GPUs of l4x4: ")
    assert figure_for("foox4", "sft", {}) is None
    est = estimate.estimate("sft", "l4x4", {"max_steps": 100}, {})
    assert est.seconds_per_unit == figure_for("l4x1", "sft", {}).seconds
    assert estimate.resolve_timeout(est, None, "l4x4") == (est.default_timeout_seconds, "estimate")
