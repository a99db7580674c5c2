import json
from pathlib import Path

import datasets
import pytest

from fine_tune.data.normalise import (
    CANONICAL_COLUMNS,
    REASONS,
    content_hash,
    load_task,
    normalise_dataset,
    normalise_row,
    select_source_columns,
)
from fine_tune.data.reading import read_task_rows
from fine_tune.errors import DatasetError, RecipeError
from fine_tune.task.spec import DEFAULT_TASK, available_tasks, parse_task_spec, resolve_task

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
PRESETS = ("medmcqa", "medqa", "medqa5", "kormedmcqa", "mmlu_medical", "headqa", "pubmedqa")
# per preset: (letters, valid rows, {reason: rows}) of its fixture's train split
EXPECTED = {
    "medmcqa": ("ABCD", 13, {"missing_question": 1, "missing_option": 1, "answer_out_of_range": 2}),
    "medqa": (
        "ABCD",
        12,
        {"missing_question": 1, "missing_option": 1, "missing_answer": 1, "answer_not_in_options": 1},
    ),
    "medqa5": ("ABCDE", 12, {"missing_option": 1, "option_count": 1, "answer_not_in_options": 1}),
    "kormedmcqa": ("ABCDE", 16, {"missing_option": 1, "missing_answer": 1, "answer_out_of_range": 2}),
    "mmlu_medical": ("ABCD", 12, {"missing_option": 1, "option_count": 1, "answer_out_of_range": 1}),
    "headqa": ("ABCDE", 12, {"missing_question": 1, "option_count": 1, "answer_not_in_options": 1, "needs_image": 1}),
    "pubmedqa": ("ABC", 12, {"missing_answer": 1, "answer_not_in_options": 1, "missing_context": 1}),
}


def fixture(name: str) -> str:
    folder = FIXTURES / name
    return str(folder if folder.is_dir() else FIXTURES / f"{name}.jsonl")


def spec(**overrides):
    values = {
        "name": "toy",
        "dataset_path": "owner/toy",
        "fields": {
            "question": "q",
            "options": {"columns": ["a", "b", "c"]},
            "answer": {"field": "y", "encoding": "index0"},
        },
    }
    values.update(overrides)
    return parse_task_spec(values)


def test_presets_are_the_seven_and_default_is_medmcqa():
    assert set(PRESETS) <= set(available_tasks())
    assert resolve_task(None).name == DEFAULT_TASK == "medmcqa"


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_normalises_its_fixture_with_named_reasons(name):
    letters, valid, reasons = EXPECTED[name]
    task = resolve_task(name)
    normalised = load_task(task, "train", fixture(name))
    report = normalised.report
    assert task.letters == tuple(letters)
    assert report.valid == valid == len(normalised.dataset)
    assert {reason: len(rows) for reason, rows in report.invalid.items()} == reasons
    assert report.total == valid + sum(reasons.values())  # every row counted: no silent drop
    assert normalised.dataset.column_names == list(CANONICAL_COLUMNS)
    for row in normalised.dataset:
        assert task.min_options <= len(row["options"]) <= len(task.letters)
        assert 0 <= row["answer"] < len(row["options"])
        assert all(option.strip() for option in row["options"])
        assert (row["context"] is not None) == (task.context is not None)
    assert report.to_dict()["letters"] == list(letters)


def test_medmcqa_preset_maps_the_real_columns(shared_dir):
    rows = [json.loads(line) for line in (shared_dir / "data/medmcqa/validation.jsonl").open()][:300]
    normalised = normalise_dataset(resolve_task("medmcqa"), rows)
    first = normalised.dataset[0]
    source = rows[normalised.source_indices[0]]
    assert first["options"] == [source[c] for c in ("opa", "opb", "opc", "opd")]
    assert first["answer"] == source["cop"] and first["subject"] == source["subject_name"]
    assert first["id"] == source["id"] and first["exp"] == source["exp"]
    assert normalised.source_indices == list(range(300)) and normalised.report.flags["duplicate_options"]


