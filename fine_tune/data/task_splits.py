"""Disjoint sft/grpo/eval splits of any task's canonical rows, optionally stratified (`--stratify_by subject`).

Without stratification the source rows are walked in `shuffle(seed)` order, invalid rows and repeated content
skipped and counted, and the splits filled in turn: on clean data exactly upstream's `shuffle(seed=42)` then
`select(range(0, 1000))`, `range(1000, 1500)`, `range(1500, 1700)`. With `stratify_by`, every valid distinct row of
the walk is a candidate and `fine_tune.data.stratify` gives each split (and each prefix of it) the strata's shares;
the manifest records the column and each split's counts per stratum.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from fine_tune import hub_access as hub
from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES, STRATIFY_COLUMNS
from fine_tune.data.curriculum import Curriculum, curriculum_assignment, load_curriculum
from fine_tune.data.normalise import NormalisedRows, TaskReport, content_hash, load_task
from fine_tune.data.rows import DUPLICATE_CONTENT, first_reasons
from fine_tune.data.splits import (
    SplitResult,
    check_disjoint,
    check_sizes,
    format_counts,
    format_sizes,
    shuffle_order,
    write_manifest,
)
from fine_tune.data.stratify import stratified_assignment, stratum_counts
from fine_tune.errors import DatasetError
from fine_tune.task.mixture import mixture_sizes
from fine_tune.task.spec import DEFAULT_TASK, TaskSpec, resolve_task

logger = logging.getLogger(__name__)


def load_task_split(
    task: str | TaskSpec | None,
    split_name: str,
    *,
    source: str | None = None,
    hub_split: str | None = None,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    stratify_by: str | None = None,
    manifest_path: str | os.PathLike | None = None,
    token_env: str = hub.TOKEN_ENV,
) -> tuple[datasets.Dataset, dict[str, Any]]:
    """Load -> normalise -> split -> (write the manifest) -> the named split's canonical rows and the manifest.

    `source` and `hub_split` default to the task's `dataset_path` and `train_split`.
    """
    if split_name not in sizes:
        raise DatasetError(f"unknown split {split_name!r}; expected one of {', '.join(sizes)}")
    result = load_task_splits(
        task, source=source, hub_split=hub_split, sizes=sizes, seed=seed, stratify_by=stratify_by, token_env=token_env
    )
    if manifest_path is not None:
        write_manifest(result.manifest, manifest_path)
        logger.info("wrote split manifest to %s", manifest_path)
    return result.splits[split_name], result.manifest


def load_task_splits(
    task: str | TaskSpec | None,
    *,
    source: str | None = None,
    hub_split: str | None = None,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    stratify_by: str | None = None,
    token_env: str = hub.TOKEN_ENV,
    curriculum: Curriculum | None = None,
) -> SplitResult:
    """Load -> normalise -> split: every split of a task's canonical rows and the manifest."""
    spec = resolve_task(task)
    source = source or spec.dataset_path
    normalised = load_task(spec, hub_split or spec.train_split, source, token_env)
    normalised.report.require_usable(1 if curriculum is not None else sum(sizes.values()))
    result = split_normalised(
        spec, normalised, sizes, seed, source=source, stratify_by=stratify_by, curriculum=curriculum
    )
    logger.info("%s split %s: skipped %s", spec.name, format_sizes(sizes), format_counts(result.skipped) or "nothing")
    return result


def load_task_eval_rows(
    task: str | TaskSpec | None,
    *,
    source: str | None = None,
    hub_split: str | None = None,
    token_env: str = hub.TOKEN_ENV,
) -> tuple[datasets.Dataset, TaskReport]:
    """A whole official split (default: the task's `eval_split`) as canonical rows; invalid rows dropped, counted."""
    spec = resolve_task(task)
    split = hub_split or spec.eval_split
    if split is None:
        raise DatasetError(
            f"task {spec.name} has no official eval split: score its EVAL split (eval_split: split) instead"
        )
    normalised = load_task(spec, split, source or spec.dataset_path, token_env)
    normalised.report.require_usable(1)
    return normalised.dataset, normalised.report


def split_normalised(
    spec: TaskSpec,
    normalised: NormalisedRows,
    sizes: Mapping[str, int],
    seed: int,
    *,
    source: str | None,
    stratify_by: str | None = None,
    curriculum: Curriculum | None = None,
) -> Any:
    """`split_task_rows` over a task's normalised rows (`load_task`): what the phases and the validator split."""
    return split_task_rows(
        normalised.dataset,
        normalised.source_indices,
        first_reasons(normalised.report),
        normalised.report.total,
        sizes,
        seed,
        fingerprint=normalised.fingerprint,
        source=source,
        task=spec.name,
        letters=spec.letters,
        stratify_by=stratify_by,
        curriculum=curriculum,
    )


