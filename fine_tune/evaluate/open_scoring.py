"""An open task's generations scored row by row: the answer as the strict parser reads it (`parse_open_response`)
against the row's reference, one predictions.jsonl record per row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fine_tune.data.rows import row_label
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.evaluate.text_metrics import row_scores
from fine_tune.task.parsing import parse_open_response
from fine_tune.task.spec import TaskSpec


def open_records(
    label: str, rows: Sequence[Mapping[str, Any]], generation: GenerationResult, task: TaskSpec
) -> list[dict[str, Any]]:
    """One record per row: the parsed answer ("" when a JSON answer breaks the contract: it scores 0), its JSON
    checks (None for answer_format: text) and every per-row metric."""
    records = []
    for index, row in enumerate(rows):
        parsed = parse_open_response(generation.texts[index], task.answer_format)
        records.append(
            {
                "model": label,
                "index": index,
                "id": row_label(row, index),
                "subject": row.get("subject"),
                "reference": row["answer"],
                "raw_output": generation.texts[index],
                "answer": parsed.answer,
                "json_valid": parsed.json_valid,
                "schema_valid": parsed.schema_valid,
                "failure": parsed.failure,
                "confidence": parsed.confidence,
                **row_scores(parsed.answer, row["answer"]),
                "generated_tokens": generation.token_counts[index],
                "stopped": generation.stopped[index],
            }
        )
    return records
