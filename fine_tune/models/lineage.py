"""The lineage record beside every saved model (`lineage.json`): one typed record, read and written here only.

`config` holds the run's full configuration keyed by role: "script" (the phase's script arguments), "training"
(the trainer config), "model" (TRL's ModelConfig), plus run facts (world_size, global_step, epoch). Records written
before roles existed keyed these by class name (MedMCQAScriptArguments, MedSFTConfig, ModelConfig); they still read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fine_tune
from fine_tune.constants import LINEAGE_FILE
from fine_tune.hub_access import is_local, require_source
from fine_tune.io import atomic_write_json
from fine_tune.provenance import git_commit

logger = logging.getLogger(__name__)

CONFIG_ROLES: tuple[str, ...] = ("script", "training", "model")
_LEGACY_MODEL_KEY = "ModelConfig"


def _as_dict(config: Any) -> dict[str, Any]:
    return config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)


def run_config(script_args: Any, training_args: Any, model_args: Any) -> dict[str, Any]:
    """The full configuration of a run keyed by role (secrets are never part of these dataclasses)."""
    return {
        role: _as_dict(config)
        for role, config in zip(CONFIG_ROLES, (script_args, training_args, model_args), strict=True)
    }


def _role(config: Mapping[str, Any], role: str) -> dict[str, Any]:
    if isinstance(config.get(role), Mapping):
        return dict(config[role])
    for name, value in config.items():  # records written before roles: keyed by class name
        if not isinstance(value, Mapping):
            continue
        if role == "model" and name == _LEGACY_MODEL_KEY:
            return dict(value)
        if role == "training" and name.endswith("Config") and name != _LEGACY_MODEL_KEY:
            return dict(value)
        if role == "script" and name.endswith("Arguments"):
            return dict(value)
    return {}


def quantization_record(model: Any) -> dict[str, Any] | None:
    """The quantisation the trained model's base was loaded with (bitsandbytes config as a dict), or None."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if config is None:
        return None
    record = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(record, default=str))  # torch dtypes as their names


@dataclass
class Lineage:
    """Where a saved model came from. JSON keys are the field names; unknown keys round-trip through `extra`."""

    phase: str
    base: str
    config: dict[str, Any] = field(default_factory=dict)
    split_manifest_hash: str | None = None
    adapter_path: str | None = None
    quantization: dict[str, Any] | None = None
    splits_hash: str | None = None  # the splits alone (no dev record): what the SFT and GRPO phases of one split share
    selection: dict[str, Any] | None = None  # held-out selection: start score, chosen step and its dev scores
    project_version: str = fine_tune.__version__
    project_commit: str | None = field(default_factory=git_commit)
    date: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**record, **self.extra}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Lineage:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {key: value for key, value in record.items() if key in names}
        for required in ("phase", "base"):
            known.setdefault(required, None)
        return cls(**known, extra={key: value for key, value in record.items() if key not in names})

    def replace(self, **changes: Any) -> Lineage:
        return dataclasses.replace(self, **changes)

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / LINEAGE_FILE
        atomic_write_json(path, self.to_dict())
        return path


def training_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer config (SFTConfig / GRPOConfig fields) of a lineage record."""
    return _role(record.get("config") or {}, "training")


def model_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """TRL's ModelConfig fields of a lineage record."""
    return _role(record.get("config") or {}, "model")


def script_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """The phase's script arguments of a lineage record."""
    return _role(record.get("config") or {}, "script")


def read_lineage_record(source: str, token: str | None = None, subfolder: str | None = None) -> Lineage | None:
    """The typed lineage record beside a saved model (local folder or Hub repo); None when there is none."""
    if is_local(source):
        path = Path(source).expanduser() / (subfolder or "") / LINEAGE_FILE
        return Lineage.from_dict(json.loads(path.read_text())) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    require_source(source, "model", file=LINEAGE_FILE)
    try:
        path = hf_hub_download(source, LINEAGE_FILE, subfolder=subfolder, token=token)
    except EntryNotFoundError:
        return None
    return Lineage.from_dict(json.loads(Path(path).read_text()))


def read_lineage(source: str, token: str | None = None, subfolder: str | None = None) -> dict[str, Any] | None:
    """The lineage record as its JSON dict (what eval, GRPO and model cards consume); None when there is none."""
    record = read_lineage_record(source, token=token, subfolder=subfolder)
    return None if record is None else record.to_dict()
