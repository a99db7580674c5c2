"""Every figure of time, memory or speed in README, PLAN and docs/ names what reproduces it or the code that holds it.

A figure's block is its paragraph, list or table (with the paragraph just before a table and the code blocks around
it); in docs/measurements.md it is the dated section. The block must name a script, benchmark, test, make target or
python command, link docs/measurements.md (where the figure's command is), or name the code that holds a set value
or causes a library's behaviour (a Python file's path, or in backticks a name defined in fine_tune/ or benchmarks/).
"""

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "PLAN.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
UNIT = r"ms|s|min|minutes|h|hours|KiB|MiB|GiB|KB|MB|GB|tokens/s|/s|s/step|×"
FIGURE = re.compile(rf"(?<![\w.$-])\d[\d,]*(?:\.\d+)?(?: ?(?:{UNIT}))(?![\w/^])")
SOURCE = re.compile(
    r"(?:scripts|benchmarks)/[\w/]+\.py|tests/test_\w+\.py|\btest_\w+|\bmake \w+|measurements\.md|"
    r"\bpython3? (?:-m )?[\w/.-]+|\b\w+(?:/\w+)+\.py\b"
)
CODE_NAME = re.compile(r"`([A-Za-z_][\w.]*)`")
FENCE = re.compile(r"```.*?```", re.S)


def defined_names() -> set[str]:
    names = set()
    for path in [*REPO_ROOT.joinpath("fine_tune").rglob("*.py"), *REPO_ROOT.joinpath("benchmarks").rglob("*.py")]:
        names.update(re.findall(r"^\s*(?:def |class )?([A-Za-z_]\w*)\s*(?:[:=(]|\s*:)", path.read_text(), re.M))
    return names


def blocks(text: str, by_section: bool) -> list[str]:
    if by_section:
        return re.split(r"\n(?=## )", text)
    parts = re.split(r"\n[ \t]*\n(?![ \t]*```)(?<!```\n)", text)
    merged: list[str] = []
    for part in parts:
        starts_table = part.lstrip().startswith("|") and not (merged and merged[-1].lstrip().startswith("|"))
        if merged and (part.lstrip().startswith("```") or starts_table):
            merged[-1] += "\n\n" + part
        else:
            merged.append(part)
    return merged


def unsourced(path: Path, names: set[str]) -> list[str]:
    text = path.read_text()
    found = []
    for block in blocks(text, path.name == "measurements.md"):
        figures = FIGURE.findall(FENCE.sub("", block))
        if not figures or SOURCE.search(block):
            continue
        if any(name.split(".")[-1] in names for name in CODE_NAME.findall(block)):
            continue
        first_line = next(line for line in block.strip().splitlines() if FIGURE.search(line))
        found.append(f"{path.name}: {', '.join(figures[:4])} in {first_line.strip()[:120]!r}")
    return found


def test_every_figure_in_the_docs_names_its_source():
    names = defined_names()
    missing = [line for path in DOCS for line in unsourced(path, names)]
    assert not missing, "figures without a script, test or code that reproduces them:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("The SFT step takes 3.5 s on a T4.\n", True),
        ("Peak memory 9.7 GiB, measured by `python benchmarks/memory_check.py`.\n", False),
        ("Setup is 600 s (`SETUP_SECONDS`).\n", False),
        ("Setup is 600 s (`NOT_A_NAME_ANYWHERE`).\n", True),
        ("A step takes 3 s in `estimate.py`.\n", True),
        ("A step takes 3 s (`fine_tune/hub/jobs/estimate.py`).\n", False),
        ("| phase | time |\n|---|---|\n| sft | 37 s |\n", True),
        ("Timings by `make benchmark`:\n\n| phase | time |\n|---|---|\n| sft | 37 s |\n", False),
        ("Between 2 and 8 rows, 95% intervals, r 16.\n", False),
        ("It took 36 s:\n\n```bash\npython scripts/measure_figures.py parser\n```\n", False),
    ],
)
def test_the_check_flags_a_figure_without_a_source(tmp_path, text, flagged):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n" + text)
    assert bool(unsourced(doc, {"SETUP_SECONDS"})) == flagged
