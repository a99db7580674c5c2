"""fine_tune.data.topics: specialties for sets without a subject column, used and recorded as tagged."""

import dataclasses
import json
from pathlib import Path

import pytest

from fine_tune.data.normalise import normalise_row
from fine_tune.data.topics import OTHER, coverage, specialties, tag_row, tag_specialty
from fine_tune.errors import RecipeError
from fine_tune.task.spec import SUBJECT_CONFIG, SUBJECT_FIELD, SUBJECT_TAGGED, resolve_task

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
SHARED_VALIDATION = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmcqa" / "validation.jsonl"


def test_the_table_covers_at_least_the_studys_thirteen_specialties():
    assert len(specialties()) >= 13 and OTHER not in specialties()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("A 60-year-old man has crushing chest pain; the ECG shows ST elevation and troponin is high.", "cardiology"),
        ("A man has a seizure and ataxia; an MRI of the brain shows a cerebellar lesion.", "neurology"),
        ("Which drug is an ACE inhibitor with a dry cough as its adverse effect?", "pharmacology"),
        ("A pregnant woman at 32 weeks of gestation has painless vaginal bleeding.", "obstetrics_gynecology"),
        ("What colour is the sky on a clear day?", OTHER),
    ],
)
def test_a_question_gets_the_specialty_its_keywords_name_most(question, expected):
    assert tag_row(question, ["one", "two", "three", "four"]) == expected


def test_a_keyword_in_the_stem_outweighs_one_in_an_option():
    assert tag_row("Which of the following is a bone?", ["jugular vein", "humerus", "lipase", "x"]) == "surgery"


def test_whole_words_only_and_plurals_count():
    assert tag_specialty(["hearth and home"]) == OTHER  # "heart" inside another word is no hit
    assert tag_specialty(["both lungs"]) == "pulmonology"


def test_a_bad_table_is_one_line_naming_the_file_and_specialty(tmp_path):
    from fine_tune.data.topics import keyword_patterns

    table = tmp_path / "table.yaml"
    table.write_text("cardiology: heart\n")
    with pytest.raises(RecipeError, match="table.yaml: cardiology: expected a non-empty list"):
        keyword_patterns(table)


def test_only_a_set_without_a_subject_column_is_tagged_and_says_so():
    assert resolve_task("medqa").subject_source == SUBJECT_TAGGED
    assert resolve_task("medmcqa").subject_source == SUBJECT_FIELD
    mmlu = resolve_task("mmlu_medical")
    assert mmlu.subject_source == SUBJECT_FIELD
    assert (
        dataclasses.replace(mmlu, subject=None).subject_source == SUBJECT_CONFIG
    )  # several Hub configs, one a subject
    assert dataclasses.replace(mmlu, subject=None, dataset_configs=("one",)).subject_source == SUBJECT_TAGGED
    medmcqa = json.loads((FIXTURES / "medmcqa.jsonl").read_text().splitlines()[0])
    row, _ = normalise_row(resolve_task("medmcqa"), medmcqa)
    assert row["subject"] == medmcqa["subject_name"]  # a given subject is never replaced by a tag


def test_every_medqa_fixture_row_gets_a_tag():
    spec = resolve_task("medqa")
    rows = [normalise_row(spec, json.loads(line))[0] for line in (FIXTURES / "medqa.jsonl").read_text().splitlines()]
    subjects = [row["subject"] for row in rows if row is not None]
    assert subjects and set(subjects) <= {*specialties(), OTHER}
    assert coverage(subjects)["share"] > 0.5


@pytest.mark.skipif(not SHARED_VALIDATION.is_file(), reason="../shared/data/medmcqa/validation.jsonl not present")
def test_on_real_medmcqa_rows_the_tag_agrees_with_the_given_subject_where_both_name_one():
    rows = [json.loads(line) for line in SHARED_VALIDATION.read_text().splitlines()]
    pairs = {
        "Pharmacology": "pharmacology",
        "Pediatrics": "pediatrics",
        "Gynaecology & Obstetrics": "obstetrics_gynecology",
    }
    for subject, specialty in pairs.items():
        tags = [
            tag_row(r["question"], [r["opa"], r["opb"], r["opc"], r["opd"]])
            for r in rows
            if r["subject_name"] == subject
        ]
        assert max(set(tags) - {OTHER}, key=tags.count) == specialty, subject


def test_a_tagged_set_splits_stratified_by_its_tagged_subjects():
    from fine_tune.data.normalise import load_task
    from fine_tune.data.task_splits import split_normalised

    spec = resolve_task("medqa")
    normalised = load_task(spec, "train", str(FIXTURES / "medqa.jsonl"))
    split = split_normalised(spec, normalised, {"sft": 6, "grpo": 2, "eval": 2}, 7, source="f", stratify_by="subject")
    assert split.manifest["stratify_by"] == "subject"
    for rows in split.splits.values():
        assert set(rows["subject"]) <= {*specialties(), OTHER}
