import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import settings

# `make mutation` runs each mutant against the tests covering it: fewer examples per property keep that affordable
settings.register_profile("mutation", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURE = "shared_dir"
_uses_shared: set[str] = set()


def _mutation_tests() -> set[str]:
    return {name for name in os.environ.get("MUTATION_TESTS", "").split(",") if name}


def pytest_ignore_collect(collection_path):
    """Under `make mutation`, test files other than the mutated module's own are not even imported."""
    wanted = _mutation_tests()
    if wanted and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return collection_path.name not in wanted or None
    return None


def pytest_collection_modifyitems(config, items):
    """Remember the tests that need ../shared (directly or through a fixture that does). Under `make mutation`,
    MUTATION_TESTS (test file names, comma-separated) keeps only the mutated module's own test files."""
    _uses_shared.update(item.nodeid for item in items if SHARED_FIXTURE in getattr(item, "fixturenames", ()))
    wanted = _mutation_tests()
    if wanted:
        dropped = [item for item in items if item.path.name not in wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.path.name in wanted]


def skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def shared_summary(stats: dict, uses_shared: set[str]) -> list[str]:
    """What the run says about ../shared: how many tests ran with the real templates and data, how many skipped,
    and every skip grouped by its reason."""
    ran = {r.nodeid for key in ("passed", "failed") for r in stats.get(key, []) if r.when == "call"}
    skipped = [r for r in stats.get("skipped", []) if r.skipped]
    lines = [
        f"../shared (real templates and data): {len(ran & uses_shared)} tests ran with it, "
        f"{len({r.nodeid for r in skipped} & uses_shared)} skipped; {len(skipped)} skipped in all"
    ]
    for reason, count in Counter(skip_reason(r) for r in skipped).most_common():
        lines.append(f"  {count} skipped: {reason}")
    return lines


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_sep("-", "tests needing ../shared")
    for line in shared_summary(terminalreporter.stats, _uses_shared):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (real MedMCQA rows, the Qwen3 tokenizer), or SHARED_DIR (set by `make mutation`, which runs the
    tests from mutants/); tests using it skip when it is absent."""
    path = Path(os.environ.get("SHARED_DIR") or REPO_ROOT.parent / "shared")
    if not path.is_dir():
        pytest.skip("../shared is absent: real MedMCQA rows and the Qwen3 tokenizer are not available")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init tiny Qwen3 model with the on-the-fly tokenizer, built once per test session."""
    from fine_tune.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def synthetic_jsonl(tmp_path_factory) -> Path:
    """2,200 generated MedMCQA-shaped rows (seed 0) as JSONL: enough for the demo recipes' default split sizes."""
    from fine_tune.data.synthetic import generate_rows, write_jsonl

    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(generate_rows(2200, seed=0), path)
    return path


@pytest.fixture(scope="session")
def qwen3_tokenizer(shared_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared_dir / "tokenizers" / "qwen3")


@pytest.fixture(scope="session")
def tiny_qwen3_model_dir(tmp_path_factory, shared_dir) -> Path:
    """A random-init tiny Qwen3 model with the real Qwen3 tokenizer and chat template, built once per session."""
    from fine_tune.models.tiny import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-qwen3"), tokenizer_source=shared_dir / "tokenizers" / "qwen3"
    )


@pytest.fixture(scope="module")
def single_torch_thread():
    """One torch thread for the module: tiny models gain nothing from more, and on 2 shared cores each op would wait
    for a busy peer thread (10x slower). Opt in with `pytestmark = pytest.mark.usefixtures("single_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_arch_dirs(tmp_path_factory, shared_dir) -> dict:
    """A random-init tiny stand-in of each architecture with its real chat template, built once per session.
    Mistral's template is not shipped by TRL: it is read from ../shared (so this fixture needs it)."""
    from fine_tune.models.tiny import ARCHITECTURES, build_tiny_model

    templates = {"mistral": shared_dir / "tokenizers" / "templates" / "mistralai__Mistral-7B-Instruct-v0.3.jinja"}
    return {
        arch: build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch=arch, chat_template=templates.get(arch))
        for arch in ARCHITECTURES
    }


@pytest.fixture
def network_guard(tmp_path_factory, monkeypatch) -> Path:
    """Refuse and record every outbound connection attempt (anything but 127.0.0.1), in this process and in the
    child processes it starts (tests/network_guard/sitecustomize.py on their PYTHONPATH). Yields the log file: empty
    when nothing tried."""
    import importlib.util
    import os

    site = REPO_ROOT / "tests" / "network_guard"
    spec = importlib.util.spec_from_file_location("network_guard_site", site / "sitecustomize.py")
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    log = tmp_path_factory.mktemp("network-guard") / "attempts.log"
    log.touch()
    monkeypatch.setenv(guard.LOG_ENV, str(log))
    path = [str(site), str(REPO_ROOT), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
    undo = guard.install(str(log))
    try:
        yield log
    finally:
        undo()


@pytest.fixture
def fake_hub(monkeypatch, tmp_path_factory):
    """A fake Hub on 127.0.0.1 (tests/fake_hub.py) that huggingface_hub talks to, here (its endpoint constants) and in
    child processes (HF_ENDPOINT); stopped after the test with no thread or port left."""
    import socket
    import threading

    from fake_hub import FakeHubServer
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    server = FakeHubServer()
    hub = server.start()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub-cache")))
    try:
        yield hub
    finally:
        server.stop()
        _http.close_session()  # its pooled connections point at the closed port
        assert not server.thread.is_alive()
        assert not [t for t in threading.enumerate() if "process_request" in t.name], "a handler thread is left"
        with pytest.raises(ConnectionRefusedError):  # the port is closed
            socket.create_connection(("127.0.0.1", int(hub.url.rsplit(":", 1)[1])), timeout=1).close()
