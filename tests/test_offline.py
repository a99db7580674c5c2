"""Offline means offline: a local folder is never sent to the Hub, and the demo's phases (tiny) make no connection
attempt at all, with the Hub's offline switch off (the strictest case: `make demo` also sets HF_HUB_OFFLINE=1)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tune.models.source import read_adapter_base, resolve_model_source
from fine_tune.recipes.loader import parse_recipe

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo"


@pytest.fixture
def hub_online(monkeypatch):
    """The Hub's offline switch off, as on a fresh machine without HF_HUB_OFFLINE."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def attempts(log: Path) -> str:
    return log.read_text()


def test_the_guard_records_and_refuses_a_connection_here_and_in_a_child(network_guard):
    import socket

    with pytest.raises(OSError):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    child = "import socket\ntry:\n    socket.socket().connect(('10.255.255.1', 443))\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    lines = [line for line in attempts(network_guard).splitlines() if line.startswith("pid ")]
    assert lines[0] == f"pid {os.getpid()}: getaddrinfo('huggingface.co')"
    assert lines[1].endswith("connect(('10.255.255.1', 443))") and lines[1] != f"pid {os.getpid()}: " + lines[1][-31:]


@pytest.mark.usefixtures("hub_online")
def test_a_local_folder_without_adapter_config_is_not_sent_to_the_hub(network_guard, tiny_model_dir, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    (tmp_path / "demo_artifacts").mkdir()
    (tmp_path / "demo_artifacts" / "tiny-model").symlink_to(tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    assert read_adapter_base("demo_artifacts/tiny-model") is None  # reads like the Hub ID owner/name
    assert resolve_model_source("demo_artifacts/tiny-model").kind == "full"
    assert attempts(network_guard) == ""


def demo_args(phase: str, **values) -> list[str]:
    return ["--config", str(DEMO / f"{phase}.yaml")] + [f"--{key}={value}" for key, value in values.items()]


@pytest.mark.slow
@pytest.mark.usefixtures("hub_online", "single_torch_thread")
def test_the_demo_phases_make_no_connection_attempt_and_log_no_retry(network_guard, tiny_model_dir, synthetic_jsonl,
                                                                     tmp_path, monkeypatch, caplog):  # fmt: skip
    """The demo's three phases on its recipes and its relative paths (demo_artifacts/...), tiny."""
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.train.grpo import run_grpo
    from fine_tune.train.sft import run_sft

    artifacts = tmp_path / "demo_artifacts"
    artifacts.mkdir()
    (artifacts / "tiny-model").symlink_to(tiny_model_dir)
    (artifacts / "synthetic.jsonl").symlink_to(synthetic_jsonl)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    sizes = {"sft_size": 8, "grpo_size": 4, "eval_size": 3}
    run_sft(*parse_recipe("sft", demo_args(
        "sft", **sizes, max_steps=1, per_device_train_batch_size=2, dev_size=0, save_strategy="no",
    )))  # fmt: skip
    run_grpo(*parse_recipe("grpo", demo_args(
        "grpo", **sizes, max_steps=1, per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
        dev_size=0, reward_guard_patience=100,
    )))  # fmt: skip
    (config,) = parse_recipe("eval", demo_args("eval", **sizes, max_new_tokens=8, bootstrap_resamples=10))
    outcome = run_evaluation(config)
    assert outcome.failed == []
    log = attempts(network_guard)
    assert log == "", "a demo phase tried the network:\n" + log
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage().lower()]
    assert retries == []
