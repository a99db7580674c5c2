"""Markdown rendering shared by the eval report, the benchmark report, the cost table and the model cards."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def md_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; cells are written with str(), pipes escaped and newlines flattened."""
    lines = ["| " + " | ".join(_cell(value) for value in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells for {len(header)} columns: {list(row)!r}")
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
