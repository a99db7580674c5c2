"""scripts/vllm_engine_args.py: the vLLM stand-in's keywords come from the pinned wheel's source."""

import json
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "vllm_engine_args.py"
ARG_UTILS = """
from dataclasses import dataclass
from typing import ClassVar

@dataclass
class EngineArgs:
    model: str = "m"
    dtype: str = "auto"
    default_limits: ClassVar[dict] = {}
    seed: int = 0
"""
LLM = """
class LLM:
    def __init__(self, model: str, *, tokenizer=None, dtype="auto", **kwargs):
        pass
"""


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_keywords_are_read_from_the_wheels_source(tmp_path):
    wheel = tmp_path / "vllm-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("vllm/engine/arg_utils.py", ARG_UTILS)
        archive.writestr("vllm/entrypoints/llm.py", LLM)
    done = run(wheel, "--out", tmp_path / "engine_args.json")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "engine_args.json").read_text())
    assert record["engine_args"] == ["model", "dtype", "seed"], "ClassVars are not fields"
    assert record["llm_parameters"] == ["model", "tokenizer", "dtype"]
    assert record["source"].startswith(f"{wheel.name} (sha256 ")


def test_a_file_that_is_no_vllm_wheel_is_one_line_and_exit_2(tmp_path):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    done = run(wheel, "--out", tmp_path / "engine_args.json")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "other.whl: not a vLLM wheel" in done.stderr and not (tmp_path / "engine_args.json").exists()


def test_the_committed_fixture_is_from_the_pinned_release():
    record = json.loads((REPO_ROOT / "tests" / "fixtures" / "vllm" / "engine_args.json").read_text())
    lines = (REPO_ROOT / "pyproject.toml").read_text().splitlines()
    pinned = next(line for line in lines if line.startswith("vllm = "))
    version = pinned.split('"vllm==')[1].split('"')[0]
    assert record["source"].startswith(f"vllm-{version}-"), (record["source"], version)
