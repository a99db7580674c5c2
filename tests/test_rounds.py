"""Rounds: a 3-round loop of two SFT tracks on the tiny model, evaluated on a multiple-choice target after each
round, writing rounds.json; the stopping rules and the hand-on rule on made-up scores."""

import json
from pathlib import Path

import pytest
import yaml

from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.errors import NoImprovementError, RecipeError
from fine_tune.train import rounds
from fine_tune.train.rounds import ROUNDS_FILE, load_rounds_config, run_rounds

TERMS = Path(__file__).resolve().parent / "fixtures" / "open" / "terms.yaml"
MCQ = {"sft_size": 40, "grpo_size": 20, "eval_size": 12}


def recipe(tmp_path: Path, model, data: Path, **values) -> Path:
    common = {"config": "configs/demo/sft.yaml"}
    train = {"dev_size": 0, "save_strategy": "no", "logging_steps": 1}
    body = {
        "model_name_or_path": str(model),
        "output_dir": str(tmp_path / "rounds"),
        "max_rounds": 3,
        "patience": 4,  # the loop runs its 3 rounds even when none improves
        "target": {"metric": "accuracy", "value": 1.01},
        "no_improvement_action": "warn",
        "tracks": [
            {"name": "terms", **common, "args": {"task": str(TERMS), "dataset_name": str(TERMS.parent / "terms.json"),
             "sft_size": 8, "grpo_size": 0, "eval_size": 4, "max_steps": 1, "per_device_train_batch_size": 4,
             **train}},
            {"name": "mcq", **common, "args": {"dataset_name": str(data), **MCQ, "max_steps": 2,
             "per_device_train_batch_size": 8, "learning_rate": 0.01, **train}},
        ],
        "eval": {"args": {"dataset_name": str(data), **MCQ, "max_new_tokens": 12, "bootstrap_resamples": 100}},
        **values,
    }  # fmt: skip
    path = tmp_path / "rounds.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.usefixtures("single_torch_thread")
def test_three_rounds_write_rounds_json_and_keep_every_round(tmp_path, tiny_model_dir):
    data = tmp_path / "synthetic.jsonl"
    write_jsonl(generate_rows(120, seed=0), data)
    summary = run_rounds(load_rounds_config(recipe(tmp_path, tiny_model_dir, data)))
    written = json.loads((tmp_path / "rounds" / ROUNDS_FILE).read_text())
    assert written == json.loads(json.dumps(summary))
    assert [entry["round"] for entry in written["rounds"]] == [0, 1, 2, 3] and written["stopped"] == "max_rounds"
    for entry in written["rounds"][1:]:
        assert Path(entry["model"]).is_dir() and entry["model"].endswith("round-{}/mcq/merged".format(entry["round"]))
        assert entry["scores"]["n"] == 12 and entry["target_score"] == entry["scores"]["accuracy"]
        assert (tmp_path / "rounds" / "round-{}".format(entry["round"]) / "terms" / "merged").is_dir()
    scores = [entry["target_score"] for entry in written["rounds"]]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first round with the best score
    assert written["handed_on"] == (best or None)
    kept = [entry["round"] for entry in written["rounds"] if entry["kept"]]
    assert kept == [r for r in range(len(scores)) if r == 0 or scores[r] > max(scores[:r])]


def fake_rounds(monkeypatch, scores, tmp_path, **values):
    """run_rounds with made-up target scores: round r's eval gives scores[r]."""
    monkeypatch.setattr(rounds, "train_round", lambda config, number, start, extra: tmp_path / f"m{number}")
    monkeypatch.setattr(
        rounds, "evaluate_round", lambda config, label, model, extra=None: {config.metric: scores[int(label[6:])]}
    )
    body = {"model_name_or_path": "start", "output_dir": str(tmp_path / "out"), "tracks": [{"name": "a"}],
            "eval": {"args": {}}, "no_improvement_action": "warn", **values}  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body))
    return run_rounds(load_rounds_config(tmp_path / "r.yaml"))


def test_stopping_rules_and_the_hand_on_rule(monkeypatch, tmp_path):
    target = fake_rounds(monkeypatch, [0.2, 0.5, 0.9, 0.95], tmp_path, target={"metric": "accuracy", "value": 0.9})
    assert (target["stopped"], target["handed_on"], len(target["rounds"])) == ("target", 2, 3)
    patience = fake_rounds(monkeypatch, [0.2, 0.5, 0.4, 0.5, 0.3, 0.9], tmp_path, patience=3, max_rounds=5)
    assert (patience["stopped"], patience["handed_on"], len(patience["rounds"])) == ("patience", 1, 5)
    assert [e["kept"] for e in patience["rounds"]] == [True, True, False, False, False]
    worse = fake_rounds(monkeypatch, [0.5, 0.4, 0.5], tmp_path, max_rounds=2)
    assert (worse["handed_on"], worse["model"], worse["stopped"]) == (None, None, "max_rounds")
    with pytest.raises(NoImprovementError, match="no round beat the starting model"):
        fake_rounds(monkeypatch, [0.5, 0.4, 0.5], tmp_path, max_rounds=2, no_improvement_action="fail")
    perplexity = fake_rounds(monkeypatch, [9.0, 5.0, 6.0], tmp_path, max_rounds=2, target={"metric": "perplexity"})
    assert perplexity["handed_on"] == 1 and perplexity["lower_is_better"]


def test_bad_rounds_recipes_are_one_line(tmp_path):
    base = {"model_name_or_path": "m", "output_dir": "o", "tracks": [{"name": "a"}], "eval": {"args": {}}}
    for values, message in [
        ({**base, "rounds": 3}, "unknown key"),
        ({**base, "tracks": [{"name": "a", "phase": "dpo"}]}, "phase must be one of sft, grpo"),
        ({**base, "tracks": [{"args": {"output_dir": "x"}}]}, "rounds set them"),
        ({**base, "patience": 0}, "must be >= 1"),
        ({**base, "eval": None}, "`eval` is required"),
    ]:
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(values))
        with pytest.raises(RecipeError, match=message):
            load_rounds_config(tmp_path / "r.yaml")