def split_task_rows(
    rows: datasets.Dataset,
    source_indices: Sequence[int],
    skip_reasons: Mapping[int, str],
    n_source: int,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    fingerprint: str | None = None,
    source: str | None = None,
    task: str = DEFAULT_TASK,
    letters: Sequence[str] = (),
    stratify_by: str | None = None,
    curriculum: Curriculum | None = None,
) -> SplitResult:
    """Split canonical `rows` (row i is source row `source_indices[i]` of `n_source`); `skip_reasons` gives each
    invalid source row the reason it is counted under. A `curriculum` replaces `sizes` and `stratify_by` with its
    holdout / share / pool split by subject (`fine_tune.data.curriculum`)."""
    sizes = check_sizes(sizes)
    full_walk = stratify_by is not None or curriculum is not None
    if stratify_by is not None and stratify_by not in STRATIFY_COLUMNS:
        raise DatasetError(f"stratify_by must be one of {', '.join(STRATIFY_COLUMNS)}, got {stratify_by!r}")
    position_of = {index: position for position, index in enumerate(source_indices)}
    needed = 0 if curriculum is not None else sum(sizes.values())
    candidates: list[tuple[int, int, str]] = []  # (shuffled position, canonical position, content hash)
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    for shuffled, index in enumerate(shuffle_order(n_source, seed)):
        if not full_walk and len(candidates) == needed:
            break
        if index not in position_of:
            skipped[skip_reasons.get(index, "invalid")] += 1
            continue
        digest = content_hash(rows[position_of[index]])
        if digest in seen:
            skipped[DUPLICATE_CONTENT] += 1
            continue
        seen.add(digest)
        candidates.append((shuffled, position_of[index], digest))
    if len(candidates) < needed:
        raise DatasetError(
            f"{task}: only {len(candidates)} distinct valid rows for {needed} requested ({format_sizes(sizes)}); "
            f"skipped: {format_counts(skipped) or 'none'}"
        )
    plan = None
    if curriculum is not None:
        bounds, plan = curriculum_assignment([rows[position]["subject"] for _, position, _ in candidates], curriculum)
        sizes = {name: len(picks) for name, picks in bounds.items()}
    elif stratify_by is None:
        bounds, start = {}, 0
        for name, size in sizes.items():
            bounds[name], start = list(range(start, start + size)), start + size
    else:
        labels = [rows[position][stratify_by] for _, position, _ in candidates]
        bounds = stratified_assignment(labels, sizes)
    assigned = {name: [candidates[i] for i in picks] for name, picks in bounds.items()}
    manifest = _manifest(rows, source_indices, sizes, seed, fingerprint, source, assigned, dict(skipped))
    if task != DEFAULT_TASK:
        manifest["task"] = {"name": task, "letters": list(letters)}
    if plan is not None:
        manifest["curriculum"] = curriculum_record(
            curriculum, plan, lambda i: label(rows, source_indices, candidates[i][1])
        )
        stratify_by = "subject"
    if stratify_by is not None:
        manifest["stratify_by"] = stratify_by
        manifest["strata"] = {
            name: stratum_counts([rows[position][stratify_by] for _, position, _ in picked])
            for name, picked in assigned.items()
        }
    check_disjoint(manifest)
    splits = {name: rows.select([position for _, position, _ in picked]) for name, picked in assigned.items()}
    return SplitResult(splits=splits, manifest=manifest, skipped=dict(skipped))


def _manifest(
    rows: datasets.Dataset,
    source_indices: Sequence[int],
    sizes: dict[str, int],
    seed: int,
    fingerprint: str | None,
    source: str | None,
    assigned: Mapping[str, list[tuple[int, int, str]]],
    skipped: dict[str, int],
) -> dict[str, Any]:
    """The split manifest (row ids: the id, else `row <index>`); the default task's names no task."""
    return {
        "seed": seed,
        "sizes": dict(sizes),
        "dataset_fingerprint": fingerprint,
        "source": source,
        "splits": {
            name: {
                "size": len(picked),
                "shuffled_indices": [shuffled for shuffled, _, _ in picked],
                "source_indices": [source_indices[position] for _, position, _ in picked],
                "row_ids": [label(rows, source_indices, position) for _, position, _ in picked],
                "content_hashes": [digest for _, _, digest in picked],
            }
            for name, picked in assigned.items()
        },
        "skipped": dict(skipped),
    }


def label(rows: datasets.Dataset, source_indices: Sequence[int], position: int) -> str:
    """A row's id in the manifest: its id, else `row <source index>`."""
    row_id = rows[position]["id"]
    return row_id if row_id not in (None, "") else f"row {source_indices[position]}"


def curriculum_record(curriculum: Curriculum, plan: Mapping[str, Mapping[str, Any]], row_id: Any) -> dict[str, Any]:
    """The manifest's `curriculum` section: the file, its settings, and per subject what it got, with the pool rows
    drawn past the start share (row ids) and why."""
    subjects = {}
    for subject, entry in plan.items():
        drawn = [row_id(position) for position in entry["drawn_from_pool"]]
        reason = curriculum.reasons.get(subject) or ("recommended share" if drawn else None)
        subjects[subject] = {**entry, "drawn_from_pool": {"row_ids": drawn, "reason": reason}}
    return {
        "file": curriculum.path,
        "holdout_per_subject": curriculum.holdout_per_subject,
        "start_share": curriculum.start_share,
        "subjects": subjects,
    }


