import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.task.prompts import prompt_messages
from fine_tune.task.spec import resolve_task

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "validate_dataset.py"


def sizes(sft: int, grpo: int, eval_: int) -> list[str]:
    return ["--sft_size", str(sft), "--grpo_size", str(grpo), "--eval_size", str(eval_)]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "syn.jsonl"
    write_jsonl(generate_rows(300, seed=0), path)
    return path


REPORT_KEYS = {"rows", "valid", "invalid", "examples", "conflicts", "splits", "skipped", "contamination"}
REPORT_KEYS |= {"manifest_hash", "task", "letters"}


def test_json_keys_on_the_real_validation_file(shared_dir):
    result = run_script("--dataset_name", "../shared/data/medmcqa/validation.jsonl", "--json")  # run in the repo
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS
    assert (report["task"], report["letters"], report["rows"], report["valid"]) == (
        "medmcqa",
        list("ABCD"),
        4183,
        4183,
    )
    assert (report["invalid"], report["conflicts"], report["skipped"], report["contamination"]) == ({}, [], {}, 0)
    assert report["splits"] == {"sft": 1000, "grpo": 500, "eval": 200}
    assert report["manifest_hash"] == "3f63552148d240f1c4fd2c9f170ec6181b10d250c1c680153ec0314861385e6d"
    assert report["flags"]["duplicate_options"] > 0 and report["examples"]["duplicate_options"]


