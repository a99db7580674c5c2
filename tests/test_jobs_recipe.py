"""The Jobs dry run carries the resolved recipe (every key, value and origin), the precision the rule picks on the
flavor's GPU, and the training length in steps and epochs; --show_recipe prints the recipe. No network."""

from __future__ import annotations

import json

import pytest
from jobs_fakes import NAMESPACE

from fine_tune.hub.jobs import estimate, job_spec, submit_cli
from fine_tune.hub.jobs.hardware import T4
from fine_tune.hub.jobs.options import Options
from fine_tune.hub.jobs.recipe import JOB_ORIGIN
from fine_tune.hub.jobs.shipping import ShippedTree
from fine_tune.hub.phases import JobsError

pytest_plugins = ["jobs_fakes"]  # fixtures: clean_env, project, no_network


def dry_run(capsys, *argv: str) -> dict:
    assert submit_cli.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def test_dry_run_carries_the_resolved_recipe_with_origins(project, no_network, capsys):
    job = dry_run(capsys, "sft", "--config", "configs/qwen3-8b/sft.yaml", "--lora_r", "8")
    recipe = job["recipe"]
    assert recipe["files"] == ["configs/defaults/sft.yaml", "configs/qwen3-8b/sft.yaml"]
    values = recipe["values"]
    assert len(values) > 150, "every schema key, defaults included"
    assert values["lora_r"] == {"value": 8, "origin": "command line"}
    assert values["dev_size"] == {"value": 50, "origin": "configs/defaults/sft.yaml"}
    assert values["model_name_or_path"] == {"value": "Qwen/Qwen3-8B", "origin": "configs/qwen3-8b/sft.yaml"}
    assert values["push_to_hub"] == {"value": True, "origin": JOB_ORIGIN}
    assert values["weight_decay"]["origin"] == "default"
    assert job["training_length"] == {
        "steps": 120,
        "epochs": 2.0,
        "rows": 950,
        "rows_per_step": 16.0,
        "given": "num_train_epochs",
    }
    assert any(note.startswith("training length: 120 optimizer steps = 2.00 epochs") for note in job["notes"])


def test_medgemma_never_runs_fp16_on_a_t4(project, no_network, capsys):
    """GRPO (shape unknown offline: no plan) on a T4 runs in fp32; the eval's plan counts fp32 on a T4, which does not
    fit, so a T4 is refused and the cheapest flavor that fits is an L4 in bf16. A Qwen3 keeps fp16 on a T4."""
    grpo = dry_run(capsys, "grpo", "--config", "configs/medgemma-4b/grpo.yaml", "--flavor", "t4-small")
    assert grpo["precision"]["name"] == "fp32" and "Gemma 3 overflows fp16" in grpo["precision"]["reason"]
    assert (grpo["recipe"]["values"]["fp16"]["value"], grpo["recipe"]["values"]["bf16"]["value"]) == (False, False)
    on_l4 = dry_run(capsys, "grpo", "--config", "configs/medgemma-4b/grpo.yaml", "--flavor", "l4x1")
    assert on_l4["precision"]["name"] == "bf16" and on_l4["recipe"]["values"]["bf16"]["value"] is True

    argv = ["eval", "--config", "configs/medgemma-4b/eval.yaml", "--flavor", "t4-small", "--namespace", NAMESPACE]
    assert submit_cli.main([*argv, "--dry-run"]) == 2
    assert "t4-small has 14.74 GiB per GPU, too small for eval (fp32)" in capsys.readouterr().err
    chosen = dry_run(capsys, "eval", "--config", "configs/medgemma-4b/eval.yaml")
    assert (chosen["flavor"], chosen["precision"]["name"]) == ("l4x1", "bf16")

    qwen = dry_run(capsys, "sft", "--flavor", "t4-small")
    assert qwen["precision"]["name"] == "fp16"


def test_show_recipe_prints_each_key_with_its_origin(project, no_network, capsys):
    assert (
        submit_cli.main(["sft", "--config", "configs/medgemma-4b/sft.yaml", "--namespace", NAMESPACE, "--show_recipe"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# sft recipe: configs/medgemma-4b/sft.yaml <- configs/defaults/sft.yaml"
    by_key = {line.split()[0]: line for line in lines if not line.startswith("#")}
    assert by_key["model_type"].endswith("# configs/medgemma-4b/sft.yaml")
    assert by_key["hub_model_id"].endswith(f"# {JOB_ORIGIN}")


def test_a_recipe_extending_an_unshipped_file_is_refused(project, no_network, capsys, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("lora_r: 4\n")
    (project / "configs/mine.yaml").write_text(f"extends: {outside}\nmodel_name_or_path: Qwen/Qwen3-0.6B\n")
    shipped = ShippedTree.from_project(project)
    with pytest.raises(JobsError, match="outside.yaml, which is not shipped"):
        job_spec.build_spec("sft", Options(namespace=NAMESPACE), config="configs/mine.yaml", shipped=shipped)


def test_an_fp32_job_on_a_t4_is_timed_at_fp32_speed(project, no_network, capsys):
    """The conservative T4 figures assume fp16 tensor cores; MedGemma on a T4 trains in fp32 (8x less peak), so its
    step takes longer by the compute share, and the timeout follows."""
    gemma = dry_run(capsys, "grpo", "--config", "configs/medgemma-4b/grpo.yaml", "--flavor", "t4-small")
    on_l4 = dry_run(capsys, "grpo", "--config", "configs/medgemma-4b/grpo.yaml", "--flavor", "l4x1")
    assumed = estimate.CONSERVATIVE_T4["grpo"].seconds
    slowdown = estimate.precision_slowdown("grpo", T4, "fp32")
    assert gemma["estimate"]["seconds_per_unit"] == pytest.approx(assumed * slowdown, rel=1e-3)
    assert "x 2.11 in fp32 instead of fp16" in gemma["estimate"]["figure_source"]
    assert "instead of" not in on_l4["estimate"]["figure_source"], "bf16 on an L4 is what its figure assumes"
    qwen = dry_run(capsys, "grpo", "--flavor", "t4-small")
    assert qwen["estimate"]["seconds_per_unit"] == assumed


def test_the_precision_slowdown_scales_compute_by_the_peaks_and_traffic_by_the_widths():
    assert estimate.precision_slowdown("sft", T4, "fp16") == 1.0
    assert estimate.precision_slowdown("sft", T4, "fp32") == pytest.approx(0.45 + 0.55 * 65 / 8.1)
    assert estimate.precision_slowdown("eval", T4, "fp32") == pytest.approx(0.67 + 0.33 * 2)
