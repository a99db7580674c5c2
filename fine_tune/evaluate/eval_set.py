"""The rows an eval run scores: the EVAL split of the training shuffle, or a whole official split, with a hash that
says whether two runs scored the same questions in the same order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import datasets

from fine_tune.data.normalise import content_hash
from fine_tune.data.rows import row_label
from fine_tune.data.task_splits import PhaseSplit, official_rows, phase_split, task_sources
from fine_tune.errors import RecipeError
from fine_tune.recipes.arguments import OFFICIAL_EVAL, SPLIT_EVAL, EvalConfig
from fine_tune.task.prompts import select_exemplars
from fine_tune.task.spec import TaskSpec, resolve_task


@dataclass
class EvalSet:
    rows: datasets.Dataset  # canonical rows (`fine_tune.data.normalise`)
    info: dict[str, Any]  # the "dataset" section of the results
    manifest: dict[str, Any] | None  # the split manifest recomputed here (eval_split 'split' only)
    task: TaskSpec = field(default_factory=lambda: resolve_task(None))

    def select(self, indices: Iterable[int], **dropped: int) -> EvalSet:
        """The rows at `indices` in order, the info updated and `dropped` added to its counts of dropped rows."""
        rows = self.rows.select(list(indices))
        info = {
            **self.info,
            "rows": len(rows),
            "fingerprint": rows._fingerprint,
            "eval_rows_hash": eval_rows_hash(rows),
            "dropped": {**self.info["dropped"], **dropped},
        }
        return EvalSet(rows, info, self.manifest, self.task)


def load_eval_sets(config: EvalConfig, split: PhaseSplit | None = None) -> list[EvalSet]:
    """The rows to score, one set per task of the recipe (limit applied to each), with what was dropped;
    DatasetError when they cannot be had. `split`: the recipe's splits when already computed (`phase_split`)."""
    if config.eval_split == SPLIT_EVAL:
        split = split or phase_split(config)
        sets = []
        for part, source in zip(split.parts, split.sources, strict=True):
            manifest = split.manifest["tasks"][part.task.name] if config.is_mixture else split.manifest
            rows = part.splits["eval"]
            description = f"EVAL split ({len(rows)} rows, seed {config.split_seed}) of the shuffled "
            description += f"'{source.hub_split}' split"
            sets.append(
                eval_set(
                    config, part.task, rows, split.manifest, dict(manifest["skipped"]), description, source.source
                )
            )
        return sets
    named = None if config.eval_split == OFFICIAL_EVAL else config.eval_split
    sets = []
    for task in task_sources(config):
        rows, dropped = official_rows(task, named, config.hf_token_env)
        description = f"official '{named or task.spec.eval_split}' split"
        sets.append(eval_set(config, task.spec, rows, None, dropped, description, task.source))
    return sets


def eval_set(
    config: EvalConfig,
    task: TaskSpec,
    rows: datasets.Dataset,
    manifest: dict[str, Any] | None,
    dropped: dict[str, Any],
    description: str,
    source: str,
) -> EvalSet:
    available = len(rows)
    if config.limit is not None:
        rows = rows.select(range(min(config.limit, available)))
    info = {
        "task": task.name,
        "letters": list(task.letters),
        "source": source,
        "eval_split": config.eval_split,
        "description": description,
        "subject_source": task.subject_source,
        "available_rows": available,
        "limit": config.limit,
        "rows": len(rows),
        "dropped": dropped,
        "fingerprint": rows._fingerprint,
        "eval_rows_hash": eval_rows_hash(rows),
    }
    return EvalSet(rows=rows, info=info, manifest=manifest, task=task)


def fewshot_exemplars(
    config: EvalConfig, split: PhaseSplit | None = None
) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Per task: `config.shots` exemplars drawn (seeded) from the task's rows of the SFT split of the same shuffle
    (training rows, never eval rows), and what the results record about them. `split`: as in `load_eval_sets`."""
    if config.shots == 0:
        return {}
    drawn = {}
    for part in (split or phase_split(config)).parts:
        pool = part.splits["sft"]
        if config.shots > len(pool):
            raise RecipeError(
                f"{part.task.name}: shots {config.shots} but its SFT split has {len(pool)} rows to draw exemplars "
                "from: lower shots or raise sft_size" + (" (or the task's weight)" if config.is_mixture else "")
            )
        picks = select_exemplars(len(pool), config.shots, config.seed)
        exemplars = [pool[i] for i in picks]
        drawn[part.task.name] = (
            exemplars,
            {
                "k": config.shots,
                "drawn_from": "sft split",
                "seed": config.seed,
                "sft_positions": picks,
                "ids": [row_label(row, i) for row, i in zip(exemplars, picks, strict=True)],
                "content_hashes": [content_hash(row) for row in exemplars],
            },
        )
    return drawn


def eval_rows_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over every row's id, content hash and gold answer: equal hashes mean the same questions, same order."""
    digest = hashlib.sha256()
    for index, row in enumerate(rows):
        digest.update(f"{row_label(row, index)}\x1f{content_hash(row)}\x1f{row.get('answer', '')}\n".encode())
    return digest.hexdigest()
