"""benchmarks/memory_check.py without the measurement (that runs for minutes): its cases and the plan it compares."""

import pytest

from benchmarks.memory_check import CASES, VOCAB, Case, planned_terms
from fine_tune.hub.jobs.memory import plan_memory


def test_cases_cover_five_shapes_with_a_large_vocabulary():
    assert VOCAB >= 100_000 and len(CASES) >= 5
    assert len({(c.hidden, c.layers, c.batch, c.length) for c in CASES}) == len(CASES)
    assert {c.checkpointing for c in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=Case.label)
def test_planned_terms_regroup_the_cpu_plan(case):
    """The stages the script measures hold the plan's terms: nothing dropped, the total is the plan's peak."""
    plan = plan_memory(case.recipe(), case.config(), "sft", precision="bf16", device="cpu", length=case.length)
    terms = planned_terms(case)
    assert terms["total"] == plan.peak_bytes
    assert terms["weights"] + terms["adapters"] == plan.parts["weights"] + plan.parts["adapters"]
    held = terms["forward"] - 2 * case.batch * case.length * case.hidden * 4
    assert held == plan.parts.get("checkpoints", plan.parts.get("layer"))
    assert terms["lm_head"] < plan.parts.get("lm_head", plan.off_peak.get("lm_head"))
