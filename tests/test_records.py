"""Bad files judged record by record: malformed and non-UTF-8 lines, float/missing/string `cop`, empty files,
conflicting answers (issue [robust] points 2-7)."""

import json
import logging
from pathlib import Path

import datasets
import pandas as pd
import pytest
from fine_tune.data.validation import validate_rows

from fine_tune.data.loading import read_medmcqa
from fine_tune.data.records import judge_cop
from fine_tune.data.splits import load_split, split_dataset
from fine_tune.errors import DatasetError


def make_row(i: int, **overrides) -> dict:
    row = {"id": f"q{i}", "question": f"Question {i}?", "opa": f"a{i}", "opb": f"b{i}", "opc": f"c{i}", "opd": f"d{i}"}
    return {**row, "cop": i % 4, **overrides}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def dumps(row: dict) -> bytes:
    return json.dumps(row).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, (2, None)), (2.0, (2, None)), (float("nan"), (None, None)), (None, (None, None)), (-1, (-1, None))],
)
def test_judge_cop_accepts_integers_and_integral_floats(value, expected):
    assert judge_cop(value) == expected


@pytest.mark.parametrize("value", ["2", 2.5, True, [2]])
def test_judge_cop_refuses_other_types_in_typed_formats(value):
    cop, problem = judge_cop(value)
    assert cop is None and "cop" in problem


def test_judge_cop_reads_csv_text():
    assert judge_cop("2", text=True) == (2, None)
    assert judge_cop(" ", text=True) == (None, None)
    assert judge_cop("B", text=True)[1] is not None


def test_malformed_lines_are_refused_alone_with_their_line_numbers(tmp_path):
    lines = [dumps(make_row(i)) for i in range(6)]
    lines[1] = b'{"id": "q1", "question": "truncated'
    lines[3] = b"[1, 2, 3]"
    path = write_lines(tmp_path / "rows.jsonl", lines)
    loaded = read_medmcqa(str(path))
    assert loaded.dataset["id"] == ["q0", "q2", "q4", "q5"]
    assert [(r.where, r.reason) for r in loaded.refused] == [
        ("line 2", "malformed_line"),
        ("line 4", "malformed_line"),
    ]
    report = validate_rows(loaded.dataset, refused=loaded.refused)
    assert (report.total, report.valid) == (6, 4)
    assert report.invalid_counts() == {"malformed_line": 2}
    assert report.examples["malformed_line"][0].startswith("line 2 (not JSON")


def test_non_utf8_byte_names_line_and_byte(tmp_path):
    lines = [dumps(make_row(i)) for i in range(4)]
    lines[2] = lines[2].replace(b"Question", b"Qu\xffestion")
    path = write_lines(tmp_path / "rows.jsonl", lines)
    loaded = read_medmcqa(str(path))
    assert len(loaded.dataset) == 3
    (refused,) = loaded.refused
    assert refused.reason == "not_utf8"
    assert refused.where == "line 3"
    assert "byte 0xff at column" in refused.detail


def test_non_utf8_csv_is_refused_naming_file_line_and_byte(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame([make_row(i) for i in range(3)]).to_csv(path, index=False)
    data = path.read_bytes().replace(b"Question 1", b"Question \xe9 1")
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=r"rows\.csv: line 3, column \d+: byte 0xe9 is not UTF-8"):
        read_medmcqa(str(path))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_pandas_float_cop_column_is_judged_row_by_row(tmp_path, suffix):
    frame = pd.DataFrame([make_row(i) for i in range(8)])
    frame.loc[3, "cop"] = None  # pandas makes the whole column float64
    assert frame["cop"].dtype == "float64"
    path = tmp_path / f"rows{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    loaded = read_medmcqa(str(path))
    assert loaded.dataset.features["cop"] == datasets.Value("int64")
    assert loaded.dataset["cop"] == [0, 1, 2, None, 0, 1, 2, 3]
    report = validate_rows(loaded.dataset, refused=loaded.refused)
    assert report.invalid_counts() == {"cop_out_of_range": 1}
    assert report.examples["cop_out_of_range"] == ["q3"]