def test_unlabeled_medmcqa_test_rows_are_refused_by_name(shared_dir):
    rows = [
        json.loads(line)
        for _, line in zip(range(50), (shared_dir / "data/medmcqa/test_unlabeled.jsonl").open(), strict=False)
    ]
    report = normalise_dataset(resolve_task("medmcqa"), rows).report
    assert report.valid == 0 and set(report.invalid) == {"answer_out_of_range"}


def test_kormedmcqa_reads_one_folder_per_config_and_keeps_answers_one_based():
    task = resolve_task("kormedmcqa")
    raw = read_task_rows(task, "train", fixture("kormedmcqa")).dataset
    assert set(raw["__config__"]) == {"doctor", "nurse", "pharm", "dentist"}
    normalised = load_task(task, "train", fixture("kormedmcqa"))
    source = raw[normalised.source_indices[0]]
    assert normalised.dataset[0]["answer"] == source["answer"] - 1
    test_rows = load_task(task, "test", fixture("kormedmcqa"))
    assert test_rows.report.valid == 8


def test_pubmedqa_context_joins_the_abstract_and_options_are_fixed():
    normalised = load_task(resolve_task("pubmedqa"), "train", fixture("pubmedqa"))
    row = normalised.dataset[0]
    assert row["options"] == ["yes", "no", "maybe"]
    assert row["context"].count("\n") == 1 and row["context"].startswith("BACKGROUND:")
    assert row["id"] == "90000000"


def test_headqa_keeps_four_and_five_option_rows():
    counts = {len(r["options"]) for r in load_task(resolve_task("headqa"), "train", fixture("headqa")).dataset}
    assert counts == {4, 5}


@pytest.mark.parametrize(
    ("row", "reasons"),
    [
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 2}, []),
        ({"q": 7, "a": "x", "b": "y", "c": "z", "y": 0}, ["wrong_type"]),
        ({"q": "Q?", "a": "x", "b": 3, "c": "z", "y": 0}, ["wrong_type"]),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": True}, ["wrong_type"]),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": "1"}, ["wrong_type"]),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 2.0}, []),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": float("nan")}, ["missing_answer"]),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 1.5}, ["wrong_type"]),
        ({"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 3}, ["answer_out_of_range"]),
        (
            {"q": "", "a": None, "b": "y", "c": "z", "y": None},
            ["missing_question", "missing_option", "missing_answer"],
        ),
        ({"a": "x", "b": "y", "c": "z", "y": 0}, ["missing_question"]),
    ],
)
def test_row_reasons(row, reasons):
    canonical, problems = normalise_row(spec(), row)
    assert problems == reasons
    assert (canonical is None) == bool(reasons)


@pytest.mark.parametrize(
    ("encoding", "value", "expected"),
    [
        ("index1", 1, 0),
        ("index1", 0, "answer_out_of_range"),
        ("letter", "c", 2),
        ("letter", " B ", 1),
        ("letter", "D", "answer_not_in_options"),
        ("text", "  Beta ", 1),
        ("text", "delta", "answer_not_in_options"),
    ],
)
def test_answer_encodings(encoding, value, expected):
    task = spec(
        fields={"question": "q", "options": {"list": "o"}, "answer": {"field": "y", "encoding": encoding}},
        letters=["A", "B", "C"],
    )
    canonical, problems = normalise_row(task, {"q": "Q?", "o": ["alpha", "beta", "gamma"], "y": value})
    assert (canonical["answer"] if canonical else problems[0]) == expected


def test_ambiguous_text_answer_and_duplicate_flag():
    task = spec(
        fields={"question": "q", "options": {"list": "o"}, "answer": {"field": "y", "encoding": "text"}},
        letters=["A", "B", "C"],
    )
    assert normalise_row(task, {"q": "Q?", "o": ["a", "A ", "b"], "y": "a"})[1] == ["ambiguous_answer"]
    report = normalise_dataset(task, [{"q": "Q?", "o": ["a", "A ", "b"], "y": "b"}]).report
    assert report.valid == 1 and report.flags == {"duplicate_options": [0]}


