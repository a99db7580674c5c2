"""Prompt variants: the same question under other instructions, option formats or system-prompt placements, to
measure how much a model's accuracy depends on the project's exact prompt (`--prompt_variants`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml
from fine_tune.task.spec import CHOICES_FIELD, RESPONSE_KEYS

VARIANTS_DIR = PROJECT_ROOT / "configs" / "tasks" / "variants"
DEFAULT_VARIANTS = "default"
PROJECT_VARIANT = "project"
DEFAULT_OPTION_FORMAT = "{letter}) {text}"
PLACEMENTS = ("system", "user", "none")
VARIANT_KEYS = ("system", "option_format", "system_placement")


@dataclass(frozen=True)
class PromptVariant:
    name: str
    system: str | None = None  # None: the task's own instructions
    option_format: str = DEFAULT_OPTION_FORMAT
    system_placement: str = "system"

    @property
    def is_project(self) -> bool:
        return (self.system, self.option_format, self.system_placement) == (None, DEFAULT_OPTION_FORMAT, "system")


def variants_path(value: str) -> Path:
    """`default` (or another name) -> configs/tasks/variants/<name>.yaml; anything else is a file path."""
    named = VARIANTS_DIR / f"{value}.yaml"
    return named if "/" not in value and not value.endswith((".yaml", ".yml")) else Path(value)


def load_variants(value: str) -> tuple[PromptVariant, ...]:
    """The variants of a file, the project's prompt first (added when the file does not list it)."""
    path = variants_path(value)
    if not path.is_file():
        raise RecipeError(f"prompt_variants: no such variants file {path} (a name under {VARIANTS_DIR} or a path)")
    entries = read_yaml(path).get("variants")
    if not isinstance(entries, Mapping) or not entries:
        raise RecipeError(f"{path}: expected a `variants:` mapping of name -> settings")
    variants = [parse_variant(str(name), values or {}, path) for name, values in entries.items()]
    if not any(v.name == PROJECT_VARIANT for v in variants):
        variants.insert(0, PromptVariant(PROJECT_VARIANT))
    project = next(v for v in variants if v.name == PROJECT_VARIANT)
    if not project.is_project:
        raise RecipeError(f"{path}: {PROJECT_VARIANT}: the project's own prompt takes no settings")
    return (project, *(v for v in variants if v.name != PROJECT_VARIANT))


def parse_variant(name: str, values: Mapping[str, Any], path: Path) -> PromptVariant:
    where = f"{path}: {name}"
    if not isinstance(values, Mapping):
        raise RecipeError(f"{where}: expected a mapping of {', '.join(VARIANT_KEYS)}")
    unknown = sorted(set(values) - set(VARIANT_KEYS))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(VARIANT_KEYS)}")
    system = values.get("system")
    if system is not None:
        if not isinstance(system, str) or system.count(CHOICES_FIELD) != 1:
            raise RecipeError(f"{where}: system must be text naming the letters once, at {CHOICES_FIELD}")
        missing = [key for key in RESPONSE_KEYS if f'"{key}"' not in system]
        if missing:
            raise RecipeError(f"{where}: system must name the JSON key(s) {', '.join(missing)} as they are, quoted")
    option_format = values.get("option_format", DEFAULT_OPTION_FORMAT)
    if not isinstance(option_format, str) or "{letter}" not in option_format or "{text}" not in option_format:
        raise RecipeError(f"{where}: option_format must contain {{letter}} and {{text}}, got {option_format!r}")
    placement = values.get("system_placement", "system")
    if placement not in PLACEMENTS:
        raise RecipeError(f"{where}: system_placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    return PromptVariant(name, system, option_format, placement)
