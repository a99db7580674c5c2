"""One way to read a recipe: YAML file + `--key value` overrides -> the phase's dataclasses, through TrlParser.

Every script, the job builder, the benchmark, the model cards and the validator read recipes here. Bad input is a
`RecipeError` whose message is one line naming the file or flag and the key (with a did-you-mean); the schema classes
are imported only when a recipe is read, so `--help` of scripts that do not train stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fine_tune.constants import TOKEN_ENV
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml

# phase -> the dataclasses its recipe fills, as "module:Class" (imported on use: TRL's trainer configs import torch)
PHASE_SCHEMAS: dict[str, tuple[str, ...]] = {
    "sft": (
        "fine_tune.recipes.arguments:MedMCQAScriptArguments",
        "fine_tune.recipes.trainer_configs:MedSFTConfig",
        "trl:ModelConfig",
    ),
    "grpo": (
        "fine_tune.recipes.arguments:GRPOScriptArguments",
        "fine_tune.recipes.trainer_configs:MedGRPOConfig",
        "trl:ModelConfig",
    ),
    "eval": ("fine_tune.recipes.arguments:EvalConfig",),
    "validate": ("fine_tune.recipes.arguments:ValidateArguments",),
}
# keys TrlParser handles itself
PARSER_KEYS = ("config", "env")
# keys whose value must never sit in a recipe or a command line (the Trainer saves its arguments in
# checkpoint-*/training_args.bin, pushed to the Hub; a job's command line is stored by the Jobs API)
SECRET_KEYS = ("hub_token",)
PRECISION_FLAGS = ("bf16", "fp16")


def schema_types(phase: str) -> tuple[type, ...]:
    if phase not in PHASE_SCHEMAS:
        raise RecipeError(f"unknown phase {phase!r}; expected one of {', '.join(PHASE_SCHEMAS)}")
    types = []
    for spec in PHASE_SCHEMAS[phase]:
        module, _, name = spec.partition(":")
        types.append(getattr(importlib.import_module(module), name))
    return tuple(types)


def schema_keys(types: Iterable[type]) -> set[str]:
    return {f.name for cls in types for f in dataclasses.fields(cls) if f.init}


def did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def override_keys(argv: Sequence[str]) -> list[str]:
    """The keys of `--key value` / `--key=value` tokens (not their values)."""
    return [token[2:].partition("=")[0] for token in argv if token.startswith("--") and len(token) > 2]


def check_keys(keys: Iterable[str], known: set[str], where: str) -> None:
    for key in keys:
        if key not in known and key not in PARSER_KEYS:
            raise RecipeError(f"{where}: unknown key {key!r}{did_you_mean(key, known)}")


def check_no_secrets(keys: Iterable[str], where: str) -> None:
    """A token is passed by the name of its environment variable, never as a value (which is not echoed here)."""
    for key in keys:
        if key in SECRET_KEYS:
            raise RecipeError(
                f"{where}: {key} is refused: a token given as a value is saved in checkpoint-*/training_args.bin "
                f"(pushed to the Hub) and in job specs; export {TOKEN_ENV}=hf_... instead (hf_token_env names the "
                "variable)"
            )


def check_precision_flags(values: dict[str, Any], where: str) -> None:
    """`precision` decides bf16/fp16; an explicit flag that disagrees with it would be silently overwritten."""
    precision = str(values.get("precision", "auto"))
    for flag in PRECISION_FLAGS:
        if flag not in values:
            continue
        agrees = precision == flag if _truthy(values[flag]) else precision != flag
        if precision == "auto" or not agrees:
            raise RecipeError(
                f"{where}: {flag}: {values[flag]} conflicts with precision: {precision}; set precision "
                "(auto, fp32, fp16, bf16) alone"
            )


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _parser(types: tuple[type, ...]):
    """TrlParser whose argparse errors raise RecipeError instead of printing usage and exiting."""
    from trl import TrlParser

    class RecipeParser(TrlParser):
        def error(self, message: str):
            raise RecipeError(f"command line: {message}")

    return RecipeParser(types)


def parse_recipe(phase: str, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """`[--config recipe.yaml] [--key value ...]` -> the phase's dataclasses (TrlParser: YAML sets the defaults,
    the command line overrides them). Every key is checked against the schema before anything is parsed."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    types = schema_types(phase)
    known = schema_keys(types)
    if "-h" in argv or "--help" in argv:
        return _parser(types).parse_args_and_config(args=argv)
    config_path, values = None, {}
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise RecipeError("command line: --config needs a recipe file")
        config_path = argv[index + 1]
        values = read_yaml(config_path)
        check_no_secrets(values, str(config_path))
        check_keys(values, known, str(config_path))
    given = override_keys(argv)
    check_no_secrets(given, "command line")
    check_keys(given, known, "command line")
    explicit = {**values, **{key: _flag_value(argv, key) for key in ("precision", *PRECISION_FLAGS) if key in given}}
    check_precision_flags(explicit, str(config_path or "command line"))
    try:
        return _parser(types).parse_args_and_config(args=argv)
    except RecipeError:
        raise
    except (ValueError, TypeError) as error:
        where = config_path or "command line"
        raise RecipeError(f"{where}: {' '.join(str(error).split())}") from None


def _flag_value(argv: list[str], key: str) -> Any:
    for index, token in enumerate(argv):
        name, eq, inline = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if name == key:
            if eq:
                return inline
            return argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("--") else True
    return None


def load_recipe(phase: str, config: str | Path | None, overrides: Sequence[str] = ()) -> tuple[Any, ...]:
    """A recipe file plus override tokens, as the entry script of `phase` would read it."""
    argv = (["--config", str(config)] if config is not None else []) + list(overrides)
    return parse_recipe(phase, argv)


def recipe_values(parsed: Iterable[Any]) -> dict[str, Any]:
    """The parsed dataclasses as one flat {key: value} (later classes win on shared keys, as in TrlParser)."""
    values: dict[str, Any] = {}
    for obj in parsed:
        values.update({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init})
    return values
