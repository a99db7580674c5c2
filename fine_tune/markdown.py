"""Markdown rendering shared by the eval report, the benchmark report and the model cards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def md_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured pipe table; `|` in a cell is escaped and newlines become spaces, so no cell breaks a row."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
