"""What a newcomer meets in the first hour: a smoke run's exit 3 says what to do, generated files stay out of the
tracked tree, an all-failed eval says so, an oversubscribed launch is one line from one rank."""

import runpy
from pathlib import Path

import pytest

from fine_tune.errors import NoImprovementError, RecipeError
from fine_tune.train.selection import check_improvement, selection_summary

REPO = Path(__file__).resolve().parent.parent


def script(name: str) -> dict:
    return runpy.run_path(str(REPO / "scripts" / name), run_name=name.removesuffix(".py"))


def dev_history(*accuracies: float) -> list[dict]:
    return [
        {
            "step": 10 * i,
            "n": 10,
            "accuracy": a,
            "valid_json_rate": 1.0,
            "schema_pass_rate": 1.0,
            "score": (a, 1.0),
            "examples": ["{}"],
        }
        for i, a in enumerate(accuracies)
    ]


@pytest.mark.parametrize("best_step", [None, 10])
def test_no_improvement_says_a_smoke_run_ends_here_and_names_the_flag(best_step):
    records = dev_history(0.5, 0.5)
    with pytest.raises(NoImprovementError) as raised:
        check_improvement(selection_summary(records, best_step=best_step), records, "fail")
    assert "expected for a smoke run" in str(raised.value)
    assert "--no_improvement_action warn" in str(raised.value)


def test_the_reward_guard_says_a_smoke_run_ends_here_and_names_the_flag():
    from test_training import log_step, make_guard

    guard = make_guard(1)
    assert log_step(guard, 1, reward=0.0, frac_reward_zero_std=1.0).should_training_stop
    assert "expected there; add --reward_guard_action warn" in guard.message


def test_an_eval_where_every_model_failed_does_not_point_at_other_results():
    summary = script("eval_medmcqa.py")["failure_summary"]
    assert "others" not in summary(2, 2, "eval_results/x") and "nothing was scored" in summary(2, 2, "x")
    assert summary(1, 3, "eval_results/x") == "1 of 3 model(s) failed; results of the others are in eval_results/x"


def test_the_benchmark_writes_tracked_results_only_with_write():
    parse_args = script("benchmark.py")["parse_args"]
    tracked = REPO / "eval_results" / "benchmarks"
    assert parse_args(["--smoke"]).out_dir == REPO / "outputs" / "benchmarks"
    assert parse_args(["--smoke", "--write"]).out_dir == tracked
    assert parse_args(["--smoke", "--out-dir", "/tmp/b"]).out_dir == Path("/tmp/b")


def test_synthetic_rows_go_under_demo_artifacts_unless_out_is_given(monkeypatch, tmp_path, capsys):
    from fine_tune.data.synthetic import main

    monkeypatch.chdir(tmp_path)
    main(["--family", "member", "--n", "5"])
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")] == [
        "demo_artifacts/synthetic-member.jsonl"
    ]
    main(["--n", "5", "--out", "mine.jsonl"])
    assert (tmp_path / "mine.jsonl").is_file()


@pytest.mark.parametrize(("rank", "printed"), [("0", True), ("3", False)])
def test_more_processes_than_gpus_is_one_line_from_rank_zero_only(monkeypatch, capsys, rank, printed):
    import torch

    from fine_tune.cli import check_launch

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", rank)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit) as exited:
        check_launch()
    err = capsys.readouterr().err
    assert exited.value.code == 2
    if printed:
        assert err == (
            "error: 4 processes were launched on this machine (accelerate launch --num_processes 4) but it has 1 "
            "GPU(s): launch with --num_processes 1 or fewer\n"
        )
    else:
        assert err == ""


def test_cpu_processes_and_a_fitting_launch_start(monkeypatch):
    import torch

    from fine_tune.cli import launch_problem

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch_problem() is None  # gloo data parallel on CPU (tests/test_distributed.py)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launch_problem() is None


def test_parse_only_mode_reads_the_recipe_in_full_and_exits_zero(monkeypatch, capsys):
    main = script("train_medmcqa_grpo.py")["main"]
    monkeypatch.setenv("FINE_TUNE_PARSE_ONLY", "1")
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(REPO / "configs" / "grpo.yaml"), "--max_steps", "3", "--output_dir", "unused/grpo"])
    assert exited.value.code == 0 and "parse only" in capsys.readouterr().err
    assert not (REPO / "unused").exists()
    with pytest.raises(RecipeError, match=r"unknown key 'lora_rank' \(did you mean 'lora_r'\?\)"):
        main(["--config", str(REPO / "configs" / "grpo.yaml"), "--lora_rank", "8"])
