"""Where a result came from: the project commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import fine_tune


def git_commit() -> str | None:
    """The project's commit: from git, or from MEDMCQA_FT_GIT_COMMIT where the code was shipped without .git (jobs)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(fine_tune.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return os.environ.get("MEDMCQA_FT_GIT_COMMIT") or None
    return out.stdout.strip() or os.environ.get("MEDMCQA_FT_GIT_COMMIT") or None
