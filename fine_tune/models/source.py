"""Where a model comes from: a Hub ID or a local path, a full model or a LoRA adapter, cross-checked with its
lineage record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import LINEAGE_FILE
from fine_tune.errors import ModelSourceError
from fine_tune.hub_access import is_local, written_as_path
from fine_tune.models.lineage import read_lineage

logger = logging.getLogger(__name__)


def read_adapter_base(source: str, token: str | None = None, subfolder: str | None = None) -> str | None:
    """`base_model_name_or_path` from an adapter config, or None when `source` holds no adapter. A local folder is
    judged on disk and never sent to the Hub: peft's `PeftConfig.from_pretrained` falls back to the Hub when a folder
    has no adapter_config.json, and `demo_artifacts/tiny-model` reads as the Hub ID `owner/name`."""
    from peft import PeftConfig
    from peft.utils import CONFIG_NAME

    if is_local(source) or written_as_path(source):
        folder = Path(source).expanduser() / (subfolder or "")
        if not (folder / CONFIG_NAME).is_file():
            return None
        source, subfolder = str(folder), None
    try:
        return PeftConfig.from_pretrained(source, subfolder=subfolder, token=token).base_model_name_or_path
    except (OSError, ValueError):
        return None


@dataclass
class ResolvedModel:
    """What a model source really is: the label's weights, and where they came from."""

    source: str
    kind: str  # "full" or "adapter"
    base: str | None
    lineage: dict[str, Any] | None


def resolve_model_source(source: str, token: str | None = None) -> ResolvedModel:
    """Classify `source` (a full model, or a LoRA adapter at its root) and cross-check its lineage.

    Refuses an adapter whose lineage record and adapter config name different bases: upstream evaluated the base
    model under the name "grpo" because the adapter config named the wrong base.
    """
    lineage = read_lineage(source, token=token)
    adapter_base = read_adapter_base(source, token=token)
    if adapter_base is None:
        return ResolvedModel(source, "full", lineage.get("base") if lineage else None, lineage)
    if lineage is not None and lineage.get("base") != adapter_base:
        raise ModelSourceError(
            f"{source} holds a LoRA adapter whose adapter_config.json names base {adapter_base!r}, but its "
            f"{LINEAGE_FILE} says it was trained from {lineage.get('base')!r}. Loading it would score the wrong "
            "model. Evaluate the merged model instead, or fix base_model_name_or_path in adapter_config.json."
        )
    return ResolvedModel(source, "adapter", adapter_base, lineage)
