"""scripts/submit_job.py and fine_tune.jobs: dry-run specs, timeouts, shipping, submission, the pipeline and resume
from the Hub, all offline (huggingface_hub's HfApi is intercepted at its method boundary)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi, Volume

from fine_tune import constants
from fine_tune.hub import estimate, jobs

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_TOKEN = "hf_FAKEtokenVALUE0123456789abcdef"
NAMESPACE = "alice"
EVAL_CONFIG = """\
models:
  base: Qwen/Qwen3-0.6B
  grpo: outputs/medmcqa-grpo/merged
eval_size: 200
split_manifest: outputs/medmcqa-sft/split_manifest.json
"""
HF_API_METHODS = ("whoami", "sync_job_volume", "run_job", "fetch_job_logs", "inspect_job", "wait_for_job")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", jobs.NAMESPACE_ENV, "HF_ENDPOINT", "MY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def project(tmp_path, clean_env):
    """A copy of the shipped project (plus an eval script and config when absent) as PROJECT_ROOT."""
    root = jobs.ShippedTree.from_project(REPO_ROOT).stage(tmp_path / "project")
    if not (root / "scripts/eval_medmcqa.py").exists():
        (root / "scripts/eval_medmcqa.py").write_text("print('eval')\n")
    (root / "configs/eval.yaml").write_text(EVAL_CONFIG)
    clean_env.setattr(jobs, "PROJECT_ROOT", root)
    clean_env.setattr(estimate, "PROJECT_ROOT", root)
    return root


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or HfApi call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access during a dry run")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in HF_API_METHODS:
        monkeypatch.setattr(HfApi, name, refuse)


def dry_run(capsys, *argv: str) -> dict:
    assert jobs.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


# --- dry run --------------------------------------------------------------------------------------------------------


def test_dry_run_prints_the_exact_spec_and_touches_no_network(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    spec = dry_run(capsys, "sft", "--config", "configs/sft.yaml")
    for key in ("image", "command", "env", "secrets", "flavor", "timeout_seconds", "estimate", "volumes", "shipped"):
        assert key in spec
    assert spec["image"].startswith("pytorch/pytorch:") and "cuda" in spec["image"]
    assert spec["secrets"] == ["HF_TOKEN"], "secrets are listed by name only"
    assert spec["flavor"] == "t4-small"
    script = spec["command"][-1]
    assert "pip install" in script and f"cp -r {jobs.CODE_MOUNT_PATH}" in script
    assert spec["script_args"][:2] == ["--config", "configs/sft.yaml"]
    assert script.endswith(" ".join(["python", "scripts/train_medmcqa_sft.py", *spec["script_args"]]))
    args = spec["script_args"]
    assert args[args.index("--hub_model_id") + 1] == "alice/medmcqa-sft" == spec["hub_model_id"]
    assert args[args.index("--hub_strategy") + 1] == "checkpoint"
    assert args[args.index("--trackio_space_id") + 1] == "alice/medmcqa-trackio"
    assert args[args.index("--report_to") + 1] == "trackio"
    assert spec["volumes"] == [
        {
            "type": "bucket",
            "source": "alice/jobs-artifacts",
            "mount_path": jobs.CODE_MOUNT_PATH,
            "path": spec["shipped"]["folder"],
            "read_only": True,
        }
    ]
    files = spec["shipped"]["files"]
    for needed in ("pyproject.toml", "fine_tune/train/sft.py", "scripts/train_medmcqa_sft.py", "configs/sft.yaml"):
        assert needed in files
    assert not any(f.startswith((".venv", "tests/", "outputs/", "eval_results/")) for f in files)


def test_dry_run_output_never_holds_the_token(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("MY_TOKEN", FAKE_TOKEN)
    for argv in (["sft"], ["grpo", "--token-env", "MY_TOKEN"], ["pipeline"]):
        assert jobs.main([*argv, "--namespace", NAMESPACE, "--dry-run"]) == 0
        captured = capsys.readouterr()
        assert FAKE_TOKEN not in captured.out + captured.err


def test_dry_run_script_runs_offline_as_a_subprocess(tmp_path):
    env = {**os.environ, "HF_TOKEN": FAKE_TOKEN, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "scripts/submit_job.py", "sft", "--config", "configs/sft.yaml", "--namespace", "bob"]
        + ["--dry-run", "--max_steps", "100"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 30
    spec = json.loads(out.stdout)
    assert spec["estimate"]["units"] == 100 and spec["script_args"][-2:] == ["--max_steps", "100"]
    assert FAKE_TOKEN not in out.stdout + out.stderr


def test_dry_run_needs_a_namespace_and_never_asks_the_hub(project, no_network, capsys):
    assert jobs.main(["sft", "--dry-run"]) == constants.EXIT_BAD_INPUT
    assert "--namespace" in capsys.readouterr().err


def test_user_overrides_come_last_and_win(project, no_network, capsys):
    spec = dry_run(capsys, "sft", "--max_steps", "10", "--hub_model_id", "team/custom", "--learning_rate=1e-4")
    assert spec["script_args"][-5:] == ["--max_steps", "10", "--hub_model_id", "team/custom", "--learning_rate=1e-4"]
    assert spec["hub_model_id"] == "team/custom"
    assert spec["estimate"]["units"] == 10


def test_grpo_job_starts_from_the_sft_hub_model_when_the_config_names_a_local_folder(project, no_network, capsys):
    spec = dry_run(capsys, "grpo", "--config", "configs/grpo.yaml")
    args = spec["script_args"]
    assert args[args.index("--model_name_or_path") + 1] == "alice/medmcqa-sft" == spec["model"]
    assert args[args.index("--hub_model_id") + 1] == "alice/medmcqa-grpo"
    assert any("local" in note for note in spec["notes"])


def test_local_paths_the_job_cannot_see_are_refused(project, no_network, capsys):
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--dataset_name", "data/rows.jsonl"]) == 2
    assert "local path" in capsys.readouterr().err
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--model_name_or_path", "./tiny"]) == 2
    assert "Hub" in capsys.readouterr().err


def test_resume_and_public_flags(project, no_network, capsys):
    spec = dry_run(capsys, "sft", "--resume", "--public")
    args = spec["script_args"]
    assert args[args.index("--resume_from_checkpoint") + 1] == "latest"
    assert args[args.index("--hub_private_repo") + 1] == "false"


def test_config_outside_the_project_is_refused(project, no_network, capsys, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("max_steps: 1\n")
    assert jobs.main(["sft", "--config", str(outside), "--namespace", NAMESPACE, "--dry-run"]) == 2
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
    assert evaluation["hub_model_id"] is None and evaluation["trackio_space_id"] is None
    assert evaluation["estimate"]["units"] == 200 * 3, "eval answers = questions x models"
    assert evaluation["results_repo"] == "alice/medmcqa-eval-results"
    script = evaluation["command"][-1]
    assert 'publish_eval_results("eval_results", "alice/medmcqa-eval-results", private=True)' in script
    assert script.rstrip().endswith('exit "$status"'), "the eval's exit status stays the job's"
    assert 'hf_hub_download("alice/medmcqa-sft", "split_manifest.json"' in script, "the contamination check survives"
    assert args[args.index("--split_manifest") + 1] == f"{jobs.JOB_MANIFEST_DIR}/split_manifest.json"
    assert script.index("hf_hub_download") < script.index("scripts/eval_medmcqa.py")
    assert [h["model"] for h in doc["handoff"]] == ["alice/medmcqa-sft", "alice/medmcqa-grpo"]
    assert doc["total_timeout_seconds"] == sum(s["timeout_seconds"] for s in doc["pipeline"])
    assert len({s["shipped"]["sha256"] for s in doc["pipeline"]}) == 1


def test_pipeline_start_at_uses_the_namespace_ids(project, no_network, capsys):
    doc = dry_run(capsys, "pipeline", "--start-at", "grpo", "--repo-prefix", "mm")
    assert [s["phase"] for s in doc["pipeline"]] == ["grpo", "eval"]
    assert doc["pipeline"][0]["model"] == "alice/mm-sft"
    assert doc["pipeline"][1]["models"] == {"base": "Qwen/Qwen3-0.6B", "grpo": "alice/mm-grpo", "sft": "alice/mm-sft"}


def test_single_eval_job_replaces_local_models_by_their_hub_ids(project, no_network, capsys):
    spec = dry_run(capsys, "eval", "--limit", "20")
    assert spec["models"] == {"base": "Qwen/Qwen3-0.6B", "grpo": "alice/medmcqa-grpo"}
    assert any("local" in note for note in spec["notes"])
    assert spec["estimate"]["units"] == 20 * 2
    spec = dry_run(capsys, "eval", "--models", "base=Qwen/Qwen3-0.6B,x=team/other", "--eval_split", "validation")
    assert spec["script_args"][-4:] == ["--models", "base=Qwen/Qwen3-0.6B,x=team/other", "--eval_split", "validation"]
    assert spec["estimate"]["units"] == 4183 * 2
    assert jobs.main(["eval", "--namespace", NAMESPACE, "--dry-run", "--models", "base=./local/model"]) == 2


def test_pipeline_rejects_unscoped_overrides(project):
    with pytest.raises(SystemExit):
        jobs.main(["pipeline", "--namespace", NAMESPACE, "--dry-run", "--max_steps", "5"])


# --- timeouts and estimates ---------------------------------------------------------------------------------------


def test_default_timeout_is_derived_from_steps_flavor_and_margin(project, no_network, capsys):
    spec = dry_run(capsys, "sft", "--max_steps", "800")
    est = spec["estimate"]
    figure = estimate.SECONDS_PER_UNIT["t4-small"]["sft"]
    assert est["seconds_per_unit"] == figure.seconds and est["figure_kind"] == "projected"
    expected_total = estimate.SETUP_SECONDS + 800 * figure.seconds + estimate.FINALIZE_SECONDS
    assert est["total_seconds"] == pytest.approx(expected_total)
    assert spec["timeout_seconds"] >= expected_total * (1 + estimate.TIMEOUT_MARGIN)
    assert spec["timeout_seconds"] % estimate.TIMEOUT_ROUNDING_S == 0
    assert spec["timeout_seconds"] != 30 * 60 and spec["timeout_source"] == "estimate"
    assert est["estimated_cost_usd"] == pytest.approx(round(0.40 * expected_total / 3600, 2))


def test_a_timeout_shorter_than_the_estimate_is_refused_with_the_numbers(project, no_network, capsys):
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--timeout", "20m"]) == 2
    err = capsys.readouterr().err
    for text in ("20m", "1200 s", "800 optimizer steps", "3.5 s", "setup", "--timeout"):
        assert text in err
    spec = dry_run(capsys, "sft", "--timeout", "3h")
    assert spec["timeout_seconds"] == 3 * 3600 and spec["timeout"] == "3h" and spec["timeout_source"] == "--timeout"


def test_faster_flavor_gives_shorter_estimate_and_unknown_flavor_needs_a_timeout(project, no_network, capsys):
    t4 = dry_run(capsys, "sft")["estimate"]["total_seconds"]
    a100 = dry_run(capsys, "sft", "--flavor", "a100-large")["estimate"]["total_seconds"]
    assert a100 < t4
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--dry-run", "--flavor", "cpu-basic"]) == 2
    assert "--timeout" in capsys.readouterr().err
    spec = dry_run(capsys, "sft", "--flavor", "cpu-basic", "--timeout", "10h")
    assert spec["estimate"] is None and spec["timeout_seconds"] == 36000


def test_benchmark_files_replace_the_table(project, no_network, capsys):
    """Only a GPU run of scripts/benchmark.py (job_figures) replaces the table, for the flavors of its GPU family."""
    bench = project / estimate.BENCHMARK_DIR
    bench.mkdir(parents=True, exist_ok=True)
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
    with pytest.raises(jobs.JobsError):
        estimate.parse_duration("soon")


def test_parse_overrides_forms():
    values = jobs.parse_overrides(["--max_steps", "5", "--push_to_hub", "--lr=1e-4", "--mods", "q", "v"])
    assert values == {"max_steps": 5, "push_to_hub": True, "lr": 1e-4, "mods": ["q", "v"]}
    with pytest.raises(jobs.JobsError):
        jobs.parse_overrides(["max_steps", "5"])


def test_phase_units_without_max_steps_counts_epochs():
    recipe = {"max_steps": -1, "sft_size": 1000, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4}
    assert estimate.phase_units("sft", {**recipe, "num_train_epochs": 2}) == 125


# --- submission (HfApi intercepted at its method boundary) --------------------------------------------------------


class FakeHub:
    """Records HfApi calls; `stages` are the final stages wait_for_job / inspect_job report, in submission order."""

    def __init__(self, monkeypatch, stages=("COMPLETED", "COMPLETED", "COMPLETED"), role="write", logs=()):
        self.calls: list[tuple[str, dict]] = []
        self.staged_files: dict[str, str] = {}
        self.stages = list(stages)
        self.jobs: list[str] = []
        hub = self

        def whoami(api, token=None, **kwargs):
            hub.calls.append(("whoami", {"token": token}))
            return {"name": "whoami-user", "auth": {"accessToken": {"role": role}}}

        def sync_job_volume(api, source, mount_path, **kwargs):
            hub.calls.append(("sync_job_volume", {"source": source, "mount_path": mount_path, **kwargs}))
            source = Path(source)
            hub.staged_files = {
                p.relative_to(source).as_posix(): p.read_text() for p in source.rglob("*") if p.is_file()
            }
            return Volume(
                type="bucket",
                source=f"{kwargs['namespace']}/jobs-artifacts",
                mount_path=mount_path,
                path=kwargs["remote_name"],
                read_only=kwargs["read_only"],
            )

        def run_job(api, **kwargs):
            hub.calls.append(("run_job", kwargs))
            job_id = f"job{len(hub.jobs)}"
            hub.jobs.append(job_id)
            return SimpleNamespace(id=job_id, url=f"https://huggingface.co/jobs/alice/{job_id}", status=None)

        def final(job_id):
            stage = hub.stages[hub.jobs.index(job_id)]
            message = "exit code 1" if stage != "COMPLETED" else None
            return SimpleNamespace(
                id=job_id, url=f"https://hf.co/jobs/{job_id}", status=SimpleNamespace(stage=stage, message=message)
            )

        def wait_for_job(api, job_id, **kwargs):
            hub.calls.append(("wait_for_job", {"job_id": job_id, **kwargs}))
            return final(job_id)

        def inspect_job(api, *, job_id, **kwargs):
            hub.calls.append(("inspect_job", {"job_id": job_id, **kwargs}))
            return final(job_id)

        def fetch_job_logs(api, *, job_id, **kwargs):
            hub.calls.append(("fetch_job_logs", {"job_id": job_id, **kwargs}))
            yield from logs

        methods = {
            "whoami": whoami,
            "sync_job_volume": sync_job_volume,
            "run_job": run_job,
            "wait_for_job": wait_for_job,
            "inspect_job": inspect_job,
            "fetch_job_logs": fetch_job_logs,
        }
        for name, method in methods.items():
            monkeypatch.setattr(HfApi, name, method)
        monkeypatch.setattr("fine_tune.hub.access.hub_reachable", lambda endpoint, timeout=5.0: True)

    def named(self, name: str) -> list[dict]:
        return [kwargs for call, kwargs in self.calls if call == name]


def test_submit_ships_the_tree_and_passes_the_token_only_as_a_secret(project, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--max_steps", "50"]) == 0
    (sync,) = hub.named("sync_job_volume")
    assert sync["mount_path"] == jobs.CODE_MOUNT_PATH and sync["read_only"] is True and sync["namespace"] == NAMESPACE
    assert "fine_tune/hub/jobs.py" in hub.staged_files and "configs/sft.yaml" in hub.staged_files
    assert all(FAKE_TOKEN not in text for text in hub.staged_files.values())
    (run,) = hub.named("run_job")
    assert run["secrets"] == {"HF_TOKEN": FAKE_TOKEN} and run["token"] == FAKE_TOKEN
    assert FAKE_TOKEN not in json.dumps({k: v for k, v in run.items() if k not in ("secrets", "token")}, default=str)
    minimum = (
        estimate.SETUP_SECONDS + 50 * estimate.SECONDS_PER_UNIT["t4-small"]["sft"].seconds + estimate.FINALIZE_SECONDS
    ) * (1 + estimate.TIMEOUT_MARGIN)
    assert isinstance(run["timeout"], int) and run["timeout"] >= minimum
    assert run["flavor"] == "t4-small" and run["namespace"] == NAMESPACE
    assert run["volumes"][0].path == sync["remote_name"] and run["volumes"][0].mount_path == jobs.CODE_MOUNT_PATH
    assert "scripts/train_medmcqa_sft.py" in run["command"][-1] and "--max_steps 50" in run["command"][-1]
    assert hub.named("wait_for_job") == [], "a single phase without --follow returns once submitted"
    captured = capsys.readouterr()
    assert "job0" in captured.out and "hf jobs logs -f alice/job0" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err
    assert not any(FAKE_TOKEN in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_namespace_defaults_to_whoami_when_submitting(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert jobs.main(["sft"]) == 0
    (run,) = hub.named("run_job")
    assert run["namespace"] == "whoami-user" and "whoami-user/medmcqa-sft" in run["command"][-1]


def test_follow_streams_redacted_logs_and_reports_failure(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    FakeHub(monkeypatch, stages=("ERROR",), logs=["step 1", f"leaked {FAKE_TOKEN}"])
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--follow"]) == constants.EXIT_JOB_FAILED
    captured = capsys.readouterr()
    assert "step 1" in captured.out and "leaked ***" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err
    assert "sft job job0 ended ERROR: exit code 1" in captured.out


def test_pipeline_waits_for_each_phase_and_hands_over_hub_ids(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert jobs.main(["pipeline", "--namespace", NAMESPACE]) == 0
    runs = hub.named("run_job")
    assert [r["labels"]["phase"] for r in runs] == ["sft", "grpo", "eval"]
    assert "--hub_model_id alice/medmcqa-sft" in runs[0]["command"][-1]
    assert "--model_name_or_path alice/medmcqa-sft" in runs[1]["command"][-1]
    assert "--models base=Qwen/Qwen3-0.6B,grpo=alice/medmcqa-grpo,sft=alice/medmcqa-sft" in runs[2]["command"][-1]
    assert [w["job_id"] for w in hub.named("wait_for_job")] == ["job0", "job1", "job2"]
    assert all(w["timeout"] is not None for w in hub.named("wait_for_job")), "waiting never hangs forever"
    assert len(hub.named("sync_job_volume")) == 1, "the tree ships once for the whole pipeline"


def test_pipeline_stops_at_the_first_failed_phase_with_a_clear_message(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch, stages=("COMPLETED", "ERROR", "COMPLETED"))
    assert jobs.main(["pipeline", "--namespace", NAMESPACE]) == constants.EXIT_JOB_FAILED
    assert [r["labels"]["phase"] for r in hub.named("run_job")] == ["sft", "grpo"], "eval must not start"
    out = capsys.readouterr().out
    assert "grpo job job1 ended ERROR" in out and "hf jobs logs alice/job1" in out
    assert "not started: eval" in out and "--start-at grpo" in out


def test_a_job_that_never_ends_stops_the_pipeline_with_a_message(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)

    def wait_for_job(api, job_id, **kwargs):
        raise TimeoutError(f"Job '{job_id}' is still in stage 'RUNNING'")

    monkeypatch.setattr(HfApi, "wait_for_job", wait_for_job)
    assert jobs.main(["pipeline", "--namespace", NAMESPACE]) == 2
    assert "sft job job0 has not ended" in capsys.readouterr().err
    assert len(hub.named("run_job")) == 1


def test_read_only_token_is_refused_before_anything_is_shipped(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch, role="read")
    assert jobs.main(["sft", "--namespace", NAMESPACE]) == 2
    assert "read-only" in capsys.readouterr().err
    assert hub.named("sync_job_volume") == [] and hub.named("run_job") == []


def test_local_mistakes_are_caught_before_any_hub_call(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert jobs.main(["sft", "--namespace", NAMESPACE, "--timeout", "5m"]) == 2
    assert hub.calls == []


# --- offline / no token: fail within seconds with the fix ---------------------------------------------------------


@pytest.mark.parametrize("phase", ["sft", "grpo", "eval", "pipeline"])
def test_without_a_token_every_command_fails_fast_naming_the_fix(project, no_network, capsys, phase):
    started = time.monotonic()
    assert jobs.main([phase, "--namespace", NAMESPACE]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and "huggingface.co/settings/tokens" in err


def test_offline_mode_fails_fast_naming_the_fix(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert jobs.main(["sft", "--namespace", NAMESPACE]) == 2
    err = capsys.readouterr().err
    assert "offline mode is set (HF_HUB_OFFLINE" in err and "unset it" in err and FAKE_TOKEN not in err


def test_unreachable_hub_fails_within_seconds(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    for name in HF_API_METHODS:
        monkeypatch.setattr(HfApi, name, lambda *a, **k: pytest.fail("the Hub was called although unreachable"))
    started = time.monotonic()
    assert jobs.main(["pipeline", "--namespace", NAMESPACE]) == 2
    assert time.monotonic() - started < jobs.HUB_TIMEOUT_S + 3
    err = capsys.readouterr().err
    assert "unreachable" in err and "127.0.0.1:9" in err and FAKE_TOKEN not in err


def test_no_token_subprocess_fails_within_seconds():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_JOBS_NAMESPACE")}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "scripts/submit_job.py", "sft", "--namespace", "bob"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "HF_TOKEN" in out.stderr
    assert time.monotonic() - started < 30


# --- resume from the Hub ------------------------------------------------------------------------------------------


def fake_snapshot(step: int | None, calls: list):
    def snapshot_download(repo_id, *, allow_patterns, local_dir, token=None, revision=None, **kwargs):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, "token": token, "revision": revision})
        if step is not None:
            folder = Path(local_dir) / constants.HUB_CHECKPOINT_DIR
            folder.mkdir(parents=True)
            (folder / constants.TRAINER_STATE_FILE).write_text(json.dumps({"global_step": step}))
            (folder / "adapter_model.safetensors").write_bytes(b"weights")
        return str(local_dir)

    return snapshot_download


def training_args(output_dir, **kwargs):
    values = {
        "resume_from_checkpoint": "latest",
        "push_to_hub": True,
        "hub_model_id": "alice/medmcqa-sft",
        "output_dir": str(output_dir),
        "hub_token": None,
        "hub_revision": None,
    }
    return SimpleNamespace(**{**values, **kwargs})


def test_fetch_checkpoint_places_last_checkpoint_where_latest_resume_finds_it(tmp_path, monkeypatch, clean_env):
    from transformers.trainer_utils import get_last_checkpoint

    calls: list = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot(8, calls))
    monkeypatch.setattr("fine_tune.hub.access.hub_reachable", lambda endpoint, timeout=5.0: True)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    out = tmp_path / "out"
    path = jobs.fetch_checkpoint_for_resume(training_args(out))
    assert path == out / "checkpoint-8"
    assert get_last_checkpoint(str(out)) == str(out / "checkpoint-8")
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights"
    assert calls == [
        {
            "repo_id": "alice/medmcqa-sft",
            "allow_patterns": ["last-checkpoint/*"],
            "token": FAKE_TOKEN,
            "revision": None,
        }
    ]
    assert [p.name for p in out.iterdir()] == ["checkpoint-8"], "no temporary folder is left behind"


def test_fetch_checkpoint_does_nothing_when_not_needed(tmp_path, monkeypatch, clean_env):
    calls: list = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot(8, calls))
    monkeypatch.setattr("fine_tune.hub.access.hub_reachable", lambda endpoint, timeout=5.0: True)
    (tmp_path / "local" / "checkpoint-4").mkdir(parents=True)
    assert jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "local")) is None
    assert jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "a", resume_from_checkpoint=None)) is None
    assert jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "b", push_to_hub=False)) is None
    assert jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "c", resume_from_checkpoint="ckpt/x")) is None
    assert calls == []


def test_fetch_checkpoint_without_one_on_the_hub_starts_fresh(tmp_path, monkeypatch, clean_env):
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot(None, []))
    monkeypatch.setattr("fine_tune.hub.access.hub_reachable", lambda endpoint, timeout=5.0: True)
    assert jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "out")) is None
    assert list((tmp_path / "out").iterdir()) == []


def test_fetch_checkpoint_offline_fails_fast_with_the_fix(tmp_path, monkeypatch, clean_env):
    from fine_tune.errors import ModelSourceError

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: pytest.fail("download attempted"))
    started = time.monotonic()
    with pytest.raises(ModelSourceError, match="unreachable"):
        jobs.fetch_checkpoint_for_resume(training_args(tmp_path / "out"))
    assert time.monotonic() - started < jobs.HUB_TIMEOUT_S + 3


# --- inside the eval job: publishing results ----------------------------------------------------------------------


def test_publish_eval_results_uploads_and_updates_the_scored_models_cards(tmp_path, monkeypatch, clean_env):
    from test_model_card import fake_results

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    run = tmp_path / "eval_results" / "medmcqa-split"
    run.mkdir(parents=True)
    (run / "eval_results.json").write_text(json.dumps(fake_results()))
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: calls.append(("upload_folder", kw)))
    monkeypatch.setattr(HfApi, "upload_file", lambda api, **kw: calls.append(("upload_file", kw)))
    monkeypatch.setattr("huggingface_hub.hf_hub_download", missing_file)
    written = jobs.publish_eval_results(tmp_path / "eval_results", "alice/medmcqa-eval-results")
    assert calls[0] == (
        "create_repo",
        "alice/medmcqa-eval-results",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    assert calls[1][1]["repo_type"] == "dataset" and Path(calls[1][1]["folder_path"]) == tmp_path / "eval_results"
    cards = [call[1] for call in calls if call[0] == "upload_file"]
    assert [kw["repo_id"] for kw in cards] == ["alice/medmcqa-sft", "alice/medmcqa-grpo"], "never the base's repo"
    assert all(b"| **grpo** |" in kw["path_or_fileobj"] for kw in cards)
    assert written[1:] == ["alice/medmcqa-sft/README.md", "alice/medmcqa-grpo/README.md"]


def missing_file(repo_id, filename, **kwargs):
    from huggingface_hub.errors import EntryNotFoundError

    raise EntryNotFoundError(f"{filename} not in {repo_id}")


def test_publish_eval_results_with_nothing_to_publish_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("nothing to upload"))
    assert jobs.publish_eval_results(tmp_path / "missing", "alice/r") == []
