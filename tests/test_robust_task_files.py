"""Any task's local files read record by record: a bad record is refused alone, named by file and line, and counted
as an invalid source row by the report, the splits and the validator."""

import json
from pathlib import Path

import pytest
from test_normalise import EXPECTED, spec

from fine_tune.data.normalise import REASON_DESCRIPTIONS, REASONS, load_task
from fine_tune.data.reading import read_task_rows
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.data.task_splits import load_task_eval_rows, split_normalised
from fine_tune.errors import DatasetError
from fine_tune.task.spec import resolve_task

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
MEDQA = resolve_task("medqa")
MEDQA_LINES = (FIXTURES / "medqa.jsonl").read_bytes().splitlines()
MEDQA_VALID = EXPECTED["medqa"][1]


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def damaged_medqa(tmp_path: Path) -> Path:
    """The medqa fixture with a malformed line, a non-UTF-8 line, a bare array line and a truncated last line."""
    lines = list(MEDQA_LINES)
    lines.insert(3, b'{"question": "no closing brace"')
    lines.insert(6, b'{"question": "caf\xe9 au lait?", "options": {"A": "a"}, "answer_idx": "A"}')
    lines.insert(9, b'["an", "array"]')
    lines.append(MEDQA_LINES[0][:40])  # a write cut short
    return write_lines(tmp_path / "train.jsonl", lines)


def test_bad_lines_of_a_task_file_are_refused_alone_and_counted(tmp_path):
    normalised = load_task(MEDQA, "train", str(damaged_medqa(tmp_path)))
    report = normalised.report
    assert report.total == len(MEDQA_LINES) + 4 and report.valid == MEDQA_VALID
    n_rows = len(MEDQA_LINES)  # the readable rows come first, the refused records follow in file order
    assert report.invalid["malformed_line"] == [n_rows, n_rows + 2, n_rows + 3]
    assert report.invalid["not_utf8"] == [n_rows + 1]
    malformed = report.examples["malformed_line"]
    assert malformed[0].startswith("line 4 (not JSON") and malformed[1] == "line 10 (a JSON list, not an object)"
    assert malformed[2].startswith(f"line {len(MEDQA_LINES) + 4} (not JSON")
    assert report.examples["not_utf8"] == ["line 7 (byte 0xe9 at column 18 is not UTF-8)"]
    assert "malformed_line: 3 rows" in report.summary()
    assert normalised.dataset.num_rows == MEDQA_VALID


def test_refused_records_are_skipped_and_counted_by_the_split(tmp_path):
    normalised = load_task(MEDQA, "train", str(damaged_medqa(tmp_path)))
    sizes = {"sft": 8, "grpo": 2, "eval": 2}
    split = split_normalised(MEDQA, normalised, sizes, 7, source="damaged", stratify_by="subject")
    # a stratified split walks every source row: each dropped one is counted under its reason
    assert split.skipped == {
        "malformed_line": 3,
        "not_utf8": 1,
        "missing_question": 1,
        "missing_option": 1,
        "missing_answer": 1,
        "answer_not_in_options": 1,
    }
    assert sum(len(part) for part in split.splits.values()) == MEDQA_VALID


def test_the_eval_rows_count_refused_records_as_dropped(tmp_path):
    rows, report = load_task_eval_rows(MEDQA, source=str(damaged_medqa(tmp_path)), hub_split="train")
    assert len(rows) == MEDQA_VALID
    assert report.invalid_counts()["malformed_line"] == 3 and report.invalid_counts()["not_utf8"] == 1


def test_a_record_whose_type_clashes_with_its_column_is_refused_alone(tmp_path):
    task = resolve_task("medmcqa")
    rows = generate_rows(10, seed=3)
    rows[4] = {**rows[4], "cop": "B"}  # every other row has an integer answer
    rows[7] = {**rows[7], "question": ["a", "list"]}
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = load_task(task, "train", str(path)).report
    assert report.total == 10 and report.valid == 8
    assert report.examples["wrong_type"] == [
        "line 5 (cop is string, but number in the column's other rows)",
        "line 8 (question is list, but string in the column's other rows)",
    ]


def test_the_majority_type_wins_and_compatible_numbers_mix(tmp_path):
    rows = [{"q": f"Q{i}?", "a": "x", "b": "y", "c": "z", "y": 1} for i in range(5)]
    rows[1]["y"] = 2.0  # an integral float is an integer answer: int and float share one Arrow column
    rows[3]["y"] = True
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = read_task_rows(spec(), "train", str(path))
    assert [(r.where, r.reason) for r in loaded.refused] == [("line 4", "wrong_type")]
    assert loaded.dataset["y"] == [1, 2, 1, 1]


def copy_kormedmcqa(tmp_path: Path) -> Path:
    root = tmp_path / "kormedmcqa"
    for folder in (FIXTURES / "kormedmcqa").iterdir():
        (root / folder.name).mkdir(parents=True)
        for file in folder.iterdir():
            (root / folder.name / file.name).write_bytes(file.read_bytes())
    return root


def test_a_bad_line_in_one_config_folder_is_named_with_its_file(tmp_path):
    task = resolve_task("kormedmcqa")
    root = copy_kormedmcqa(tmp_path)
    nurse = root / "nurse" / "train.jsonl"
    lines = nurse.read_bytes().splitlines()
    write_lines(nurse, [lines[0], b"{oops", *lines[1:]])
    clean = load_task(task, "train", str(FIXTURES / "kormedmcqa")).report
    report = load_task(task, "train", str(root)).report
    assert report.total == clean.total + 1 and report.valid == clean.valid
    assert report.examples["malformed_line"][0].startswith("nurse/train.jsonl line 2 (not JSON")


