"""The specialty curriculum: a constant holdout per subject, a starting share, a pool; the eval's
training_recommendations.json; the next round drawing the low-performing subjects' extra rows from the pool. Two
rounds through `run_rounds` on the tiny model (the eval's answers are scripted so one subject is clearly weak)."""

import json
from pathlib import Path

import pytest
import yaml

from fine_tune.data.curriculum import RECOMMENDATIONS_FILE, curriculum_splits, read_shares
from fine_tune.data.normalise import load_task, normalise_row
from fine_tune.errors import DatasetError
from fine_tune.evaluate.recommendations import recommend
from fine_tune.task.spec import resolve_task
from fine_tune.train.rounds import load_rounds_config, run_rounds

SPECIALTIES = Path(__file__).resolve().parent / "fixtures" / "open" / "specialties.yaml"


def test_holdout_is_constant_and_a_larger_share_draws_from_the_pool(tmp_path):
    rows = load_task(resolve_task(str(SPECIALTIES)), "train")
    first = curriculum_splits(rows, seed=1, holdout_per_subject=2, start_share=0.5, task="specialties")
    subjects = first.manifest["curriculum"]["subjects"]
    assert subjects["cardiology"] == {"share": 0.5, "holdout": 2, "train": 3, "pool": 3, "drawn_from_pool": 0}
    assert subjects["internal_medicine_ko"]["train"] == 2 and len(first.splits["eval"]) == 8
    recommendations = tmp_path / RECOMMENDATIONS_FILE
    recommendations.write_text(json.dumps({"recommended_shares": {"cardiology": 1.0, "nephrology": 0.5}}))
    second = curriculum_splits(
        rows, seed=1, holdout_per_subject=2, start_share=0.5, recommendations=str(recommendations)
    )
    cardiology = second.manifest["curriculum"]["subjects"]["cardiology"]
    assert cardiology == {"share": 1.0, "holdout": 2, "train": 6, "pool": 0, "drawn_from_pool": 3}
    assert second.manifest["splits"]["eval"]["row_ids"] == first.manifest["splits"]["eval"]["row_ids"]
    assert set(first.manifest["splits"]["sft"]["row_ids"]) < set(second.manifest["splits"]["sft"]["row_ids"])
    drawn = set(second.manifest["splits"]["sft"]["row_ids"]) - set(first.manifest["splits"]["sft"]["row_ids"])
    assert drawn <= set(first.manifest["curriculum"]["pool"]["row_ids"]) and len(drawn) == 3
    with pytest.raises(DatasetError, match="no rows beyond the holdout of 6"):
        curriculum_splits(rows, seed=1, holdout_per_subject=6, start_share=0.5)
    recommendations.write_text(json.dumps({"recommended_shares": {"cardiology": 2}}))
    with pytest.raises(DatasetError, match="numbers in \\[0, 1\\]"):
        read_shares(recommendations)


