"""Loading a source by Hub dataset ID or local path (JSONL/JSON/Parquet/CSV/save_to_disk): MedMCQA's with exactly
its columns, any task's with its own; local JSON is read record by record (one bad record is refused alone, with its
line). Offline or unreachable, a Hub ID fails in seconds with what to do."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets

from fine_tune import hub_access as hub
from fine_tune.data.records import (
    MEDMCQA_COLUMNS,
    WRONG_TYPE,
    RefusedRecord,
    first_non_utf8,
    judge_cop,
    read_json_records,
    read_json_rows,
)
from fine_tune.errors import DatasetError
from fine_tune.hub_access import is_hub_id, is_local, written_as_path
from fine_tune.task.prompts import OPTION_COLUMNS
from fine_tune.task.spec import TaskSpec

logger = logging.getLogger(__name__)
CONFIG_COLUMN = "__config__"  # the Hub config (or config folder) a row of a multi-config task came from

REQUIRED_COLUMNS: tuple[str, ...] = ("question", *OPTION_COLUMNS, "cop")
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c for c in MEDMCQA_COLUMNS if c not in REQUIRED_COLUMNS)
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
JsonReader = Callable[[Path], tuple[datasets.Dataset, list[RefusedRecord]]]


@dataclass
class LoadedRows:
    """The rows of a source, and the records that could not become rows (each with its line or row and reason)."""

    dataset: datasets.Dataset
    refused: list[RefusedRecord] = field(default_factory=list)
    untyped: bool = False  # CSV: every cell is text
    path: Path | None = None  # the local file read, when one was

    def refused_counts(self) -> dict[str, int]:
        return dict(Counter(record.reason for record in self.refused))


def load_medmcqa(source: str, split: str = "train", token_env: str = hub.TOKEN_ENV) -> datasets.Dataset:
    """The rows of `read_medmcqa`; refused records are logged with their count and first lines."""
    return read_medmcqa(source, split, token_env).dataset


def read_medmcqa(source: str, split: str = "train", token_env: str = hub.TOKEN_ENV) -> LoadedRows:
    """A MedMCQA split from a Hub dataset ID or a local path, with exactly the MEDMCQA_COLUMNS.

    Local paths: a .jsonl/.json/.parquet/.csv file (`split` is ignored), a `save_to_disk` folder (a DatasetDict's
    `split` is picked), or a folder holding `<split>.<ext>` files. Absent optional columns are added as nulls. A
    record that cannot be a row (a malformed or non-UTF-8 JSON line, a `cop` of the wrong type, see
    `fine_tune.data.records`) is refused alone and returned with its line; the rest are judged as usual.
    """
    if is_local(source):
        loaded = read_local(Path(source).expanduser(), split, read_json_records)
    elif written_as_path(source):
        raise DatasetError(f"dataset path not found: {source}")
    elif is_hub_id(source, namespaced=False):
        loaded = LoadedRows(_load_hub(source, split, token_env))
    else:
        raise DatasetError(f"{source!r} is neither an existing path nor a Hub dataset ID (owner/name)")
    loaded.dataset = conform_columns(loaded.dataset)
    loaded = _judge_cop_column(loaded)
    logger.info("loaded %d rows from %s", len(loaded.dataset), source)
    if loaded.refused:
        first = "; ".join(record.label() for record in loaded.refused[:5])
        logger.warning(
            "%s: refused %d record(s) %s (e.g. %s)", source, len(loaded.refused), loaded.refused_counts(), first
        )
    return loaded


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


def _judge_cop_column(loaded: LoadedRows) -> LoadedRows:
    """A float (pandas: a column with a missing value) or text `cop` column judged row by row, then int64."""
    dataset = loaded.dataset
    feature = dataset.features["cop"]
    if not isinstance(feature, datasets.Value) or feature.dtype == "int64":
        return loaded
    answers, keep = [], []
    for index, (value, row_id) in enumerate(zip(dataset["cop"], dataset["id"], strict=True)):
        cop, problem = judge_cop(value, text=loaded.untyped)
        if problem:
            where = f"row {index}" + (f", id {row_id}" if row_id not in (None, "") else "")
            loaded.refused.append(RefusedRecord(where, WRONG_TYPE, problem))
            continue
        answers.append(cop)
        keep.append(index)
    columns = {**dataset.select(keep).to_dict(), "cop": answers}
    features = datasets.Features({**dataset.features, "cop": datasets.Value("int64")})
    dataset = datasets.Dataset.from_dict(columns, features=features)
    loaded.dataset = dataset.select_columns(list(MEDMCQA_COLUMNS))
    return loaded


def read_task_rows(
    spec: TaskSpec, split: str, source: str | None = None, token_env: str = hub.TOKEN_ENV
) -> LoadedRows:
    """The raw rows of `split` (all of the task's configs, concatenated) from `source` or the task's dataset_path,
    and the local records that could not be rows (`read_local`; a config's are labelled with its file).

    Hub configs are loaded one by one and their name kept in CONFIG_COLUMN (the subject when the task has none).
    A local folder with one sub-folder per config is read the same way; any other local path is one source.
    """
    source = source or spec.dataset_path
    configs = [c for c in spec.dataset_configs if c is not None]
    if is_local(source):
        path = Path(source).expanduser()
        if configs and path.is_dir() and all((path / c).is_dir() for c in configs):
            parts = [(c, _labelled(read_local(path / c, split), path)) for c in configs]
        else:
            parts = [(None, read_local(path, split))]
    elif written_as_path(source):
        raise DatasetError(f"{spec.name}: dataset path not found: {source}")
    elif is_hub_id(source, namespaced=False):
        parts = [(c, LoadedRows(_load_hub(source, split, token_env, c))) for c in (configs or [None])]
    else:
        raise DatasetError(f"{spec.name}: {source!r} is neither an existing path nor a Hub dataset ID (owner/name)")
    tagged = [part.dataset.add_column(CONFIG_COLUMN, [config] * len(part.dataset)) for config, part in parts]
    tagged = [part for part in tagged if len(part)] or tagged[:1]  # a config of refused records only adds none
    try:
        dataset = tagged[0] if len(tagged) == 1 else datasets.concatenate_datasets(tagged)
    except ValueError as error:  # the configs' columns or types differ
        raise DatasetError(f"{spec.name}: the configs of {source} do not share one schema ({error})") from None
    refused = [record for _, part in parts for record in part.refused]
    logger.info("%s: loaded %d rows of split %r from %s", spec.name, len(dataset), split, source)
    if refused:
        first = "; ".join(record.label() for record in refused[:5])
        logger.warning("%s: refused %d record(s) of %s (e.g. %s)", spec.name, len(refused), source, first)
    return LoadedRows(dataset, refused)


def read_local(path: Path, split: str, json_reader: JsonReader = read_json_rows) -> LoadedRows:
    """The one local reader, for MedMCQA and every task: a .jsonl/.json/.parquet/.csv file (`split` is ignored), a
    `save_to_disk` folder (a DatasetDict's `split` is picked), or a folder holding `<split>.<ext>` files.

    JSON is read record by record by `json_reader` (MedMCQA's `read_json_records`, or any task's `read_json_rows`):
    a bad record is refused alone with its line. An empty file, and a CSV holding a byte that is not UTF-8 (named),
    are one line each.
    """
    if path.is_file():
        return _read_file(path, json_reader)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return _load_saved(path, split)
    found = [path / f"{split}{ext}" for ext in FILE_BUILDERS if (path / f"{split}{ext}").is_file()]
    if not found:
        raise DatasetError(
            f"{path} is neither a save_to_disk folder nor a folder with a {split}.jsonl/.json/.parquet/.csv file"
        )
    return _read_file(found[0], json_reader)


def _read_file(path: Path, json_reader: JsonReader) -> LoadedRows:
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DatasetError(f"unsupported file type {path.suffix!r} for {path}: use .jsonl, .json, .parquet or .csv")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file (no rows)")
    if builder == "json":
        return LoadedRows(*json_reader(path), path=path)
    if builder == "csv":
        bad = first_non_utf8(path.read_bytes())
        if bad:
            raise DatasetError(f"{path}: {bad}; re-save the file as UTF-8")
    try:
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # the builders raise many types for malformed files
        raise DatasetError(f"could not read {path}: {_cause(error)}") from error
    if len(dataset) == 0:
        raise DatasetError(f"{path}: empty file (no rows)")
    return LoadedRows(dataset, untyped=builder == "csv", path=path)


def _labelled(loaded: LoadedRows, root: Path) -> LoadedRows:
    """`loaded` with each refused record's place prefixed by its file (relative to `root`)."""
    if loaded.path is not None:
        name = loaded.path.relative_to(root).as_posix()
        loaded.refused = [replace(record, where=f"{name} {record.where}") for record in loaded.refused]
    return loaded


def _load_saved(path: Path, split: str) -> LoadedRows:
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise DatasetError(f"could not read the saved dataset at {path}: {_cause(error)}") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DatasetError(f"split {split!r} not in {path}; available: {', '.join(loaded)}")
        return LoadedRows(loaded[split])
    return LoadedRows(loaded)


def _load_hub(hub_id: str, split: str, token_env: str, config: str | None = None) -> datasets.Dataset:
    named = f"{hub_id!r}" + (f" (config {config!r})" if config else "")
    local_hint = "pass a local path instead (a .jsonl/.json/.parquet/.csv file or a save_to_disk folder)"
    if hub.offline_mode():
        raise DatasetError(
            f"offline mode is set ({'/'.join(hub.OFFLINE_ENV_VARS)}), so the Hub dataset {named} cannot be "
            f"loaded; {local_hint}"
        )
    endpoint = hub.hub_endpoint()
    if not hub.hub_reachable(endpoint):
        raise DatasetError(
            f"the Hugging Face Hub ({endpoint}) is unreachable, so {named} cannot be loaded; {local_hint}"
        )
    token = os.environ.get(token_env) or None
    try:
        named_config = {"name": config} if config else {}
        return datasets.load_dataset(hub_id, **named_config, split=split, token=token)
    except Exception as error:  # network, auth and not-found errors all become one explained failure
        cause = _cause(error).replace(token, "***") if token else _cause(error)
        raise DatasetError(
            f"could not load split {split!r} of {named} from the Hub ({cause}); check the ID"
            + (", config" if config else "")
            + f" and split, and the token in ${token_env} for gated datasets, or {local_hint}"
        ) from error


def _cause(error: Exception) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"
