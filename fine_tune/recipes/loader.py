"""One way to read a recipe: YAML file + `--key value` overrides -> the phase's dataclasses, through TrlParser.

Every script, the job builder, the benchmark, the model cards and the validator read recipes here. Bad input is a
`RecipeError` whose message is one line naming the file or flag and the key (with a did-you-mean); the schema classes
are imported only when a recipe is read, so `--help` of scripts that do not train stays fast.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.cli import did_you_mean
from fine_tune.constants import TOKEN_ENV
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml
from fine_tune.recipes.invariants import INVARIANTS, TRAINING_PHASES
from fine_tune.recipes.length import training_length

# phase -> the dataclasses its recipe fills, as "module:Class" (imported on use: TRL's trainer configs import torch)
PHASE_SCHEMAS: dict[str, tuple[str, ...]] = {
    "sft": (
        "fine_tune.recipes.arguments:TrainScriptArguments",
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
# Composition (docs/bases.md): a recipe names the file(s) it builds on, relative to itself; their keys come first, in
# order, and the recipe's own keys win. `invariant_exceptions` says why a recipe breaks a project invariant on purpose.
EXTENDS_KEY = "extends"
EXCEPTIONS_KEY = "invariant_exceptions"
DEFAULT_ORIGIN = "default"
COMMAND_LINE = "command line"
SHOW_FLAG = "--show_recipe"


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


@dataclass(frozen=True)
class ComposedFiles:
    """A recipe file with the files it extends, merged: each key's value and the file that set it last."""

    values: dict[str, Any]
    origins: dict[str, str]
    files: tuple[str, ...]  # resolution order: the furthest parent first, the recipe itself last
    exceptions: dict[str, str]


def compose_files(path: str | Path, known: set[str], chain: tuple[str, ...] = ()) -> ComposedFiles:
    """`path` with its `extends` parents (recursively, relative to the file that names them); a cycle is refused
    in one line naming the chain. Every file's keys are checked against the schema under its own name."""
    where = os.path.normpath(str(path))
    if where in chain:
        raise RecipeError(f"{where}: recipes extend each other in a cycle ({' -> '.join((*chain, where))})")
    own = read_yaml(where)
    parents = own.pop(EXTENDS_KEY, None) or []
    exceptions = own.pop(EXCEPTIONS_KEY, None) or {}
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) and p for p in parents):
        raise RecipeError(f"{where}: {EXTENDS_KEY} must be a recipe file or a list of them, got {parents!r}")
    check_exceptions(exceptions, where)
    check_no_secrets(own, where)
    check_keys(own, known, where)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    files: list[str] = []
    merged_exceptions: dict[str, str] = {}
    for parent in parents:
        composed = compose_files(Path(where).parent / parent, known, (*chain, where))
        values.update(composed.values)
        origins.update(composed.origins)
        files += [f for f in composed.files if f not in files]
        merged_exceptions.update(composed.exceptions)
    values.update(own)
    origins.update(dict.fromkeys(own, where))
    merged_exceptions.update(exceptions)
    return ComposedFiles(values, origins, (*files, where), merged_exceptions)


def check_exceptions(exceptions: Any, where: str) -> None:
    """`invariant_exceptions`: invariant name -> the reason the recipe breaks it, in words."""
    if not isinstance(exceptions, Mapping):
        raise RecipeError(f"{where}: {EXCEPTIONS_KEY} must map an invariant to its reason, got {exceptions!r}")
    for name, reason in exceptions.items():
        if name not in INVARIANTS:
            raise RecipeError(
                f"{where}: {EXCEPTIONS_KEY}: unknown invariant {name!r}{did_you_mean(str(name), INVARIANTS)}; "
                f"expected one of {', '.join(INVARIANTS)}"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise RecipeError(f"{where}: {EXCEPTIONS_KEY}: {name} needs the reason in words")


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe as the entry script reads it: the phase's dataclasses, every key's value, and where each came from
    ("default": the schema; a file path: the last composed file that set it; "command line")."""

    phase: str
    parsed: tuple[Any, ...]
    values: dict[str, Any]
    origins: dict[str, str]
    files: tuple[str, ...]
    exceptions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the files, then each key as {value, origin}."""
        return {
            "files": list(self.files),
            "invariant_exceptions": dict(self.exceptions),
            "values": {key: {"value": jsonable(v), "origin": self.origins[key]} for key, v in self.values.items()},
        }


def jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)


