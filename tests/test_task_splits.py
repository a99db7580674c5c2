"""The one splitter (`fine_tune.data.task_splits`): upstream's seeded walk, skips counted by reason, the manifest."""

import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import pytest
import yaml
from signatures import patch_bound

from fine_tune.constants import DEFAULT_SPLIT_SIZES
from fine_tune.data import task_splits
from fine_tune.data.curriculum import Curriculum
from fine_tune.data.normalise import content_hash, load_task, normalise_dataset
from fine_tune.data.splits import contamination_count, manifest_hash, read_manifest
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.data.task_splits import (
    TaskSource,
    label,
    load_task_eval_rows,
    load_task_split,
    load_task_splits,
    official_rows,
    phase_split,
    split_normalised,
    split_task_rows,
    task_sources,
)
from fine_tune.errors import DatasetError
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")
REPO = Path(__file__).resolve().parent.parent
VALIDATION = "../shared/data/medmcqa/validation.jsonl"  # as the manifests record it (run from the repo root)
# `manifest_hash` of the real validation file's split, computed on the MedMCQA-only path before it was removed
# (scripts of 2026-12-06): the one path must give the same splits, manifest and dataset fingerprint.
PINNED_HASHES = [
    ({"sft": 1000, "grpo": 500, "eval": 200}, 42, "3f63552148d240f1c4fd2c9f170ec6181b10d250c1c680153ec0314861385e6d"),
    ({"sft": 600, "grpo": 300, "eval": 100}, 42, "23a4d50ba667d799d7e94f2dc35510e2d64169247e092656d74c1ab7b6a88a38"),
    ({"sft": 3000, "grpo": 500, "eval": 500}, 42, "37cf91965bdaefaa68451e94fbd8ae4f4ae61d185db36a0eba5a0b0de1a40cd2"),
    ({"sft": 1000, "grpo": 500, "eval": 200}, 7, "b4b5e62466b5318f5933d6f1ec8f9d8675a33bd95a8345aa5116d90b60e12397"),
]
SYNTHETIC_HASH = "8a4737221acff569d6d75a3b2f78e421db24ddf0d52f9c12d8ecd27fab2a0c4c"  # the same, synthetic rows


def make_row(i: int, **overrides) -> dict:
    row = {"id": f"q{i}", "question": f"Question number {i}?", "opa": f"alpha {i}", "opb": f"beta {i}"}
    row.update({"opc": f"gamma {i}", "opd": f"delta {i}", "cop": i % 4, "exp": None, "subject_name": "Anatomy"})
    return {**row, **overrides}


def split_rows(rows, sizes=DEFAULT_SPLIT_SIZES, seed=42, source=None):
    """Raw MedMCQA rows -> the medmcqa task's normaliser -> the splitter (what a phase does after reading)."""
    return split_normalised(MEDMCQA, normalise_dataset(MEDMCQA, datasets.Dataset.from_list(rows)), sizes, seed,
                            source=source)  # fmt: skip


@pytest.fixture(scope="module")
def clean_2000() -> list[dict]:
    return [make_row(i) for i in range(2000)]


@pytest.mark.parametrize(("sizes", "seed", "expected"), PINNED_HASHES)
def test_the_real_validation_split_has_the_pinned_manifest_hash(shared_dir, monkeypatch, sizes, seed, expected):
    monkeypatch.chdir(REPO)
    if not Path(VALIDATION).is_file():
        pytest.skip(f"{VALIDATION} is not reachable from the repository root")
    result = load_task_splits("medmcqa", source=VALIDATION, sizes=sizes, seed=seed)
    assert manifest_hash(result.manifest) == expected
    assert result.skipped == {} and contamination_count(result.manifest) == 0


def test_the_synthetic_split_has_the_pinned_manifest_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(generate_rows(300, seed=5), "synthetic.jsonl")
    result = load_task_splits(None, source="synthetic.jsonl", sizes={"sft": 100, "grpo": 50, "eval": 30}, seed=42)
    assert manifest_hash(result.manifest) == SYNTHETIC_HASH


