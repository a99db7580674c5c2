"""scripts/measure_figures.py: the commands docs/measurements.md names keep running."""

import re
import subprocess
import sys

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "measure_figures.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_parser_prints_one_timing_per_input():
    done = run("parser")
    assert done.returncode == 0, done.stderr
    timings = re.findall(r"^(.+): (\d+\.\d+) s$", done.stdout, re.M)
    assert [name for name, _ in timings][0].startswith("unclosed <think>") and len(timings) == 4


def test_a_missing_shared_folder_is_one_line_and_exit_2(tmp_path):
    done = run("lengths", "--shared-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_measurement_the_doc_names_exists():
    doc = (REPO_ROOT / "docs" / "measurements.md").read_text()
    named = set(re.findall(r"python scripts/measure_figures\.py ([\w-]+)", doc))
    usage = run("--help").stdout
    choices = set(re.search(r"\{([\w,-]+)\}", usage).group(1).split(","))
    assert named and named <= choices, (named, choices)


def test_the_length_figures_of_the_doc_are_what_the_script_prints(shared_dir):
    done = run("lengths", "--shared-dir", str(shared_dir))
    assert done.returncode == 0, done.stderr
    doc = " ".join((REPO_ROOT / "docs" / "measurements.md").read_text().split())
    tokens = re.search(r"target JSON tokens: mean ([\d.]+), p95 (\d+), max (\d+)", done.stdout).groups()
    assert "Target JSON alone: mean {} tokens, p95 {}, max {}".format(*tokens) in doc
    missing, rows, share = re.search(r"explanation missing: (\d+) of (\d+) rows \(([\d.]+%)\)", done.stdout).groups()
    assert f"missing in {int(missing):,} of {int(rows):,} rows ({share})" in doc
