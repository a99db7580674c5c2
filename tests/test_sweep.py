"""The sweep on the tiny model: two configurations trained and scored through the real scripts, one table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fine_tune.errors import RecipeError
from fine_tune.hub.sweep import load_sweep, sft_command

REPO = Path(__file__).resolve().parent.parent


def write_sweep(path, data, model, out, configurations):
    sweep = {
        "sft_config": str(REPO / "configs/demo/sft.yaml"),
        "eval_config": str(REPO / "configs/demo/eval.yaml"),
        "output_dir": str(out),
        "flavor": "t4-small",
        "sft_overrides": {"model_name_or_path": str(model), "dataset_name": str(data), "max_steps": 3,
                          "logging_steps": 1, "save_strategy": "no", "dev_size": 4, "eval_steps": 1,
                          "dev_max_new_tokens": 16, "no_improvement_action": "warn"},
        "eval_overrides": {"dataset_name": str(data), "limit": 8, "max_new_tokens": 16, "bootstrap_resamples": 100},
        "configurations": configurations,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_sweep_file_is_checked_against_the_sft_schema(tmp_path, synthetic_jsonl, tiny_model_dir):
    bad = write_sweep(tmp_path / "bad.yaml", synthetic_jsonl, tiny_model_dir, tmp_path, {"a": {"lora_rank": 8}})
    with pytest.raises(RecipeError, match="configuration 'a' sets 'lora_rank'"):
        load_sweep(bad)
    good = write_sweep(tmp_path / "good.yaml", synthetic_jsonl, tiny_model_dir, tmp_path, {"a": {"lora_r": 8}})
    command = sft_command(load_sweep(good), "a")
    assert command[command.index("--lora_r") + 1] == "8"
    assert command[command.index("--output_dir") + 1] == str(tmp_path / "a" / "sft")


@pytest.mark.slow
def test_sweep_runs_two_tiny_configurations_and_prints_one_table(tmp_path, synthetic_jsonl, tiny_model_dir):
    configurations = {
        "r4-lr3e-3": {"lora_r": 4, "learning_rate": 3.0e-3},
        "r8-lr1e-3": {"lora_r": 8, "learning_rate": 1.0e-3},
    }
    sweep = write_sweep(tmp_path / "sweep.yaml", synthetic_jsonl, tiny_model_dir, tmp_path / "out", configurations)
    result = subprocess.run(
        [sys.executable, "scripts/sweep.py", str(sweep)], cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("| run |")[0]  # the sweep table; the comparison summary follows it
    rows = [line for line in table.splitlines() if line.startswith("| r")]
    assert [row.split(" | ")[0] for row in rows] == ["| r4-lr3e-3", "| r8-lr1e-3"]
    for row, name in zip(rows, configurations, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        results = json.loads((tmp_path / "out" / name / "eval" / "eval_results.json").read_text())
        metrics = results["models"]["sft"]["metrics"]
        assert cells[2] == f"{metrics['accuracy']:.1%}" and cells[3] == f"{metrics['valid_json_rate']:.1%}"
        assert cells[4].endswith(" s") and cells[5].startswith("$")
        lineage = json.loads((tmp_path / "out" / name / "sft" / "merged" / "lineage.json").read_text())
        assert lineage["config"]["model"]["lora_r"] == configurations[name]["lora_r"]
    assert (tmp_path / "out" / "sweep_table.md").read_text().count("\n| r") == 2
    assert (tmp_path / "out" / name / "sft" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "sweep_dev_curves.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "out" / "sweep_summary.json").read_text())
    assert [row["kind"] for row in summary["rows"]] == ["base", "base", "fine-tuned", "fine-tuned"], summary
    assert [row["name"] for row in summary["rows"][2:]] == list(configurations)
    baseline = json.loads((tmp_path / "out" / "baseline" / "eval_results.json").read_text())
    assert summary["rows"][1]["accuracy"] == baseline["models"]["base-3shot"]["metrics"]["accuracy"]
    assert "| zero-shot (base) | base |" in (tmp_path / "out" / "sweep_summary.md").read_text()


def test_the_table_reads_a_single_task_run_and_the_pooled_rates_of_a_mixture(tmp_path):
    from fine_tune.hub.sweep import EVAL_LABEL, read_metrics

    single = tmp_path / "single.json"
    single.write_text(json.dumps({"models": {EVAL_LABEL: {"metrics": {"accuracy": 0.5, "valid_json_rate": 0.9}}}}))
    mixture = tmp_path / "mixture.json"
    pooled = {"accuracy": {"value": 0.6}, "valid_json_rate": {"value": 0.95}}
    mixture.write_text(json.dumps({"mixture": [], "models": {EVAL_LABEL: {"pooled": pooled, "macro_accuracy": 0.7}}}))
    assert read_metrics(single) == {"accuracy": 0.5, "valid_json_rate": 0.9}
    assert read_metrics(mixture) == {"accuracy": 0.6, "valid_json_rate": 0.95}