def test_split_reproduces_upstream_on_clean_data(clean_2000):
    result = split_rows(clean_2000)
    upstream = datasets.Dataset.from_list(clean_2000).shuffle(seed=42)
    bounds = {"sft": (0, 1000), "grpo": (1000, 1500), "eval": (1500, 1700)}
    for name, (start, stop) in bounds.items():
        assert result.splits[name]["id"] == upstream.select(range(start, stop))["id"]
        assert result.manifest["splits"][name]["shuffled_indices"] == list(range(start, stop))
    assert result.skipped == {} and result.manifest["sizes"] == DEFAULT_SPLIT_SIZES
    assert "task" not in result.manifest  # the default task's manifest keeps its keys


def test_split_skips_duplicates_and_invalid_rows_and_stays_disjoint():
    rows = [make_row(i) for i in range(300)]
    # 60 rows repeating earlier content (case/whitespace changed), 20 unlabeled rows
    rows += [make_row(i, id=f"dup{i}", question=f"  question NUMBER {i}?") for i in range(60)]
    rows += [make_row(1000 + i, cop=-1) for i in range(20)]
    result = split_rows(rows, {"sft": 150, "grpo": 80, "eval": 40}, seed=7)
    assert {name: len(part) for name, part in result.splits.items()} == {"sft": 150, "grpo": 80, "eval": 40}
    hashes = [h for split in result.manifest["splits"].values() for h in split["content_hashes"]]
    assert len(hashes) == len(set(hashes)) == 270
    assert set(result.skipped) == {"duplicate_content", "answer_out_of_range"}
    assert result.manifest["skipped"] == result.skipped
    for name, part in result.splits.items():
        assert part["id"] == result.manifest["splits"][name]["row_ids"]


def test_split_not_enough_rows_or_bad_sizes(clean_2000):
    with pytest.raises(DatasetError, match="only 20 distinct valid rows.*duplicate_content: 40"):
        split_rows([make_row(i % 20, id=f"r{i}") for i in range(60)], {"sft": 30, "grpo": 20, "eval": 10})
    with pytest.raises(DatasetError, match="unknown split"):
        split_rows(clean_2000[:10], {"train": 10})
    with pytest.raises(DatasetError, match="non-negative"):
        split_rows(clean_2000[:10], {"sft": -1})


def test_conflicting_answers_are_skipped_and_counted_with_plain_duplicates():
    rows = [make_row(i) for i in range(40)]
    rows.append(make_row(5, id="q5-again", cop=(5 + 1) % 4))  # same content as q5, another answer
    rows.append(make_row(7, id="q7-again"))  # same content and answer as q7: a plain duplicate
    result = split_rows(rows, {"sft": 30, "grpo": 5, "eval": 4}, seed=0)
    used = [i for part in result.manifest["splits"].values() for i in part["source_indices"]]
    assert 5 not in used and 40 not in used
    assert result.skipped["conflicting_answer"] == 2 and result.skipped["duplicate_content"] == 1


def test_load_task_split_writes_manifest_counts_refused_records_and_names_conflicts(tmp_path, caplog):
    rows = [make_row(i) for i in range(60)] + [make_row(0, id="copy"), make_row(200, question=" ")]
    rows.append(make_row(5, id="q5-again", cop=2))
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(json.dumps(row).encode() for row in rows) + b"\n{oops\n")
    manifest_path = tmp_path / "manifest.json"
    sizes = {"sft": 30, "grpo": 15, "eval": 10}
    with caplog.at_level(logging.INFO, logger="fine_tune.data"):
        grpo, manifest = load_task_split(
            None, "grpo", source=str(path), sizes=sizes, seed=3, manifest_path=manifest_path
        )
    assert len(grpo) == 15 and read_manifest(manifest_path) == manifest
    assert manifest["source"] == str(path) and grpo["id"] == manifest["splits"]["grpo"]["row_ids"]
    assert "64 rows: 60 valid, 4 invalid" in caplog.text
    assert (
        "missing_question: 1 rows" in caplog.text and "malformed_line: 1 rows (e.g. line 64 (not JSON" in caplog.text
    )
    assert "q5 (B), q5-again (C)" in caplog.text
    assert f"wrote split manifest to {manifest_path}" in caplog.messages
    skipped = ", ".join(f"{name}: {count}" for name, count in manifest["skipped"].items())
    assert f"medmcqa split sft=30/grpo=15/eval=10: skipped {skipped}" in caplog.messages
    with pytest.raises(DatasetError) as error:
        load_task_split(None, "test", source=str(path), sizes=sizes)
    assert str(error.value) == "unknown split 'test'; expected one of sft, grpo, eval"


