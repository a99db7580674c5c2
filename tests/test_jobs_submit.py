"""fine_tune.hub.jobs.submit through scripts/submit_job.py: shipping, submission, following, the pipeline, resuming
a job killed by its timeout, and failing in seconds offline or on a silent endpoint. HfApi is faked at its method
boundary, each fake bound to the real signature."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from huggingface_hub import HfApi
from jobs_fakes import FAKE_TOKEN, HF_API_METHODS, NAMESPACE, REPO_ROOT, FakeHub, fake_hf_api

from fine_tune import constants, hub_access
from fine_tune.hub.jobs import estimate, shipping, submit_cli
from fine_tune.hub.phases import JobsError

pytest_plugins = ["jobs_fakes"]  # fixtures: clean_env, project, no_network
TIMEOUT_MESSAGE = "Job timeout reached"


def test_submit_ships_the_tree_and_passes_the_token_only_as_a_secret(project, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--max_steps", "50"]) == 0
    (sync,) = hub.named("sync_job_volume")
    assert sync["mount_path"] == shipping.CODE_MOUNT_PATH and sync["read_only"] is True
    assert sync["namespace"] == NAMESPACE
    assert "fine_tune/hub/jobs/job_spec.py" in hub.staged_files and "configs/sft.yaml" in hub.staged_files
    assert all(FAKE_TOKEN not in text for text in hub.staged_files.values())
    (run,) = hub.named("run_job")
    assert run["secrets"] == {"HF_TOKEN": FAKE_TOKEN} and run["token"] == FAKE_TOKEN
    assert FAKE_TOKEN not in json.dumps({k: v for k, v in run.items() if k not in ("secrets", "token")}, default=str)
    minimum = (
        estimate.SETUP_SECONDS + 50 * estimate.SECONDS_PER_UNIT["t4-small"]["sft"].seconds + estimate.FINALIZE_SECONDS
    ) * (1 + estimate.TIMEOUT_MARGIN)
    assert isinstance(run["timeout"], int) and run["timeout"] >= minimum
    assert run["flavor"] == "t4-small" and run["namespace"] == NAMESPACE
    assert run["volumes"][0].path == sync["remote_name"] and run["volumes"][0].mount_path == shipping.CODE_MOUNT_PATH
    assert "scripts/train_medmcqa_sft.py" in run["command"][-1] and "--max_steps 50" in run["command"][-1]
    assert hub.named("wait_for_job") == [], "a single phase without --follow returns once submitted"
    captured = capsys.readouterr()
    assert "job0" in captured.out and "hf jobs logs -f alice/job0" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err
    assert not any(FAKE_TOKEN in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_hub_fakes_refuse_calls_the_real_api_would_refuse(monkeypatch):
    """[robust 19] a fake that took **kwargs would let a wrong keyword through to a green test."""
    FakeHub(monkeypatch)
    api = HfApi(token=FAKE_TOKEN)
    with pytest.raises(TypeError):
        api.whoami(namespace="alice")
    with pytest.raises(TypeError):
        api.wait_for_job("job0", poll_seconds=30)
    with pytest.raises(TypeError):
        api.file_exists("alice/medmcqa-sft", "last-checkpoint/trainer_state.json", kind="model")
    with pytest.raises(TypeError):
        api.sync_job_volume("/tmp/x", "/opt/src", "positional-remote-name")


def test_namespace_defaults_to_whoami_when_submitting(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert submit_cli.main(["sft", "--max_steps", "5"]) == 0
    (run,) = hub.named("run_job")
    assert run["namespace"] == "whoami-user" and "whoami-user/medmcqa-sft" in run["command"][-1]


def test_follow_streams_redacted_logs_and_reports_failure(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    FakeHub(monkeypatch, stages=("ERROR",), logs=["step 1", f"leaked {FAKE_TOKEN}"])
    assert (
        submit_cli.main(["sft", "--namespace", NAMESPACE, "--follow", "--max_steps", "5"]) == constants.EXIT_JOB_FAILED
    )
    captured = capsys.readouterr()
    assert "step 1" in captured.out and "leaked ***" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err
    assert "sft job job0 ended ERROR: exit code 1" in captured.out


def test_pipeline_waits_for_each_phase_and_hands_over_hub_ids(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE]) == 0
    runs = hub.named("run_job")
    assert [r["labels"]["phase"] for r in runs] == ["sft", "grpo", "eval"]
    assert "--hub_model_id alice/medmcqa-sft" in runs[0]["command"][-1]
    assert "--model_name_or_path alice/medmcqa-sft" in runs[1]["command"][-1]
    assert "--models base=Qwen/Qwen3-0.6B,grpo=alice/medmcqa-grpo,sft=alice/medmcqa-sft" in runs[2]["command"][-1]
    assert "--fail_on_regression true" in runs[2]["command"][-1]
    assert [w["job_id"] for w in hub.named("wait_for_job")] == ["job0", "job1", "job2"]
    assert all(w["timeout"] is not None for w in hub.named("wait_for_job")), "waiting never hangs forever"
    assert len(hub.named("sync_job_volume")) == 1, "the tree ships once for the whole pipeline"


def test_pipeline_stops_at_the_first_failed_phase_with_a_clear_message(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch, stages=("COMPLETED", "ERROR", "COMPLETED"))
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE]) == constants.EXIT_JOB_FAILED
    assert [r["labels"]["phase"] for r in hub.named("run_job")] == ["sft", "grpo"], "eval must not start"
    assert hub.named("file_exists") == [], "an error that is not the timeout is not resumed"
    out = capsys.readouterr().out
    assert "grpo job job1 ended ERROR" in out and "hf jobs logs alice/job1" in out
    assert "not started: eval" in out and "--start-at grpo" in out


def test_a_training_job_killed_by_its_timeout_is_resubmitted_with_resume(project, capsys, monkeypatch):
    """[robust 15] the pipeline continues the killed phase from the last-checkpoint/ it pushed, and says so."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    stages = (("ERROR", TIMEOUT_MESSAGE), "COMPLETED", "COMPLETED", "COMPLETED")
    hub = FakeHub(monkeypatch, stages=stages)
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE]) == 0
    runs = hub.named("run_job")
    assert [r["labels"]["phase"] for r in runs] == ["sft", "sft", "grpo", "eval"]
    assert "--resume_from_checkpoint" not in runs[0]["command"][-1]
    assert runs[1]["command"][-1].endswith("--resume_from_checkpoint latest")
    assert "--resume_from_checkpoint" not in runs[2]["command"][-1], "the next phase starts fresh"
    (check,) = hub.named("file_exists")
    assert check["repo_id"] == "alice/medmcqa-sft" and check["filename"] == "last-checkpoint/trainer_state.json"
    out = capsys.readouterr().out
    assert "sft: job job0 was killed by its timeout" in out and "resubmitting it with --resume_from_checkpoint" in out
    assert "alice/medmcqa-sft/last-checkpoint (resume 1 of at most 2)" in out


