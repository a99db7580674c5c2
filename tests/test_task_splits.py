import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
import yaml

from fine_tune.data import validation
from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.splits import split_dataset
from fine_tune.data.synthetic import generate_rows
from fine_tune.data.task_splits import phase_split, split_task_rows
from fine_tune.errors import DatasetError
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")


def split_like_before(raw_rows, sizes, seed):
    dataset = datasets.Dataset.from_list(raw_rows)
    normalised = normalise_dataset(MEDMCQA, dataset)
    old_report = validation.validate_rows(dataset)
    reasons = {}
    for name in validation.REASONS:
        for index in old_report.invalid.get(name, []):
            reasons.setdefault(index, name)
    new = split_task_rows(
        normalised.dataset,
        normalised.source_indices,
        reasons,
        len(dataset),
        sizes,
        seed,
        fingerprint=dataset._fingerprint,
        source="src",
    )
    return split_dataset(dataset, sizes, seed, source="src"), new, dataset


def test_medmcqa_split_and_manifest_are_unchanged(shared_dir):
    lines = (shared_dir / "data/medmcqa/validation.jsonl").read_text(encoding="utf-8").splitlines()[:400]
    unlabeled = (shared_dir / "data/medmcqa/test_unlabeled.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    raw = [json.loads(line) for line in lines + unlabeled]
    raw = raw[::2] + raw[1::2]  # unlabeled rows spread through the source
    old, new, _ = split_like_before(raw, {"sft": 120, "grpo": 60, "eval": 40}, seed=42)
    assert new.manifest == old.manifest
    assert old.skipped.get("cop_out_of_range")  # invalid rows were met and counted the same way
    for name, split in new.splits.items():
        assert split["question"] == old.splits[name]["question"]
        assert split["answer"] == old.splits[name]["cop"]


def test_synthetic_split_is_unchanged():
    old, new, _ = split_like_before(generate_rows(300, seed=5), {"sft": 100, "grpo": 50, "eval": 30}, seed=42)
    assert new.manifest == old.manifest and new.skipped == old.skipped == {}


def test_stratified_split_keeps_subject_shares_and_records_them():
    raw = generate_rows(1200, seed=9)
    normalised = normalise_dataset(MEDMCQA, raw)
    sizes = {"sft": 200, "grpo": 100, "eval": 50}
    result = split_task_rows(
        normalised.dataset, normalised.source_indices, {}, len(raw), sizes, 42, stratify_by="subject"
    )
    pool = Counter(normalised.dataset["subject"])
    total = sum(pool.values())
    for name, split in result.splits.items():
        counts = Counter(split["subject"])
        assert result.manifest["strata"][name] == dict(sorted(counts.items()))
        for subject, n in pool.items():
            assert abs(counts[subject] - sizes[name] * n / total) < 1
        first = Counter(split["subject"][:20])  # a dev slice (--limit 20) is stratified as well
        for subject, n in pool.items():
            assert abs(first[subject] - 20 * n / total) <= 1
    assert result.manifest["stratify_by"] == "subject"
    assert "task" not in result.manifest  # medmcqa manifests keep today's keys


def test_other_tasks_record_the_task_and_letters():
    task = resolve_task("medqa5")
    rows = [
        {"question": f"Q{i}?", "options": [{"key": k, "value": f"{k}{i}"} for k in "ABCDE"], "answer_idx": "E"}
        for i in range(12)
    ]
    normalised = normalise_dataset(task, rows)
    result = split_task_rows(
        normalised.dataset,
        normalised.source_indices,
        {},
        12,
        {"sft": 6, "grpo": 3, "eval": 3},
        1,
        task=task.name,
        letters=task.letters,
    )
    assert result.manifest["task"] == {"name": "medqa5", "letters": ["A", "B", "C", "D", "E"]}
    assert result.manifest["splits"]["eval"]["row_ids"][0].startswith("row ")


def test_too_few_rows_names_the_task():
    normalised = normalise_dataset(MEDMCQA, generate_rows(5, seed=1))
    with pytest.raises(DatasetError, match=r"medmcqa: only 5 distinct valid rows for 9 requested"):
        split_task_rows(normalised.dataset, normalised.source_indices, {}, 5, {"sft": 5, "grpo": 2, "eval": 2}, 0)
    with pytest.raises(DatasetError, match="stratify_by must be one of subject, answer"):
        split_task_rows(normalised.dataset, normalised.source_indices, {}, 5, {"sft": 1}, 0, stratify_by="topic")


def test_load_task_split_writes_the_manifest_and_uses_the_task_defaults(tmp_path):
    from fine_tune.data.splits import read_manifest
    from fine_tune.data.task_splits import load_task_eval_rows, load_task_split

    fixture = "tests/fixtures/tasks/kormedmcqa"
    sizes = {"sft": 8, "grpo": 4, "eval": 4}
    rows, manifest = load_task_split(
        "kormedmcqa",
        "sft",
        source=fixture,
        sizes=sizes,
        seed=3,
        stratify_by="subject",
        manifest_path=tmp_path / "m.json",
    )
    assert read_manifest(tmp_path / "m.json") == manifest
    assert manifest["task"]["letters"] == list("ABCDE") and manifest["strata"]["sft"] == {
        "dentist": 2,
        "doctor": 2,
        "nurse": 2,
        "pharm": 2,
    }
    assert sum(manifest["skipped"].values()) == 4  # every invalid row met in the walk is counted
    again, _ = load_task_split("kormedmcqa", "sft", source=fixture, sizes=sizes, seed=3, stratify_by="subject")
    assert again["question"] == rows["question"]  # reproducible from config + seed
    test_rows, report = load_task_eval_rows("kormedmcqa", source=fixture)
    assert len(test_rows) == 8 and report.n_invalid == 0
    with pytest.raises(DatasetError, match="pubmedqa has no official eval split"):
        load_task_eval_rows("pubmedqa", source="tests/fixtures/tasks/pubmedqa.jsonl")


def test_recipes_take_task_and_stratify_by():
    from fine_tune.errors import RecipeError
    from fine_tune.recipes.loader import parse_recipe

    (config,) = parse_recipe("eval", ["--task", "medqa", "--stratify_by", "subject", "--shots", "3"])
    assert (config.task, config.stratify_by, config.shots, config.dataset_name) == ("medqa", "subject", 3, None)
    assert config.resolved_run_name == "medqa-split"
    with pytest.raises(RecipeError, match="stratify_by must be one of subject, answer"):
        parse_recipe("eval", ["--stratify_by", "topic"])
    with pytest.raises(RecipeError, match="shots must be >= 0"):
        parse_recipe("eval", ["--shots", "-1"])


REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "tasks"


def mixture_args(task, **sizes):
    sizes = {"sft_size": 6, "grpo_size": 2, "eval_size": 3, "split_seed": 1, **sizes}
    return SplitArguments(task=task, **sizes)


def test_a_mixture_splits_each_task_by_its_weight_and_keeps_its_rows(tmp_path):
    task = {
        "medqa": {"weight": 2, "dataset_name": str(FIXTURES / "medqa.jsonl")},
        "pubmedqa": {"dataset_name": str(FIXTURES / "pubmedqa.jsonl")},
    }
    split = phase_split(mixture_args(task), tmp_path / "manifest.json")
    manifest = split.manifest
    assert [(p.task.name, len(p.splits["sft"])) for p in split.parts] == [("medqa", 4), ("pubmedqa", 2)]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["splits"]["sft"]["tasks"] == {"medqa": 4, "pubmedqa": 2}
    assert manifest["splits"]["grpo"]["tasks"] == {"medqa": 1, "pubmedqa": 1}  # 2 rows at 2:1: largest remainder
    assert manifest["splits"]["eval"]["tasks"] == {"medqa": 3, "pubmedqa": 3}, "eval_size is per task"
    assert [m["task"] for m in manifest["mixture"]] == ["medqa", "pubmedqa"]
    assert manifest["splits"]["sft"]["row_ids"][0].startswith("medqa/")
    for part in split.parts:  # each task's part is what a single-task run at the same sizes gives
        single = mixture_args(
            part.task.name,
            dataset_name=str(FIXTURES / f"{part.task.name}.jsonl"),
            **{f"{k}_size": v for k, v in manifest["tasks"][part.task.name]["sizes"].items()},
        )
        alone = phase_split(single)
        assert manifest["tasks"][part.task.name] == alone.manifest
        assert part.splits["sft"]["question"] == alone.parts[0].splits["sft"]["question"]
    hashes = manifest["splits"]["sft"]["content_hashes"]
    assert hashes == [
        h for name in ("medqa", "pubmedqa") for h in manifest["tasks"][name]["splits"]["sft"]["content_hashes"]
    ]
    assert [p.task.letters for p in split.parts] == [tuple("ABCD"), tuple("ABC")]


def task_copy(tmp_path, name):
    """The medqa preset under another name, reading the same fixture: every question is in both tasks."""
    spec = yaml.safe_load((REPO / "configs/tasks/medqa.yaml").read_text())
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**spec, "name": name, "dataset_path": str(FIXTURES / "medqa.jsonl")}))
    return str(path)


def test_a_question_in_two_tasks_of_a_mixture_cannot_train_one_and_score_the_other(tmp_path):
    task = {"medqa": {"weight": 2, "dataset_name": str(FIXTURES / "medqa.jsonl")}, task_copy(tmp_path, "copy"): 1}
    with pytest.raises(DatasetError, match="splits share content"):
        phase_split(mixture_args(task))


def test_two_tasks_of_a_mixture_need_two_names(tmp_path):
    with pytest.raises(DatasetError, match="two tasks of the mixture are named medqa"):
        phase_split(mixture_args({"medqa": 1, task_copy(tmp_path, "medqa"): 1}))
