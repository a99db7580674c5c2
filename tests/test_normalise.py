import json
import logging
from pathlib import Path

import datasets
import pytest
from task_specs import PRESETS, spec

from fine_tune import hub_access as hub
from fine_tune.data.normalise import (
    CANONICAL_COLUMNS,
    CANONICAL_FEATURES,
    REASONS,
    content_hash,
    load_task,
    normalise_dataset,
    normalise_row,
    select_source_columns,
)
from fine_tune.data.open_rows import OPEN_FEATURES, TEXT_FEATURES
from fine_tune.data.reading import read_task_rows
from fine_tune.data.records import RefusedRecord
from fine_tune.errors import DatasetError
from fine_tune.task.spec import parse_task_spec, resolve_task

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
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


def list_spec(encoding: str = "index0", **overrides):
    fields = {"question": "q", "options": {"list": "o"}, "answer": {"field": "y", "encoding": encoding}}
    return spec(fields={**fields, **overrides}, letters=["A", "B", "C"])


KEY_VALUE = {"key_value": {"field": "o", "key": "k", "value": "v"}}


@pytest.mark.parametrize(
    ("task", "row", "reasons"),
    [
        (list_spec(), {"q": "Q?", "o": "alpha", "y": 0}, ["wrong_type"]),
        (list_spec(), {"q": "Q?", "o": None, "y": 0}, ["missing_option"]),
        (list_spec(), {"q": "Q?", "y": 0}, ["missing_option"]),
        (
            list_spec(options={"dict": "o"}, encoding="letter"),
            {"q": "Q?", "o": ["a", "b", "c"], "y": "A"},
            ["wrong_type"],
        ),
        (list_spec(options=KEY_VALUE, encoding="key"), {"q": "Q?", "o": "a", "y": "1"}, ["wrong_type"]),
        (list_spec(options=KEY_VALUE, encoding="key"), {"q": "Q?", "o": ["a", "b"], "y": "1"}, ["wrong_type"]),
        (list_spec("letter"), {"q": "Q?", "o": ["a", "b", "c"], "y": 1.5}, ["wrong_type"]),
        (list_spec("letter"), {"q": "Q?", "o": ["a", "b", "c"], "y": True}, ["wrong_type"]),
        (list_spec("text"), {"q": "Q?", "o": ["a", "b", "c"], "y": ["a"]}, ["wrong_type"]),
    ],
)
def test_options_and_answers_of_the_wrong_shape_are_named(task, row, reasons):
    assert normalise_row(task, row) == (None, reasons)


def test_an_answer_is_judged_only_against_usable_options():
    row = {"q": "Q?", "a": None, "b": "y", "c": "z"}
    assert normalise_row(spec(), {**row, "y": 5})[1] == ["missing_option"]
    assert normalise_row(spec(), {**row, "y": None})[1] == ["missing_option", "missing_answer"]


@pytest.mark.parametrize(
    ("task", "options", "answer", "expected"),
    [
        (list_spec("text", options={"dict": "o"}), {"A": "alpha", "B": "beta", "C": "gamma"}, " Beta", 1),
        (list_spec("key", options={"dict": "o"}), {"A": "alpha", "B": "beta", "C": "gamma"}, "b", 1),
        (
            list_spec("key", options=KEY_VALUE),
            [{"k": 1, "v": "alpha"}, {"k": 2, "v": "beta"}, {"k": 3, "v": "gamma"}],
            2,
            1,
        ),
        (
            spec(fields=spec_fields() | {"answer": {"field": "y", "encoding": "letter"}}, letters=["a", "b", "c"]),
            None,
            "b",
            1,
        ),
    ],
)
def test_each_answer_encoding_on_each_options_layout(task, options, answer, expected):
    row = {"q": "Q?", "o": options, "a": "alpha", "b": "beta", "c": "gamma", "y": answer}
    canonical, problems = normalise_row(task, row)
    assert (canonical["answer"], problems) == (expected, [])


