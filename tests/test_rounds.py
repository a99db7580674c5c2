"""Rounds (`fine_tune.hub.rounds`): the loop's stopping rules and the no-worse rule on constructed eval results, then
a 3-round loop and a 2-round specialty curriculum on the tiny model through the real scripts (run in-process)."""

import json
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from fine_tune.hub.rounds import LABEL, load_rounds, run_rounds

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def write_rounds(path, data, model, out, **extra):
    rounds = {
        "eval_config": str(REPO / "configs/demo/eval.yaml"),
        "eval_overrides": {"dataset_name": str(data), "limit": 6, "max_new_tokens": 8, "bootstrap_resamples": 10,
                           "batch_size": 8},
        "output_dir": str(out),
        "start_model": str(model),
        "max_rounds": 3,
        "patience": 5,
        "tracks": [{"name": "mcq", "sft_config": str(REPO / "configs/demo/sft.yaml"),
                    "overrides": {"dataset_name": str(data), "max_steps": 2, "dev_size": 0, "save_strategy": "no",
                                  "per_device_train_batch_size": 2, "logging_steps": 1,
                                  "sft_size": 40, "grpo_size": 0, "eval_size": 12, "report_to": "none"}}],
        **extra,
    }  # fmt: skip
    rounds["eval_overrides"].update({"sft_size": 40, "grpo_size": 0, "eval_size": 12})
    path.write_text(yaml.safe_dump(rounds))
    return path


