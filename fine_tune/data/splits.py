"""Disjoint SFT / GRPO / EVAL splits of one seeded shuffle, and the split manifest that proves them disjoint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fine_tune import hub_access as hub
from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES, SPLIT_NAMES
from fine_tune.data.loading import read_medmcqa
from fine_tune.data.rows import first_reasons
from fine_tune.data.validation import (
    DUPLICATE_CONTENT,
    ValidationReport,
    content_hash,
    require_usable,
    row_label,
    validate_rows,
)
from fine_tune.errors import DatasetError
from fine_tune.io import atomic_write_json

logger = logging.getLogger(__name__)

DEV_KEY = "dev"  # a phase's held-out dev slice in its split manifest (train/selection.py)


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
    reasons = first_reasons(report)
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
            skipped[reasons[index]] += 1
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
    result = load_splits(source, hub_split=hub_split, sizes=sizes, seed=seed, token_env=token_env)
    if manifest_path is not None:
        write_manifest(result.manifest, manifest_path)
        logger.info("wrote split manifest to %s", manifest_path)
    return result.splits[split_name], result.manifest


def load_splits(
    source: str,
    *,
    hub_split: str = "train",
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    token_env: str = hub.TOKEN_ENV,
) -> SplitResult:
    """Load -> validate -> split: every split of a MedMCQA source and the manifest."""
    loaded = read_medmcqa(source, hub_split, token_env)
    dataset = loaded.dataset
    report = validate_rows(dataset, refused=loaded.refused)
    logger.info(
        "%s: %d rows, %d invalid (%s)",
        source,
        report.total,
        report.n_invalid,
        _format_counts(report.invalid_counts()) or "none",
    )
    for conflict in report.conflicts:
        logger.warning("%s: same question, different answers, kept out: %s", source, _format_conflict(conflict))
    result = split_dataset(dataset, sizes, seed, source=source)
    logger.info("split %s: skipped %s", _format_sizes(sizes), _format_counts(result.skipped) or "nothing")
    return result


def load_eval_rows(
    source: str, hub_split: str = "validation", token_env: str = hub.TOKEN_ENV
) -> tuple[datasets.Dataset, ValidationReport]:
    """A whole official split for scoring: invalid rows (e.g. unlabeled) are dropped and counted."""
    loaded = read_medmcqa(source, hub_split, token_env)
    dataset = loaded.dataset
    report = validate_rows(dataset, refused=loaded.refused)
    require_usable(report, 1)
    if report.n_invalid:
        logger.warning(
            "%s: dropped %d of %d rows (%s)",
            source,
            report.n_invalid,
            report.total,
            _format_counts(report.invalid_counts()),
        )
    return dataset.select(report.valid_indices), report


def _format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _format_conflict(conflict: Mapping[str, list[str]]) -> str:
    return ", ".join(
        f"{row_id} ({answer})" for row_id, answer in zip(conflict["ids"], conflict["answers"], strict=True)
    )


def _format_sizes(sizes: Mapping[str, int]) -> str:
    return "/".join(f"{name}={size}" for name, size in sizes.items())


def splits_only(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without a phase's dev record (held-out selection): what the phases of one split share."""
    return {key: value for key, value in manifest.items() if key != DEV_KEY}


def splits_hash(manifest: Mapping[str, Any]) -> str:
    """The hash of the splits alone: equal for the SFT and GRPO manifests of one split, whatever their dev slices."""
    return manifest_hash(splits_only(manifest))
