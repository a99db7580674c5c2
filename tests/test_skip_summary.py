"""The run's summary says how many tests ran with ../shared and why tests skipped (tests/conftest.py)."""

from pathlib import Path
from types import SimpleNamespace

from conftest import shared_summary

pytest_plugins = ["pytester"]


def report(nodeid, when="call", skipped=False, reason=None):
    longrepr = (f"/x/{nodeid}.py", 1, f"Skipped: {reason}") if skipped else None
    return SimpleNamespace(nodeid=nodeid, when=when, skipped=skipped, longrepr=longrepr)


ABSENT = "../shared is absent: real MedMCQA rows and the Qwen3 tokenizer are not available"


def test_the_summary_counts_shared_runs_and_groups_skips_by_reason():
    stats = {
        "passed": [report("real_a"), report("real_a", when="setup"), report("plain")],
        "failed": [report("real_b")],
        "skipped": [
            report("real_c", when="setup", skipped=True, reason=ABSENT),
            report("real_d", when="setup", skipped=True, reason=ABSENT),
            report("cuda", when="setup", skipped=True, reason="needs CUDA"),
        ],
    }
    lines = shared_summary(stats, {"real_a", "real_b", "real_c", "real_d"})
    assert lines == [
        "../shared (real templates and data): 2 tests ran with it, 2 skipped; 3 skipped in all",
        f"  2 skipped: {ABSENT}",
        "  1 skipped: needs CUDA",
    ]


def test_the_summary_is_printed_at_the_end_of_a_run(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())  # ../shared is absent there
    pytester.makepyfile(
        test_x="""
        import pytest

        def test_uses(shared_dir):
            pass

        def test_plain():
            pytest.skip("not today")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*tests needing ../shared*",
            "../shared (real templates and data): 0 tests ran with it, 1 skipped; 2 skipped in all",
            f"  1 skipped: {ABSENT}",
            "  1 skipped: not today",
        ]
    )