@pytest.mark.parametrize("layout", ["dict", "columns"])
def test_a_letter_past_the_rows_last_option_is_out_of_range(layout):
    options = {"dict": "o"} if layout == "dict" else {"columns": ["a", "b", "c", "d"]}
    fields = {"question": "q", "options": options, "answer": {"field": "y", "encoding": "letter"}}
    task = spec(fields=fields, letters=["A", "B", "C", "D"], min_options=3)
    row = {"q": "Q?", "o": {"A": "1", "B": "2", "C": "3", "D": None}, "a": "1", "b": "2", "c": "3", "d": None}
    assert normalise_row(task, {**row, "y": "C"})[0]["answer"] == 2
    assert normalise_row(task, {**row, "y": "D"}) == (None, ["answer_out_of_range"])


def test_all_columns_given_keeps_every_option_of_a_variable_count_task():
    fields = {
        "question": "q",
        "options": {"columns": ["a", "b", "c", "d"]},
        "answer": {"field": "y", "encoding": "index0"},
    }
    task = spec(fields=fields, letters=["A", "B", "C", "D"], min_options=3)
    row = {"q": "Q", "a": "1", "b": "2", "c": "3", "d": "4", "y": 3}
    assert normalise_row(task, row)[0]["options"] == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ([" Para one. ", "", "Para two."], "Para one.\nPara two."),
        ("One abstract.", "One abstract."),
        (None, ["missing_context"]),
        ("  ", ["missing_context"]),
        (5, ["wrong_type"]),
        (["Para one.", 3], ["wrong_type"]),
    ],
)
def test_context_paragraphs_are_joined_and_a_bad_context_is_named(context, expected):
    task = list_spec(context="c")
    canonical, problems = normalise_row(task, {"q": "Q?", "o": ["a", "b", "c"], "y": 0, "c": context})
    assert (canonical["context"] if canonical else problems) == expected


def test_optional_fields_are_text_or_null():
    task = list_spec(id="id", explanation="e", subject="s")
    row = {"q": "Q?", "o": ["a", "b", "c"], "y": 0}
    canonical = normalise_row(task, {**row, "id": 7, "e": ["First.", None, "Second."], "s": " cardio "})[0]
    assert (canonical["id"], canonical["exp"], canonical["subject"]) == ("7", "First.\nSecond.", "cardio")
    canonical = normalise_row(task, {**row, "e": "  ", "s": None, "__config__": "nurse"})[0]
    assert (canonical["id"], canonical["exp"], canonical["subject"]) == (None, None, "nurse")
    assert normalise_row(task, {**row, "s": ""})[0]["subject"] is None