@dataclass(frozen=True)
class TaskSource:
    """One task of a run and where its rows come from (the recipe's dataset keys, else the task file's)."""

    spec: TaskSpec
    source: str
    hub_split: str
    weight: float = 1.0


def task_sources(args: Any) -> list[TaskSource]:
    """The recipe's task, or each task of its mixture (`fine_tune.task.mixture`), with its data source."""
    sources = []
    for entry in args.task_entries:
        spec = resolve_task(entry.task)
        source = entry.dataset_name or args.dataset_name or spec.dataset_path
        hub_split = entry.dataset_train_split or args.dataset_train_split or spec.train_split
        sources.append(TaskSource(spec, source, hub_split, entry.weight))
    names = [s.spec.name for s in sources]
    if len(set(names)) != len(names):
        raise DatasetError(f"task: two tasks of the mixture are named {_repeated(names)}: give them distinct names")
    return sources


def _repeated(names: Sequence[str]) -> str:
    return next(name for name in names if names.count(name) > 1)


def phase_split(args: Any, manifest_path: str | os.PathLike | None = None) -> PhaseSplit:
    """Every split of recipe `args` (SplitArguments: task, dataset_name, sizes, seed, ...) as canonical rows, one
    part per task; a mixture's manifest holds each task's manifest and the splits of all of them together."""
    sources = task_sources(args)
    if len(sources) == 1:
        result = source_splits(sources[0], args, args.split_sizes)
        parts, manifest = [TaskRows(sources[0].spec, result.splits)], result.manifest
    else:
        sizes = mixture_sizes(args.split_sizes, args.task_entries)
        results = [source_splits(s, args, size) for s, size in zip(sources, sizes, strict=True)]
        parts = [TaskRows(s.spec, r.splits) for s, r in zip(sources, results, strict=True)]
        manifest = mixture_manifest(sources, [r.manifest for r in results], args.split_sizes, args.split_seed)
    if manifest_path is not None:
        write_manifest(manifest, manifest_path)
        logger.info("wrote split manifest to %s", manifest_path)
    return PhaseSplit(parts, manifest, sources)


def source_splits(task: TaskSource, args: Any, sizes: Mapping[str, int]) -> SplitResult:
    """Every split of one task (canonical rows) and its manifest."""
    return load_task_splits(
        task.spec,
        source=task.source,
        hub_split=task.hub_split,
        sizes=sizes,
        seed=args.split_seed,
        stratify_by=args.stratify_by,
        token_env=args.hf_token_env,
        curriculum=load_curriculum(args.curriculum) if args.curriculum else None,
    )


def mixture_manifest(
    sources: Sequence[TaskSource], manifests: Sequence[Mapping[str, Any]], sizes: Mapping[str, int], seed: int
) -> dict[str, Any]:
    """Each task's manifest under `tasks`, and under `splits` every split of all tasks together (row ids prefixed
    with the task name), so the checks that read one manifest (disjoint splits, contamination, dev slice) see the
    whole run; the splits must be disjoint across tasks too."""
    names = [s.spec.name for s in sources]
    splits = {}
    for split in manifests[0]["splits"]:
        parts = [(name, m["splits"][split]) for name, m in zip(names, manifests, strict=True)]
        splits[split] = {
            "size": sum(part["size"] for _, part in parts),
            "tasks": {name: part["size"] for name, part in parts},
            "row_ids": [f"{name}/{row_id}" for name, part in parts for row_id in part["row_ids"]],
            "content_hashes": [digest for _, part in parts for digest in part["content_hashes"]],
        }
    manifest = {
        "seed": seed,
        "sizes": dict(sizes),
        "mixture": [
            {"task": name, "weight": s.weight, "source": s.source, "hub_split": s.hub_split, "sizes": m["sizes"]}
            for name, s, m in zip(names, sources, manifests, strict=True)
        ],
        "splits": splits,
        "skipped": {name: m["skipped"] for name, m in zip(names, manifests, strict=True)},
        "tasks": dict(zip(names, manifests, strict=True)),
    }
    check_disjoint(manifest)
    return manifest


def official_rows(task: TaskSource, split: str | None, token_env: str) -> tuple[datasets.Dataset, dict[str, int]]:
    """A whole official split (default: the task's eval_split) as canonical rows, and the dropped rows by reason."""
    rows, report = load_task_eval_rows(task.spec, source=task.source, hub_split=split, token_env=token_env)
    return rows, report.invalid_counts()


@dataclass
class TaskRows:
    task: TaskSpec
    splits: dict[str, datasets.Dataset]  # canonical rows of each split (sft, grpo, eval)


@dataclass
class PhaseSplit:
    parts: list[TaskRows]  # one per task, in the recipe's order
    manifest: dict[str, Any]
    sources: list[TaskSource]  # where each part's rows came from
