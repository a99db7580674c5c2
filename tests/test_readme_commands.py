"""Replays every command of the docs' bash blocks as a newcomer pastes it (README.md, docs/*.md and
eval_results/README.md, read at run time) up to argument parsing: the entry scripts run in-process in parse-only mode
(FINE_TUNE_PARSE_ONLY=1: the command line and recipe are read in full, then exit 0 before data, models or the Hub).
Each must parse within 5 s with no traceback; a flag, recipe, script, make target or file the docs name that does not
exist fails the test."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import re
import runpy
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fine_tune.cli import PARSE_ONLY_ENV
from fine_tune.errors import PipelineError

REPO = Path(__file__).resolve().parent.parent
BOUND_S = 5.0
PYTHONS = {"python", "python3", ".venv/bin/python", "$(PY)"}
# Tools outside this repository: named in the docs, not replayed.
EXTERNAL = {
    "pip",
    "git",
    "hf",
    "huggingface-cli",
    "trackio",
    "cd",
    "nvidia-smi",
    "ls",
    "cat",
    "trl",
    "vllm",
    "uv",
    "mutmut",
}
SHELL_SPLIT = {"&&", "||", ";", "|"}
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")  # <run_name>, <gpu family>: a stand-in value


def doc_files(root: Path = REPO) -> list[Path]:
    return [
        p
        for p in [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "eval_results" / "README.md"]
        if p.is_file()
    ]


@dataclass
class Command:
    where: str  # file:line
    text: str
    argv: list[str]
    env: dict[str, str]


def doc_commands(doc: Path, root: Path = REPO) -> list[Command]:
    """Each command line of the doc's bash/sh/shell blocks: continuation lines joined, comments dropped, `a && b`
    split, leading VAR=value assignments kept as the command's environment."""
    commands = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    in_block, pending, start = False, "", 0
    for number, line in enumerate(lines, 1):
        if line.strip().startswith("```"):
            in_block = not in_block and line.strip()[3:].strip() in ("bash", "sh", "shell", "console")
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = (pending + line).strip(), ""
        tokens = shlex.split(PLACEHOLDER.sub("PLACEHOLDER", text.removeprefix("$ ")), comments=True)
        where = f"{doc.relative_to(root)}:{start}"
        part: list[str] = []
        for token in [*tokens, "&&"]:
            if token in SHELL_SPLIT:
                if part:
                    env = {}
                    while part and re.match(r"^[A-Z_][A-Z0-9_]*=", part[0]):
                        key, _, value = part.pop(0).partition("=")
                        env[key] = value
                    if part:
                        commands.append(Command(where, text, part, env))
                part = []
            else:
                part.append(token)
    return commands


@functools.cache
def entry_main(target: str, module: bool):
    """The main(argv) of a script (by path) or module; loading it (its imports) is not part of the timed parse."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        if module:
            return importlib.import_module(target).main
        return runpy.run_path(str(REPO / target), run_name="replayed")["main"]


def call_entry(main, argv: list[str]) -> tuple[int, str]:
    """Run main(argv) in this process; (exit status, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
        except PipelineError as error:
            print(f"error: {error}", file=err)
            code = error.exit_code
    return int(code or 0), err.getvalue()


def replay(command: Command) -> str | None:
    """None when the command parses as written; else what is wrong, in one line."""
    argv = command.argv
    head = argv[0]
    if head in PYTHONS:
        if len(argv) > 2 and argv[1] == "-m":
            return run_python(argv[2], argv[3:], module=True)
        if len(argv) < 2:
            return "python without a script"
        return run_python(argv[1], argv[2:], module=False)
    if head == "accelerate" and argv[1:2] == ["launch"]:
        from accelerate.commands.launch import launch_command_parser

        try:
            with contextlib.redirect_stderr(io.StringIO()):
                launched = launch_command_parser().parse_args(argv[2:])
        except SystemExit:
            return "accelerate launch does not accept these options"
        if launched.config_file and not (REPO / launched.config_file).is_file():
            return f"no such file: {launched.config_file}"
        return run_python(launched.training_script, launched.training_script_args, module=False)
    if head == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
        missing = [t for t in argv[1:] if not t.startswith("-") and "=" not in t and t not in targets]
        return f"no make target {missing[0]!r}" if missing else None
    if head in ("bash", "sh"):
        return None if (REPO / argv[1]).is_file() else f"no such file: {argv[1]}"
    if head == "source":
        return None if argv[1].startswith(".venv/") or (REPO / argv[1]).is_file() else f"no such file: {argv[1]}"
    if head in EXTERNAL:
        return None
    return f"not a command this test knows how to replay: {head!r} (a typo, or add it to EXTERNAL)"


def run_python(target: str, argv: list[str], module: bool) -> str | None:
    if not module and not (REPO / target).is_file():
        return f"no such script: {target}"
    if module and importlib.util.find_spec(target) is None:
        return f"no such module: {target}"
    main = entry_main(target, module)
    started = time.monotonic()
    code, err = call_entry(main, argv)
    elapsed = time.monotonic() - started
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err:
        return "printed a traceback"
    if code != 0:
        return f"exit {code}: {lines[-1] if lines else '(nothing printed)'}"
    if elapsed > BOUND_S:
        return f"took {elapsed:.1f} s to parse (bound {BOUND_S:g} s)"
    return None


@pytest.fixture
def parse_only(monkeypatch):
    monkeypatch.setenv(PARSE_ONLY_ENV, "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(REPO)
    from fine_tune.recipes.loader import PHASE_SCHEMAS, schema_types

    for phase in PHASE_SCHEMAS:  # import the heavy schema modules once, outside the per-command bound
        schema_types(phase)


def problems(docs: list[Path], root: Path = REPO) -> list[str]:
    found = []
    for doc in docs:
        for command in doc_commands(doc, root):
            problem = replay(command)
            if problem:
                found.append(f"{command.where}: {command.text}\n    -> {problem}")
    return found


def tree_state() -> str:
    return subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
            "--",
            "outputs",
            "demo_artifacts",
            "eval_results",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_every_documented_command_parses_as_written(parse_only):
    docs = doc_files()
    assert any(doc_commands(doc) for doc in docs), "no bash blocks found in the docs"
    before = tree_state()
    found = problems(docs)
    assert not found, "documented commands that do not run as written:\n" + "\n".join(found)
    assert tree_state() == before, "a parse-only replay wrote files"


def test_a_doc_naming_a_missing_flag_file_script_or_target_fails(parse_only, tmp_path):
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "bad.md"
    doc.write_text(
        "```bash\n"
        "python scripts/train_medmcqa_sft.py --config configs/sft.yaml --lora_rank 8\n"
        "python scripts/eval_medmcqa.py --config configs/no-such-recipe.yaml\n"
        "python scripts/no_such_script.py\n"
        "make no-such-target\n"
        "python scripts/sweep.py configs/sweeps/mistral-7b-v0.3.yaml [--print_only]\n"
        "accelerate launch --config_file configs/accelerate/nope.yaml scripts/train_medmcqa_sft.py\n"
        "python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --dry_run\n"
        "python -m fine_tune.no_such_module --help\n"
        "python scripts/validate_dataset.py --dataset_name x.jsonl \\\n"
        "    --tokenizer Qwen/Qwen3-0.6B   # fine: parse only\n"
        "```\n"
    )
    found = problems(doc_files(tmp_path), tmp_path)
    assert [line.split(":")[1] for line in found] == ["2", "3", "4", "5", "6", "7", "8", "9"], "\n".join(found)
    assert "did you mean 'lora_r'" in found[0] and "no-such-recipe.yaml" in found[1]
