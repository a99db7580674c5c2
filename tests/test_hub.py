import time
from pathlib import Path

import pytest

from fine_tune import hub_access as hub


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


TOKEN = "hf_SECRETtokenVALUE0123456789abcd"
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("phase", ["sft", "grpo", "eval"])
@pytest.mark.parametrize("flag", [["--hub_token", TOKEN], [f"--hub_token={TOKEN}"]])
def test_a_token_on_the_command_line_is_refused_pointing_to_hf_token(phase, flag):
    """[robust 9] the Trainer saves its arguments, hub_token included, in checkpoint-*/training_args.bin."""
    from fine_tune.errors import RecipeError
    from fine_tune.recipes.loader import parse_recipe

    with pytest.raises(RecipeError) as error:
        parse_recipe(phase, ["--config", str(CONFIGS / f"{phase}.yaml"), *flag])
    message = str(error.value)
    assert "hub_token is refused" in message and "HF_TOKEN" in message and TOKEN not in message


def test_a_token_in_a_recipe_file_is_refused(tmp_path):
    from fine_tune.errors import RecipeError
    from fine_tune.recipes.loader import load_recipe

    recipe = tmp_path / "leaky.yaml"
    recipe.write_text(f"max_steps: 2\nhub_token: {TOKEN}\n")
    with pytest.raises(RecipeError, match="leaky.yaml: hub_token is refused") as error:
        load_recipe("sft", recipe)
    assert TOKEN not in str(error.value)


def test_saved_training_arguments_never_hold_the_token_from_the_environment(tmp_path, monkeypatch):
    """What the Trainer writes into every checkpoint-*/ (torch.save of its args) when the token is in HF_TOKEN."""
    import torch
    from transformers.trainer import TRAINING_ARGS_NAME

    from fine_tune.recipes.loader import load_recipe

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    overrides = ["--output_dir", str(tmp_path), "--push_to_hub", "true", "--hub_model_id", "alice/medmcqa-sft"]
    _, training_args, _ = load_recipe("sft", CONFIGS / "sft.yaml", overrides)
    torch.save(training_args, tmp_path / TRAINING_ARGS_NAME)
    assert TOKEN.encode() not in (tmp_path / TRAINING_ARGS_NAME).read_bytes()
    assert training_args.hub_token is None


def test_bound_hub_calls_gives_huggingface_hubs_client_timeouts(monkeypatch):
    from huggingface_hub import get_session, set_client_factory
    from huggingface_hub.utils import _http

    try:
        hub.bound_hub_calls(connect=1.0, read=2.0)
        timeout = get_session().timeout
        assert (timeout.connect, timeout.read, timeout.write) == (1.0, 2.0, 2.0)
    finally:
        set_client_factory(_http.default_client_factory)
    assert get_session().timeout.read is None, "huggingface_hub's own client waits forever"


def test_an_endpoint_that_accepts_connections_but_never_answers_is_unreachable(clean_env):
    import http.server
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # the kernel accepts connections; nobody ever answers
    live = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501 to HEAD
    threading.Thread(target=live.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        assert hub.hub_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0) is False
        assert time.monotonic() - started < 10
        assert hub.hub_reachable(f"http://127.0.0.1:{live.server_address[1]}", timeout=5.0) is True
        assert hub.hub_reachable("http://127.0.0.1:9", timeout=1.0) is False
    finally:
        live.shutdown()
        silent.close()