def test_the_hub_config_is_the_subject_of_a_task_with_several_configs_and_no_subject_field():
    task = spec(dataset_configs=["doctor", "nurse"])
    canonical = normalise_row(task, {"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 0, "__config__": "nurse"})[0]
    assert canonical["subject"] == "nurse"


@pytest.mark.parametrize(
    ("question", "context", "subject"),
    [
        ("A pregnant woman at 32 weeks of gestation: which is right?", "Nothing here.", "obstetrics_gynecology"),
        ("Which is most likely?", "The ECG shows ST elevation and troponin is high.", "cardiology"),
    ],
)
def test_a_task_without_a_subject_tags_the_question_and_its_context(question, context, subject):
    task = list_spec(context="c")
    canonical = normalise_row(task, {"q": question, "o": ["one", "two", "three"], "y": 0, "c": context})[0]
    assert canonical["subject"] == subject


def test_a_row_without_its_id_is_named_by_its_index():
    rows = [
        {"q": "", "a": "x", "b": "y", "c": "z", "y": 0},
        {"q": "", "a": "x", "b": "y", "c": "z", "y": 0, "id": "r1"},
    ]
    report = normalise_dataset(spec(fields={**spec_fields(), "id": "id"}), rows).report
    assert report.examples["missing_question"] == ["row 0", "r1"]


def test_an_index_written_as_text_is_refused_unless_the_rows_are_untyped():
    rows = [{"q": "Q?", "a": "x", "b": "y", "c": "z", "y": "2"}]
    assert normalise_dataset(spec(), rows).report.invalid == {"wrong_type": [0]}
    assert normalise_dataset(spec(), rows, untyped=True).dataset["answer"] == [2]


def test_canonical_rows_have_the_canonical_types_even_when_a_column_is_all_null():
    rows = [{"q": "Q?", "a": "x", "b": "y", "c": "z", "y": 0}]
    assert normalise_dataset(spec(), rows).dataset.features == CANONICAL_FEATURES
    empty = normalise_dataset(spec(), [{**rows[0], "q": ""}]).dataset
    assert (empty.num_rows, empty.features) == (0, CANONICAL_FEATURES)


OPEN = {
    "name": "o",
    "type": "open",
    "dataset_path": "./x.jsonl",
    "fields": {"question": "q", "answer": "a", "id": "id"},
}
TEXT = {"name": "t", "type": "text", "dataset_path": "./x.jsonl", "fields": {"text": "body"}}


def test_open_rows_keep_every_reference_and_name_bad_rows():
    rows = [{"q": "What is X?", "a": "Y", "id": "1"}, {"q": "What is X?", "a": "Z", "id": "2"}, {"q": " ", "a": "Z"}]
    normalised = normalise_dataset(parse_task_spec(OPEN), rows)
    assert list(normalised.dataset) == [
        {"id": "1", "question": "What is X?", "answer": "Y", "context": None, "subject": None},
        {"id": "2", "question": "What is X?", "answer": "Z", "context": None, "subject": None},
    ]
    assert normalised.dataset.features == OPEN_FEATURES
    assert (normalised.report.invalid, normalised.report.conflicts) == ({"missing_question": [2]}, [])
    empty = normalise_dataset(parse_task_spec(OPEN), rows[2:]).dataset
    assert (empty.num_rows, empty.features) == (0, OPEN_FEATURES)


def test_text_rows_are_their_text_and_bad_ones_are_named():
    normalised = normalise_dataset(parse_task_spec(TEXT), [{"body": "Aspirin."}, {"body": ""}, {"body": 3}])
    assert list(normalised.dataset) == [{"id": None, "text": "Aspirin.", "subject": None}]
    assert normalised.dataset.features == TEXT_FEATURES
    assert normalised.report.invalid == {"missing_text": [1], "wrong_type": [2]}
    empty = normalise_dataset(parse_task_spec(TEXT), [{"body": ""}]).dataset
    assert (empty.num_rows, empty.features) == (0, TEXT_FEATURES)


def test_the_source_fingerprint_is_kept_for_a_dataset_only():
    rows = [medmcqa_row(i) for i in range(3)]
    source = datasets.Dataset.from_list(rows)
    assert normalise_dataset(resolve_task("medmcqa"), source).fingerprint == source._fingerprint
    assert normalise_dataset(resolve_task("medmcqa"), rows).fingerprint is None


def refused(n: int) -> list[RefusedRecord]:
    return [RefusedRecord(f"line {i + 1}", "malformed_line", "not JSON") for i in range(n)]


def test_refused_records_follow_the_rows_and_keep_five_examples():
    report = normalise_dataset(resolve_task("medmcqa"), datasets.Dataset.from_list([]), refused(7)).report
    assert (report.total, report.valid, report.invalid) == (7, 0, {"malformed_line": list(range(7))})
    assert report.examples["malformed_line"] == [f"line {i} (not JSON)" for i in range(1, 6)]
    report = normalise_dataset(resolve_task("medmcqa"), [medmcqa_row(0)], refused(1)).report
    assert (report.total, report.valid_indices, report.invalid) == (2, [0], {"malformed_line": [1]})


def test_the_wrong_task_is_refused_even_when_some_records_were_refused_too():
    rows = datasets.Dataset.from_list([{"question": "Q?", "answer": "x"}])
    with pytest.raises(DatasetError, match=r"column\(s\) opa, opb, opc, opd, cop not in the data"):
        normalise_dataset(resolve_task("medmcqa"), rows, refused(1))


def test_conflicting_answers_are_reported_with_their_letters():
    rows = [medmcqa_row(0), medmcqa_row(1, question="Question number 0?", opa="alpha 0", opb="beta 0")]
    rows[1] |= {"opc": "gamma 0", "opd": "delta 0"}
    report = normalise_dataset(resolve_task("medmcqa"), rows).report
    assert report.conflicts == [{"ids": ["q0", "q1"], "answers": ["A", "B"]}]
    assert report.to_dict()["conflicts"] == report.conflicts and report.to_dict()["task"] == "medmcqa"


def logged(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fine_tune.data.normalise" and r.levelno == level]


def test_load_task_logs_the_summary_and_each_conflict(tmp_path, caplog):
    rows = [medmcqa_row(0), {**medmcqa_row(0), "id": "q1", "cop": 1}, medmcqa_row(2, cop=-1)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level(logging.INFO, logger="fine_tune.data.normalise"):
        normalised = load_task(resolve_task("medmcqa"), "train", str(path))
    assert logged(caplog) == [
        normalised.report.summary(),
        "medmcqa: same question, different answers, kept out: q0 (A), q1 (B)",
    ]
    assert "answer_out_of_range: 1 rows (e.g. q2)" in normalised.report.summary()


def test_load_task_reads_the_token_from_the_named_variable(monkeypatch):
    calls = []

    def fake_load_dataset(hub_id, split, token):
        calls.append(token)
        return datasets.Dataset.from_list([medmcqa_row(0)])

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MY_TOKEN", "hf_mine")
    monkeypatch.setattr(hub, "hub_reachable", lambda endpoint: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_task(resolve_task("medmcqa"), "train", "owner/set", token_env="MY_TOKEN").report.valid == 1
    assert calls == ["hf_mine"]


OPEN_CONTEXT = {**OPEN, "fields": {"question": "q", "answer": "a", "context": "c"}}


@pytest.mark.parametrize(
    ("task", "columns", "missing"),
    [
        (spec(), ["q", "a", "c", "y"], "b"),
        (list_spec(), ["q", "y", "__config__"], "o"),
        (list_spec(context="c"), ["q", "o", "y"], "c"),
        (parse_task_spec(OPEN_CONTEXT), ["q", "c"], "a"),
        (parse_task_spec(OPEN_CONTEXT), ["q", "a"], "c"),
        (parse_task_spec(TEXT), ["text"], "body"),
    ],
)
def test_a_missing_column_is_one_line_naming_it_and_the_task_file(task, columns, missing):
    found = ", ".join(sorted(c for c in columns if c != "__config__"))
    with pytest.raises(DatasetError) as error:
        normalise_dataset(task, datasets.Dataset.from_dict({c: ["x"] for c in columns}))
    assert str(error.value) == (
        f"task {task.name}: column(s) {missing} not in the data (found: {found}); check --task and the dataset "
        f"(the task file {task.name} says where each field is)"
    )


def test_present_columns_pass_and_absent_optional_ones_are_logged(caplog):
    assert (
        normalise_dataset(parse_task_spec(OPEN), datasets.Dataset.from_dict({"q": ["Q?"], "a": ["A"]})).report.valid
        == 1
    )
    rows = datasets.Dataset.from_list([{k: v for k, v in medmcqa_row(0).items() if k != "id"}])
    with caplog.at_level(logging.INFO, logger="fine_tune.data.normalise"):
        normalise_dataset(resolve_task("medmcqa"), rows)
    assert logged(caplog, logging.INFO) == [
        "task medmcqa: optional column(s) id, exp, subject_name absent, read as null"
    ]


def test_source_columns_type_all_null_columns_as_text_and_keep_the_config(caplog):
    task = resolve_task("medmcqa")
    rows = [
        {"extra": 1, "__config__": "c", **medmcqa_row(i), "exp": None, "subject_name": "Anatomy", "more": 2}
        for i in range(2)
    ]
    with caplog.at_level(logging.INFO, logger="fine_tune.data.normalise"):
        conformed = select_source_columns(task, datasets.Dataset.from_list(rows))
    assert conformed.column_names == [*task.source_columns, "__config__"]
    assert conformed.features["exp"] == datasets.Value("string") and conformed["__config__"] == ["c", "c"]
    assert logged(caplog, logging.INFO) == ["medmcqa: ignoring column(s) not in source_columns: extra, more"]
