"""The fault matrix: every lifecycle step (tests/fault_steps.py) against every fault of the fake Hub
(tests/fake_hub.py), through the endpoint constants / HF_ENDPOINT. Each cell asserts the step ends within BOUND_S (the
Hub read timeout is 1 s here), its outcome and exit code, one `error:` line when it fails, and that nothing is lost.
docs/faults.md's table is this parametrisation (a test checks it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import FAULTS
from fault_steps import CHECKPOINT, LINEAGE, MANIFEST, SFT_REPO, STEPS, saved_output

import fine_tune.recipes.trainer_configs  # noqa: F401 (the submitter reads its recipe here, not in a child)
from fine_tune.constants import MODEL_CARD_FILE, SPLIT_MANIFEST_FILE

REPO = Path(__file__).resolve().parent.parent
BOUND_S = 8.0  # each cell, with a 1 s read timeout: a hang costs one timeout, then huggingface_hub's 1 s backoff
RETRY_AFTER_S = 1
RECOVERS, FAILS, DEGRADES = "recovers", "fails: one line, exit 2", "goes on without it"
# (step, fault) -> outcome, for a fault met once (the next request is answered): the table of docs/faults.md
EXPECTED = {
    **{(step, fault): RECOVERS for step in STEPS for fault in ("slow", "500", "429", "hang")},
    ("submit", "500"): FAILS,  # a 5xx is not retried: POST /api/jobs is not idempotent
    ("submit", "hang"): FAILS,  # no answer: the job may exist, so it is not sent again
    ("submit", "reset"): FAILS,
    ("follow", "reset"): RECOVERS,
    ("download", "reset"): FAILS,
    ("resume", "reset"): FAILS,
    ("push", "reset"): RECOVERS,
    ("eval", "reset"): DEGRADES,  # the lineage is unread (logged): the split check says unverified
    **{(step, "truncate"): RECOVERS for step in ("download", "resume", "eval")},  # the download resumes (Range)
}
NOTES = {
    "submit": "429: sent again after Retry-After (at most 3 times); 5xx: nothing submitted; no answer: "
    "`hf jobs ps` first, the job may exist",
    "follow": "a failed log stream is one line, then the job's end is polled",
    "download": "the job stops before the eval: run it again",
    "resume": "no partial checkpoint is left; run again: it continues from the last complete checkpoint",
    "push": "huggingface_hub retries each commit (Retry-After honoured); a failed push keeps the output and prints "
    "`python -m fine_tune.hub.publish OUTPUT REPO`",
    "eval": "an unreadable lineage is logged; the model's own load then reports a failure (exit 1)",
}


@pytest.fixture
def hub(fake_hub, monkeypatch, network_guard):
    """The fake Hub with small bounds: 1 s reads, 1 s connects, 0.05 s polls; huggingface_hub's 120 s log keep-alive
    read cut to 1 s. The network guard fails any call that would leave 127.0.0.1."""
    from huggingface_hub import HfApi, constants

    from fine_tune import hub_access
    from fine_tune.evaluate import scored_models
    from fine_tune.hub.jobs import submit

    monkeypatch.setenv("HF_TOKEN", "hf_FAKEtokenVALUE0123456789abcdef")
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr(hub_access, "HUB_READ_TIMEOUT_S", 1.0)
    monkeypatch.setattr(submit, "WAIT_POLL_S", 0.05)
    scored_models._reachable.cache_clear()
    stream = HfApi._stream_sse_events
    monkeypatch.setattr(HfApi, "_stream_sse_events", lambda self, **kw: stream(self, **{**kw, "timeout": 1}))
    hub_access.bound_hub_calls(connect=1.0, read=1.0)
    yield fake_hub
    hub_access.bound_hub_calls()
    assert network_guard.read_text() == ""


def check_result(step: str, hub, tmp: Path, result) -> None:
    """What a successful step must have produced, intact."""
    if step == "submit":
        assert len(hub.jobs) == 1, "submitted exactly once"
    elif step == "follow":
        assert result.value == "COMPLETED"
    elif step == "download":
        assert result.value == MANIFEST
    elif step == "resume":
        assert Path(result.value) == tmp / "out" / "checkpoint-4"
        for path, data in CHECKPOINT.items():
            assert (Path(result.value) / Path(path).name).read_bytes() == data
    elif step == "push":
        files = hub.repos[SFT_REPO]
        assert files["model.safetensors"] == b"weights of merged" and files[SPLIT_MANIFEST_FILE] == MANIFEST
        assert files["adapter/adapter_model.safetensors"] == b"weights of adapter" and MODEL_CARD_FILE in files
    elif step == "eval":
        assert result.value["phase"] == "sft" and LINEAGE.startswith(b'{"phase": "sft"')


def nothing_lost_and_redo(step: str, hub, tmp: Path) -> None:
    """After a failure: the local state is intact, and the same step, run again once the Hub answers, completes."""
    if step == "resume":
        assert not [p for p in (tmp / "out").glob("checkpoint-*")], "no partial checkpoint left behind"
    if step == "push":
        assert (saved_output(tmp) / "merged" / "model.safetensors").read_bytes() == b"weights of merged"
    hub.heal()
    again = STEPS[step].run(hub, tmp)
    assert again.code == 0
    check_result(step, hub, tmp, again)


CELLS = sorted(EXPECTED)


@pytest.mark.parametrize(("step", "fault"), CELLS, ids=[f"{s}-{f}" for s, f in CELLS])
def test_a_fault_met_once(hub, tmp_path, step, fault):
    hub.fail(STEPS[step].endpoint, fault, times=1, retry_after=RETRY_AFTER_S, delay=0.3)
    result = STEPS[step].run(hub, tmp_path)
    expected = EXPECTED[(step, fault)]
    assert result.seconds < BOUND_S + (RETRY_AFTER_S + 1 if fault == "429" else 0)
    errors = [line for line in result.lines if line.startswith("error:")]
    if expected == FAILS:
        assert result.code == 2 and len(errors) == 1, result.lines
        assert "Traceback" not in "\n".join(result.lines)
        nothing_lost_and_redo(step, hub, tmp_path)
        return
    assert result.code == 0 and errors == [], result.lines
    if expected == DEGRADES:
        assert result.value is None
        return
    check_result(step, hub, tmp_path, result)
    hits = hub.seen(STEPS[step].endpoint)
    if fault == "429" and step in ("submit", "push"):  # those retries wait as the server asked
        assert hits[1] - hits[0] >= RETRY_AFTER_S, "sent again before Retry-After"


@pytest.mark.parametrize("step", ["download", "resume", "push", "submit"])
def test_a_hub_that_keeps_failing_ends_in_one_line_within_its_bound(hub, tmp_path, step, monkeypatch):
    """Every request of the step's endpoint answers 500 (huggingface_hub's backoff sleeps are recorded, not slept)."""
    import time
    from types import SimpleNamespace

    from huggingface_hub.utils import _http

    slept: list[float] = []  # huggingface_hub's own backoff sleeps only (its module's `time`)
    clock = SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    clock.sleep = slept.append
    monkeypatch.setattr(_http, "time", clock)
    hub.fail(STEPS[step].endpoint, "500", times=None)
    result = STEPS[step].run(hub, tmp_path)
    errors = [line for line in result.lines if line.startswith("error:")]
    assert result.code == 2 and len(errors) == 1, result.lines
    assert result.seconds + sum(slept) < 60, "ends within huggingface_hub's retry schedule (1+2+4+8+8 s) + reads"
    nothing_lost_and_redo(step, hub, tmp_path)


def table() -> str:
    faults = [fault for fault in FAULTS if any((step, fault) in EXPECTED for step in STEPS)]
    rows = ["| step | " + " | ".join(faults) + " | notes |", "|" + "---|" * (len(faults) + 2)]
    for name, step in STEPS.items():
        cells = [EXPECTED.get((name, fault), "n/a") for fault in faults]
        rows.append(f"| {name}: {step.what} | " + " | ".join(cells) + f" | {NOTES[name]} |")
    return "\n".join(rows)


def test_the_docs_table_is_this_matrix():
    assert table() in (REPO / "docs" / "faults.md").read_text(), "regenerate it: test_faults.table()"
