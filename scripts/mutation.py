"""Mutation testing of the core with mutmut, module by module, each against its own fast test files only.

python scripts/mutation.py [MODULE ...]      # default: every module below, smallest first; then the report
python scripts/mutation.py --survivors [MODULE ...]   # recheck only the last run's survivors (after adding tests)

A module's mutants run only the tests (of its own files) that cover the mutated function. Results are cached in
mutants/ (git-ignored): a rerun checks only new or changed mutants. Kill rates: scripts/mutation_report.py.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from mutation_report import MUTANTS, module_statuses

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main

# module -> its own fast test files (tests mirror modules)
MODULES = {
    "fine_tune.task.scoring": ["test_metrics.py"],
    "fine_tune.evaluate.regressions": ["test_regressions.py"],
    "fine_tune.task.rewards": ["test_rewards.py"],
    "fine_tune.train.guards": ["test_guards.py"],
    "fine_tune.task.parsing": ["test_parsing.py"],
    "fine_tune.evaluate.stats": ["test_stats.py"],
    "fine_tune.train.selection": ["test_selection.py", "test_selection_scorers.py"],
    "fine_tune.data.splits": ["test_splits.py", "test_task_splits.py"],
    "fine_tune.models.lineage": ["test_lineage.py"],
    "fine_tune.data.rows": ["test_rows.py"],
    "fine_tune.data.task_splits": ["test_task_splits.py", "test_splits.py"],
    "fine_tune.data.normalise": [
        "test_normalise.py",
        "test_records.py",
        "test_robust_task_files.py",
        "test_loading.py",
        "test_topics.py",
    ],
}
STATS = Path("mutants/mutmut-stats.json")  # which tests cover which function: recomputed for each module's tests


def survivors(module: str) -> list[str]:
    meta = MUTANTS / (module.replace(".", "/") + ".py.meta")
    statuses = module_statuses(meta) if meta.is_file() else {}
    return [name for name, status in statuses.items() if status in ("survived", "no tests")]


def drop_unmutated_copy(module: str) -> None:
    """A module put in only_mutate after mutants/ was made has a plain copy there, newer than its source, that mutmut
    would keep unmutated ("0 files mutated"): removed, so the run mutates it."""
    copy = MUTANTS / (module.replace(".", "/") + ".py")
    if copy.is_file() and not copy.with_suffix(".py.meta").is_file():
        copy.unlink()


def run_module(module: str, names: list[str]) -> int:
    env = os.environ | {
        "MUTATION_TESTS": ",".join(MODULES[module]),
        "HYPOTHESIS_PROFILE": "mutation",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "SHARED_DIR": str(Path("..", "shared").resolve()),  # the tests run from mutants/, one folder down
    }
    STATS.unlink(missing_ok=True)
    drop_unmutated_copy(module)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names]
    return subprocess.run(command, env=env, check=False).returncode


def main(argv=None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", choices=[[], *MODULES], metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--survivors", action="store_true", help="recheck only the surviving mutants")
    args = parser.parse_args(argv)
    parse_only_exit("mutation.py")
    for module in args.modules or list(MODULES):
        names = survivors(module) if args.survivors else [f"{module}.*"]
        print(f"== {module}: {len(names) if args.survivors else 'all'} mutants, {', '.join(MODULES[module])}")
        if names:
            sys.stdout.flush()
            run_module(module, names)
    subprocess.run([sys.executable, "scripts/mutation_report.py"], check=True)


if __name__ == "__main__":
    run_main(main)