def test_a_jsonl_starting_with_a_bare_array_line_refuses_that_line_only(tmp_path):
    rows = generate_rows(6, seed=1)
    path = write_lines(tmp_path / "rows.jsonl", [b'["not", "a", "row"]', *(json.dumps(r).encode() for r in rows)])
    report = load_task(resolve_task("medmcqa"), "train", str(path)).report
    assert (report.total, report.valid, report.examples["malformed_line"]) == (
        7,
        6,
        ["line 1 (a JSON list, not an object)"],
    )


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_a_json_array_is_read_whole_compact_or_pretty(tmp_path, suffix):
    rows = generate_rows(5, seed=2)
    compact = tmp_path / f"compact{suffix}"
    compact.write_text(json.dumps(rows))
    pretty = tmp_path / f"pretty{suffix}"
    pretty.write_text(json.dumps([*rows, 3], indent=2))
    assert load_task(resolve_task("medmcqa"), "train", str(compact)).report.valid == 5
    report = load_task(resolve_task("medmcqa"), "train", str(pretty)).report
    assert (report.total, report.valid, report.examples["malformed_line"]) == (
        6,
        5,
        ["record 5 (a JSON int, not an object)"],
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", r"empty\.jsonl: empty file \(no rows\)"),
        ("blank.jsonl", b"\n  \n", r"blank\.jsonl: empty file \(no rows\)"),
        ("empty.json", b"[]", r"empty\.json: an empty JSON array \(no rows\)"),
        ("cut.json", b'[\n{"q": "a"},\n{"q": "b"', r"cut\.json: not a valid JSON array \(Expecting"),
        ("bad.json", b'[\n{"q": "caf\xe9"}\n]', r"bad\.json: line 2, column 11: byte 0xe9 is not UTF-8"),
        ("one.json", b'{\n  "data": [],\n  "version": 1\n}', r"one\.json: one JSON object spanning 4 lines \(keys"),
        (
            "rows.csv",
            b"q,a,b,c,y\nQ?,x,y,z,0\nQ?,caf\xe9,y,z,1\n",
            r"rows\.csv: line 3, column 7: byte 0xe9 is not UTF-8",
        ),
        ("rows.txt", b"q\n", r"unsupported file type '\.txt'"),
    ],
)
def test_a_file_that_cannot_be_read_at_all_is_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_task(spec(), "train", str(path))


def test_every_refusal_reason_is_described_and_ordered_first():
    assert REASONS[:2] == ("malformed_line", "not_utf8")
    assert set(REASONS) <= set(REASON_DESCRIPTIONS)


def test_a_file_of_only_bad_records_is_reported_not_raised(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [b"{oops", b"[1]"])
    normalised = load_task(spec(), "train", str(path))
    assert (normalised.report.total, normalised.report.valid) == (2, 0)
    with pytest.raises(DatasetError, match=r"only 0 of 2 rows are usable.*malformed_line: 2 rows \(e\.g\. line 1"):
        normalised.report.require_usable(1)


def test_csv_and_parquet_task_files_are_read_by_the_same_reader(tmp_path):
    import datasets

    rows = [{"q": f"Q{i}?", "a": "x", "b": "y", "c": "z", "y": i % 3} for i in range(6)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "train.parquet"))
    write_jsonl(rows, tmp_path / "rows.jsonl")
    (tmp_path / "rows.csv").write_text("q,a,b,c,y\n" + "".join(f"Q{i}?,x,y,z,{i % 3}\n" for i in range(6)))
    for source in (tmp_path, tmp_path / "rows.jsonl", tmp_path / "rows.csv"):
        assert load_task(spec(), "train", str(source)).report.valid == 6


def test_type_clashes_are_found_at_any_depth():
    from fine_tune.data.records import type_clashes

    values = [{"A": "x"}, {"A": "y", "B": None}, {"A": 1}, ["x"], {"A": "z", "C": [1, "a"]}, None]
    assert type_clashes("options", values) == [
        (2, "options.A is number, but string in the column's other rows"),
        (3, "options is list, but object in the column's other rows"),
        (4, "options.C[] mixes number and string"),
    ]
    assert type_clashes("y", [1, 2.5, 2**63, None, False]) == [
        (2, "y is an integer beyond 64 bits, but number in the column's other rows"),
        (4, "y is boolean, but number in the column's other rows"),
    ]


def test_a_config_of_only_bad_records_adds_none_and_is_counted(tmp_path):
    task = resolve_task("kormedmcqa")
    root = copy_kormedmcqa(tmp_path)
    nurse = root / "nurse" / "train.jsonl"
    n_nurse = len(nurse.read_bytes().splitlines())
    nurse.write_bytes(b"{oops\n")
    clean = load_task(task, "train", str(FIXTURES / "kormedmcqa")).report
    report = load_task(task, "train", str(root)).report
    assert report.total == clean.total - n_nurse + 1
    assert report.examples["malformed_line"] == [
        "nurse/train.jsonl line 1 (not JSON: Expecting property name enclosed in double quotes)"
    ]
