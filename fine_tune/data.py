"""Loading, validating and splitting MedMCQA rows.

Every user-facing failure is a `DatasetError` with a message that says what is wrong and what to do; no row is ever
dropped without being counted under a named reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fine_tune import hub
from fine_tune.io import atomic_write_json
from fine_tune.prompts import (
    CHAT_TEMPLATE_KWARGS,
    LETTERS,
    OPTION_COLUMNS,
    prompt_messages,
    render_prompt,
    sft_example,
)

logger = logging.getLogger(__name__)

MEDMCQA_HUB_ID = "openlifescienceai/medmcqa"
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
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

REASONS: tuple[str, ...] = ("missing_question", "missing_option", "cop_out_of_range", "wrong_type")
FLAGS: tuple[str, ...] = ("duplicate_options",)
DUPLICATE_CONTENT = "duplicate_content"
EXAMPLES_PER_REASON = 5
REASON_DESCRIPTIONS = {
    "missing_question": "question is null, empty or whitespace",
    "missing_option": "one of opa..opd is null, empty or whitespace",
    "cop_out_of_range": (
        "cop is null or outside 0..3; cop=-1 marks unlabeled rows (the official MedMCQA test split has no answers), "
        "which cannot be used for training or scoring"
    ),
    "wrong_type": "question or an option is not a string, or cop is not an integer",
    "duplicate_options": "two options are identical after case/whitespace normalisation (flag only, row kept)",
    DUPLICATE_CONTENT: "same question and options as a row already assigned to a split",
}

SPLIT_NAMES: tuple[str, ...] = ("sft", "grpo", "eval")
DEFAULT_SPLIT_SIZES: dict[str, int] = {"sft": 1000, "grpo": 500, "eval": 200}
DEFAULT_SPLIT_SEED = 42


class DatasetError(ValueError):
    """A problem with the data or its source, explained for the user (no traceback needed)."""


def load_medmcqa(source: str, split: str = "train", token_env: str = hub.TOKEN_ENV) -> datasets.Dataset:
    """A MedMCQA split from a Hub dataset ID or a local path, with exactly the MEDMCQA_COLUMNS.

    Local paths: a .jsonl/.json/.parquet/.csv file (`split` is ignored), a `save_to_disk` folder (a DatasetDict's
    `split` is picked), or a folder holding `<split>.<ext>` files. Absent optional columns are added as nulls.
    """
    path = Path(source).expanduser()
    if path.exists():
        dataset = _load_local(path, split)
    elif _looks_like_path(source):
        raise DatasetError(f"dataset path not found: {source}")
    elif _HUB_ID.match(source):
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


def _looks_like_path(source: str) -> bool:
    return Path(source).suffix.lower() in FILE_BUILDERS or source.startswith(("/", ".", "~"))


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


@dataclass
class ValidationReport:
    """Row indices per reason (a row may fail several) and per flag (flagged rows stay valid)."""

    total: int
    valid_indices: list[int]
    invalid: dict[str, list[int]]
    flags: dict[str, list[int]]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return len(self.valid_indices)

    @property
    def n_invalid(self) -> int:
        return self.total - self.valid

    def summary(self) -> str:
        lines = [f"{self.total} rows: {self.valid} valid, {self.n_invalid} invalid"]
        for kind, groups in (("invalid", self.invalid), ("flag", self.flags)):
            for name, indices in groups.items():
                examples = ", ".join(self.examples.get(name, []))
                lines.append(f"  {kind} {name}: {len(indices)} rows (e.g. {examples}): {REASON_DESCRIPTIONS[name]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def counted(groups: dict[str, list[int]]) -> dict[str, Any]:
            return {name: {"count": len(ix), "examples": self.examples.get(name, [])} for name, ix in groups.items()}

        return {
            "total": self.total,
            "valid": self.valid,
            "invalid": counted(self.invalid),
            "flags": counted(self.flags),
        }


def validate_rows(dataset: datasets.Dataset, require_labels: bool = True) -> ValidationReport:
    """Check every row; with `require_labels=False` the cop check is skipped (reporting on unlabeled data)."""
    _require_columns(dataset)
    invalid: dict[str, list[int]] = {}
    flags: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {}
    valid_indices: list[int] = []
    for index, row in enumerate(_iter_rows(dataset)):
        names = row_problems(row, require_labels)
        for name in names:
            invalid.setdefault(name, []).append(index)
        if not names:
            valid_indices.append(index)
        if has_duplicate_options(row):
            flags.setdefault("duplicate_options", []).append(index)
            names = [*names, "duplicate_options"]
        for name in names:
            if len(examples.setdefault(name, [])) < EXAMPLES_PER_REASON:
                examples[name].append(row_label(row, index))
    return ValidationReport(
        total=len(dataset),
        valid_indices=valid_indices,
        invalid={r: invalid[r] for r in REASONS if r in invalid},
        flags=flags,
        examples=examples,
    )


def row_problems(row: Mapping[str, Any], require_labels: bool = True) -> list[str]:
    """The reasons (in REASONS order) that make a row unusable; empty when it is valid."""
    problems = set()
    texts = [("missing_question", row["question"])] + [("missing_option", row[c]) for c in OPTION_COLUMNS]
    for reason, value in texts:
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.add(reason)
        elif not isinstance(value, str):
            problems.add("wrong_type")
    if require_labels:
        cop = row["cop"]
        if cop is not None and (isinstance(cop, bool) or not isinstance(cop, int)):
            problems.add("wrong_type")
        elif cop is None or not 0 <= cop < len(LETTERS):
            problems.add("cop_out_of_range")
    return [r for r in REASONS if r in problems]


def has_duplicate_options(row: Mapping[str, Any]) -> bool:
    options = [_normalise(row[c]) for c in OPTION_COLUMNS if isinstance(row[c], str) and row[c].strip()]
    return len(set(options)) < len(options)


def row_label(row: Mapping[str, Any], index: int) -> str:
    """The row's `id` when it has one, else `row <index>`."""
    row_id = row.get("id")
    return str(row_id) if row_id not in (None, "") else f"row {index}"