def test_jsonl_float_cop_is_the_integer_and_string_cop_is_refused_and_counted(tmp_path):
    lines = [dumps(make_row(0, cop=2.0)), dumps(make_row(1, cop="2")), dumps(make_row(2)), dumps(make_row(3, cop=2.5))]
    path = write_lines(tmp_path / "rows.jsonl", lines)
    loaded = read_medmcqa(str(path))
    assert loaded.dataset["id"] == ["q0", "q2"]
    assert loaded.dataset["cop"] == [2, 2]
    report = validate_rows(loaded.dataset, refused=loaded.refused)
    assert report.invalid_counts() == {"wrong_type": 2}
    assert report.examples["wrong_type"][0].startswith("line 2, id q1 (cop is a str ('2')")


def test_parquet_string_cop_column_is_refused_per_row(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame([make_row(i, cop=str(i % 4)) for i in range(3)]).to_parquet(path)
    loaded = read_medmcqa(str(path))
    assert len(loaded.dataset) == 0
    assert [r.reason for r in loaded.refused] == ["wrong_type"] * 3


@pytest.mark.parametrize(("name", "content"), [("rows.jsonl", b""), ("rows.jsonl", b"\n  \n"), ("rows.csv", b"")])
def test_empty_file_says_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="empty file"):
        read_medmcqa(str(path))


def test_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([make_row(0), make_row(1, cop="1"), 7]))
    loaded = read_medmcqa(str(path))
    assert loaded.dataset["id"] == ["q0"]
    assert [(r.where, r.reason) for r in loaded.refused] == [
        ("record 1, id q1", "wrong_type"),
        ("record 2", "malformed_line"),
    ]


def conflicting_rows() -> list[dict]:
    rows = [make_row(i) for i in range(40)]
    rows.append(make_row(5, id="q5-again", cop=(5 + 1) % 4))  # same content as q5, another answer
    rows.append(make_row(7, id="q7-again"))  # same content and answer as q7: a plain duplicate
    return rows


def test_conflicting_answers_name_the_ids_and_keep_both_out():
    dataset = datasets.Dataset.from_list(conflicting_rows())
    report = validate_rows(dataset)
    assert report.conflicts == [{"ids": ["q5", "q5-again"], "answers": ["B", "C"]}]
    assert report.invalid["conflicting_answer"] == [5, 40]
    assert 5 not in report.valid_indices and 40 not in report.valid_indices
    result = split_dataset(dataset, {"sft": 30, "grpo": 5, "eval": 4}, seed=0)
    used = [i for part in result.manifest["splits"].values() for i in part["source_indices"]]
    assert 5 not in used and 40 not in used
    assert result.skipped["conflicting_answer"] == 2
    assert result.skipped["duplicate_content"] == 1


def test_load_split_counts_refused_records_and_names_conflicts(tmp_path, caplog):
    lines = [dumps(row) for row in conflicting_rows()] + [b"{oops"]
    path = write_lines(tmp_path / "rows.jsonl", lines)
    with caplog.at_level(logging.INFO):
        rows, _ = load_split(str(path), "sft", sizes={"sft": 30, "grpo": 5, "eval": 4}, seed=0)
    assert len(rows) == 30
    assert "43 rows, 3 invalid (malformed_line: 1, conflicting_answer: 2)" in caplog.text
    assert "q5 (B), q5-again (C)" in caplog.text
    assert "line 43 (not JSON" in caplog.text


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(dumps(make_row(i, extra=1)) for i in range(3)) + b"\r\n")
    loaded = read_medmcqa(str(path))
    assert loaded.dataset["id"] == ["q0", "q1", "q2"] and loaded.refused == []


def test_a_missing_required_column_is_named(tmp_path):
    rows = [{k: v for k, v in make_row(i).items() if k != "opc"} for i in range(3)]
    path = write_lines(tmp_path / "rows.jsonl", [dumps(row) for row in rows])
    with pytest.raises(DatasetError, match="missing MedMCQA column"):
        read_medmcqa(str(path))