def test_variable_option_count_with_trailing_empty_columns():
    task = spec(
        fields={
            "question": "q",
            "options": {"columns": ["a", "b", "c", "d"]},
            "answer": {"field": "y", "encoding": "index0"},
        },
        min_options=3,
    )
    assert normalise_row(task, {"q": "Q", "a": "1", "b": "2", "c": "3", "d": None, "y": 1})[0]["options"] == [
        "1",
        "2",
        "3",
    ]
    assert normalise_row(task, {"q": "Q", "a": "1", "b": None, "c": "3", "d": "4", "y": 1})[1] == ["missing_option"]
    assert normalise_row(task, {"q": "Q", "a": "1", "b": "2", "c": "3", "d": "", "y": 3})[1] == ["answer_out_of_range"]


def test_dict_options_with_a_gap_or_a_foreign_key():
    task = spec(
        fields={"question": "q", "options": {"dict": "o"}, "answer": {"field": "y", "encoding": "letter"}},
        letters=["A", "B", "C", "D"],
        min_options=3,
    )
    assert normalise_row(task, {"q": "Q", "o": {"A": "1", "B": "2", "C": "3", "D": None}, "y": "C"})[0]["answer"] == 2
    assert normalise_row(task, {"q": "Q", "o": {"A": "1", "B": None, "C": "3", "D": "4"}, "y": "A"})[1] == [
        "missing_option"
    ]
    assert normalise_row(task, {"q": "Q", "o": {"A": "1", "B": "2", "C": "3", "X": "4"}, "y": "A"})[1] == [
        "option_count"
    ]


def test_user_task_file_with_a_relative_csv(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text(
        "qid,stem,o1,o2,gold,area\n1,Q one?,yes,no,no,cardio\n2,,yes,no,maybe,x\n"
    )
    (tmp_path / "mine.yaml").write_text(
        "dataset_path: data/mine.csv\ntrain_split: train\nletters: [A, B]\nfields:\n  id: qid\n  question: stem\n"
        "  options: {columns: [o1, o2]}\n  answer: {field: gold, encoding: text}\n  subject: area\n"
    )
    task = resolve_task(str(tmp_path / "mine.yaml"))
    assert task.name == "mine" and task.dataset_path == str(tmp_path / "data" / "mine.csv")
    normalised = load_task(task, "train")
    assert normalised.report.valid == 1 and set(normalised.report.invalid) == {
        "missing_question",
        "answer_not_in_options",
    }
    assert normalised.dataset[0] == {
        "id": "1",
        "question": "Q one?",
        "options": ["yes", "no"],
        "answer": 1,
        "context": None,
        "exp": None,
        "subject": "cardio",
    }


def test_require_usable_names_reasons():
    report = normalise_dataset(spec(), [{"q": "", "a": "x", "b": "y", "c": "z", "y": 0}]).report
    with pytest.raises(DatasetError, match=r"toy: only 0 of 1 rows .*missing_question: 1 rows \(e.g. row 0\)"):
        report.require_usable(1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"feilds": {}}, r"unknown key 'feilds' \(did you mean 'fields'\?\)"),
        ({"letters": ["A", "B"]}, r"2 letters but 3 columns options"),
        ({"letters": ["A", "A", "B"]}, r"distinct labels"),
        ({"letters": list("ABCDEFGHIJK")}, r"needs 2..10 labels"),
        ({"min_options": 4}, r"min_options \(4\) exceeds"),
        (
            {"fields": {"question": "q", "options": {"list": "o"}, "answer": {"field": "y", "encoding": "index0"}}},
            r"`letters` is required for list options",
        ),
        (
            {
                "fields": {
                    "question": "q",
                    "options": {"columns": ["a", "b"]},
                    "answer": {"field": "y", "encoding": "idx"},
                }
            },
            r"encoding must be one of letter, index0, index1, text, key",
        ),
        (
            {
                "fields": {
                    "question": "q",
                    "options": {"columns": ["a", "b"]},
                    "answer": {"field": "y", "encoding": "key"},
                }
            },
            r"'key' needs key_value or dict options",
        ),
        (
            {"fields": {"question": "q", "options": {"rows": "o"}, "answer": {"field": "y", "encoding": "index0"}}},
            r"fields.options must be one of",
        ),
        (
            {"fields": {"options": {"columns": ["a", "b"]}, "answer": {"field": "y", "encoding": "index0"}}},
            r"fields.question is required",
        ),
        ({"source_columns": "q"}, r"`source_columns` must be a non-empty list of column names"),
        ({"source_columns": ["q", "a", "q"]}, r"`source_columns` lists a column twice"),
        ({"source_columns": ["q", "a", "b", "c"]}, r"`source_columns` lacks y, which `fields` read"),
    ],
)
def test_bad_task_specs_are_one_line_recipe_errors(overrides, message):
    with pytest.raises(RecipeError, match=message) as error:
        spec(**overrides)
    assert "\n" not in str(error.value)