def require_usable(report: ValidationReport, needed: int) -> None:
    """Raise DatasetError, naming every reason and its count, when fewer than `needed` rows are valid."""
    if report.valid >= needed:
        return
    reasons = "; ".join(
        f"{name}: {len(ix)} rows (e.g. {', '.join(report.examples.get(name, []))}) - {REASON_DESCRIPTIONS[name]}"
        for name, ix in report.invalid.items()
    )
    raise DatasetError(
        f"only {report.valid} of {report.total} rows are usable but {needed} are needed"
        + (f"; invalid rows by reason: {reasons}" if reasons else "")
    )


def _require_columns(dataset: datasets.Dataset) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise DatasetError(f"missing MedMCQA column(s): {', '.join(missing)}")


def _iter_rows(dataset: datasets.Dataset, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
    columns = [c for c in ("id", *REQUIRED_COLUMNS) if c in dataset.column_names]
    for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
        yield from (
            dict(zip(columns, values, strict=True)) for values in zip(*(batch[c] for c in columns), strict=True)
        )


def _normalise(text: Any) -> str:
    return " ".join(str(text).casefold().split()) if text is not None else ""


def content_hash(row: Mapping[str, Any]) -> str:
    """Order-sensitive hash of the casefolded, whitespace-collapsed question and four options."""
    text = "\x1f".join(_normalise(row[c]) for c in ("question", *OPTION_COLUMNS))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shuffle_order(n_rows: int, seed: int) -> list[int]:
    """The permutation `Dataset.shuffle(seed=seed)` applies (row `i` of the shuffled dataset is row `order[i]`)."""
    return np.random.default_rng(seed).permutation(n_rows).tolist()


@dataclass
class SplitResult:
    splits: dict[str, datasets.Dataset]
    manifest: dict[str, Any]
    skipped: dict[str, int]


def split_dataset(
    dataset: datasets.Dataset,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    source: str | None = None,
) -> SplitResult:
    """Disjoint sft/grpo/eval splits, filled in that order from `dataset.shuffle(seed=seed)`.

    Invalid rows and rows whose content was already assigned are skipped and counted, so on clean data this is
    exactly upstream's `shuffle(seed=42)` then `select(range(0, 1000))`, `range(1000, 1500)`, `range(1500, 1700)`.
    """
    sizes = _check_sizes(sizes)
    report = validate_rows(dataset)
    require_usable(report, sum(sizes.values()))
    valid = set(report.valid_indices)
    order = shuffle_order(len(dataset), seed)
    assigned: dict[str, list[tuple[int, int, str, str]]] = {name: [] for name in sizes}
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    names = iter(sizes)
    current = _next_open(names, sizes)
    for position, index in enumerate(order):
        if current is None:
            break
        if index not in valid:
            skipped[row_problems(dataset[index])[0]] += 1
            continue
        row = dataset[index]
        digest = content_hash(row)
        if digest in seen:
            skipped[DUPLICATE_CONTENT] += 1
            continue
        seen.add(digest)
        assigned[current].append((position, index, row_label(row, index), digest))
        if len(assigned[current]) == sizes[current]:
            current = _next_open(names, sizes)
    if current is not None:
        filled = sum(len(rows) for rows in assigned.values())
        raise DatasetError(
            f"only {filled} distinct valid rows for {sum(sizes.values())} requested ({_format_sizes(sizes)}); "
            f"skipped: {_format_counts(skipped) or 'none'}"
        )
    manifest = _build_manifest(dataset, sizes, seed, source, assigned, dict(skipped))
    check_disjoint(manifest)
    splits = {name: dataset.select([index for _, index, _, _ in rows]) for name, rows in assigned.items()}
    return SplitResult(splits=splits, manifest=manifest, skipped=dict(skipped))


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    unknown = [name for name in sizes if name not in SPLIT_NAMES]
    if unknown:
        raise DatasetError(f"unknown split name(s) {', '.join(unknown)}; expected {', '.join(SPLIT_NAMES)}")
    bad = {name: size for name, size in sizes.items() if isinstance(size, bool) or not isinstance(size, int)}
    if bad or any(size < 0 for size in sizes.values()):
        raise DatasetError(f"split sizes must be non-negative integers, got {dict(sizes)}")
    return {name: sizes[name] for name in SPLIT_NAMES if name in sizes}


def _next_open(names: Iterator[str], sizes: Mapping[str, int]) -> str | None:
    return next((name for name in names if sizes[name] > 0), None)


def _build_manifest(
    dataset: datasets.Dataset,
    sizes: dict[str, int],
    seed: int,
    source: str | None,
    assigned: dict[str, list[tuple[int, int, str, str]]],
    skipped: dict[str, int],
) -> dict[str, Any]:
    return {
        "seed": seed,
        "sizes": dict(sizes),
        "dataset_fingerprint": dataset._fingerprint,
        "source": source,
        "splits": {
            name: {
                "size": len(rows),
                "shuffled_indices": [position for position, _, _, _ in rows],
                "source_indices": [index for _, index, _, _ in rows],
                "row_ids": [label for _, _, label, _ in rows],
                "content_hashes": [digest for _, _, _, digest in rows],
            }
            for name, rows in assigned.items()
        },
        "skipped": dict(skipped),
    }


def overlaps(manifest: Mapping[str, Any]) -> dict[str, int]:
    """Shared content hashes per pair of splits, as {"a/b": count}."""
    hashes = {name: set(split["content_hashes"]) for name, split in manifest["splits"].items()}
    names = list(hashes)
    return {f"{a}/{b}": len(hashes[a] & hashes[b]) for i, a in enumerate(names) for b in names[i + 1 :]}


def contamination_count(manifest: Mapping[str, Any]) -> int:
    return sum(overlaps(manifest).values())


def check_disjoint(manifest: Mapping[str, Any]) -> None:
    """The contamination check: raise DatasetError when any two splits share content."""
    shared = {pair: count for pair, count in overlaps(manifest).items() if count}
    if shared:
        raise DatasetError(f"splits share content (contamination): {_format_counts(shared)} overlapping hashes")


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_manifest(manifest: Mapping[str, Any], path: str | os.PathLike) -> None:
    atomic_write_json(path, manifest)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"could not read the split manifest {path}: {error}") from error


