from __future__ import annotations

from typing import Any

from trl import ModelConfig, TrlParser


def parse_config(script_args_cls, training_args_cls, argv: list[str] | None = None) -> tuple[Any, Any, ModelConfig]:
    """`--config recipe.yaml` plus `--key value` overrides, one schema for both."""
    parser = TrlParser((script_args_cls, training_args_cls, ModelConfig))
    return parser.parse_args_and_config(args=argv)
