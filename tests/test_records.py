"""Bad files judged record by record (`fine_tune.data.records`, through the one reader and normaliser): malformed and
non-UTF-8 lines, float/missing/string answers, empty files, arrays (issue [robust] points 2-7)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fine_tune.data.normalise import load_task
from fine_tune.errors import DatasetError
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")


def make_row(i: int, **overrides) -> dict:
    row = {"id": f"q{i}", "question": f"Question {i}?", "opa": f"a{i}", "opb": f"b{i}", "opc": f"c{i}", "opd": f"d{i}"}
    return {**row, "cop": i % 4, **overrides}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def dumps(row: dict) -> bytes:
    return json.dumps(row).encode()


def load(path: Path):
    return load_task(MEDMCQA, "train", str(path))


def test_malformed_lines_are_refused_alone_with_their_line_numbers(tmp_path):
    lines = [dumps(make_row(i)) for i in range(6)]
    lines[1] = b'{"id": "q1", "question": "truncated'
    lines[3] = b"[1, 2, 3]"
    normalised = load(write_lines(tmp_path / "rows.jsonl", lines))
    assert normalised.dataset["id"] == ["q0", "q2", "q4", "q5"]
    report = normalised.report
    assert (report.total, report.valid) == (6, 4)
    assert report.invalid_counts() == {"malformed_line": 2}
    assert report.examples["malformed_line"] == [
        "line 2 (not JSON: Unterminated string starting at)",
        "line 4 (a JSON list, not an object)",
    ]


def test_non_utf8_byte_names_line_and_byte(tmp_path):
    lines = [dumps(make_row(i)) for i in range(4)]
    lines[2] = lines[2].replace(b"Question", b"Qu\xffestion")
    report = load(write_lines(tmp_path / "rows.jsonl", lines)).report
    assert (report.valid, report.invalid_counts()) == (3, {"not_utf8": 1})
    (example,) = report.examples["not_utf8"]
    assert example.startswith("line 3 (byte 0xff at column")


def test_non_utf8_csv_is_refused_naming_file_line_and_byte(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame([make_row(i) for i in range(3)]).to_csv(path, index=False)
    path.write_bytes(path.read_bytes().replace(b"Question 1", b"Question \xe9 1"))
    with pytest.raises(DatasetError, match=r"rows\.csv: line 3, column \d+: byte 0xe9 is not UTF-8"):
        load(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_pandas_float_answer_column_is_judged_row_by_row(tmp_path, suffix):
    frame = pd.DataFrame([make_row(i) for i in range(8)])
    frame.loc[3, "cop"] = None  # pandas makes the whole column float64
    assert frame["cop"].dtype == "float64"
    path = tmp_path / f"rows{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    normalised = load(path)
    assert normalised.dataset["answer"] == [0, 1, 2, 0, 1, 2, 3]
    assert normalised.report.invalid_counts() == {"missing_answer": 1}
    assert normalised.report.examples["missing_answer"] == ["q3"]


def test_a_csv_answer_column_with_a_text_cell_reads_the_others_as_integers(tmp_path):
    frame = pd.DataFrame([make_row(i) for i in range(4)])
    frame["cop"] = frame["cop"].astype(object)
    frame.loc[2, "cop"] = "B"  # pandas reads the whole column back as text
    frame.to_csv(tmp_path / "rows.csv", index=False)
    normalised = load(tmp_path / "rows.csv")
    assert normalised.dataset["answer"] == [0, 1, 3]
    assert normalised.report.invalid_counts() == {"wrong_type": 1} and normalised.report.examples["wrong_type"] == [
        "q2"
    ]


def test_jsonl_float_answer_is_the_integer_and_string_answer_is_refused_and_counted(tmp_path):
    lines = [dumps(make_row(0, cop=2.0)), dumps(make_row(1, cop="2")), dumps(make_row(2)), dumps(make_row(3, cop=2.5))]
    normalised = load(write_lines(tmp_path / "rows.jsonl", lines))
    assert normalised.dataset["id"] == ["q0", "q2"] and normalised.dataset["answer"] == [2, 2]
    assert normalised.report.invalid_counts() == {"wrong_type": 2}
    assert normalised.report.examples["wrong_type"] == [
        "q3",
        "line 2 (cop is string, but number in the column's other rows)",
    ]


def test_parquet_string_answer_column_is_refused_per_row(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame([make_row(i, cop=str(i % 4)) for i in range(3)]).to_parquet(path)
    report = load(path).report
    assert (report.valid, report.invalid_counts()) == (0, {"wrong_type": 3})


@pytest.mark.parametrize(("name", "content"), [("rows.jsonl", b""), ("rows.jsonl", b"\n  \n"), ("rows.csv", b"")])
def test_empty_file_says_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="empty file"):
        load(path)


def test_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([make_row(0), make_row(1, cop="1"), 7]))
    normalised = load(path)
    assert normalised.dataset["id"] == ["q0"]
    assert normalised.report.examples == {
        "wrong_type": ["record 1 (cop is string, but number in the column's other rows)"],
        "malformed_line": ["record 2 (a JSON int, not an object)"],
    }


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(dumps(make_row(i, extra=1)) for i in range(3)) + b"\r\n")
    normalised = load(path)
    assert normalised.dataset["id"] == ["q0", "q1", "q2"] and normalised.report.n_invalid == 0


def test_a_missing_required_column_is_named(tmp_path):
    rows = [{k: v for k, v in make_row(i).items() if k != "opc"} for i in range(3)]
    path = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    with pytest.raises(DatasetError, match=r"task medmcqa: column\(s\) opc not in the data"):
        load(path)
