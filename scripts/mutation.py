"""Mutation testing of the core with mutmut, module by module, each against its own fast test files only.

python scripts/mutation.py [MODULE ...]      # default: every module below, smallest first; then the report

A module's mutants run only the tests (of its own files) that cover the mutated function. Results are cached in
mutants/ (git-ignored): a rerun checks only new or changed mutants. Kill rates: scripts/mutation_report.py.
"""

import os
import subprocess
import sys
from pathlib import Path

# module -> its own fast test files (tests mirror modules)
MODULES = {
    "fine_tune.task.scoring": ["test_metrics.py"],
    "fine_tune.evaluate.regressions": ["test_regressions.py"],
    "fine_tune.task.rewards": ["test_rewards.py"],
    "fine_tune.train.guards": ["test_guards.py"],
    "fine_tune.task.parsing": ["test_parsing.py"],
    "fine_tune.evaluate.stats": ["test_stats.py"],
    "fine_tune.train.selection": ["test_selection.py"],
}
STATS = Path("mutants/mutmut-stats.json")  # which tests cover which function: recomputed for each module's tests


def run_module(module: str) -> int:
    env = os.environ | {
        "MUTATION_TESTS": ",".join(MODULES[module]),
        "HYPOTHESIS_PROFILE": "mutation",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    STATS.unlink(missing_ok=True)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", f"{module}.*"]
    return subprocess.run(command, env=env, check=False).returncode


def main(argv=None) -> None:
    modules = (argv if argv is not None else sys.argv[1:]) or list(MODULES)
    unknown = [module for module in modules if module not in MODULES]
    if unknown:
        sys.exit(f"unknown module {unknown[0]}: expected one of {', '.join(MODULES)}")
    for module in modules:
        print(f"== {module} against {', '.join(MODULES[module])}", flush=True)
        run_module(module)
    subprocess.run([sys.executable, "scripts/mutation_report.py"], check=True)


if __name__ == "__main__":
    main()