def test_unknown_task_name_suggests_a_preset(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown task 'medqa4' \(did you mean 'medqa'\?\)"):
        resolve_task("medqa4")
    with pytest.raises(RecipeError, match="task file not found"):
        resolve_task(str(tmp_path / "absent.yaml"))


def test_reasons_are_all_described():
    assert "duplicate_options" not in REASONS and len(set(REASONS)) == len(REASONS)


def test_same_content_with_different_answers_is_kept_out_whole():
    rows = [
        {"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 0, "id": "r0"},
        {"q": "q? ", "a": "X", "b": "y", "c": "z", "y": 1, "id": "r1"},
        {"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 0, "id": "r2"},
        {"q": "Other?", "a": "x", "b": "y", "c": "z", "y": 2, "id": "r3"},
    ]
    normalised = normalise_dataset(spec(fields={**spec_fields(), "id": "id"}), rows)
    assert normalised.report.invalid == {"conflicting_answer": [0, 1, 2]}
    assert normalised.source_indices == [3] and normalised.report.examples["conflicting_answer"] == ["r0", "r1", "r2"]


def spec_fields():
    return {"question": "q", "options": {"columns": ["a", "b", "c"]}, "answer": {"field": "y", "encoding": "index0"}}


def test_wrong_task_for_the_data_is_one_line_naming_the_missing_columns():
    lines = Path(fixture("medqa")).read_text(encoding="utf-8").splitlines()
    medqa_rows = datasets.Dataset.from_list([json.loads(line) for line in lines])
    with pytest.raises(DatasetError, match=r"task medmcqa: column\(s\) opa, opb, opc, opd, cop not in the data") as e:
        normalise_dataset(resolve_task("medmcqa"), medqa_rows)
    assert "\n" not in str(e.value) and "found: answer, answer_idx, meta_info" in str(e.value)
    assert normalise_dataset(resolve_task("medqa"), medqa_rows.remove_columns("meta_info")).report.valid == 12


def medmcqa_row(i: int, **overrides) -> dict:
    row = {"id": f"q{i}", "question": f"Question number {i}?", "opa": f"alpha {i}", "opb": f"beta {i}"}
    return {**row, "opc": f"gamma {i}", "opd": f"delta {i}", "cop": i % 4, **overrides}


def test_each_medmcqa_reason_is_counted_with_example_ids():
    rows = [medmcqa_row(i) for i in range(6)]
    rows += [medmcqa_row(i, question=q) for i, q in [(6, None), (7, ""), (8, "   ")]]
    rows += [medmcqa_row(9, opb=None), medmcqa_row(10, opc=""), medmcqa_row(11, opd=" \n")]
    rows += [medmcqa_row(i, cop=c) for i, c in [(12, -1), (13, 4), (14, None)]]
    report = normalise_dataset(resolve_task("medmcqa"), datasets.Dataset.from_list(rows)).report
    assert (report.total, report.valid_indices) == (15, list(range(6)))
    assert report.invalid_counts() == {
        "missing_question": 3,
        "missing_option": 3,
        "missing_answer": 1,
        "answer_out_of_range": 2,
    }
    assert report.invalid["missing_option"] == [9, 10, 11]
    assert report.examples["answer_out_of_range"] == ["q12", "q13"] and report.examples["missing_answer"] == ["q14"]


def test_examples_are_the_first_five_and_fall_back_to_the_row_index():
    report = normalise_dataset(resolve_task("medmcqa"), [medmcqa_row(i, id=None, cop=-1) for i in range(8)]).report
    assert len(report.invalid["answer_out_of_range"]) == 8
    assert report.examples["answer_out_of_range"] == [f"row {i}" for i in range(5)]


def test_summary_to_dict_and_require_usable_name_the_reason_and_its_meaning():
    report = normalise_dataset(resolve_task("medmcqa"), [medmcqa_row(0), medmcqa_row(1, cop=-1)]).report
    summary = report.summary()
    assert "2 rows: 1 valid, 1 invalid" in summary and "answer_out_of_range: 1 rows (e.g. q1)" in summary
    assert "cop=-1 marks unlabeled" in summary
    assert report.to_dict()["invalid"] == {"answer_out_of_range": {"count": 1, "examples": ["q1"]}}
    json.dumps(report.to_dict())
    report.require_usable(1)
    with pytest.raises(DatasetError, match=r"only 1 of 2 rows are usable but 2 .*answer_out_of_range: 1 rows.*cop=-1"):
        report.require_usable(2)


def test_duplicate_options_is_a_flag_not_a_drop():
    rows = [medmcqa_row(0), medmcqa_row(1, opa="Aspirin", opc="  aspirin "), medmcqa_row(2, opb="gamma 2")]
    report = normalise_dataset(resolve_task("medmcqa"), rows).report
    assert report.valid_indices == [0, 1, 2] and report.flags == {"duplicate_options": [1, 2]}
    assert report.examples["duplicate_options"] == ["q1", "q2"] and "duplicate_options: 2 rows" in report.summary()


def test_content_hash_normalises_case_and_whitespace_but_keeps_order():
    row = {"question": "Question number 0?", "options": ["alpha 0", "beta 0", "c", "d"]}
    noisy = {**row, "question": "  QUESTION   number 0? ", "options": ["Alpha\t0", "beta 0", "c", "d"]}
    assert content_hash(row) == content_hash(noisy)
    assert content_hash(row) != content_hash({**row, "options": ["beta 0", "alpha 0", "c", "d"]})
    assert len(content_hash(row)) == 16


def test_an_index_written_as_text_is_read_only_from_a_csv():
    row = {"q": "Q?", "a": "x", "b": "y", "c": "z", "y": " 2 "}
    assert normalise_row(spec(), row)[1] == ["wrong_type"]
    assert normalise_row(spec(), row, untyped=True)[0]["answer"] == 2
    assert normalise_row(spec(), {**row, "y": "B"}, untyped=True)[1] == ["wrong_type"]
    assert normalise_row(spec(), {**row, "y": "-1"}, untyped=True)[1] == ["answer_out_of_range"]


def test_source_columns_give_one_schema_whatever_the_source_holds():
    task = resolve_task("medmcqa")
    partial = datasets.Dataset.from_list([{"extra": 1, **medmcqa_row(i)} for i in range(3)])
    conformed = select_source_columns(task, partial)
    assert tuple(conformed.column_names) == task.source_columns
    assert conformed["topic_name"] == [None] * 3 and conformed.features["topic_name"] == datasets.Value("string")
    assert select_source_columns(task, conformed).column_names == conformed.column_names
    with pytest.raises(DatasetError, match=r"column\(s\) opc not in the data"):
        select_source_columns(task, partial.remove_columns("opc"))
    assert select_source_columns(resolve_task("medqa"), partial) is partial  # no source_columns: as it is