def test_resubmission_is_bounded_and_needs_a_pushed_checkpoint(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch, stages=(("ERROR", TIMEOUT_MESSAGE),) * 3)
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE, "--max-resumes", "1"]) == constants.EXIT_JOB_FAILED
    assert [r["labels"]["phase"] for r in hub.named("run_job")] == ["sft", "sft"]
    out = capsys.readouterr().out
    assert "resubmitted 1 time(s), the most allowed (--max-resumes)" in out and "not started: grpo, eval" in out
    hub = FakeHub(monkeypatch, stages=(("ERROR", TIMEOUT_MESSAGE),), pushed_checkpoint=False)
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE]) == constants.EXIT_JOB_FAILED
    assert len(hub.named("run_job")) == 1
    assert "before pushing a checkpoint to alice/medmcqa-sft: not resubmitted" in capsys.readouterr().out


def test_a_job_that_ran_its_whole_timeout_counts_as_killed_by_it(project, capsys, monkeypatch):
    from types import SimpleNamespace

    from fine_tune.hub.jobs.submit import killed_by_timeout

    job_spec = SimpleNamespace(timeout_seconds=3600)
    ended = SimpleNamespace(status=SimpleNamespace(stage="ERROR", message="exit code 137"))
    assert killed_by_timeout(SimpleNamespace(**vars(ended), durations=SimpleNamespace(running_secs=3599)), job_spec)
    assert not killed_by_timeout(SimpleNamespace(**vars(ended), durations=SimpleNamespace(running_secs=60)), job_spec)
    done = SimpleNamespace(status=SimpleNamespace(stage="COMPLETED", message=None), durations=None)
    assert not killed_by_timeout(done, job_spec)


