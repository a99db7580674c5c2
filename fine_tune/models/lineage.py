from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import fine_tune
from fine_tune.constants import LINEAGE_FILE
from fine_tune.models.source import is_local
from fine_tune.provenance import git_commit

logger = logging.getLogger(__name__)


def build_lineage(
    phase: str,
    base: str,
    *,
    config: dict[str, Any],
    split_manifest_hash: str | None,
    adapter_path: str | None = None,
) -> dict[str, Any]:
    return {
        "phase": phase,
        "base": base,
        "adapter_path": adapter_path,
        "config": config,
        "split_manifest_hash": split_manifest_hash,
        "project_version": fine_tune.__version__,
        "project_commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_lineage(source: str, token: str | None = None, subfolder: str | None = None) -> dict[str, Any] | None:
    """The lineage record beside a saved model (local folder or Hub repo); None when there is none."""
    if is_local(source):
        path = Path(source).expanduser() / (subfolder or "") / LINEAGE_FILE
        return json.loads(path.read_text()) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(source, LINEAGE_FILE, subfolder=subfolder, token=token)
    except EntryNotFoundError:
        return None
    return json.loads(Path(path).read_text())
