import json
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tune.data.synthetic import generate_rows, write_jsonl

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "validate_dataset.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "syn.jsonl"
    write_jsonl(generate_rows(300, seed=0), path)
    return path


def test_json_report_on_a_usable_file(synthetic_file):
    result = run_script("--dataset", str(synthetic_file), "--sizes", "150,80,40", "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"rows", "valid", "invalid", "duplicates", "splits", "contamination", "usable"} <= set(report)
    assert report["rows"] == report["valid"] == 300
    assert report["invalid"] == {}
    assert report["splits"] == {"sft": 150, "grpo": 80, "eval": 40}
    assert report["contamination"] == 0
    assert report["usable"] is True
    assert "token_lengths" not in report


def test_text_report_with_the_real_tokenizer(synthetic_file, shared_dir):
    tokenizer = str(shared_dir / "tokenizers/qwen3")
    result = run_script("--dataset", str(synthetic_file), "--sizes", "100,50,20", "--tokenizer", tokenizer)
    assert result.returncode == 0, result.stderr
    for expected in ("rows: 300", "duplicate content:", "subjects:", "splits: sft 100", "tokens prompt:", "USABLE"):
        assert expected in result.stdout


def test_too_small_for_the_requested_splits(synthetic_file):
    result = run_script("--dataset", str(synthetic_file), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["usable"] is False
    assert "1700 are needed" in report["error"]


def test_unlabeled_rows_exit_2_with_the_reason(shared_dir):
    result = run_script("--dataset", str(shared_dir / "data/medmcqa/test_unlabeled.jsonl"))
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "NOT USABLE" in output
    assert "cop=-1" in output and "unlabeled" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "missing/file.jsonl"], "not found"),
        (["--dataset", "x.jsonl", "--sizes", "1,2"], "non-negative integers"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(args, message):
    result = run_script(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
