"""A job's recipe and precision: the recipe exactly as the job's script will resolve it (composed files, the job's
command line, each key's origin) and the precision rule (`fine_tune.models.precision`) on the flavor's GPU."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from fine_tune.hub.jobs.hardware import flavor_device
from fine_tune.hub.jobs.shipping import ShippedTree
from fine_tune.hub.phases import JobsError, Phase
from fine_tune.models.precision import Precision, resolve_precision
from fine_tune.recipes.isolated import resolve_recipe_isolated
from fine_tune.recipes.loader import COMMAND_LINE, ResolvedRecipe

JOB_ORIGIN = "submit_job"  # a recipe key the job's command line sets (push, trackio, the handed-on model)


def read_recipe(phase: str, config: Path, overrides: list[str]) -> ResolvedRecipe:
    """The recipe as the entry script resolves it: composed files, schema defaults, overrides, each key's origin.
    Resolved in a child process unless TRL's trainer is loaded here already: the submitter imports no trainer code."""
    return resolve_recipe_isolated(phase, config, overrides)


def given_keys(recipe: ResolvedRecipe) -> set[str]:
    return {key for key, origin in recipe.origins.items() if origin == COMMAND_LINE}


def check_recipe_files(recipe, shipped: ShippedTree) -> None:
    """Every file the recipe extends must ship with the project: the job resolves the same chain."""
    for file in recipe.files:
        try:
            rel = (shipped.root / file).resolve().relative_to(shipped.root.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel not in shipped.files:
            raise JobsError(f"the recipe extends {file}, which is not shipped with the project (configs/**/*.yaml)")


def job_recipe(phase: Phase, config_rel: str, script_args: list[str], overrides: list[str], shipped, precision):
    """The recipe exactly as the job's script will read it (its command line included): keys the job adds are
    labelled submit_job, and the hardware keys show what the precision rule picks on the flavor's GPU."""
    recipe = read_recipe(phase.name, shipped.root / config_rel, script_args[2:])
    user = set(given_keys(read_recipe(phase.name, shipped.root / config_rel, overrides))) if overrides else set()
    job_keys = given_keys(recipe) - user
    files = {file: os.path.relpath(file, shipped.root) for file in recipe.files}  # as the job names them
    origins = {key: JOB_ORIGIN if key in job_keys else files.get(o, o) for key, o in recipe.origins.items()}
    values = dict(recipe.values)
    if phase.trains:
        hardware = {"bf16": precision.bf16, "fp16": precision.fp16, "use_cpu": False}
        values.update(hardware)
        origins.update(dict.fromkeys(hardware, f"precision rule: {precision.reason}"))
    return dataclasses.replace(recipe, values=values, origins=origins, files=tuple(files.values()))


def job_precision(phase: Phase, values: dict[str, Any], flavor: str, notes: list[str]) -> Precision:
    """The precision rule (`fine_tune.models.precision`) on the flavor's GPU, for the recipe's architecture."""
    try:
        precision = resolve_precision(
            str(values.get("precision", "auto")), model_type=values.get("model_type"), device=flavor_device(flavor)
        )
    except ValueError as error:
        raise JobsError(str(error)) from None
    notes.append(f"precision {precision.name}: {precision.reason}")
    if not values.get("model_type"):
        notes.append("model_type unset: the hardware rule alone (a loaded model that overflows fp16 is refused)")
    return precision


def on_flavor(phase: Phase, values: dict[str, Any], flavor: str) -> dict[str, Any]:
    return {**values, "precision": job_precision(phase, values, flavor, []).name}
