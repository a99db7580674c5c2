import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fine_tune.data.normalise import load_task, normalise_dataset
from fine_tune.data.rows import content_hash
from fine_tune.data.synthetic import ANSWER_POSITION, CATEGORIES, FAMILIES, generate_rows, main, write_jsonl
from fine_tune.data.task_splits import split_normalised
from fine_tune.task.prompts import OPTION_COLUMNS
from fine_tune.task.spec import resolve_task

REPO_ROOT = Path(__file__).resolve().parent.parent
MEMBER_CATEGORY = {word: category for category, words in CATEGORIES.items() for word in words}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_rows(2000, seed=0)


def asked_category(question: str) -> str:
    (category,) = [c for c in CATEGORIES if f" {c}?" in question or f" {c} " in question]
    return category


def test_categories_are_single_words_in_exactly_one_category():
    assert 4 <= len(CATEGORIES) <= 6
    assert all(len(words) >= 8 for words in CATEGORIES.values())
    words = [w for ws in CATEGORIES.values() for w in ws]
    assert len(words) == len(set(words))
    assert all(w.isalpha() for w in words)


def test_rows_have_the_medmcqa_schema(rows):
    assert all(tuple(row) == resolve_task("medmcqa").source_columns for row in rows)
    assert all(row["id"].startswith("syn-0-") for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    assert {row["choice_type"] for row in rows} == {"single"}
    assert len({row["subject_name"] for row in rows}) >= 4
    exp_null = sum(row["exp"] is None for row in rows) / len(rows)
    topic_null = sum(row["topic_name"] is None for row in rows) / len(rows)
    assert 0.05 < exp_null < 0.15
    assert 0.4 < topic_null < 0.6


def test_the_rule_holds_for_every_row(rows):
    for row in rows:
        category = asked_category(row["question"])
        options = [row[c] for c in OPTION_COLUMNS]
        categories = [MEMBER_CATEGORY[o] for o in options]
        assert categories[row["cop"]] == category
        assert row["cop"] == ANSWER_POSITION[category]
        assert categories.count(category) == 1
        assert len(set(categories)) == 4
        if row["exp"] is not None:
            assert row["exp"].lower().startswith(options[row["cop"]])


def test_every_letter_is_an_answer_and_phrasings_vary(rows):
    positions = Counter(row["cop"] for row in rows)
    assert set(positions) == {0, 1, 2, 3}
    assert all(250 < n < 800 for n in positions.values())
    distractor_orders = {tuple(row[c] for c in OPTION_COLUMNS) for row in rows}
    assert len(distractor_orders) > 0.95 * len(rows)
    assert len({row["question"].split()[0] for row in rows}) >= 2
    assert len({asked_category(row["question"]) for row in rows}) == len(CATEGORIES)


def canonical(rows):
    return normalise_dataset(resolve_task("medmcqa"), rows).dataset


def test_same_seed_same_rows_different_seed_held_out(rows):
    assert generate_rows(2000, seed=0) == rows
    other = generate_rows(2000, seed=1)
    assert other != rows
    shared = set(map(content_hash, canonical(rows))) & set(map(content_hash, canonical(other)))
    assert len(shared) < 0.01 * len(rows)
    assert {r["id"] for r in rows}.isdisjoint(r["id"] for r in other)


def test_rows_validate_and_split(rows, tmp_path):
    path = tmp_path / "syn.jsonl"
    write_jsonl(rows, path)
    assert os.listdir(tmp_path) == ["syn.jsonl"]
    normalised = load_task(resolve_task("medmcqa"), "train", str(path))
    assert normalised.report.valid == len(rows)
    assert normalised.report.flags == {}
    result = split_normalised(
        resolve_task("medmcqa"), normalised, {"sft": 1000, "grpo": 500, "eval": 200}, 42, source=None
    )
    assert sum(len(part) for part in result.splits.values()) == 1700


def test_write_jsonl_round_trip(tmp_path):
    path = tmp_path / "nested" / "rows.jsonl"
    sample = generate_rows(5, seed=3)
    write_jsonl(sample, path)
    assert [json.loads(line) for line in path.read_text().splitlines()] == sample
    assert os.listdir(path.parent) == ["rows.jsonl"]


def test_cli_in_process(tmp_path, capsys):
    main(["--out", str(tmp_path / "a.jsonl"), "--n", "7", "--seed", "5"])
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 7
    assert "wrote 7" in capsys.readouterr().out


def test_cli_module(tmp_path):
    out = tmp_path / "demo.jsonl"
    subprocess.run(
        [sys.executable, "-m", "fine_tune.data.synthetic", "--out", str(out), "--n", "20", "--seed", "2"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    assert [json.loads(line) for line in out.read_text().splitlines()] == generate_rows(20, seed=2)


def test_member_family_answer_is_not_a_function_of_the_category():
    rows = generate_rows(2000, seed=0, family="member")
    letters_by_category: dict[str, Counter] = {}
    for row in rows:
        category = asked_category(row["question"])
        answer = row[OPTION_COLUMNS[row["cop"]]]
        assert MEMBER_CATEGORY[answer] == category, "the answer is the one member of the asked category"
        others = [row[col] for i, col in enumerate(OPTION_COLUMNS) if i != row["cop"]]
        assert all(MEMBER_CATEGORY[word] != category for word in others)
        letters_by_category.setdefault(category, Counter())[row["cop"]] += 1
    for category, letters in letters_by_category.items():
        assert len(letters) == 4 and min(letters.values()) > 0.15 * sum(letters.values()), (category, letters)
    assert rows[0]["id"] == "syn-member-0-000000"
    assert not {r["id"] for r in rows} & {r["id"] for r in generate_rows(2000, seed=0)}


def test_the_demo_family_is_the_default_and_unknown_families_are_refused():
    assert FAMILIES[0] == "category" and generate_rows(50, seed=3) == generate_rows(50, seed=3, family="category")
    with pytest.raises(ValueError, match="unknown synthetic family 'nope'"):
        generate_rows(5, family="nope")
