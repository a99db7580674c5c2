from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets

from fine_tune.errors import DatasetError
from fine_tune.hub import access as hub
from fine_tune.models.source import is_hub_id, is_local, written_as_path
from fine_tune.task.prompts import (
    OPTION_COLUMNS,
)

logger = logging.getLogger(__name__)
MEDMCQA_COLUMNS: tuple[str, ...] = (
    "id",
    "question",
    "opa",
    "opb",
    "opc",
    "opd",
    "cop",
    "choice_type",
    "exp",
    "subject_name",
    "topic_name",
)


REQUIRED_COLUMNS: tuple[str, ...] = ("question", *OPTION_COLUMNS, "cop")
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c for c in MEDMCQA_COLUMNS if c not in REQUIRED_COLUMNS)
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_medmcqa(source: str, split: str = "train", token_env: str = hub.TOKEN_ENV) -> datasets.Dataset:
    """A MedMCQA split from a Hub dataset ID or a local path, with exactly the MEDMCQA_COLUMNS.

    Local paths: a .jsonl/.json/.parquet/.csv file (`split` is ignored), a `save_to_disk` folder (a DatasetDict's
    `split` is picked), or a folder holding `<split>.<ext>` files. Absent optional columns are added as nulls.
    """
    if is_local(source):
        dataset = _load_local(Path(source).expanduser(), split)
    elif written_as_path(source):
        raise DatasetError(f"dataset path not found: {source}")
    elif is_hub_id(source, namespaced=False):
        dataset = _load_hub(source, split, token_env)
    else:
        raise DatasetError(f"{source!r} is neither an existing path nor a Hub dataset ID (owner/name)")
    dataset = conform_columns(dataset)
    logger.info("loaded %d rows from %s", len(dataset), source)
    return dataset


def conform_columns(dataset: datasets.Dataset) -> datasets.Dataset:
    """Check the required columns, add absent optional ones as nulls, keep only MEDMCQA_COLUMNS in order."""
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise DatasetError(
            f"missing MedMCQA column(s): {', '.join(missing)} (found: {', '.join(dataset.column_names) or 'none'})"
        )
    for column in OPTIONAL_COLUMNS:
        if column not in dataset.column_names:
            dataset = dataset.add_column(column, [None] * len(dataset), feature=datasets.Value("string"))
    all_null = {c: datasets.Value("string") for c in OPTIONAL_COLUMNS if dataset.features[c] == datasets.Value("null")}
    if all_null:
        dataset = dataset.cast(datasets.Features({**dataset.features, **all_null}))
    extra = [c for c in dataset.column_names if c not in MEDMCQA_COLUMNS]
    if extra:
        logger.info("ignoring non-MedMCQA column(s): %s", ", ".join(extra))
    return dataset.select_columns(list(MEDMCQA_COLUMNS))


def _load_local(path: Path, split: str) -> datasets.Dataset:
    if path.is_file():
        return _load_file(path)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return _load_saved(path, split)
    candidates = [path / f"{split}{ext}" for ext in FILE_BUILDERS]
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise DatasetError(
            f"{path} is neither a save_to_disk folder nor a folder with a {split}.jsonl/.json/.parquet/.csv file"
        )
    return _load_file(found[0])


def _load_file(path: Path) -> datasets.Dataset:
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DatasetError(f"unsupported file type {path.suffix!r} for {path}: use .jsonl, .json, .parquet or .csv")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # the builders raise many types for malformed files
        raise DatasetError(f"could not read {path}: {_cause(error)}") from error


def _load_saved(path: Path, split: str) -> datasets.Dataset:
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise DatasetError(f"could not read the saved dataset at {path}: {_cause(error)}") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DatasetError(f"split {split!r} not in {path}; available: {', '.join(loaded)}")
        return loaded[split]
    return loaded


def _load_hub(hub_id: str, split: str, token_env: str) -> datasets.Dataset:
    local_hint = "pass a local path instead (a .jsonl/.json/.parquet/.csv file or a save_to_disk folder)"
    if hub.offline_mode():
        raise DatasetError(
            f"offline mode is set ({'/'.join(hub.OFFLINE_ENV_VARS)}), so the Hub dataset {hub_id!r} cannot be "
            f"loaded; {local_hint}"
        )
    endpoint = hub.hub_endpoint()
    if not hub.hub_reachable(endpoint):
        raise DatasetError(
            f"the Hugging Face Hub ({endpoint}) is unreachable, so {hub_id!r} cannot be loaded; {local_hint}"
        )
    token = os.environ.get(token_env) or None
    try:
        return datasets.load_dataset(hub_id, split=split, token=token)
    except Exception as error:  # network, auth and not-found errors all become one explained failure
        cause = _cause(error).replace(token, "***") if token else _cause(error)
        raise DatasetError(
            f"could not load split {split!r} of {hub_id!r} from the Hub ({cause}); check the ID and split, and the "
            f"token in ${token_env} for gated datasets, or {local_hint}"
        ) from error


def _cause(error: Exception) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"
