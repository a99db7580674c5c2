from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (real MedMCQA rows, the Qwen3 tokenizer); tests using it skip when it is absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip("../shared is absent: real MedMCQA rows and the Qwen3 tokenizer are not available")
    return path
