"""Loading a task's source by Hub dataset ID or local path (JSONL/JSON/Parquet/CSV/save_to_disk), with its own
columns; local JSON is read record by record (one bad record is refused alone, with its line). Offline or
unreachable, a Hub ID fails in seconds with what to do."""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import datasets

from fine_tune import hub_access as hub
from fine_tune.data.records import RefusedRecord, first_non_utf8, read_json_rows
from fine_tune.errors import DatasetError
from fine_tune.hub_access import is_hub_id, is_local, written_as_path
from fine_tune.task.spec import TaskSpec

logger = logging.getLogger(__name__)
CONFIG_COLUMN = "__config__"  # the Hub config (or config folder) a row of a multi-config task came from
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
JsonReader = Callable[[Path], tuple[datasets.Dataset, list[RefusedRecord]]]


@dataclass
class LoadedRows:
    """The rows of a source, and the records that could not become rows (each with its line or row and reason)."""

    dataset: datasets.Dataset
    refused: list[RefusedRecord] = field(default_factory=list)
    untyped: bool = False  # CSV: every cell is text
    path: Path | None = None  # the local file read, when one was


def read_task_rows(
    spec: TaskSpec, split: str, source: str | None = None, token_env: str = hub.TOKEN_ENV
) -> LoadedRows:
    """The raw rows of `split` (all of the task's configs, concatenated) from `source` or the task's dataset_path,
    and the local records that could not be rows (`read_local`; a config's are labelled with its file).

    Hub configs are loaded one by one and, for a task with configs, their name kept in CONFIG_COLUMN (the subject
    when the task has none). A local folder with one sub-folder per config is read the same way; any other local
    path is one source. A CSV source is marked `untyped` (its cells are text, so an index may be read from text).
    """
    source = source or spec.dataset_path
    configs = [c for c in spec.dataset_configs if c is not None]
    reader = open_json_reader(spec.question) if spec.is_open else read_json_rows
    specialties = False
    if is_local(source):
        path = Path(source).expanduser()
        specialties = spec.is_open and not configs and is_specialty_folder(path, split)
        if configs and path.is_dir() and all((path / c).is_dir() for c in configs):
            parts = [(c, _labelled(read_local(path / c, split, reader), path)) for c in configs]
        elif spec.is_text and path.suffix.lower() == ".txt":
            parts = [(None, read_text_file(path))]
        elif specialties:  # one file per specialty: the file name is each row's config (its subject)
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl"))
            parts = [(file.stem, _labelled(_read_file(file, reader), path)) for file in files]
        else:
            parts = [(None, read_local(path, split, reader))]
    elif written_as_path(source):
        raise DatasetError(f"{spec.name}: {hub.missing_path_message(source, 'dataset path')}")
    elif is_hub_id(source, namespaced=False):
        parts = [(c, LoadedRows(_load_hub(source, split, token_env, c))) for c in (configs or [None])]
    else:
        raise DatasetError(f"{spec.name}: {source!r} is neither an existing path nor a Hub dataset ID (owner/name)")
    tag = configs or specialties
    tagged = [p.dataset.add_column(CONFIG_COLUMN, [c] * len(p.dataset)) if tag else p.dataset for c, p in parts]
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
    return LoadedRows(dataset, refused, untyped=any(part.untyped for _, part in parts))


def read_text_file(path: Path) -> LoadedRows:
    """A plain .txt file for a text task: one record {text} per paragraph (blank-line separated), in order."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    bad = first_non_utf8(data)
    if bad:
        raise DatasetError(f"{path}: {bad}; re-save the file as UTF-8")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", data.decode("utf-8")) if p.strip()]
    if not paragraphs:
        raise DatasetError(f"{path}: empty file (no text)")
    return LoadedRows(datasets.Dataset.from_list([{"text": p} for p in paragraphs]), path=path)


def is_specialty_folder(path: Path, split: str) -> bool:
    """A folder of .json/.jsonl files, one per specialty (the file name is the specialty), that is neither a
    `save_to_disk` folder nor a folder holding `<split>.<ext>`."""
    if not path.is_dir() or (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return False
    if any((path / f"{split}{ext}").is_file() for ext in FILE_BUILDERS):
        return False
    return any(p.suffix.lower() in (".json", ".jsonl") for p in path.iterdir())


def open_json_reader(question_field: str) -> JsonReader:
    """An open task's JSON reader: a file that is one JSON object mapping terms to definition texts (and does not
    hold the question field) is a dictionary, one row {term, definition} per entry; any other file is read as rows."""

    def read(path: Path) -> tuple[datasets.Dataset, list[RefusedRecord]]:
        entries = dictionary_entries(path, question_field)
        if entries is None:
            return read_json_rows(path)
        return datasets.Dataset.from_list([{"term": k, "definition": v} for k, v in entries.items()]), []

    return read


def dictionary_entries(path: Path, question_field: str) -> dict[str, str] | None:
    """The {term: definition} entries of a dictionary file, or None when the file is not one."""
    try:
        whole = json.loads(path.read_bytes().removeprefix(codecs.BOM_UTF8))
    except (ValueError, RecursionError):
        return None
    if not isinstance(whole, dict) or not whole or question_field in whole:
        return None
    if not all(isinstance(value, str) for value in whole.values()):
        return None
    return whole


def read_local(path: Path, split: str, json_reader: JsonReader = read_json_rows) -> LoadedRows:
    """The one local reader: a .jsonl/.json/.parquet/.csv file (`split` is ignored), a `save_to_disk` folder (a
    DatasetDict's `split` is picked), or a folder holding `<split>.<ext>` files.

    JSON is read record by record (`read_json_rows`): a bad record is refused alone with its line. An empty file,
    and a CSV holding a byte that is not UTF-8 (named), are one line each.
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


def _read_file(path: Path, json_reader: JsonReader = read_json_rows) -> LoadedRows:
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
