"""Where a model comes from: a Hub ID or a local path, a full model or a LoRA adapter, cross-checked with its
lineage record."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import LINEAGE_FILE
from fine_tune.errors import ModelSourceError

logger = logging.getLogger(__name__)


LOCAL_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(source: Any) -> bool:
    """An existing local file or folder."""
    return isinstance(source, (str, Path)) and str(source) != "" and Path(source).expanduser().exists()


def written_as_path(source: Any) -> bool:
    """Written like a path (./, /, ~, more than one '/', or a data-file suffix), whether or not it exists: such a
    source is never sent to the Hub, so a typo fails as 'not found' instead of as an unknown repo."""
    if not isinstance(source, (str, Path)) or str(source) == "":
        return False
    text = str(source)
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.lower().endswith(LOCAL_FILE_SUFFIXES)


def is_hub_id(source: Any, *, namespaced: bool = True) -> bool:
    """A Hub repo ID (`owner/name`; `name` alone too when not `namespaced`) that is not a local path."""
    if not isinstance(source, str) or is_local(source) or written_as_path(source) or not _HUB_ID.match(source):
        return False
    return "/" in source or not namespaced


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
    from fine_tune.models.lineage import read_lineage  # lineage reads through is_local: imported at call time

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