def test_a_job_that_never_ends_stops_the_pipeline_with_a_message(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)

    def wait_for_job(api, job_id, *, timeout=None, poll_interval=None, namespace=None, token=None):
        raise TimeoutError(f"Job '{job_id}' is still in stage 'RUNNING'")

    fake_hf_api(monkeypatch, "wait_for_job", wait_for_job)
    assert submit_cli.main(["pipeline", "--namespace", NAMESPACE]) == 2
    assert "sft job job0 has not ended" in capsys.readouterr().err
    assert len(hub.named("run_job")) == 1


def test_read_only_token_is_refused_before_anything_is_shipped(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch, role="read")
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--max_steps", "5"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert hub.named("sync_job_volume") == [] and hub.named("run_job") == []


def test_local_mistakes_are_caught_before_any_hub_call(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    hub = FakeHub(monkeypatch)
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--timeout", "5m"]) == 2
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--max_stepz", "5"]) == 2
    assert hub.calls == []


# --- offline, no token, silent endpoint: fail within seconds with the fix ------------------------------------------


@pytest.mark.parametrize("phase", ["sft", "eval", "pipeline"])
def test_without_a_token_every_command_fails_fast_naming_the_fix(project, no_network, capsys, phase):
    assert submit_cli.main([phase, "--namespace", NAMESPACE]) == 2
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and "huggingface.co/settings/tokens" in err


def test_offline_mode_fails_fast_naming_the_fix(project, no_network, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert submit_cli.main(["sft", "--namespace", NAMESPACE]) == 2
    err = capsys.readouterr().err
    assert "offline mode is set (HF_HUB_OFFLINE" in err and "unset it" in err and FAKE_TOKEN not in err


def test_unreachable_hub_fails_within_seconds(project, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    for name in HF_API_METHODS:
        monkeypatch.setattr(HfApi, name, lambda *a, **k: pytest.fail("the Hub was called although unreachable"))
    started = time.monotonic()
    assert submit_cli.main(["sft", "--namespace", NAMESPACE, "--max_steps", "5"]) == 2
    assert time.monotonic() - started < 60  # the recipe read included; the reachability check itself is bounded
    err = capsys.readouterr().err
    assert "unreachable" in err and "127.0.0.1:9" in err and FAKE_TOKEN not in err


@pytest.fixture
def silent_endpoint(clean_env):
    """An HTTP endpoint that accepts connections and never answers; huggingface_hub's client restored after."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    clean_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    clean_env.setattr(hub_access, "HUB_READ_TIMEOUT_S", 1.5)
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()
    set_client_factory(_http.default_client_factory)


def test_an_endpoint_that_never_answers_fails_in_seconds_with_one_line(project, capsys, silent_endpoint):
    """[robust 11] the endpoint accepts the connection and never answers: submit_job.py hung forever, silently."""
    os.environ["HF_TOKEN"] = FAKE_TOKEN
    try:
        started = time.monotonic()
        assert submit_cli.main(["sft", "--max_steps", "5", "--namespace", NAMESPACE]) == 2
        elapsed = time.monotonic() - started
    finally:
        del os.environ["HF_TOKEN"]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unreachable (no connection and HTTP answer within" in err
    assert f"127.0.0.1:{silent_endpoint}" in err and FAKE_TOKEN not in err and "--namespace" not in err
    assert elapsed < 60  # the recipe read included; the check itself is bounded by HUB_TIMEOUT_S


@pytest.mark.parametrize("namespace", [None, NAMESPACE])
def test_whoami_on_a_silent_endpoint_is_bounded_and_hints_only_without_namespace(silent_endpoint, namespace):
    """whoami had no timeout; the hint "or pass --namespace" appeared even when it was passed."""
    from fine_tune.hub.jobs.submit import check_account

    hub_access.bound_hub_calls()
    started = time.monotonic()
    with pytest.raises(JobsError, match="did not answer who the token belongs to") as error:
        check_account(submit_cli.default_api(FAKE_TOKEN), FAKE_TOKEN, namespace)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert "ReadTimeout" in message and FAKE_TOKEN not in message
    assert ("--namespace" in message) is (namespace is None)


def test_every_hub_call_is_bounded_once_preflight_passed(silent_endpoint):
    import httpx2
    from huggingface_hub import get_session

    hub_access.bound_hub_calls()
    started = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):
        get_session().get(f"http://127.0.0.1:{silent_endpoint}/api/whoami-v2")
    assert time.monotonic() - started < 10


def test_no_token_subprocess_fails_within_seconds():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_JOBS_NAMESPACE")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "scripts/submit_job.py", "eval", "--namespace", "bob"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "HF_TOKEN" in out.stderr
    assert time.monotonic() - started < 30
