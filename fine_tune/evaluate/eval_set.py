"""The rows an eval run scores: the EVAL split of the training shuffle, or a whole official split, with a hash that
says whether two runs scored the same questions in the same order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import datasets

from fine_tune.data.splits import load_eval_rows, load_split
from fine_tune.data.validation import content_hash, row_label
from fine_tune.recipes.arguments import SPLIT_EVAL, EvalConfig


@dataclass
class EvalSet:
    rows: datasets.Dataset
    info: dict[str, Any]  # the "dataset" section of the results
    manifest: dict[str, Any] | None  # the split manifest recomputed here (eval_split 'split' only)

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
        return EvalSet(rows, info, self.manifest)


def load_eval_set(config: EvalConfig) -> EvalSet:
    """The rows to score (limit applied), with what was dropped; DatasetError when they cannot be had."""
    if config.eval_split == SPLIT_EVAL:
        rows, manifest = load_split(
            config.dataset_name,
            "eval",
            hub_split=config.dataset_train_split,
            sizes=config.split_sizes,
            seed=config.split_seed,
            token_env=config.hf_token_env,
        )
        dropped = dict(manifest["skipped"])
        description = f"EVAL split ({config.eval_size} rows, seed {config.split_seed}) of the shuffled "
        description += f"'{config.dataset_train_split}' split"
    else:
        rows, validation = load_eval_rows(config.dataset_name, config.eval_split, config.hf_token_env)
        manifest, dropped = None, {name: len(ix) for name, ix in validation.invalid.items()}
        description = f"official '{config.eval_split}' split"
    available = len(rows)
    if config.limit is not None:
        rows = rows.select(range(min(config.limit, available)))
    info = {
        "source": config.dataset_name,
        "eval_split": config.eval_split,
        "description": description,
        "available_rows": available,
        "limit": config.limit,
        "rows": len(rows),
        "dropped": dropped,
        "fingerprint": rows._fingerprint,
        "eval_rows_hash": eval_rows_hash(rows),
    }
    return EvalSet(rows=rows, info=info, manifest=manifest)


def eval_rows_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over every row's id, content hash and gold answer: equal hashes mean the same questions, same order."""
    digest = hashlib.sha256()
    for index, row in enumerate(rows):
        digest.update(f"{row_label(row, index)}\x1f{content_hash(row)}\x1f{row['cop']}\n".encode())
    return digest.hexdigest()
