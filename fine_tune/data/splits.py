"""What every split shares: the seeded shuffle order, the split sizes, and the split manifest that proves the splits
disjoint (its hash, contamination check, reading and writing). `task_splits` makes the splits."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fine_tune.constants import SPLIT_NAMES
from fine_tune.errors import DatasetError
from fine_tune.io import atomic_write_json

DEV_KEY = "dev"  # a phase's held-out dev slice in its split manifest (train/selection.py)


def shuffle_order(n_rows: int, seed: int) -> list[int]:
    """The permutation `Dataset.shuffle(seed=seed)` applies (row `i` of the shuffled dataset is row `order[i]`)."""
    return np.random.default_rng(seed).permutation(n_rows).tolist()


@dataclass
class SplitResult:
    splits: dict[str, datasets.Dataset]
    manifest: dict[str, Any]
    skipped: dict[str, int]


def check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    unknown = [name for name in sizes if name not in SPLIT_NAMES]
    if unknown:
        raise DatasetError(f"unknown split name(s) {', '.join(unknown)}; expected {', '.join(SPLIT_NAMES)}")
    bad = {name: size for name, size in sizes.items() if isinstance(size, bool) or not isinstance(size, int)}
    if bad or any(size < 0 for size in sizes.values()):
        raise DatasetError(f"split sizes must be non-negative integers, got {dict(sizes)}")
    return {name: sizes[name] for name in SPLIT_NAMES if name in sizes}


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
        raise DatasetError(f"splits share content (contamination): {format_counts(shared)} overlapping hashes")


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


def format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def format_sizes(sizes: Mapping[str, int]) -> str:
    return "/".join(f"{name}={size}" for name, size in sizes.items())


def splits_only(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without a phase's dev record (held-out selection): what the phases of one split share."""
    return {key: value for key, value in manifest.items() if key != DEV_KEY}


def splits_hash(manifest: Mapping[str, Any]) -> str:
    """The hash of the splits alone: equal for the SFT and GRPO manifests of one split, whatever their dev slices."""
    return manifest_hash(splits_only(manifest))