def format_recipe(resolved: ResolvedRecipe) -> str:
    """Every key, its value and its origin, one a line: set keys first (by origin), then the schema's defaults."""
    rank = {origin: i for i, origin in enumerate((COMMAND_LINE, *reversed(resolved.files), DEFAULT_ORIGIN))}
    keys = sorted(resolved.values, key=lambda k: (rank.get(resolved.origins[k], len(rank)), k))
    width = max(map(len, keys), default=0)
    lines = [f"# {resolved.phase} recipe: {' <- '.join(reversed(resolved.files)) or 'schema defaults only'}"]
    if resolved.phase in TRAINING_PHASES:
        lines.append(f"# training length: {training_length(resolved.values, resolved.phase).describe()}")
    lines += [f"# breaks {name} on purpose: {reason}" for name, reason in resolved.exceptions.items()]
    for key in keys:
        lines.append(f"{key:<{width}}  {jsonable(resolved.values[key])!r:<40}  # {resolved.origins[key]}")
    return "\n".join(lines)


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
    """`[--config recipe.yaml] [--key value ...] [--show_recipe]` -> the phase's dataclasses (the recipe's composed
    files set the defaults, the command line overrides them). `--show_recipe` prints every key's value and origin and
    exits."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if SHOW_FLAG in argv:
        argv.remove(SHOW_FLAG)
        print(format_recipe(resolve_argv(phase, argv)))
        raise SystemExit(0)
    return resolve_argv(phase, argv).parsed


def resolve_argv(phase: str, argv: Sequence[str]) -> ResolvedRecipe:
    """The recipe an entry script of `phase` reads from `argv`, with each key's origin. Every key is checked against
    the schema (file by file, then the command line) before anything is parsed."""
    argv = list(argv)
    types = schema_types(phase)
    known = schema_keys(types)
    helping = "-h" in argv or "--help" in argv
    config_path, composed = None, ComposedFiles({}, {}, (), {})
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise RecipeError("command line: --config needs a recipe file")
        config_path = argv[index + 1]
        del argv[index : index + 2]
        composed = compose_files(config_path, known)
    given = override_keys(argv)
    if not helping:
        check_no_secrets(given, "command line")
        check_keys(given, known, "command line")
    explicit = {**composed.values, **{k: _flag_value(argv, k) for k in ("precision", *PRECISION_FLAGS) if k in given}}
    check_precision_flags(explicit, str(config_path or "command line"))
    values = dict(composed.values)
    env = values.pop("env", None)
    if env is not None:  # as TrlParser does with a recipe's `env` mapping
        if not isinstance(env, dict):
            raise RecipeError(f"{config_path}: env must be a mapping of variable: value")
        os.environ.update({str(key): str(value) for key, value in env.items()})
    parser = _parser(types)
    parser.set_defaults_with_config(**values)
    try:
        parsed = tuple(parser.parse_args_into_dataclasses(args=argv))
    except RecipeError:
        raise
    except (ValueError, TypeError) as error:
        where = config_path or "command line"
        raise RecipeError(f"{where}: {' '.join(str(error).split())}") from None
    resolved = recipe_values(parsed)
    origins = {key: COMMAND_LINE if key in given else composed.origins.get(key, DEFAULT_ORIGIN) for key in resolved}
    return ResolvedRecipe(phase, parsed, resolved, origins, composed.files, composed.exceptions)


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
    return resolve_recipe(phase, config, overrides).parsed


def resolve_recipe(phase: str, config: str | Path | None, overrides: Sequence[str] = ()) -> ResolvedRecipe:
    """A recipe file plus override tokens, resolved: the parsed dataclasses, every key's value and its origin."""
    argv = (["--config", str(config)] if config is not None else []) + list(overrides)
    return resolve_argv(phase, argv)


def recipe_values(parsed: Iterable[Any]) -> dict[str, Any]:
    """The parsed dataclasses as one flat {key: value} (later classes win on shared keys, as in TrlParser)."""
    values: dict[str, Any] = {}
    for obj in parsed:
        values.update({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init})
    return values
