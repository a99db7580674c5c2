"""Row helpers (`fine_tune.data.rows`): the report of invalid rows, text normalisation, content hashes, lookups,
row labels and row iteration."""

from dataclasses import dataclass

import datasets
import pytest

from fine_tune.data.rows import (
    MISSING,
    RowReport,
    content_hash,
    first_reasons,
    has_duplicate_options,
    id_label,
    iter_rows,
    lookup,
    normalise_text,
    row_label,
)
from fine_tune.errors import DatasetError


@dataclass(kw_only=True)
class Report(RowReport):
    """A report with two reasons and a flag, as a task's report has (`normalise.TaskReport`)."""

    reasons = ("missing_question", "bad_answer")
    descriptions = {
        "missing_question": "no question text",
        "bad_answer": "answer outside the options",
        "duplicate_options": "two options are the same",
    }


def make_report(**overrides) -> Report:
    fields = {
        "total": 10,
        "valid_indices": [0, 1, 2, 3, 4, 5, 6],
        "invalid": {"missing_question": [7, 9], "bad_answer": [8]},
        "flags": {"duplicate_options": [2, 3]},
        "examples": {"missing_question": ["q7", "row 9"], "bad_answer": ["q8"], "duplicate_options": ["q2", "q3"]},
    }
    return Report(**(fields | overrides))


def test_a_report_counts_valid_and_invalid_rows_per_reason_in_order():
    report = make_report()
    assert (report.valid, report.n_invalid) == (7, 3)
    assert list(report.invalid_counts().items()) == [("missing_question", 2), ("bad_answer", 1)]


def test_a_report_summary_names_each_reason_and_flag_with_examples_and_meaning():
    assert make_report().summary().splitlines() == [
        "10 rows: 7 valid, 3 invalid",
        "  invalid missing_question: 2 rows (e.g. q7, row 9): no question text",
        "  invalid bad_answer: 1 rows (e.g. q8): answer outside the options",
        "  flag duplicate_options: 2 rows (e.g. q2, q3): two options are the same",
    ]


def test_a_summary_without_examples_of_a_reason_lists_none():
    report = make_report(invalid={"bad_answer": [8, 9]}, flags={}, examples={})
    assert report.summary().splitlines()[1:] == ["  invalid bad_answer: 2 rows (e.g. ): answer outside the options"]


def test_a_report_as_a_dict_counts_reasons_and_flags_with_examples_and_keeps_conflicts():
    conflicts = [{"ids": ["q1", "q1-again"], "answers": ["A", "C"]}]
    assert make_report(conflicts=conflicts, examples={"missing_question": ["q7"]}).to_dict() == {
        "total": 10,
        "valid": 7,
        "invalid": {
            "missing_question": {"count": 2, "examples": ["q7"]},
            "bad_answer": {"count": 1, "examples": []},
        },
        "flags": {"duplicate_options": {"count": 2, "examples": []}},
        "conflicts": conflicts,
    }


def test_a_new_report_has_no_examples_or_conflicts():
    report = RowReport(total=2, valid_indices=[0, 1], invalid={}, flags={})
    assert report.to_dict() == {"total": 2, "valid": 2, "invalid": {}, "flags": {}, "conflicts": []}
    assert report.summary() == "2 rows: 2 valid, 0 invalid"


def test_a_report_is_usable_up_to_its_valid_rows():
    make_report().require_usable(7)
    make_report().require_usable(0)
    with pytest.raises(DatasetError) as error:
        make_report().require_usable(8)
    assert str(error.value) == (
        "only 7 of 10 rows are usable but 8 are needed; invalid rows by reason: "
        "missing_question: 2 rows (e.g. q7, row 9) - no question text; "
        "bad_answer: 1 rows (e.g. q8) - answer outside the options"
    )


def test_an_unusable_report_without_invalid_rows_says_only_the_counts():
    with pytest.raises(DatasetError) as error:
        make_report(total=3, valid_indices=[0, 1, 2], invalid={}).require_usable(5)
    assert str(error.value) == "only 3 of 3 rows are usable but 5 are needed"


def test_a_named_report_prefixes_its_summary_and_its_error():
    @dataclass(kw_only=True)
    class Named(Report):
        def _named(self) -> str:
            return "medqa: "

    report = Named(total=1, valid_indices=[], invalid={"bad_answer": [0]}, flags={})
    assert report.summary().splitlines()[0] == "medqa: 1 rows: 0 valid, 1 invalid"
    with pytest.raises(DatasetError, match=r"^medqa: only 0 of 1 rows are usable but 1 are needed; invalid rows"):
        report.require_usable(1)


