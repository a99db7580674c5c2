"""What the eval needs to know about a model source before loading it: the folder that holds the weights, whether
it can be reached, its lineage record, and which scored sources name the same weights."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fine_tune import hub_access as hub
from fine_tune.constants import ADAPTER_CONFIG_FILE, MERGED_DIR, TRAINING_PHASES
from fine_tune.errors import ModelSourceError, handoff_hint
from fine_tune.hub_access import is_hub_id, is_local, written_as_path
from fine_tune.models.lineage import read_lineage

logger = logging.getLogger(__name__)


def resolve_source(source: str) -> str:
    """A training OUTPUT folder (holding merged/ and adapter/) means its merged model; anything else as given."""
    path = Path(source).expanduser()
    holds_model = (path / "config.json").is_file() or (path / ADAPTER_CONFIG_FILE).is_file()
    if path.is_dir() and not holds_model and (path / MERGED_DIR / "config.json").is_file():
        logger.info("%s is a training output folder: evaluating %s", source, path / MERGED_DIR)
        return str(path / MERGED_DIR)
    return source


def check_source(source: str, label: str | None = None) -> None:
    """A source meant as a path must exist (the message names the nearest existing path, and for the `sft` and
    `grpo` labels the phase that writes it); a Hub ID needs the Hub."""
    if is_local(source):
        return
    if written_as_path(source):
        phase = (label or "").split("-")[0]
        fix = handoff_hint(phase) if phase in TRAINING_PHASES else "train it first, or pass a Hub ID like owner/name"
        raise ModelSourceError(f"{hub.missing_path_message(source, 'model path')}; {fix}")
    if not hub_available():
        raise ModelSourceError(
            f"{source} is a Hub ID but the Hugging Face Hub ({hub.hub_endpoint()}) is unreachable: pass a local "
            "path, or set HF_HUB_OFFLINE=1 to load a copy from the local Hugging Face cache"
        )


def hub_available() -> bool:
    """Whether Hub IDs can be tried: offline mode (the libraries use the cache) or a reachable endpoint.

    Checked up front because, unreachable, every Hub file request retries for about 25 s before failing.
    """
    return hub.offline_mode() or _reachable(hub.hub_endpoint())


@functools.cache
def _reachable(endpoint: str) -> bool:
    return hub.hub_reachable(endpoint)


def model_lineages(models: Mapping[str, str], token: str | None) -> dict[str, dict[str, Any] | None]:
    """Each model's lineage record, None when it has none or it cannot be read (loading will report why)."""
    lineages = {}
    for label, source in models.items():
        path = resolve_source(source)
        if not is_local(path) and not hub_available():
            lineages[label] = None
            continue
        try:
            lineages[label] = read_lineage(path, token=token)
        except Exception as error:  # unreadable lineage is not fatal here; the model's load reports the problem
            logger.info("no lineage for %s (%s): %s", label, source, error)
            lineages[label] = None
    return lineages


def model_identities(source: str, lineage: Mapping[str, Any] | None = None) -> set[str]:
    """Names of the weights at `source`, so that two sources naming the same weights share one.

    A local source is its absolute path after `resolve_source` (a training output folder is its merged model); a
    merged model is also its adapter (its lineage's adapter_path: merged = base + that adapter). A Hub ID is itself,
    case-folded (the Hub resolves repo IDs case-insensitively). A path that does not exist here is its normalised
    absolute form, so a lineage written in the same working directory still matches. `lineage` is read from a local
    source when not given.
    """
    path = resolve_source(source)
    identities = {normalised_source(path)}
    if lineage is None and is_local(path):
        try:
            lineage = read_lineage(path)
        except (OSError, ValueError) as error:
            logger.info("could not read the lineage of %s: %s", path, error)
    adapter_path = (lineage or {}).get("adapter_path")
    if adapter_path:
        identities.add(normalised_source(adapter_path))
    return identities


def normalised_source(source: str) -> str:
    if is_hub_id(source, namespaced=False):
        return source.casefold()
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else os.path.normpath(os.path.abspath(path))
