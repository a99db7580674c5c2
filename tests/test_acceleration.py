"""The accelerator switches (fine_tune/models/acceleration.py) and the `[vllm]` extra they point users to."""

from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from fine_tune.models.acceleration import (
    VLLM_EXTRA_HINT,
    VLLM_SUPPORTED,
    AccelerationError,
    parse_switch,
    resolve_use_vllm,
    vllm_problems,
)

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


def requirements(names: list[str]) -> dict[str, Requirement]:
    return {Requirement(text).name.lower().replace("_", "-"): Requirement(text) for text in names}


def test_vllm_extra_pins_a_release_trl_supports():
    extra = requirements(PYPROJECT["project"]["optional-dependencies"]["vllm"])
    assert "medmcqa-ft[vllm]" in VLLM_EXTRA_HINT
    allowed = [v for v in (Version(f"0.{minor}.0") for minor in range(15, 40)) if extra["vllm"].specifier.contains(v)]
    assert allowed and all(VLLM_SUPPORTED[0] <= v <= VLLM_SUPPORTED[1] for v in allowed)


def test_base_requirements_admit_the_vllm_pins():
    """Each package the extra narrows keeps a version both ranges allow (the extra's floor), or `.[vllm]` cannot
    resolve; the full resolution with pip is recorded in docs/measurements.md."""
    base = requirements(PYPROJECT["project"]["dependencies"])
    extra = requirements(PYPROJECT["project"]["optional-dependencies"]["vllm"])
    shared = [name for name in extra if name in base]
    assert {"transformers", "huggingface-hub", "numpy"} <= set(shared)
    for name in shared:
        floors = [s.version for s in extra[name].specifier if s.operator in (">=", "==")]
        assert floors, f"{name} in the [vllm] extra needs a lower bound"
        assert base[name].specifier.contains(floors[0]), f"{name}: base {base[name]} excludes {extra[name]}"
        assert extra[name].specifier.contains(floors[0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "auto"), (True, "true"), (False, "false"), ("Yes", "true"), ("off", "false"), (" auto ", "auto")],
)
def test_parse_switch(value, expected):
    assert parse_switch(value) == expected


def test_parse_switch_refuses_other_values():
    with pytest.raises(ValueError, match="expected one of"):
        parse_switch("sometimes")


def test_vllm_problems():
    assert vllm_problems("0.31.0", (9, 0)) == []
    assert vllm_problems("0.22.0", (8, 0)) == []
    assert vllm_problems("0.31.0rc1", (8, 0)) == [], "pre-releases of a supported release count as it"
    (missing,) = vllm_problems(None, (9, 0))
    assert "not installed" in missing and VLLM_EXTRA_HINT in missing
    assert "outside the range" in vllm_problems("0.32.0", (9, 0))[0]
    assert vllm_problems(None, None)[1] == "no CUDA device"


def test_grpo_vllm_switch_turns_on_where_vllm_can_run():
    on = resolve_use_vllm("auto", vllm_version="0.31.0", capability=(9, 0), model_dtype="bfloat16")
    assert on.enabled and "colocated" in on.reason
    t4 = resolve_use_vllm("auto", vllm_version="0.31.0", capability=(7, 5), model_dtype="bfloat16")
    assert not t4.enabled and "save the starting model in fp16" in t4.reason
    assert resolve_use_vllm("auto", vllm_version="0.31.0", capability=(7, 5), model_dtype="float16").enabled
    assert not resolve_use_vllm("false", vllm_version="0.31.0", capability=(9, 0)).enabled
    with pytest.raises(AccelerationError, match="use_vllm: true, but vllm is not installed"):
        resolve_use_vllm("true", vllm_version=None, capability=(9, 0))


def test_grpo_vllm_server_mode_needs_the_vllm_client():
    server = resolve_use_vllm("server", vllm_version="0.31.0", capability=None)
    assert server.enabled and server.mode == "server"
    assert resolve_use_vllm("auto", vllm_version="0.31.0", capability=(9, 0)).mode == "colocate"
    with pytest.raises(AccelerationError, match="not installed"):
        resolve_use_vllm("server", vllm_version=None, capability=(9, 0))
