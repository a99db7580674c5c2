"""fine_tune.hub.jobs spec/launch/shipping through scripts/submit_job.py --dry-run: the exact job specification,
recipes read through the one loader, timeouts, multi-GPU launches, and the bash steps a job runs. No network."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from jobs_fakes import FAKE_TOKEN, NAMESPACE, REPO_ROOT

from fine_tune import constants
from fine_tune.hub.jobs import estimate, job_spec, launch, shipping, submit_cli
from fine_tune.hub.jobs.hardware import flavor_gpus
from fine_tune.hub.phases import JobsError

pytest_plugins = ["jobs_fakes"]  # fixtures: clean_env, project, no_network


def dry_run(capsys, *argv: str) -> dict:
    assert submit_cli.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def script_of(job: dict) -> str:
    """The job's bash script, checked to parse (`bash -n`): a quoting slip would only fail on the Jobs machine."""
    assert job["command"][:2] == ["bash", "-c"]
    parsed = subprocess.run(["bash", "-n", "-c", job["command"][-1]], capture_output=True, text=True, timeout=30)
    assert parsed.returncode == 0, parsed.stderr
    return job["command"][-1]


# --- dry run --------------------------------------------------------------------------------------------------------


def test_dry_run_prints_the_exact_spec_and_touches_no_network(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    job = dry_run(capsys, "sft", "--config", "configs/sft.yaml")
    for key in ("image", "command", "env", "secrets", "flavor", "timeout_seconds", "estimate", "volumes", "shipped"):
        assert key in job
    assert job["image"].startswith("pytorch/pytorch:") and "cuda" in job["image"]
    assert job["secrets"] == ["HF_TOKEN"], "secrets are listed by name only"
    assert job["flavor"] == "t4-small"
    assert job["launch"] == {
        "gpus": 1,
        "processes": 1,
        "accelerate_config": None,
        "train_command": " ".join(["python", "scripts/train_medmcqa_sft.py", *job["script_args"]]),
        "vllm_server_command": None,
    }
    script = script_of(job)
    assert "pip install" in script and f"cp -r --no-preserve=mode {shipping.CODE_MOUNT_PATH}" in script
    assert job["script_args"][:2] == ["--config", "configs/sft.yaml"]
    assert script.endswith(job["launch"]["train_command"])
    args = job["script_args"]
    assert args[args.index("--hub_model_id") + 1] == "alice/medmcqa-sft" == job["hub_model_id"]
    assert args[args.index("--hub_strategy") + 1] == "checkpoint"
    assert args[args.index("--trackio_space_id") + 1] == "alice/medmcqa-trackio"
    assert args[args.index("--report_to") + 1] == "trackio"
    assert job["volumes"] == [
        {
            "type": "bucket",
            "source": "alice/jobs-artifacts",
            "mount_path": shipping.CODE_MOUNT_PATH,
            "path": job["shipped"]["folder"],
            "read_only": True,
        }
    ]
    files = job["shipped"]["files"]
    for needed in ("pyproject.toml", "fine_tune/train/sft.py", "scripts/train_medmcqa_sft.py", "configs/sft.yaml"):
        assert needed in files
    assert not any(f.startswith((".venv", "tests/", "outputs/", "eval_results/")) for f in files)


def test_dry_run_output_never_holds_the_token(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("MY_TOKEN", FAKE_TOKEN)
    for argv in (["sft"], ["grpo", "--token-env", "MY_TOKEN"], ["pipeline"]):
        assert submit_cli.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == 0
        captured = capsys.readouterr()
        assert FAKE_TOKEN not in captured.out + captured.err


def test_a_token_passed_as_hub_token_is_refused_pointing_to_hf_token(project, no_network, capsys):
    """[robust 9] the value would land in the job spec (and the Jobs API's record of it) and in training_args.bin."""
    for argv in (["sft", "--hub_token", FAKE_TOKEN], ["grpo", f"--hub_token={FAKE_TOKEN}"]):
        assert submit_cli.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == constants.EXIT_BAD_INPUT
        captured = capsys.readouterr()
        assert captured.out == "", "no spec is printed"
        assert "hub_token is refused" in captured.err and "HF_TOKEN" in captured.err
        assert FAKE_TOKEN not in captured.err and len(captured.err.strip().splitlines()) == 1
    (project / "configs/leaky.yaml").write_text(f"max_steps: 5\nhub_token: {FAKE_TOKEN}\n")
    assert submit_cli.main(["sft", "--config", "configs/leaky.yaml", "--namespace", NAMESPACE, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "configs/leaky.yaml" in err and "hub_token is refused" in err and FAKE_TOKEN not in err


def test_submit_job_help_imports_neither_torch_nor_trl():
    """--help must answer in well under 2 s: TRL alone takes ~1 s to import on a busy CPU, its trainer configs 6 s."""
    code = (
        "import sys\n"
        "from fine_tune.hub.jobs import submit_cli\n"
        "try:\n    submit_cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(*(name in sys.modules for name in ('torch', 'trl', 'fine_tune.recipes.loader')))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.split()[-3:] == ["False", "False", "False"]


def test_dry_run_script_runs_offline_as_a_subprocess():
    env = {**os.environ, "HF_TOKEN": FAKE_TOKEN, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "scripts/submit_job.py", "sft", "--config", "configs/sft.yaml", "--namespace", "bob"]
        + ["--dry-run", "--max_steps", "100"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only: reading a training recipe imports TRL's trainer configs
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["estimate"]["units"] == 100 and job["script_args"][-2:] == ["--max_steps", "100"]
    assert FAKE_TOKEN not in out.stdout + out.stderr


def test_dry_run_needs_a_namespace_and_never_asks_the_hub(project, no_network, capsys):
    assert submit_cli.main(["sft", "--dry-run"]) == constants.EXIT_BAD_INPUT
    assert "--namespace" in capsys.readouterr().err


def test_user_overrides_come_last_and_win(project, no_network, capsys):
    job = dry_run(capsys, "sft", "--max_steps", "10", "--hub_model_id", "team/custom", "--learning_rate=1e-4")
    assert job["script_args"][-5:] == ["--max_steps", "10", "--hub_model_id", "team/custom", "--learning_rate=1e-4"]
    assert job["hub_model_id"] == "team/custom"
    assert job["estimate"]["units"] == 10


def test_recipe_is_read_through_the_schema_with_its_defaults(project, no_network, capsys):
    """Values the recipe leaves out come from the dataclasses' defaults, not from a second table in the jobs code."""
    from fine_tune.recipes.loader import load_recipe, recipe_values

    (project / "configs/short.yaml").write_text("sft_size: 96\nper_device_train_batch_size: 4\n")
    job = dry_run(capsys, "sft", "--config", "configs/short.yaml")
    values = recipe_values(load_recipe("sft", project / "configs/short.yaml"))
    per_step = 4 * values["gradient_accumulation_steps"]
    assert job["estimate"]["units"] == -(-96 * values["num_train_epochs"] // per_step)


def test_a_misspelled_override_is_refused_with_a_did_you_mean(project, no_network, capsys):
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--max_step", "5"]) == 2
    err = capsys.readouterr().err
    assert "max_step" in err and "did you mean 'max_steps'" in err and len(err.strip().splitlines()) == 1


def test_grpo_job_starts_from_the_sft_hub_model_when_the_config_names_a_local_folder(project, no_network, capsys):
    job = dry_run(capsys, "grpo", "--config", "configs/grpo.yaml")
    args = job["script_args"]
    assert args[args.index("--model_name_or_path") + 1] == "alice/medmcqa-sft" == job["model"]
    assert args[args.index("--hub_model_id") + 1] == "alice/medmcqa-grpo"
    assert any("local" in note for note in job["notes"])


def test_local_paths_the_job_cannot_see_are_refused(project, no_network, capsys):
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--dataset_name", "data/rows.jsonl"]) == 2
    assert "local path" in capsys.readouterr().err
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--model_name_or_path", "./tiny"]) == 2
    assert "Hub" in capsys.readouterr().err


def test_resume_and_public_flags(project, no_network, capsys):
    job = dry_run(capsys, "sft", "--resume", "--public")
    args = job["script_args"]
    assert args[args.index("--resume_from_checkpoint") + 1] == "latest"
    assert args[args.index("--hub_private_repo") + 1] == "false"


def test_config_outside_the_project_is_refused(project, no_network, capsys, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("max_steps: 1\n")
    assert submit_cli.main(["sft", "--config", str(outside), "--namespace", NAMESPACE, "--dry-run"]) == 2
    assert "outside the project" in capsys.readouterr().err


def test_pipeline_dry_run_hands_each_hub_model_to_the_next(project, no_network, capsys):
    doc = dry_run(capsys, "pipeline", "--sft-args", "--max_steps 20", "--grpo-args", "--max_steps 10")
    sft, grpo, evaluation = doc["pipeline"]
    assert [s["phase"] for s in doc["pipeline"]] == ["sft", "grpo", "eval"]
    assert sft["estimate"]["units"] == 20 and grpo["estimate"]["units"] == 10
    assert grpo["model"] == sft["hub_model_id"] == "alice/medmcqa-sft"
    assert evaluation["models"] == {
        "base": "Qwen/Qwen3-0.6B",
        "grpo": grpo["hub_model_id"],
        "sft": "alice/medmcqa-sft",
    }
    args = evaluation["script_args"]
    assert args[args.index("--models") + 1] == "base=Qwen/Qwen3-0.6B,grpo=alice/medmcqa-grpo,sft=alice/medmcqa-sft"
    assert args[args.index("--fail_on_regression") + 1] == "true", "pipeline evals fail on a regression"
    assert evaluation["hub_model_id"] is None and evaluation["trackio_space_id"] is None
    assert evaluation["estimate"]["units"] == 200 * 3, "eval answers = questions x models"
    assert evaluation["results_repo"] == "alice/medmcqa-eval-results"
    script = script_of(evaluation)
    assert 'publish_eval_results("eval_results", "alice/medmcqa-eval-results", private=True)' in script
    assert script.rstrip().endswith('exit "$status"'), "the eval's exit status stays the job's"
    assert 'fetch_split_manifest("alice/medmcqa-grpo", ' in script, "the contamination check survives"
    assert args[args.index("--split_manifest") + 1] == f"{job_spec.JOB_MANIFEST_DIR}/split_manifest.json"
    assert script.index("fetch_split_manifest") < script.index("scripts/eval_medmcqa.py")
    assert [h["model"] for h in doc["handoff"]] == ["alice/medmcqa-sft", "alice/medmcqa-grpo"]
    assert doc["total_timeout_seconds"] == sum(s["timeout_seconds"] for s in doc["pipeline"])
    assert len({s["shipped"]["sha256"] for s in doc["pipeline"]}) == 1


def test_a_single_eval_job_does_not_fail_on_regression_unless_asked(project, no_network, capsys):
    assert "--fail_on_regression" not in dry_run(capsys, "eval")["script_args"]


def test_pipeline_start_at_uses_the_namespace_ids(project, no_network, capsys):
    doc = dry_run(capsys, "pipeline", "--start-at", "grpo", "--repo-prefix", "mm")
    assert [s["phase"] for s in doc["pipeline"]] == ["grpo", "eval"]
    assert doc["pipeline"][0]["model"] == "alice/mm-sft"
    assert doc["pipeline"][1]["models"] == {"base": "Qwen/Qwen3-0.6B", "grpo": "alice/mm-grpo", "sft": "alice/mm-sft"}


def test_single_eval_job_replaces_local_models_by_their_hub_ids(project, no_network, capsys):
    job = dry_run(capsys, "eval", "--limit", "20")
    assert job["models"] == {"base": "Qwen/Qwen3-0.6B", "grpo": "alice/medmcqa-grpo"}
    assert any("local" in note for note in job["notes"])
    assert job["estimate"]["units"] == 20 * 2
    job = dry_run(capsys, "eval", "--models", "base=Qwen/Qwen3-0.6B,x=team/other", "--eval_split", "validation")
    assert job["script_args"][-4:] == ["--models", "base=Qwen/Qwen3-0.6B,x=team/other", "--eval_split", "validation"]
    assert job["estimate"]["units"] == 4183 * 2
    assert submit_cli.main(["eval", "--namespace", NAMESPACE, "--dry-run", "--models", "base=./local/model"]) == 2


def test_eval_job_fetches_only_the_manifest_of_a_model_it_scores(project, no_network, capsys):
    """[robust 16] scoring base and grpo never downloads medmcqa-sft's manifest; scoring no trained model, none."""
    job = dry_run(capsys, "eval")
    script = script_of(job)
    assert 'fetch_split_manifest("alice/medmcqa-grpo"' in script and "medmcqa-sft" not in script
    job = dry_run(capsys, "eval", "--models", "base=Qwen/Qwen3-0.6B,x=team/other")
    assert "fetch_split_manifest" not in script_of(job) and "medmcqa-sft" not in script_of(job)
    args = job["script_args"]
    assert args[args.index("--split_manifest") + 1] == "none"
    job = dry_run(capsys, "eval", "--models", "sft=alice/medmcqa-sft,grpo=alice/medmcqa-grpo")
    assert script_of(job).count("fetch_split_manifest(") == 1 and 'fetch_split_manifest("alice/medmcqa-sft"' in (
        script_of(job)
    )


def test_pipeline_rejects_unscoped_overrides(project, capsys):
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE, "--dry-run", "--max_steps", "5"]) == 2
    assert "pipeline takes per-phase overrides" in capsys.readouterr().err


# --- multi-GPU launch -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "gpus"),
    [("cpu-basic", 0), ("t4-small", 1), ("a10g-large", 1), ("l4x1", 1), ("a10g-largex2", 2), ("h200x8", 8)],
)
def test_flavor_gpus(flavor, gpus):
    assert flavor_gpus(flavor) == gpus


JOBS_FLAVOR_GPUS = {  # https://huggingface.co/docs/hub/jobs-pricing: the GPU count of each Jobs flavor
    **dict.fromkeys(("cpu-basic", "cpu-upgrade", "cpu-performance", "cpu-xl"), 0),
    **dict.fromkeys(("t4-small", "t4-medium", "l4x1", "l40sx1", "a10g-small", "a10g-large", "a100-large"), 1),
    **{"h200": 1, "rtx-pro-6000": 1, "a10g-largex2": 2, "h200x2": 2, "rtx-pro-6000x2": 2},
    **{"l4x4": 4, "l40sx4": 4, "a10g-largex4": 4, "a100x4": 4, "h200x4": 4, "rtx-pro-6000x4": 4},
    **{"l40sx8": 8, "a100x8": 8, "h200x8": 8, "rtx-pro-6000x8": 8},
}


def test_flavor_gpus_knows_every_jobs_flavor_of_huggingface_hub():
    from huggingface_hub import JobHardware

    for flavor in JobHardware:
        assert flavor_gpus(flavor.value) == JOBS_FLAVOR_GPUS[flavor.value], flavor.value


def test_multi_gpu_flavor_launches_through_accelerate_with_one_process_per_gpu(project, no_network, capsys):
    job = dry_run(capsys, "sft", "--flavor", "a10g-largex4", "--timeout", "3h", "--max_steps", "5", "--resume")
    assert job["launch"]["gpus"] == 4 and job["launch"]["processes"] == 4
    expected = (
        "accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 4 scripts/train_medmcqa_sft.py"
    )
    assert job["launch"]["train_command"].startswith(expected)
    assert script_of(job).endswith(job["launch"]["train_command"])
    assert job["launch"]["accelerate_config"] in job["shipped"]["files"]
    evaluation = dry_run(capsys, "eval", "--flavor", "a10g-largex4", "--timeout", "3h")
    assert evaluation["launch"]["processes"] == 1 and "accelerate" not in script_of(evaluation)


def test_grpo_vllm_server_on_one_gpu_and_training_on_the_others(project, no_network, capsys):
    job = dry_run(capsys, "grpo", "--flavor", "h200x4", "--vllm-server", "--timeout", "4h", "--max_steps", "5")
    plan = job["launch"]
    assert plan["gpus"] == 4 and plan["processes"] == 3
    assert plan["vllm_server_command"] == (
        "CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model alice/medmcqa-sft --host 127.0.0.1 --port 8000"
    )
    assert plan["train_command"].startswith("CUDA_VISIBLE_DEVICES=1,2,3 accelerate launch ")
    assert "--num_processes 3" in plan["train_command"]
    args = job["script_args"]
    assert args[args.index("--vllm") + 1] == "server" and args[-2:] == ["--max_steps", "5"]
    script = script_of(job)
    assert f"{plan['vllm_server_command']} & vllm_pid=$!" in script
    assert script.index("vllm-serve") < script.index("accelerate launch") < script.index('kill "$vllm_pid"')
    assert "pip install --no-cache-dir --progress-bar off --root-user-action=ignore '.[vllm]'" in script


@pytest.mark.parametrize("argv", [["sft", "--flavor", "h200x4"], ["grpo", "--flavor", "a10g-large"]])
def test_vllm_server_needs_grpo_on_two_gpus(project, no_network, capsys, argv):
    assert submit_cli.main([*argv, "--vllm-server", "--timeout", "4h", "--namespace", NAMESPACE, "--dry-run"]) == 2
    assert "at least 2 GPUs" in capsys.readouterr().err


def test_multi_gpu_launch_needs_the_accelerate_config_shipped(project, no_network, capsys):
    (project / launch.ACCELERATE_CONFIG).unlink()
    assert (
        submit_cli.main(["sft", "--flavor", "h200x2", "--timeout", "2h", "--namespace", NAMESPACE, "--dry-run"]) == 2
    )
    assert launch.ACCELERATE_CONFIG in capsys.readouterr().err


# --- timeouts and estimates ---------------------------------------------------------------------------------------


def test_default_timeout_is_derived_from_steps_flavor_and_margin(project, no_network, capsys):
    job = dry_run(capsys, "sft", "--max_steps", "800")
    est = job["estimate"]
    figure = estimate.SECONDS_PER_UNIT["t4-small"]["sft"]
    assert est["seconds_per_unit"] == figure.seconds and est["figure_kind"] == "projected"
    expected_total = estimate.SETUP_SECONDS + 800 * figure.seconds + estimate.FINALIZE_SECONDS
    assert est["total_seconds"] == pytest.approx(expected_total)
    assert job["timeout_seconds"] >= expected_total * (1 + estimate.TIMEOUT_MARGIN)
    assert job["timeout_seconds"] % estimate.TIMEOUT_ROUNDING_S == 0
    assert job["timeout_seconds"] != 30 * 60 and job["timeout_source"] == "estimate"
    assert est["estimated_cost_usd"] == pytest.approx(round(0.40 * expected_total / 3600, 2))


def test_a_timeout_shorter_than_the_estimate_is_refused_with_the_numbers(project, no_network, capsys):
    assert (
        submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--timeout", "20m", "--max_steps", "800"]) == 2
    )
    err = capsys.readouterr().err
    for text in ("20m", "1200 s", "800 optimizer steps", "3.5 s", "setup", "--timeout"):
        assert text in err
    job = dry_run(capsys, "sft", "--timeout", "3h", "--max_steps", "800")
    assert job["timeout_seconds"] == 3 * 3600 and job["timeout"] == "3h" and job["timeout_source"] == "--timeout"


def test_flavor_follows_the_memory_plan(project, no_network, capsys):
    """Unrequested, the flavor is the cheapest whose GPU fits the plan at the recipe's own batch (shown in the dry
    run); Qwen3-8B QLoRA SFT fits a T4 (14.74 GiB usable) at 4 rows of MedMCQA's measured length."""
    small = dry_run(capsys, "sft")
    assert small["flavor"] == "t4-small" and small["memory"]["peak_gib"] < 14
    big = dry_run(capsys, "sft", "--config", "configs/qwen3-8b/sft.yaml")
    assert big["flavor"] == "t4-small" and 9 < big["memory"]["peak_gib"] < 14, big["memory"]
    assert big["memory"]["precision"] == "fp16" and "lm_head" not in big["memory"]["parts_gib"]
    assert any("cheapest whose GPU fits" in note for note in big["notes"])


def test_fit_keeps_the_effective_batch_and_is_logged(project, no_network, capsys):
    """The done-when of issue 18: Qwen3-8B SFT on `--flavor t4-small --fit` is accepted with a fitted micro-batch and
    the same effective batch; a micro-batch that does not fit is refused naming the setting `--fit` applies."""
    recipe = ["sft", "--config", "configs/qwen3-8b/sft.yaml", "--flavor", "t4-small"]
    fitted = dry_run(capsys, *recipe, "--fit")
    assert fitted["flavor"] == "t4-small" and fitted["memory"]["peak_gib"] + 0.75 <= 14.74
    assert fitted["memory"]["fit"] is None, "4 x 4 already fits: nothing to change"
    assert any("the recipe's micro-batch fits" in note for note in fitted["notes"])
    wide = ["--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1"]
    assert submit_cli.main([*recipe, *wide, "--namespace", NAMESPACE, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "t4-small has 14.74 GiB" in err and "--per_device_train_batch_size 8 --gradient_accumulation_steps 2" in err
    job = dry_run(capsys, *recipe, *wide, "--fit")
    assert job["memory"]["fit"] == {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}
    assert job["script_args"][-4:] == ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2"]
    assert any(note.startswith("--fit on t4-small") for note in job["notes"])


def test_faster_flavor_gives_shorter_estimate_and_unknown_flavor_needs_a_timeout(project, no_network, capsys):
    t4 = dry_run(capsys, "sft")["estimate"]["total_seconds"]
    a100 = dry_run(capsys, "sft", "--flavor", "a100-large")["estimate"]["total_seconds"]
    assert a100 < t4
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--flavor", "cpu-basic"]) == 2
    assert "--timeout" in capsys.readouterr().err
    job = dry_run(capsys, "sft", "--flavor", "cpu-basic", "--timeout", "10h")
    assert job["estimate"] is None and job["timeout_seconds"] == 36000


def test_benchmark_files_replace_the_table(project, no_network, capsys):
    """Only a GPU run of scripts/benchmark.py (job_figures) replaces the table, for the flavors of its GPU family."""
    bench = project / constants.BENCHMARK_DIR
    bench.mkdir(parents=True, exist_ok=True)
    for old in bench.glob("*.json"):
        old.unlink()
    figures = {phase: {"seconds_per_unit": value, "how": "test"} for phase, value in (("sft", 2.0), ("grpo", 9.5))}
    result = {"device": {"type": "cuda", "name": "Tesla T4", "family": "t4"}, "job_figures": figures}
    (bench / "t4.json").write_text(json.dumps({**result, "job_figures": {**figures, "drives_job_timeouts": True}}))
    figures = estimate.benchmark_figures()
    assert figures[("t4-small", "sft")].seconds == 2.0 and figures[("t4-small", "sft")].kind == "measured"
    assert figures[("t4-medium", "grpo")].seconds == 9.5 and ("a10g-small", "sft") not in figures
    spec = dry_run(capsys, "sft")
    assert spec["estimate"]["seconds_per_unit"] == 2.0 and "t4.json" in spec["estimate"]["figure_source"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("5400", 5400), ("45s", 45), ("1d", 86400)]
)
def test_parse_duration(text, seconds):
    assert estimate.parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense():
    with pytest.raises(JobsError):
        estimate.parse_duration("soon")


def test_phase_units_without_max_steps_counts_epochs():
    """As transformers counts: ceil(250 micro-batches / 4) = 63 optimizer steps an epoch (fine_tune.recipes.length)."""
    recipe = {"max_steps": -1, "sft_size": 1000, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4}
    assert estimate.phase_units("sft", {**recipe, "num_train_epochs": 2}) == 126
    assert estimate.phase_units("sft", {**recipe, "num_train_epochs": 2, "dev_size": 50}) == 120


# --- the bash steps a job runs -------------------------------------------------------------------------------------


def bash(lines: list[str], cwd) -> subprocess.CompletedProcess:
    script = "\n".join(["set -euo pipefail", *lines])
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_the_job_exit_status_is_the_scripts_not_the_upload_steps(tmp_path):
    """[robust 17] a failing upload after the script neither hides the script's failure nor fails a good run."""
    failed = bash(shipping.run_steps("sh -c 'exit 3'", after=["false"]), tmp_path)
    assert failed.returncode == 3 and "exit status stays the script's" in failed.stderr
    succeeded = bash(shipping.run_steps("true", after=["false", "echo after"]), tmp_path)
    assert succeeded.returncode == 0 and "after" in succeeded.stdout
    assert bash(shipping.run_steps("sh -c 'exit 5'"), tmp_path).returncode == 5


def test_the_copied_work_tree_is_writable_although_the_mount_is_read_only(tmp_path):
    """[robust 18] cp -r keeps the mount's 0444/0555 modes; the job's copy must be writable."""
    mount = shipping.ShippedTree.from_project(REPO_ROOT).stage(tmp_path / "mount")
    for path in sorted(mount.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    mount.chmod(0o555)
    work = tmp_path / "work"
    try:
        out = bash([shipping.copy_step(str(mount), str(work))], tmp_path)
        assert out.returncode == 0, out.stderr
        for path in [work, *work.rglob("*")]:
            assert path.stat().st_mode & stat.S_IWUSR, f"{path} is not writable"
    finally:
        for path in [mount, *mount.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_resumed_spec_keeps_its_launch_and_adds_resume_once(project, no_network):
    from fine_tune.hub.jobs.options import Options

    options = Options(namespace=NAMESPACE, flavor="h200x4", timeout="4h", vllm_server=True)
    job = job_spec.build_spec("grpo", options, overrides=["--max_steps", "5"])
    resumed = job.resumed()
    assert resumed.script_args == [*job.script_args, "--resume_from_checkpoint", "latest"]
    assert resumed.launch.vllm_server == job.launch.vllm_server and resumed.launch.processes == 3
    assert resumed.launch.run.endswith("--max_steps 5 --resume_from_checkpoint latest")
    assert resumed.resumed() is resumed and job.script_args[-2:] == ["--max_steps", "5"], "the original is unchanged"
    script_of(resumed.to_dict())


def test_a_mixtures_tasks_must_reach_the_job(project, no_network, capsys, tmp_path):
    job = dry_run(capsys, "sft", "--task", "medqa:2,headqa")
    assert "medqa:2,headqa" in job["script_args"]
    local = "{medqa: 2, headqa: {dataset_name: data/headqa.jsonl}}"
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--task", local]) == 2
    assert "task headqa: its rows (data/headqa.jsonl) are at a local path" in capsys.readouterr().err
    outside = tmp_path / "mine.yaml"
    outside.write_text((REPO_ROOT / "configs/tasks/medqa.yaml").read_text().replace("name: medqa", "name: mine"))
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--task", f"medqa,{outside}"]) == 2
    assert f"task file {outside} is not shipped with the project" in capsys.readouterr().err
