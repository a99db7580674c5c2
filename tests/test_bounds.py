"""No call without a bound, from the first import (fine_tune/bounds.py): huggingface_hub's timeouts are in force
before any entry script imports transformers, peft, bitsandbytes or TRL; the kernel lookup bitsandbytes makes at
import is off; the job submitter and the dataset validator import no trainer code at all."""

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fine_tune import bounds
from fine_tune.errors import RecipeError

REPO = Path(__file__).resolve().parent.parent
TRAINER_MODULES = ("trl.trainer", "peft", "bitsandbytes")


def child_env(**extra: str) -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LOCAL_KERNELS"))}
    return {**keep, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def run_python(code: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=child_env(**env), capture_output=True, text=True, timeout=timeout
    )


def test_importing_fine_tune_puts_the_hub_bounds_in_force():
    code = (
        "import fine_tune, os, json\n"
        "from huggingface_hub import constants\n"
        "from huggingface_hub.utils._http import get_session\n"
        "t = get_session().timeout\n"
        "print(json.dumps([constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT,"
        " constants.HF_HUB_DISABLE_TELEMETRY, t.connect, t.read, os.environ['LOCAL_KERNELS']]))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [10, 20, True, 5.0, 20.0, f"{bounds.BNB_CPU_KERNEL}={bounds.NO_KERNEL_DIR}"]
    kept = run_python(code, HF_HUB_DOWNLOAD_TIMEOUT="3", LOCAL_KERNELS="a/b=/x")
    assert json.loads(kept.stdout)[1:] == [3, True, 5.0, 3.0, f"a/b=/x:{bounds.BNB_CPU_KERNEL}={bounds.NO_KERNEL_DIR}"]


def test_a_users_own_pin_of_the_kernel_is_kept():
    assert bounds.kernel_overrides(f"{bounds.BNB_CPU_KERNEL}=/mine") == f"{bounds.BNB_CPU_KERNEL}=/mine"


# the libraries that can reach the Hub on import or through it (and the project package that may import them)
HUB_LIBRARIES = {"transformers", "peft", "bitsandbytes", "trl", "huggingface_hub", "datasets", "torch", "accelerate",
                 "kernels", "vllm", "trackio", "benchmarks"}  # fmt: skip


def first_hub_import(path: Path) -> str | None:
    """The first top-level import of fine_tune or of a library that can reach the Hub."""
    for node in ast.parse(path.read_text()).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top == "fine_tune" or top in HUB_LIBRARIES:
                return top
    return None


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_every_entry_script_imports_fine_tune_before_any_hub_library(script):
    assert first_hub_import(REPO / "scripts" / script) == "fine_tune"


def test_the_kernel_lookup_bitsandbytes_makes_at_import_touches_no_network(network_guard):
    """bitsandbytes/backends/cpu/ops.py calls kernels.get_kernel(BNB_CPU_KERNEL, version=1) and falls back on any
    exception: under the switch it raises FileNotFoundError without a lookup (the call is made here on any CPU)."""
    code = (
        "import fine_tune\nfrom kernels import get_kernel\n"
        f"try:\n    get_kernel({bounds.BNB_CPU_KERNEL!r}, version=1)\n"
        "except FileNotFoundError as error:\n    print('fell back:', str(error).splitlines()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "0"})  # fmt: skip
    assert done.stdout.startswith(f"fell back: Cannot find a build variant for this system in {bounds.NO_KERNEL_DIR}")
    assert network_guard.read_text() == ""


REPORT_MODULES = (
    "import atexit, json, os, runpy, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w').write(json.dumps("
    f"[m for m in {TRAINER_MODULES!r} if m in sys.modules])))\n"
    "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_script_reporting_modules(tmp_path, script: str, *args: str, **env: str):
    out = tmp_path / "modules.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", REPORT_MODULES, f"scripts/{script}", *args],
        cwd=REPO,
        env=child_env(MODULES_OUT=str(out), **env),
        capture_output=True,
        text=True,
        timeout=90,
    )
    return done, json.loads(out.read_text()), time.monotonic() - started


@pytest.mark.slow  # two Python start-ups with torch: ~15 s on a loaded 2-core machine
def test_a_silent_endpoint_ends_the_submission_within_30_s_with_one_line_and_no_trainer_code(tmp_path, fake_hub):
    """The issue's reproduction: HF_ENDPOINT accepts connections and never answers; submit_job.py (not a dry run)
    hung forever at import (bitsandbytes -> kernels -> the Hub, no timeout)."""
    fake_hub.fail("*", "hang")
    done, modules, elapsed = run_script_reporting_modules(
        tmp_path, "submit_job.py", "sft", "--config", "configs/sft.yaml", "--namespace", "someone",
        HF_ENDPOINT=fake_hub.url, HF_TOKEN="hf_fake",
    )  # fmt: skip
    assert elapsed < 30
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: the Hugging Face Hub ({fake_hub.url})")
    assert modules == []


@pytest.mark.slow
def test_the_submitter_resolves_recipes_in_one_child_exactly_as_here():
    from fine_tune.recipes.isolated import RecipeChild
    from fine_tune.recipes.loader import resolve_recipe

    child = RecipeChild()
    try:
        for overrides in (["--max_steps", "7", "--lr_scheduler_type", "cosine"], []):
            here = resolve_recipe("sft", REPO / "configs/sft.yaml", overrides)
            assert child.resolve("sft", REPO / "configs/sft.yaml", overrides).to_dict() == here.to_dict()
        with pytest.raises(RecipeError, match="unknown key 'max_stepz'"):
            child.resolve("sft", REPO / "configs/sft.yaml", ["--max_stepz", "3"])
    finally:
        child.close()
    assert child.process.returncode == 0


def test_the_validator_imports_no_trainer_code(tmp_path, synthetic_jsonl):
    done, modules, _ = run_script_reporting_modules(
        tmp_path, "validate_dataset.py", "--dataset_name", str(synthetic_jsonl), "--json", HF_HUB_OFFLINE="1"
    )
    assert done.returncode == 0, done.stderr
    assert modules == []