def test_recommendation_rule_intervals_and_change():
    records = [{"subject": "a", "correct": True}] * 4 + [{"subject": "b", "correct": False}] * 2
    records += [{"subject": "c", "correct": c} for c in (True, False)]
    first = recommend("m", records, holdout_per_subject=2, start_share=0.5, share_step=0.25, previous=None,
                      resamples=200, seed=0)  # fmt: skip
    assert first["overall_score"] == pytest.approx(5 / 8)
    assert first["low_performing"] == ["b", "c"]  # below 5/8, weakest first
    assert first["recommended_shares"] == {"a": 0.5, "b": 0.75, "c": 0.75}
    assert first["low_performing_scores"]["b"] == {"n": 2, "score": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert first["holdout_per_subject"] == 2
    better = [{**r, "correct": True} if r["subject"] == "b" else r for r in records]
    second = recommend("m", better, holdout_per_subject=2, start_share=0.5, share_step=0.25, previous=first,
                       resamples=200, seed=0)  # fmt: skip
    assert second["change"]["b"] == {"score_before": 0.0, "score_now": 1.0, "score_diff": 1.0, "share_before": 0.75,
                                     "share_next": 0.75}  # fmt: skip
    assert second["low_performing"] == ["c"] and second["recommended_shares"]["c"] == 1.0


@pytest.mark.usefixtures("single_torch_thread")
def test_two_curriculum_rounds_write_and_consume_recommendations(tmp_path, tiny_model_dir, monkeypatch):
    from fine_tune.data.synthetic import generate_rows, write_jsonl
    from fine_tune.evaluate import runs
    from fine_tune.evaluate.generation import GenerationResult
    from fine_tune.task.prompts import LETTERS, format_question, gold_letter

    data = tmp_path / "synthetic.jsonl"
    raw = generate_rows(60, seed=0)
    write_jsonl(raw, data)
    rows = [normalise_row(resolve_task("medmcqa"), row)[0] for row in raw]
    subject_of = {format_question(row): row["subject"] for row in rows}

    def generate(model, tokenizer, messages, **kwargs):  # right on every subject but Surgery
        texts = []
        for conversation in messages:
            question = conversation[-1]["content"]
            row = next(r for r in rows if format_question(r) == question)
            letter = gold_letter(row)
            if subject_of[question] == "Surgery":
                letter = LETTERS[(LETTERS.index(letter) + 1) % 4]
            texts.append(json.dumps({"predicted_category": letter, "confidence": 0.9, "reason": row["exp"] or "x"}))
        return GenerationResult(texts, [20] * len(texts), [True] * len(texts), seconds=1.0)

    monkeypatch.setattr(runs, "generator_for", lambda backend: generate)
    curriculum = {"dataset_name": str(data), "holdout_per_subject": 2, "start_share": 0.25}
    body = {
        "model_name_or_path": str(tiny_model_dir),
        "output_dir": str(tmp_path / "rounds"),
        "max_rounds": 2,
        "patience": 5,
        "no_improvement_action": "warn",
        "tracks": [{"name": "mcq", "config": "configs/demo/sft.yaml", "args": {**curriculum, "max_steps": 1,
                    "dev_size": 0, "save_strategy": "no", "per_device_train_batch_size": 8}}],
        "eval": {"args": {**curriculum, "max_new_tokens": 8, "bootstrap_resamples": 100}},
    }  # fmt: skip
    (tmp_path / "rounds.yaml").write_text(yaml.safe_dump(body))
    summary = run_rounds(load_rounds_config(tmp_path / "rounds.yaml"))
    assert [entry["round"] for entry in summary["rounds"]] == [0, 1, 2]
    evals = tmp_path / "rounds" / "evals"
    files = [json.loads((evals / f"round-{r}" / RECOMMENDATIONS_FILE).read_text()) for r in (0, 1, 2)]
    start = files[0]  # the starting model's eval recommends too: round 1 already trains more Surgery
    assert start["low_performing"] == ["Surgery"] and start["recommended_shares"]["Surgery"] == 0.5
    assert start["low_performing_scores"]["Surgery"]["score"] == 0.0 and start["holdout_per_subject"] == 2
    assert {s for s, share in start["recommended_shares"].items() if share == 0.25} == {
        "Anatomy", "Biochemistry", "Pharmacology", "Physiology"
    }  # fmt: skip
    manifests = [json.loads((tmp_path / "rounds" / f"round-{r}" / "mcq" / "split_manifest.json").read_text())
                 for r in (1, 2)]  # fmt: skip
    one, two = (m["curriculum"]["subjects"] for m in manifests)
    assert one["Surgery"]["share"] == 0.5 and one["Surgery"]["drawn_from_pool"] > 0
    assert two["Surgery"]["share"] == 0.75 and two["Surgery"]["train"] > one["Surgery"]["train"]
    assert all(two[s] == one[s] and one[s]["drawn_from_pool"] == 0 for s in one if s != "Surgery")
    assert manifests[1]["curriculum"]["recommendations"] == str(evals / "round-1" / RECOMMENDATIONS_FILE)
    assert manifests[0]["splits"]["eval"]["row_ids"] == manifests[1]["splits"]["eval"]["row_ids"]  # constant holdout
    change = files[2]["change"]["Surgery"]
    assert (change["share_before"], change["share_next"], change["score_before"]) == (0.75, 1.0, 0.0)


def test_open_rows_are_scored_by_rouge_l():
    records = [{"subject": "cardiology", "rougeL": 0.8}, {"subject": "nephrology", "rougeL": 0.2}]
    result = recommend("m", records, holdout_per_subject=1, start_share=0.5, share_step=0.5, previous=None,
                       resamples=100, seed=0)  # fmt: skip
    assert result["overall_score"] == pytest.approx(0.5) and result["low_performing"] == ["nephrology"]
    assert result["recommended_shares"] == {"cardiology": 0.5, "nephrology": 1.0}
