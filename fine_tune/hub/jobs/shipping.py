"""What a job gets of the project: the shipped files (content-hashed), and the bash steps that copy, install and run
them inside the job."""

from __future__ import annotations

import hashlib
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT
from fine_tune.hub.phases import JobsError

PROJECT_NAME = "medmcqa-ft"
CODE_BUCKET = "jobs-artifacts"  # huggingface_hub's per-namespace private bucket for job inputs
CODE_MOUNT_PATH = "/opt/medmcqa-ft-src"  # read-only mount of the shipped tree
WORK_DIR = "/tmp/medmcqa-ft"  # the writable copy the job installs and runs from

# What ships: the package, the entry scripts, the recipes and what `pip install .` needs. Nothing else (no data,
# outputs or virtual environment); the job downloads models and data from the Hub.
SHIPPED_PATTERNS: tuple[str, ...] = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "fine_tune/**/*.py",
    "scripts/*.py",
    "configs/**/*.yaml",
)


@dataclass(frozen=True)
class ShippedTree:
    root: Path
    files: tuple[str, ...]
    sha256: str

    @classmethod
    def from_project(cls, root: str | Path | None = None) -> ShippedTree:
        root = Path(root) if root is not None else PROJECT_ROOT
        found: set[str] = set()
        for pattern in SHIPPED_PATTERNS:
            for path in root.glob(pattern):
                if path.is_file() and "__pycache__" not in path.parts:
                    found.add(path.relative_to(root).as_posix())
        files = tuple(sorted(found))
        if "pyproject.toml" not in files or not any(f.startswith("fine_tune/") for f in files):
            raise JobsError(f"{root} does not look like the project (no pyproject.toml or fine_tune/)")
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
        return cls(root, files, digest.hexdigest())

    @property
    def folder(self) -> str:
        """The bucket folder: named after the content, so an unchanged tree is not uploaded again."""
        return f"{PROJECT_NAME}-{self.sha256[:12]}"

    def stage(self, dest: Path) -> Path:
        """Copy exactly the shipped files to `dest` (plus a README stub when pyproject names a missing one)."""
        for name in self.files:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / name, target)
        if "README.md" not in self.files:
            (dest / "README.md").write_text(f"# {PROJECT_NAME}\n")
        return dest

    def volume(self, namespace: str) -> dict[str, Any]:
        return {
            "type": "bucket",
            "source": f"{namespace}/{CODE_BUCKET}",
            "mount_path": CODE_MOUNT_PATH,
            "path": self.folder,
            "read_only": True,
        }

    def to_dict(self, namespace: str) -> dict[str, Any]:
        return {
            "method": "HfApi.sync_job_volume (bucket folder mounted read-only)",
            "bucket": f"{namespace}/{CODE_BUCKET}",
            "folder": self.folder,
            "mount_path": CODE_MOUNT_PATH,
            "sha256": self.sha256,
            "files": list(self.files),
            "generated": [] if "README.md" in self.files else ["README.md (stub: pyproject.toml names it)"],
        }


def copy_step(source: str = CODE_MOUNT_PATH, dest: str = WORK_DIR) -> str:
    """Copy the read-only mount to a writable folder: the mount's modes are not kept (cp -r would keep 0444)."""
    return f"rm -rf {dest} && cp -r --no-preserve=mode {source} {dest} && cd {dest}"


def run_steps(run: str, after: list[str] | None = None) -> list[str]:
    """The entry script's command line, then `after` (uploads, cleanup): whatever `after` does, the job's exit status
    is the script's, and a failing `after` step is reported without replacing it (`set -e` would make it the job's)."""
    if not after:
        return [run]
    warn = "echo \"warning: a step after the script failed; the job's exit status stays the script's\" >&2"
    return ["status=0", f"{run} || status=$?", *(f"{step} || {warn}" for step in after), 'exit "$status"']


def job_command(
    run: str, before: list[str] | None = None, after: list[str] | None = None, extras: str = ""
) -> list[str]:
    """bash -c: copy the read-only shipped tree, install it (with `extras`, e.g. "[vllm]"), run `before` (a failure
    stops the job), the launch line `run`, then `after` (see `run_steps`)."""
    steps = [
        "set -euo pipefail",
        copy_step(),
        "(nvidia-smi || true)",
        "python -m pip install --no-cache-dir --progress-bar off --root-user-action=ignore "
        + shlex.quote("." + extras),
        *(before or []),
        *run_steps(run, after),
    ]
    return ["bash", "-c", "\n".join(steps)]
