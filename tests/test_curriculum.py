"""The specialty curriculum's split (`fine_tune.data.curriculum` via `task_splits`): a constant holdout per subject,
each subject's share of the rest trained, the pool rows drawn past the start share recorded with the reason."""

import json
from collections import Counter

import pytest

from fine_tune.data.curriculum import Curriculum, load_curriculum
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.data.task_splits import load_task_splits
from fine_tune.errors import RecipeError
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.task.spec import resolve_task

MEDQA = resolve_task("medqa")  # no subject column: subjects tagged from the question text


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("curriculum") / "rows.jsonl"
    write_jsonl(generate_rows(120, seed=3), path)
    return path


def split(path, curriculum, task="medmcqa"):
    return load_task_splits(task, source=str(path), sizes={"sft": 10, "grpo": 0, "eval": 5}, curriculum=curriculum)


def test_holdout_is_constant_and_raised_shares_draw_from_the_pool(rows_file):
    start = Curriculum(holdout_per_subject=3, start_share=0.5)
    first = split(rows_file, start)
    subjects = first.manifest["curriculum"]["subjects"]
    low = sorted(subjects)[0]
    raised = Curriculum(3, 0.5, recommended_shares={low: 1.0}, reasons={low: "below overall"})
    second = split(rows_file, raised)
    assert first.manifest["splits"]["eval"] == second.manifest["splits"]["eval"]  # the holdout never moves
    assert Counter(second.splits["eval"]["subject"]) == {s: 3 for s in subjects}
    hashes = {name: set(part["content_hashes"]) for name, part in second.manifest["splits"].items()}
    assert not hashes["eval"] & hashes["sft"] and second.manifest["sizes"]["grpo"] == 0
    entry = second.manifest["curriculum"]["subjects"][low]
    rest = entry["sft"] + entry["pool"]
    assert entry["share"] == 1.0 and entry["pool"] == 0 and entry["sft"] == rest
    drawn = entry["drawn_from_pool"]
    assert drawn["reason"] == "below overall" and len(drawn["row_ids"]) == rest - round(rest * 0.5 + 1e-9)
    assert set(drawn["row_ids"]) <= set(second.manifest["splits"]["sft"]["row_ids"])
    assert not set(drawn["row_ids"]) & set(first.manifest["splits"]["sft"]["row_ids"])  # new rows, from the pool
    assert set(first.manifest["splits"]["sft"]["row_ids"]) < set(second.manifest["splits"]["sft"]["row_ids"])
    others = [s for s in subjects if s != low]
    assert all(second.manifest["curriculum"]["subjects"][s]["drawn_from_pool"]["row_ids"] == [] for s in others)


def test_tagged_subjects_are_the_strata_of_a_set_without_a_subject_column(tmp_path):
    rows = [
        {"question": q, "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "A", "answer": "a"}
        for q in [f"A cardiac murmur and heart failure, case {i}?" for i in range(6)]
        + [f"A fracture of the femur bone, case {i}?" for i in range(6)]
    ]
    path = tmp_path / "medqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = split(path, Curriculum(holdout_per_subject=2, start_share=0.5), task=MEDQA)
    subjects = result.manifest["curriculum"]["subjects"]
    assert len(subjects) == 2 and all(
        e["holdout"] == 2 and e["sft"] == 2 and e["pool"] == 2 for e in subjects.values()
    )
    assert set(result.splits["eval"]["subject"]) == set(subjects)


def test_a_bad_curriculum_file_is_named_with_its_key(tmp_path):
    path = tmp_path / "curriculum.json"
    path.write_text(json.dumps({"holdout_per_subject": 2, "start_share": 0.5, "recommended_shares": {"x": 1.5}}))
    with pytest.raises(RecipeError, match=r"curriculum.json: recommended_shares.x: expected a share between 0 and 1"):
        load_curriculum(path)


def test_a_recipe_cannot_both_stratify_and_follow_a_curriculum():
    with pytest.raises(RecipeError, match="stratify_by 'subject' and curriculum are both set"):
        SplitArguments(stratify_by="subject", curriculum="c.json")