def in_process(command):
    """Run an entry script in this process (no interpreter start, no re-import of torch): (exit code, '')."""
    argv = sys.argv
    sys.argv = [str(REPO / command[0]), *command[1:]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0, ""
    except SystemExit as stop:
        return (stop.code if isinstance(stop.code, int) else 1), str(stop.code)
    finally:
        sys.argv = argv


class FakeEvals:
    """A runner that trains nothing and writes each eval's results from a script: per round, (target score,
    per-row strict correctness)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def __call__(self, command):
        self.calls.append(command)
        if not command[0].endswith("eval_medmcqa.py"):
            return 0, ""
        folder = Path(command[command.index("--output_dir") + 1]) / "eval"
        score, correct = self.script[folder.parent.name]
        folder.mkdir(parents=True)
        model = {"metrics": {"accuracy": sum(correct) / len(correct), "rougeL": score, "valid_json_rate": 1.0}}
        results = {"models": {LABEL: model}, "dataset": {"eval_rows_hash": "same"}}
        (folder / "eval_results.json").write_text(json.dumps(results))
        records = [{"model": LABEL, "id": f"q{i}", "correct": c} for i, c in enumerate(correct)]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return 0, ""


def test_the_best_round_is_handed_on_unless_significantly_worse_than_the_start(tmp_path, tiny_model_dir):
    path = write_rounds(tmp_path / "r.yaml", "data.jsonl", tiny_model_dir, tmp_path / "out", target_metric="rougeL",
                        max_rounds=4, patience=1)  # fmt: skip
    rounds = load_rounds(path)
    start = [True] * 12 + [False] * 8
    script = {
        "round-0": (0.30, start),
        "round-1": (0.35, start),  # better, the same rows right: eligible
        "round-2": (0.50, [False] * 12 + [False] * 8),  # the best score, but 12 rows lost: McNemar p < 0.05
        "round-3": (0.40, start),  # below round 2's best: patience 1 stops here
        "round-4": (0.90, start),
    }
    summary = run_rounds(rounds, FakeEvals(script), log=lambda _: None)
    assert [e["round"] for e in summary["rounds"]] == [1, 2, 3]
    assert summary["stopped"].startswith("patience")
    assert summary["rounds"][1]["no_worse"]["regressed"] and summary["rounds"][1]["no_worse"]["mcnemar_p"] < 0.05
    assert summary["handed_on"] == 3 and [e["kept"] for e in summary["rounds"]] == [False, False, True]
    written = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert written["handed_on"] == 3 and written["handed_on_model"].endswith("round-3/mcq/merged")
    assert [e["scores"]["rougeL"] for e in written["rounds"]] == [0.35, 0.50, 0.40]

    script = {f"round-{n}": (0.30 if n == 0 else 0.2, start) for n in range(5)}
    rounds = load_rounds(path, output_dir=str(tmp_path / "worse"))
    summary = run_rounds(rounds, FakeEvals(script), log=lambda _: None)
    assert summary["handed_on"] is None and summary["stopped"].startswith("patience")  # exit 3 in the script

    path = write_rounds(tmp_path / "t.yaml", "d.jsonl", tiny_model_dir, tmp_path / "t", target_metric="rougeL",
                        target_value=0.45)  # fmt: skip
    summary = run_rounds(load_rounds(path), FakeEvals(script | {"round-2": (0.5, start)}), log=lambda _: None)
    assert summary["stopped"] == "target reached" and summary["handed_on"] == 2


def test_a_track_must_state_its_length(tmp_path, tiny_model_dir):
    from fine_tune.errors import RecipeError

    path = write_rounds(tmp_path / "r.yaml", "d.jsonl", tiny_model_dir, tmp_path)
    values = yaml.safe_load(path.read_text())
    del values["tracks"][0]["overrides"]["max_steps"]
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(RecipeError, match="track 'mcq' must state its length per round"):
        load_rounds(path)


def test_three_rounds_on_the_tiny_model_write_rounds_json(tmp_path, synthetic_jsonl, tiny_model_dir):
    path = write_rounds(tmp_path / "r.yaml", synthetic_jsonl, tiny_model_dir, tmp_path / "out", target_value=1.01)
    summary = run_rounds(load_rounds(path), in_process, log=lambda _: None)
    assert [e["status"] for e in summary["rounds"]] == ["ok"] * 3, summary
    written = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert [e["round"] for e in written["rounds"]] == [1, 2, 3] and written["stopped"] == "max_rounds"
    for entry in written["rounds"]:
        results = json.loads((tmp_path / "out" / f"round-{entry['round']}" / "eval" / "eval_results.json").read_text())
        assert entry["scores"]["accuracy"] == results["models"][LABEL]["metrics"]["accuracy"]
        assert results["models"][LABEL]["source"] == entry["model"]  # the round's eval scored the round's model
        lineage = json.loads((Path(entry["model"]) / "lineage.json").read_text())
        previous = str(tiny_model_dir) if entry["round"] == 1 else written["rounds"][entry["round"] - 2]["model"]
        assert lineage["base"] == previous  # each round starts from the previous round's merged model
    kept = [e["round"] for e in written["rounds"] if e["kept"]]
    assert kept == ([written["handed_on"]] if written["handed_on"] else [])


def test_a_two_round_curriculum_writes_and_reads_training_recommendations(tmp_path, synthetic_jsonl, tiny_model_dir):
    curriculum = {"holdout_per_subject": 2, "start_share": 0.05, "rule": "lowest", "k": 2, "step": 0.5}
    path = write_rounds(tmp_path / "r.yaml", synthetic_jsonl, tiny_model_dir, tmp_path / "out", max_rounds=2,
                        curriculum=curriculum)  # fmt: skip
    values = yaml.safe_load(path.read_text())
    values["eval_overrides"]["limit"] = 100  # the whole holdout: every subject scored
    path.write_text(yaml.safe_dump(values))
    summary = run_rounds(load_rounds(path), in_process, log=lambda _: None)
    assert [e["status"] for e in summary["rounds"]] == ["ok"] * 2, summary
    advice = json.loads((tmp_path / "out" / "round-1" / "training_recommendations.json").read_text())
    assert {"low_performing", "recommended_shares", "holdout_per_subject", "intervals", "change"} <= set(advice)
    assert len(advice["low_performing"]) == 2 and advice["holdout_per_subject"] == 2
    low = advice["low_performing"]
    assert all(advice["recommended_shares"][s] == 0.55 for s in low)
    assert all("ci_high" in advice["intervals"][s] for s in low)
    first = json.loads((tmp_path / "out" / "round-1" / "mcq" / "split_manifest.json").read_text())
    second = json.loads((tmp_path / "out" / "round-2" / "mcq" / "split_manifest.json").read_text())
    assert second["curriculum"]["file"] == summary["rounds"][0]["recommendations"]
    assert first["splits"]["eval"]["content_hashes"] == second["splits"]["eval"]["content_hashes"]
    for subject, entry in second["curriculum"]["subjects"].items():
        drawn = entry["drawn_from_pool"]
        if subject in low:
            assert drawn["row_ids"] and drawn["reason"].startswith("round 1: accuracy")
            assert first["curriculum"]["subjects"][subject]["sft"] < entry["sft"]
        else:
            assert drawn["row_ids"] == [] and entry["sft"] == first["curriculum"]["subjects"][subject]["sft"]
    assert (tmp_path / "out" / "round-2" / "training_recommendations.json").is_file()


def test_print_only_chains_each_round_to_the_previous_model_and_recommendations(tmp_path, capsys):
    script = [
        "scripts/rounds.py",
        "configs/rounds/demo-curriculum.yaml",
        "--print_only",
        "--output_dir",
        str(tmp_path),
    ]
    assert in_process(script)[0] == 0
    result = capsys.readouterr()
    commands = [shlex.split(line)[1:] for line in result.out.splitlines() if line.startswith("python ")]
    assert len(commands) == 1 + 4 * 2  # the start's eval, then per round one track's SFT and the eval
    second_sft = commands[3]
    assert second_sft[0] == "scripts/train_medmcqa_sft.py"
    assert second_sft[second_sft.index("--model_name_or_path") + 1] == f"{tmp_path}/round-1/mcq/merged"
    assert second_sft[second_sft.index("--curriculum") + 1] == f"{tmp_path}/round-1/training_recommendations.json"
    assert commands[4][commands[4].index("--models") + 1] == f"model={tmp_path}/round-2/mcq/merged"


@pytest.mark.parametrize(
    ("summary", "code"),
    [
        ({"start": {}, "rounds": [{"status": "ok"}], "handed_on": 1, "stopped": "max_rounds"}, 0),
        ({"start": {}, "rounds": [{"status": "ok"}], "handed_on": None, "stopped": "max_rounds"}, 3),
        ({"start": {}, "rounds": [{"status": "failed in x"}], "handed_on": None, "stopped": "failed"}, 1),
        ({"rounds": [], "handed_on": None, "stopped": "failed in the start model's eval"}, 1),
    ],
)
def test_the_script_exits_3_when_nothing_is_handed_on(monkeypatch, tmp_path, summary, code):
    import fine_tune.hub.rounds as rounds_module

    monkeypatch.setattr(rounds_module, "run_rounds", lambda rounds: summary)
    script = ["scripts/rounds.py", "configs/rounds/demo-curriculum.yaml", "--output_dir", str(tmp_path)]
    assert in_process(script)[0] == code