def load_split(
    source: str,
    split_name: str,
    *,
    hub_split: str = "train",
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    manifest_path: str | os.PathLike | None = None,
    token_env: str = hub.TOKEN_ENV,
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """Load -> validate -> split -> (write the manifest) -> the named split and the manifest."""
    if split_name not in sizes:
        raise DatasetError(f"unknown split {split_name!r}; expected one of {', '.join(sizes)}")
    dataset = load_medmcqa(source, hub_split, token_env)
    report = validate_rows(dataset)
    logger.info(
        "%s: %d rows, %d invalid (%s)",
        source,
        report.total,
        report.n_invalid,
        _format_counts({k: len(v) for k, v in report.invalid.items()}) or "none",
    )
    result = split_dataset(dataset, sizes, seed, source=source)
    logger.info("split %s: skipped %s", _format_sizes(sizes), _format_counts(result.skipped) or "nothing")
    if manifest_path is not None:
        write_manifest(result.manifest, manifest_path)
        logger.info("wrote split manifest to %s", manifest_path)
    return result.splits[split_name], result.manifest


def load_eval_rows(
    source: str, hub_split: str = "validation", token_env: str = hub.TOKEN_ENV
) -> tuple[datasets.Dataset, ValidationReport]:
    """A whole official split for scoring: invalid rows (e.g. unlabeled) are dropped and counted."""
    dataset = load_medmcqa(source, hub_split, token_env)
    report = validate_rows(dataset)
    require_usable(report, 1)
    if report.n_invalid:
        logger.warning(
            "%s: dropped %d of %d rows (%s)",
            source,
            report.n_invalid,
            report.total,
            _format_counts({k: len(v) for k, v in report.invalid.items()}),
        )
    return dataset.select(report.valid_indices), report


def token_length_stats(dataset: datasets.Dataset, tokenizer: Any, max_rows: int | None = None) -> dict[str, Any]:
    """Token-length mean/p50/p95/max of the rendered prompt and of prompt + target, over the valid rows."""
    report = validate_rows(dataset)
    indices = report.valid_indices[:max_rows] if max_rows is not None else report.valid_indices
    if not indices:
        raise DatasetError("no valid rows to measure token lengths on")
    rows = dataset.select(indices)
    prompts = [render_prompt(tokenizer, prompt_messages(row)) for row in rows]
    full = [
        tokenizer.apply_chat_template(
            prompt_messages(row) + sft_example(row)["completion"], tokenize=False, **CHAT_TEMPLATE_KWARGS
        )
        for row in rows
    ]
    return {"rows": len(indices), "prompt": _length_stats(tokenizer, prompts), "full": _length_stats(tokenizer, full)}


def _length_stats(tokenizer: Any, texts: list[str]) -> dict[str, float]:
    lengths = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
    return {
        "mean": round(float(lengths.mean()), 1),
        "p50": round(float(np.percentile(lengths, 50)), 1),
        "p95": round(float(np.percentile(lengths, 95)), 1),
        "max": int(lengths.max()),
    }


def duplicate_content(dataset: datasets.Dataset) -> dict[str, int]:
    """Rows whose content hash occurs more than once, and the number of such groups."""
    counts = Counter(content_hash(row) for row in _iter_rows(dataset))
    repeated = [n for n in counts.values() if n > 1]
    return {"rows": sum(repeated), "groups": len(repeated)}


def dataset_report(
    dataset: datasets.Dataset,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    tokenizer: Any = None,
    token_rows: int | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Everything `scripts/validate_dataset.py` reports, as one JSON-ready dict (`usable` False plus `error`)."""
    report = validate_rows(dataset)
    subjects = Counter(s if s is not None else "(none)" for s in dataset["subject_name"])
    result: dict[str, Any] = {
        "source": source,
        "rows": report.total,
        "valid": report.valid,
        "invalid": {name: len(ix) for name, ix in report.invalid.items()},
        "flags": {name: len(ix) for name, ix in report.flags.items()},
        "examples": report.examples,
        "duplicates": duplicate_content(dataset),
        "subjects": dict(subjects.most_common()),
        "requested_sizes": dict(sizes),
    }
    try:
        split = split_dataset(dataset, sizes, seed, source=source)
    except DatasetError as error:
        result.update(usable=False, error=str(error), splits={}, skipped={}, contamination=None)
    else:
        result.update(
            usable=True,
            splits={name: len(part) for name, part in split.splits.items()},
            skipped=split.skipped,
            contamination=contamination_count(split.manifest),
            manifest_hash=manifest_hash(split.manifest),
        )
    if tokenizer is not None and report.valid:
        result["token_lengths"] = token_length_stats(dataset, tokenizer, token_rows)
    return result


def _format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _format_sizes(sizes: Mapping[str, int]) -> str:
    return "/".join(f"{name}={size}" for name, size in sizes.items())