def test_a_split_without_skips_logs_that_it_skipped_nothing(clean_2000, tmp_path, caplog):
    write_jsonl(clean_2000[:10], tmp_path / "rows.jsonl")
    with caplog.at_level(logging.INFO, logger="fine_tune.data"):
        load_task_splits(None, source=str(tmp_path / "rows.jsonl"), sizes={"sft": 5, "grpo": 2, "eval": 2})
    assert "medmcqa split sft=5/grpo=2/eval=2: skipped nothing" in caplog.messages


def test_too_few_usable_rows_are_refused_with_the_reasons_before_splitting(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl([make_row(i) for i in range(5)] + [make_row(5, cop=-1)], path)
    with pytest.raises(DatasetError) as error:
        load_task_splits(None, source=str(path), sizes={"sft": 3, "grpo": 2, "eval": 2})
    assert str(error.value).startswith(
        "medmcqa: only 5 of 6 rows are usable but 7 are needed; invalid rows by reason: answer_out_of_range: 1 rows"
    )


def test_eval_rows_drop_and_count_invalid_rows(tmp_path, caplog):
    path = tmp_path / "val.jsonl"
    write_jsonl([make_row(i) for i in range(10)] + [make_row(10, cop=-1)], path)
    with caplog.at_level(logging.WARNING, logger="fine_tune.data"):
        rows, report = load_task_eval_rows("medmcqa", source=str(path))
    assert len(rows) == 10 and report.n_invalid == 1
    assert report.invalid_counts() == {"answer_out_of_range": 1}
    assert "11 rows: 10 valid, 1 invalid" in caplog.text
    write_jsonl([make_row(0), make_row(1, cop=-1)], path)
    rows, report = load_task_eval_rows("medmcqa", source=str(path))
    assert rows["id"] == ["q0"] and report.n_invalid == 1, "one valid row can be scored"


def test_real_validation_split_is_disjoint_and_upstream(shared_dir):
    source = str(shared_dir / "data/medmcqa/validation.jsonl")
    result = load_task_splits("medmcqa", source=source, sizes=DEFAULT_SPLIT_SIZES)
    assert {name: len(part) for name, part in result.splits.items()} == DEFAULT_SPLIT_SIZES
    upstream = datasets.Dataset.from_json(source).shuffle(seed=42).select(range(1000))
    assert result.splits["sft"]["id"] == upstream["id"]


def test_real_unlabeled_rows_are_refused_for_training_and_scoring(shared_dir):
    source = str(shared_dir / "data/medmcqa/test_unlabeled.jsonl")
    for load in (
        lambda: load_task_split("medmcqa", "sft", source=source),
        lambda: load_task_eval_rows(None, source=source),
    ):
        with pytest.raises(DatasetError) as error:
            load()
        assert "only 0 of 6150 rows are usable" in str(error.value)
        assert "answer_out_of_range: 6150 rows" in str(error.value) and "cop=-1 marks unlabeled" in str(error.value)
    report = load_task(MEDMCQA, "test", source).report
    assert report.invalid_counts() == {"answer_out_of_range": 6150}, "every row is well formed but for its answer"


def test_real_partial_rows_are_usable(shared_dir):
    source = str(shared_dir / "data/medmcqa/train_subset1000_partial.jsonl")
    sft, manifest = load_task_split(None, "sft", source=source, sizes={"sft": 600, "grpo": 300, "eval": 100})
    assert len(sft) == 600 and set(sft["subject"]) == {None} and set(sft["exp"]) == {None}
    assert all(row_id.startswith("row ") for row_id in manifest["splits"]["sft"]["row_ids"])
    assert contamination_count(manifest) == 0


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
    with pytest.raises(DatasetError) as error:
        split_task_rows(normalised.dataset, normalised.source_indices, {}, 5, {"sft": 5, "grpo": 2, "eval": 2}, 0)
    assert str(error.value) == (
        "medmcqa: only 5 distinct valid rows for 9 requested (sft=5/grpo=2/eval=2); skipped: none"
    )
    with pytest.raises(DatasetError, match="stratify_by must be one of subject, answer"):
        split_task_rows(normalised.dataset, normalised.source_indices, {}, 5, {"sft": 1}, 0, stratify_by="topic")


def test_load_task_split_writes_the_manifest_and_uses_the_task_defaults(tmp_path):
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
    assert read_manifest(tmp_path / "m.json") == manifest and manifest["seed"] == 3
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


FIXTURES = REPO / "tests" / "fixtures" / "tasks"


def mixture_args(task, **sizes):
    sizes = {"sft_size": 6, "grpo_size": 2, "eval_size": 3, "split_seed": 1, **sizes}
    return SplitArguments(task=task, **sizes)


def test_a_mixture_splits_each_task_by_its_weight_and_keeps_its_rows(tmp_path, caplog):
    task = {
        "medqa": {"weight": 2, "dataset_name": str(FIXTURES / "medqa.jsonl")},
        "pubmedqa": {"dataset_name": str(FIXTURES / "pubmedqa.jsonl")},
    }
    with caplog.at_level(logging.INFO, logger="fine_tune.data"):
        split = phase_split(mixture_args(task), tmp_path / "manifest.json")
    manifest = split.manifest
    assert f"wrote split manifest to {tmp_path / 'manifest.json'}" in caplog.messages
    assert (manifest["seed"], manifest["sizes"]) == (1, {"sft": 6, "grpo": 2, "eval": 3})
    assert manifest["mixture"] == [
        {"task": name, "weight": weight, "source": task[name]["dataset_name"], "hub_split": "train", "sizes": sizes}
        for name, weight, sizes in [
            ("medqa", 2, {"sft": 4, "grpo": 1, "eval": 3}),
            ("pubmedqa", 1.0, {"sft": 2, "grpo": 1, "eval": 3}),
        ]
    ]
    assert [(s.spec.name, s.source) for s in split.sources] == [(n, task[n]["dataset_name"]) for n in task]
    assert {name: part["size"] for name, part in manifest["splits"].items()} == {"sft": 6, "grpo": 2, "eval": 6}
    assert manifest["skipped"] == {name: manifest["tasks"][name]["skipped"] for name in task}
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
        assert alone.parts[0].task.name == alone.sources[0].spec.name == part.task.name
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
    with pytest.raises(DatasetError, match="two tasks of the mixture are named medqa:"):
        phase_split(mixture_args({"pubmedqa": 1, "medqa": 1, task_copy(tmp_path, "medqa"): 1}, grpo_size=3))


KORMEDMCQA = str(FIXTURES / "kormedmcqa")  # configs doctor/nurse/pharm/dentist: 20 train rows (4 invalid), 8 test


def test_a_phase_splits_the_recipes_source_split_seed_and_strata():
    args = SplitArguments(
        task="kormedmcqa",
        dataset_name=KORMEDMCQA,
        dataset_train_split="test",
        stratify_by="subject",
        split_seed=3,
        sft_size=4,
        grpo_size=2,
        eval_size=2,
    )
    manifest = phase_split(args).manifest
    sizes = {"sft": 4, "grpo": 2, "eval": 2}
    direct = load_task_splits(
        "kormedmcqa", source=KORMEDMCQA, hub_split="test", sizes=sizes, seed=3, stratify_by="subject"
    )
    assert manifest == direct.manifest
    assert (manifest["seed"], manifest["stratify_by"]) == (3, "subject")
    test_hashes = {content_hash(row) for row in load_task_eval_rows("kormedmcqa", source=KORMEDMCQA)[0]}
    assert {h for part in manifest["splits"].values() for h in part["content_hashes"]} == test_hashes


def test_load_task_split_reads_the_named_source_split():
    sizes = {"sft": 4, "grpo": 2, "eval": 2}
    rows, manifest = load_task_split("kormedmcqa", "sft", source=KORMEDMCQA, hub_split="test", sizes=sizes)
    test_rows, _ = load_task_eval_rows("kormedmcqa", source=KORMEDMCQA)
    assert set(rows["question"]) <= set(test_rows["question"]) and manifest["skipped"] == {}


def test_the_official_rows_are_the_eval_split_or_the_one_named_with_the_dropped_rows_counted():
    source = TaskSource(resolve_task("kormedmcqa"), KORMEDMCQA, "train")
    rows, dropped = official_rows(source, None, "HF_TOKEN")
    assert (len(rows), dropped) == (8, {})
    rows, dropped = official_rows(source, "train", "HF_TOKEN")
    assert len(rows) == 16 and sum(dropped.values()) == 4
    assert dropped == load_task(source.spec, "train", KORMEDMCQA).report.invalid_counts()


def test_the_recipes_token_env_reaches_the_reader(monkeypatch):
    seen = []
    real = task_splits.load_task

    def spy(spec, split, source=None, token_env="HF_TOKEN"):
        seen.append((split, token_env))
        return real(spec, split, source, token_env)

    patch_bound(monkeypatch, task_splits, "load_task", spy)
    sizes = {"sft": 4, "grpo": 2, "eval": 2}
    load_task_split("kormedmcqa", "sft", source=KORMEDMCQA, sizes=sizes, token_env="TOKEN_A")
    load_task_eval_rows("kormedmcqa", source=KORMEDMCQA, token_env="TOKEN_B")
    official_rows(TaskSource(resolve_task("kormedmcqa"), KORMEDMCQA, "train"), None, "TOKEN_C")
    phase_split(SplitArguments(task="kormedmcqa", dataset_name=KORMEDMCQA, hf_token_env="TOKEN_D", **sizes_of(sizes)))
    assert seen == [("train", "TOKEN_A"), ("test", "TOKEN_B"), ("test", "TOKEN_C"), ("train", "TOKEN_D")]


def sizes_of(sizes):
    return {f"{name}_size": size for name, size in sizes.items()}


def test_task_sources_take_the_entry_then_the_recipe_then_the_task_file():
    args = SplitArguments(
        task={"medqa": {"weight": 2, "dataset_name": "a.jsonl", "dataset_train_split": "dev"}, "pubmedqa": 1}
    )
    assert [(s.spec.name, s.source, s.hub_split, s.weight) for s in task_sources(args)] == [
        ("medqa", "a.jsonl", "dev", 2),
        ("pubmedqa", resolve_task("pubmedqa").dataset_path, "train", 1),
    ]
    (alone,) = task_sources(SplitArguments(task="medqa", dataset_name="b.jsonl", dataset_train_split="validation"))
    assert (alone.source, alone.hub_split, alone.weight) == ("b.jsonl", "validation", 1.0)


def test_rows_left_out_without_a_reason_are_counted_as_invalid():
    normalised = normalise_dataset(MEDMCQA, [make_row(i) for i in range(6)])
    result = split_task_rows(normalised.dataset, [0, 2, 4, 6, 8, 10], {}, 11, {"sft": 2, "grpo": 1, "eval": 1}, 0)
    used = [i for part in result.manifest["splits"].values() for i in part["source_indices"]]
    assert set(used) <= {0, 2, 4, 6, 8, 10} and result.skipped == result.manifest["skipped"]
    assert set(result.skipped) == {"invalid"} and result.skipped["invalid"] >= 1


def test_a_manifest_labels_a_row_by_its_id_else_its_source_index():
    rows = datasets.Dataset.from_list([{"id": ""}, {"id": "q1"}, {"id": None}])
    assert [label(rows, [4, 5, 6], position) for position in range(3)] == ["row 4", "q1", "row 6"]


SUBJECTS = ("Anatomy", "Physiology", "Surgery")


def curriculum_rows():
    """One invalid row first (source index = canonical position + 1), then 5 rows of each subject, without ids."""
    return [make_row(99, cop=-1)] + [make_row(i, id=None, subject_name=s) for i, s in enumerate(SUBJECTS * 5)]


def test_a_curriculum_holds_out_each_subject_and_records_the_rows_drawn_from_the_pool(tmp_path):
    write_jsonl(curriculum_rows(), tmp_path / "rows.jsonl")
    raised = {"holdout_per_subject": 1, "start_share": 0.5, "recommended_shares": {"Anatomy": 1, "Physiology": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**raised, "reasons": {"Anatomy": "below overall"}}))
    args = SplitArguments(dataset_name=str(tmp_path / "rows.jsonl"), curriculum=str(tmp_path / "c.yaml"))
    split = phase_split(args)  # the recipe's sizes (1000/500/200) give way to the curriculum
    manifest = split.manifest
    start = load_task_splits(None, source=str(tmp_path / "rows.jsonl"), curriculum=Curriculum(1, 0.5)).manifest
    assert manifest["sizes"] == {"sft": 10, "grpo": 0, "eval": 3}
    assert manifest["splits"]["eval"] == start["splits"]["eval"]
    assert (manifest["stratify_by"], manifest["strata"]) == (
        "subject",
        {"sft": {"Anatomy": 4, "Physiology": 4, "Surgery": 2}, "grpo": {}, "eval": dict.fromkeys(SUBJECTS, 1)},
    )
    record = manifest["curriculum"]
    assert (record["file"], record["holdout_per_subject"], record["start_share"]) == (str(tmp_path / "c.yaml"), 1, 0.5)
    sft_ids = manifest["splits"]["sft"]["row_ids"]
    subject_of = dict(zip(sft_ids, split.parts[0].splits["sft"]["subject"], strict=True))
    new = set(sft_ids) - set(start["splits"]["sft"]["row_ids"])
    for subject, reason in [("Anatomy", "below overall"), ("Physiology", "recommended share")]:
        drawn = record["subjects"][subject]["drawn_from_pool"]
        assert drawn["reason"] == reason and len(drawn["row_ids"]) == 2
        assert set(drawn["row_ids"]) == {i for i in new if subject_of[i] == subject}
        assert all(row_id.startswith("row ") for row_id in drawn["row_ids"])
    assert record["subjects"]["Surgery"] == {
        "holdout": 1,
        "share": 0.5,
        "sft": 2,
        "pool": 2,
        "drawn_from_pool": {"row_ids": [], "reason": None},
    }


def test_a_curriculum_needs_one_usable_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl([make_row(0, subject_name="Anatomy"), make_row(1, cop=-1)], path)
    result = load_task_splits(None, source=str(path), curriculum=Curriculum(1, 0.5))
    assert result.splits["eval"]["id"] == ["q0"] and result.manifest["sizes"] == {"sft": 0, "grpo": 0, "eval": 1}
    write_jsonl([make_row(1, cop=-1)], path)
    with pytest.raises(DatasetError, match=r"^medmcqa: only 0 of 1 rows are usable but 1 are needed; invalid"):
        load_task_splits(None, source=str(path), curriculum=Curriculum(1, 0.5))
