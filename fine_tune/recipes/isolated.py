"""Recipes resolved in a child process, for callers that must not import trainer code (the job submitter): TRL's
trainer configs import transformers, peft and bitsandbytes, whose import can reach the network (`fine_tune.bounds`).
The child resolves exactly as the entry script does (`loader.resolve_recipe`) and answers each request with one JSON
line; one child serves every recipe of a run (a spec reads its recipe several times).

python -m fine_tune.recipes.isolated   # reads {"phase", "config", "overrides"} lines, answers a recipe or an error
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from fine_tune.errors import RecipeError
from fine_tune.recipes.loader import ResolvedRecipe, jsonable, resolve_recipe

TRAINER_MODULE = "trl.trainer"
CHILD_TIMEOUT_S = 180.0  # per answer: the first imports torch + TRL (~10 s on a loaded 2-core machine)


def resolve_recipe_isolated(phase: str, config: str | Path | None, overrides: list[str]) -> ResolvedRecipe:
    """`loader.resolve_recipe`'s answer without importing trainer code here: from the child process, or here when
    TRL's trainer is already imported (nothing more to import, e.g. a test session). A child's recipe has no parsed
    dataclasses, and its values are JSON types (enums as their values)."""
    if TRAINER_MODULE in sys.modules:
        return resolve_recipe(phase, config, overrides)
    return _child().resolve(phase, config, overrides)


class RecipeChild:
    def __init__(self, timeout: float = CHILD_TIMEOUT_S) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports this same fine_tune
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.timeout = timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fine_tune.recipes.isolated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )

    def resolve(self, phase: str, config: str | Path | None, overrides: list[str]) -> ResolvedRecipe:
        request = {"phase": phase, "config": None if config is None else str(config), "overrides": list(overrides)}
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError:
            raise RecipeError("reading the recipe failed: its child process ended") from None
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RecipeError(f"{config}: reading the recipe gave no answer within {self.timeout:.0f} s")
        answer = json.loads(line)
        if "error" in answer:
            raise RecipeError(answer["error"])
        files = tuple(answer["files"])
        return ResolvedRecipe(phase, (), answer["values"], answer["origins"], files, answer["exceptions"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_CHILD: list[RecipeChild] = []


def _child() -> RecipeChild:
    if not _CHILD or _CHILD[0].process.poll() is not None:
        _CHILD[:] = [RecipeChild()]
        atexit.register(_CHILD[0].close)
    return _CHILD[0]


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        recipe = resolve_recipe(request["phase"], request["config"], request["overrides"])
    except RecipeError as error:
        return {"error": str(error)}
    return {
        "values": {key: jsonable(value) for key, value in recipe.values.items()},
        "origins": recipe.origins,
        "files": list(recipe.files),
        "exceptions": recipe.exceptions,
    }


def main() -> None:
    out, sys.stdout = sys.stdout, sys.stderr  # what libraries print never mixes with the answers
    for line in sys.stdin:
        print(json.dumps(answer(json.loads(line))), file=out, flush=True)


if __name__ == "__main__":
    main()
