import time

import pytest

from fine_tune.hub import access as hub


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*hub.OFFLINE_ENV_VARS, "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("TRUE", True), (" yes ", True), ("0", False)])
def test_env_flag(clean_env, value, expected):
    clean_env.setenv("HF_HUB_OFFLINE", value)
    assert hub.env_flag("HF_HUB_OFFLINE") is expected


@pytest.mark.parametrize("name", hub.OFFLINE_ENV_VARS)
def test_any_offline_switch_counts(clean_env, name):
    assert not hub.offline_mode()
    clean_env.setenv(name, "1")
    assert hub.offline_mode()


def test_unreachable_endpoint_is_answered_within_the_timeout(clean_env):
    clean_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert hub.hub_endpoint() == "http://127.0.0.1:9"
    started = time.monotonic()
    assert hub.hub_reachable(timeout=2.0) is False
    assert time.monotonic() - started < 3.0