def test_json_keys_on_a_fixture_with_invalid_rows():
    fixture = str(REPO_ROOT / "tests/fixtures/tasks/medmcqa.jsonl")
    result = run_script("--dataset_name", fixture, *sizes(8, 2, 2), "--split_seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS
    assert (report["rows"], report["valid"]) == (17, 13)
    assert report["invalid"] == {"missing_question": 1, "missing_option": 1, "answer_out_of_range": 2}
    assert (
        set(report["examples"]) == set(report["invalid"]) | set(report["flags"]) and len(report["manifest_hash"]) == 64
    )
    assert sum(report["skipped"].values()) > 0 and set(report["skipped"]) <= set(report["invalid"])


def test_real_token_lengths(shared_dir):
    from transformers import AutoTokenizer

    from fine_tune.data.normalise import load_task
    from fine_tune.data.validation_report import task_dataset_report

    task = resolve_task("medmcqa")
    normalised = load_task(task, "validation", str(shared_dir / "data/medmcqa/validation.jsonl"))
    tokenizer = AutoTokenizer.from_pretrained(str(shared_dir / "tokenizers/qwen3"))
    stats = task_dataset_report(task, normalised, {"sft": 10}, tokenizer=tokenizer, token_rows=100)["token_lengths"]
    assert stats["rows"] == 100
    assert 100 < stats["prompt"]["mean"] < 400
    assert stats["prompt"]["p50"] <= stats["prompt"]["p95"] <= stats["prompt"]["max"]
    assert stats["full"]["mean"] > stats["prompt"]["mean"]


def test_json_report_on_a_usable_file(synthetic_file):
    result = run_script("--dataset_name", str(synthetic_file), *sizes(150, 80, 40), "--split_seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"rows", "valid", "invalid", "duplicates", "splits", "contamination", "usable"} <= set(report)
    assert report["rows"] == report["valid"] == 300
    assert report["invalid"] == {}
    assert report["splits"] == {"sft": 150, "grpo": 80, "eval": 40}
    assert report["contamination"] == 0
    assert report["usable"] is True
    assert "token_lengths" not in report


def test_text_report_with_the_real_tokenizer(synthetic_file, shared_dir):
    tokenizer = str(shared_dir / "tokenizers/qwen3")
    result = run_script("--dataset_name", str(synthetic_file), *sizes(100, 50, 20), "--tokenizer", tokenizer)
    assert result.returncode == 0, result.stderr
    for expected in ("rows: 300", "duplicate content:", "subjects:", "splits: sft 100", "tokens prompt:", "USABLE"):
        assert expected in result.stdout


def test_too_small_for_the_requested_splits(synthetic_file):
    result = run_script("--dataset_name", str(synthetic_file), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["usable"] is False
    assert "1700 are needed" in report["error"]


def test_unlabeled_rows_exit_2_with_the_reason(shared_dir):
    result = run_script("--dataset_name", str(shared_dir / "data/medmcqa/test_unlabeled.jsonl"))
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "NOT USABLE" in output
    assert "cop=-1" in output and "unlabeled" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset_name", "missing/file.jsonl"], "not found"),
        (["--dataset_name", "x.jsonl", "--sizes", "1,2"], "unknown key 'sizes'"),
        (["--dataset_name", "x.jsonl", "--split_sed", "1"], "did you mean 'split_seed'"),
        (["--dataset_name", "x.jsonl", "--token_rows", "-3"], "token_rows must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(args, message):
    result = run_script(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_empty_file_under_json_is_a_json_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run_script("--dataset_name", str(empty), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["usable"] is False
    assert report["error"] == f"{empty}: empty file (no rows)"
    assert "Traceback" not in result.stderr


def test_bad_lines_are_reported_per_line_and_the_rest_judged(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(generate_rows(60, seed=0), path)
    lines = path.read_bytes().splitlines()
    lines[4] = lines[4][:30]
    lines[9] = lines[9].replace(b'"question": "', b'"question": "\xff')
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run_script("--dataset_name", str(path), *sizes(30, 10, 10), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["rows"], report["valid"]) == (60, 58)
    assert report["invalid"] == {"malformed_line": 1, "not_utf8": 1}
    assert report["examples"]["malformed_line"][0].startswith("line 5 (not JSON")
    assert report["examples"]["not_utf8"][0].startswith("line 10 (byte 0xff at column")


def test_the_validator_reads_a_recipe_through_the_loader(tmp_path, synthetic_file):
    recipe = tmp_path / "data.yaml"
    recipe.write_text(f"dataset_name: {synthetic_file}\nsft_size: 100\ngrpo_size: 50\neval_size: 20\n")
    result = run_script("--config", str(recipe), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"] == {"sft": 100, "grpo": 50, "eval": 20}


def test_help_is_fast():
    start = time.monotonic()
    result = run_script("--help")
    assert result.returncode == 0
    assert "--dataset_name" in result.stdout and "--sft_size" in result.stdout
    print(f"--help took {time.monotonic() - start:.2f} s")  # a figure, not a timed assertion


def test_a_tokenizer_without_chat_template_is_one_line(synthetic_file, tmp_path):
    from fine_tune.models.tiny import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(["a b c"] * 20, vocab_size=300)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path / "tok")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dataset_name", str(synthetic_file), "--tokenizer", str(tmp_path / "tok")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "has no chat template" in done.stderr and "Traceback" not in done.stderr


def conflicting_medqa_rows() -> list[dict]:
    """Eight distinct MedQA rows, and the first one twice more: once with another answer, once with its own."""
    rows = [
        {
            "question": f"Which of these is item {i}?",
            "options": {"A": f"item {i}", "B": "none", "C": "both", "D": "neither"},
            "answer_idx": "A",
            "meta_info": "step1",
        }
        for i in range(8)
    ]
    return [*rows, {**rows[0], "answer_idx": "C"}, dict(rows[0])]


def test_task_report_lists_conflicting_answers_with_their_rows(tmp_path):
    path = tmp_path / "medqa.jsonl"
    write_jsonl(conflicting_medqa_rows(), path)
    result = run_script("--task", "medqa", "--dataset_name", str(path), *sizes(4, 2, 1), "--json")
    report = json.loads(result.stdout)
    assert report["invalid"] == {"conflicting_answer": 3}
    assert report["conflicts"] == [{"ids": ["row 0", "row 8", "row 9"], "answers": ["A", "C", "A"]}]
    assert result.returncode == 0 and report["splits"] == {"sft": 4, "grpo": 2, "eval": 1}
    text = run_script("--task", "medqa", "--dataset_name", str(path), *sizes(4, 2, 1)).stdout
    assert "conflicting answers: row 0 (A), row 8 (C), row 9 (A)" in text


def test_task_report_counts_a_task_file_s_bad_lines(tmp_path):
    path = tmp_path / "medqa.jsonl"
    write_jsonl(conflicting_medqa_rows()[:8], path)
    path.write_bytes(path.read_bytes() + b'{"question": "cut sh\n[1, 2]\n')
    result = run_script("--task", "medqa", "--dataset_name", str(path), *sizes(4, 2, 2), "--json")
    report = json.loads(result.stdout)
    assert (result.returncode, report["rows"], report["valid"]) == (0, 10, 8)
    assert report["invalid"] == {"malformed_line": 2}
    assert report["examples"]["malformed_line"] == [
        "line 9 (not JSON: Unterminated string starting at)",
        "line 10 (a JSON list, not an object)",
    ]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def mistral_tokenizer(shared_dir):
    """A tiny tokenizer with Mistral v0.3's special tokens and its real chat template, which drops a system
    message from a [system, user, assistant] conversation."""
    from fine_tune.models.tiny import tokenizer_corpus, train_tiny_tokenizer

    template = shared_dir / "tokenizers" / "templates" / "mistralai__Mistral-7B-Instruct-v0.3.jinja"
    return train_tiny_tokenizer(tokenizer_corpus(n_rows=100), "mistral", vocab_size=400, chat_template=template)


def token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_token_lengths_are_those_of_the_text_sft_trains_on(mistral_tokenizer):
    from fine_tune.data.validation_report import task_dataset_report
    from fine_tune.task.prompts import SYSTEM_PROMPT, render_prompt, render_training_text
    from fine_tune.task.spec import resolve_task

    task = resolve_task("medqa")
    normalised = normalise_dataset(task, conflicting_medqa_rows()[:8])
    rows = list(normalised.dataset)
    lengths = task_dataset_report(task, normalised, {"sft": 8}, tokenizer=mistral_tokenizer)["token_lengths"]
    full = [render_training_text(mistral_tokenizer, row, task) for row in rows]
    assert all(SYSTEM_PROMPT in text for text in full)  # folded into the user turn, as SFT trains on it
    assert lengths["full"]["max"] == max(token_count(mistral_tokenizer, text) for text in full)
    assert lengths["full"]["p50"] > lengths["prompt"]["p50"]  # prompt + target, never the prompt without its system

    medmcqa = normalise_dataset(resolve_task("medmcqa"), generate_rows(6, seed=4))
    medmcqa_rows = list(medmcqa.dataset)
    stats = task_dataset_report(resolve_task("medmcqa"), medmcqa, {"sft": 6}, tokenizer=mistral_tokenizer)
    stats = stats["token_lengths"]
    full = [render_training_text(mistral_tokenizer, row) for row in medmcqa_rows]
    prompts = [render_prompt(mistral_tokenizer, prompt_messages(row)) for row in medmcqa_rows]
    assert stats["full"]["max"] == max(token_count(mistral_tokenizer, text) for text in full)
    assert stats["prompt"]["max"] == max(token_count(mistral_tokenizer, text) for text in prompts)
    assert all(text.startswith(prompt) for text, prompt in zip(full, prompts, strict=True))


FIXTURES = REPO_ROOT / "tests" / "fixtures" / "tasks"


def mixture(**datasets_by_task) -> str:
    return "{" + ", ".join(f"{task}: {{weight: {w}, dataset_name: '{path}'}}" for task, (w, path) in
                           datasets_by_task.items()) + "}"  # fmt: skip


def test_a_mixture_reports_each_task_at_its_share_and_the_sums():
    task = mixture(medqa=(2, FIXTURES / "medqa.jsonl"), pubmedqa=(1, FIXTURES / "pubmedqa.jsonl"))
    result = run_script("--task", task, *sizes(6, 2, 3), "--split_seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["usable"] and report["task"] == "medqa+pubmedqa" and report["letters"] == list("ABCD")
    assert [(e["task"], e["sizes"]) for e in report["mixture"]] == [
        ("medqa", {"sft": 4, "grpo": 1, "eval": 3}), ("pubmedqa", {"sft": 2, "grpo": 1, "eval": 3})
    ]  # fmt: skip
    tasks = report["tasks"]
    assert tasks["medqa"]["splits"] == {"sft": 4, "grpo": 1, "eval": 3} and tasks["pubmedqa"]["letters"] == list("ABC")
    assert report["rows"] == tasks["medqa"]["rows"] + tasks["pubmedqa"]["rows"] == 31
    assert report["invalid"]["missing_answer"] == 2  # one per task


def test_a_mixture_is_unusable_when_one_task_is_or_two_tasks_share_a_question(tmp_path):
    task = mixture(medqa=(1, FIXTURES / "medqa.jsonl"), pubmedqa=(1, FIXTURES / "pubmedqa.jsonl"))
    result = run_script("--task", task, *sizes(6, 2, 10), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert not report["usable"] and report["error"].startswith("medqa: ")  # 3 + 1 + 10 > 12 valid rows
    copy = tmp_path / "copy.yaml"
    copy.write_text((REPO_ROOT / "configs/tasks/medqa.yaml").read_text().replace("name: medqa", "name: copy"))
    task = mixture(medqa=(2, FIXTURES / "medqa.jsonl"), **{str(copy): (1, FIXTURES / "medqa.jsonl")})
    result = run_script("--task", task, *sizes(6, 2, 3), "--split_seed", "1")
    assert result.returncode == 2 and "NOT USABLE: splits share content" in result.stdout
    assert "== copy ==" in result.stdout
