"""Where a result came from: the project version and commit, Python and the library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
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


TRACKED_LIBRARIES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "bitsandbytes",
    "numpy",
    "triton",
    "vllm",
    "liger-kernel",
    "kernels",
    "flash-attn",
)


def library_versions(names: tuple[str, ...] = TRACKED_LIBRARIES) -> dict[str, str | None]:
    """Installed versions (None when absent), read from package metadata without importing anything."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict[str, str | None]:
    """The project version and commit plus the installed library versions."""
    return {"project_version": fine_tune.__version__, "project_commit": git_commit(), **library_versions()}