def test_each_invalid_row_is_counted_under_its_first_reason_in_the_reports_order():
    # row 4 fails both reasons: `reasons` order, not `invalid`'s, picks the one it is counted under
    report = make_report(invalid={"bad_answer": [4, 8], "missing_question": [9, 4]})
    assert first_reasons(report) == {9: "missing_question", 4: "missing_question", 8: "bad_answer"}
    assert first_reasons(make_report(invalid={"bad_answer": [1]})) == {1: "bad_answer"}
    assert first_reasons(make_report(invalid={"other": [1]})) == {}, "only the report's own reasons count"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello \t  WORLD\n", "hello world"),
        ("Straße", "strasse"),  # casefold, not lower
        (42, "42"),
        (None, ""),
        ("", ""),
    ],
)
def test_normalise_text_casefolds_and_collapses_whitespace(text, expected):
    assert normalise_text(text) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["alpha", "beta", "gamma"], False),
        (["alpha", "beta", " ALPHA  "], True),
        (["Straße", "STRASSE"], True),
        (["", " ", "beta"], False),  # blank options are not duplicates of each other
        ([None, None, "beta"], False),
        ([1, 1, "beta"], False),  # only text options count
        ([], False),
    ],
)
def test_duplicate_options_are_the_same_text_after_normalisation(options, expected):
    assert has_duplicate_options(options) is expected


def test_content_hash_is_pinned_and_ignores_case_and_whitespace():
    row = {"question": "What?", "options": ["a", "b"]}
    assert content_hash(row) == "91388d943372f175"
    assert content_hash({"question": "  WHAT? ", "options": ["A", " b"], "id": "other", "answer": 1}) == (
        "91388d943372f175"
    )


def test_content_hash_keeps_option_order_and_part_boundaries():
    row = {"question": "What?", "options": ["a", "b"]}
    assert content_hash({**row, "options": ["b", "a"]}) != content_hash(row)
    assert content_hash({"question": "What? a", "options": ["b"]}) != content_hash(row)


def test_content_hash_includes_a_context_only_when_there_is_one():
    row = {"question": "What?", "options": ["a", "b"]}
    assert content_hash({**row, "context": "Ctx"}) == "8e17ec743bc237b8"
    assert content_hash({**row, "context": " ctx "}) == "8e17ec743bc237b8"
    assert content_hash({**row, "context": None}) == content_hash({**row, "context": ""}) == content_hash(row)


def test_content_hash_of_open_and_text_rows():
    assert content_hash({"question": "What?", "options": None}) == content_hash({"question": "what?"})
    assert content_hash({"text": "Some text"}) == "b94f6f125c79e3a5"
    assert content_hash({"text": "Some text", "question": "What?"}) == content_hash({"question": "What?"})


ROW = {"a": {"b": {"c": 3}, "n": None, "s": "text"}, "a.b": "flat", "top": None}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b", "flat"),  # a column named with a dot wins over the path
        ("a.b.c", 3),
        ("top", None),
        ("a.n", None),
        ("a.n.deeper", None),  # a null step gives None
        ("a.s.deeper", MISSING),  # a step into a non-mapping is absent
        ("absent", MISSING),
        ("a.absent", MISSING),
        ("a.b.c.d", MISSING),
        (None, None),
    ],
)
def test_lookup_reads_a_column_or_a_dotted_path(path, expected):
    value = lookup(ROW, path)
    assert value is expected if expected is None or expected is MISSING else value == expected


def test_lookup_of_a_column_named_none_still_needs_a_path():
    assert lookup({"None": 1}, None) is None


@pytest.mark.parametrize(
    ("row_id", "expected"),
    [("q7", "q7"), (None, "row 3"), ("", "row 3"), (0, "0"), (17, "17")],
)
def test_a_row_is_labelled_by_its_id_else_its_index(row_id, expected):
    assert id_label(row_id, 3) == expected
    assert row_label({"id": row_id, "question": "?"}, 3) == expected


def test_a_row_without_an_id_column_is_labelled_by_its_index():
    assert row_label({"question": "?"}, 12) == "row 12"


def test_iter_rows_gives_every_row_of_a_dataset_as_a_dict_in_order():
    rows = [{"id": f"q{i}", "n": i, "options": [str(i), "x"]} for i in range(7)]
    dataset = datasets.Dataset.from_list(rows)
    assert list(iter_rows(dataset, batch_size=3)) == rows
    assert list(iter_rows(dataset)) == rows
    assert all(type(row) is dict for row in iter_rows(dataset, batch_size=2))


def test_iter_rows_copies_plain_rows_into_dicts():
    class Row(dict):
        pass

    source = [Row(id="a", n=1), {"id": "b", "n": 2}]
    rows = list(iter_rows(iter(source)))
    assert rows == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    assert all(type(row) is dict for row in rows)
    rows[1]["n"] = 99
    assert source[1]["n"] == 2, "the caller's rows are not changed"


def test_iter_rows_of_an_empty_dataset_gives_nothing():
    assert list(iter_rows(datasets.Dataset.from_list([]))) == []
    assert list(iter_rows([])) == []
