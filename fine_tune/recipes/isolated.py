"""A recipe read in a child process, for callers that must not import trainer code (the job submitter): TRL's
trainer configs import transformers, peft and bitsandbytes, whose import can reach the network (`fine_tune.bounds`).
The child parses exactly as the entry script does (`loader.load_recipe`) and answers with JSON.

python -m fine_tune.recipes.isolated PHASE CONFIG [overrides...]   # prints {"values": {...}} or {"error": "..."}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fine_tune.errors import RecipeError

CHILD_TIMEOUT_S = 180.0  # importing torch + TRL on a loaded 2-core machine takes ~10 s


TRAINER_MODULE = "trl.trainer"


def read_recipe_isolated(phase: str, config: str | Path, overrides: list[str]) -> tuple[dict[str, Any], set[str]]:
    """`spec.read_recipe`'s answer (the recipe's values, the keys the overrides set) without importing trainer code
    here: parsed in a child process, or here when this process has already imported TRL's trainer (nothing more to
    import, e.g. a test session)."""
    from fine_tune.recipes.loader import load_recipe, override_keys, recipe_values

    if TRAINER_MODULE in sys.modules:
        return recipe_values(load_recipe(phase, config, overrides)), set(override_keys(overrides))
    return read_in_child(phase, config, overrides)


def read_in_child(
    phase: str, config: str | Path, overrides: list[str], timeout: float = CHILD_TIMEOUT_S
) -> tuple[dict[str, Any], set[str]]:
    """The recipe parsed in a child process; values that are not JSON types (enums) come back as their strings."""
    from fine_tune.recipes.loader import override_keys

    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this same fine_tune
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "fine_tune.recipes.isolated", phase, str(config), *overrides]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise RecipeError(f"{config}: reading the recipe took more than {timeout:.0f} s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RecipeError(f"{config}: reading the recipe failed (exit {done.returncode}: {last})") from None
    if "error" in answer:
        raise RecipeError(answer["error"])
    return answer["values"], set(override_keys(overrides))


def main(argv: list[str]) -> int:
    from fine_tune.recipes.loader import load_recipe, recipe_values

    phase, config, *overrides = argv
    try:
        answer: dict[str, Any] = {"values": recipe_values(load_recipe(phase, config, overrides))}
    except RecipeError as error:
        answer = {"error": str(error)}
    print(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
