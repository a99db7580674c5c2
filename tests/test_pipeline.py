"""The proof that the chain learns: base -> SFT -> GRPO -> eval on the tiny model and synthetic data, through the
three real entry scripts and the demo recipes (what `make demo` runs), on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
CHANCE = 0.25

pytestmark = pytest.mark.slow


def run(*args, timeout=900):
    result = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data = root / "synthetic.jsonl"
    run("scripts/make_tiny_model.py", "--out", root / "tiny-model")
    run("-m", "fine_tune.data.synthetic", "--out", data, "--n", 3000, "--seed", 0)
    common = ["--dataset_name", data]
    run("scripts/train_medmcqa_sft.py", "--config", "configs/demo/sft.yaml", *common,
        "--model_name_or_path", root / "tiny-model", "--output_dir", root / "sft")  # fmt: skip
    run("scripts/train_medmcqa_grpo.py", "--config", "configs/demo/grpo.yaml", *common,
        "--model_name_or_path", root / "sft" / "merged", "--output_dir", root / "grpo")  # fmt: skip
    models = f"base={root / 'tiny-model'},sft={root / 'sft' / 'merged'},grpo={root / 'grpo' / 'merged'}"
    table = run("scripts/eval_medmcqa.py", "--config", "configs/demo/eval.yaml", *common, "--models", models,
                "--split_manifest", root / "sft" / "split_manifest.json", "--output_dir", root / "eval")  # fmt: skip
    results = json.loads((root / "eval" / "demo" / "eval_results.json").read_text())
    return root, results, table.stdout


def metrics(results, label):
    model = results["models"][label]
    assert model["status"] == "ok", model
    return model["metrics"]


def test_sft_learns_the_format_and_the_rule_on_held_out_rows(demo):
    _, results, _ = demo
    base, sft = metrics(results, "base"), metrics(results, "sft")
    assert results["dataset"]["rows"] >= 200
    assert sft["valid_json_rate"] >= 0.9
    assert sft["accuracy"] >= 2 * CHANCE
    assert sft["valid_json_rate"] > base["valid_json_rate"] and sft["accuracy"] > base["accuracy"]


def grpo_log(root):
    history = json.loads((root / "grpo" / "trainer_state.json").read_text())["log_history"]
    return [entry for entry in history if "reward" in entry]


def test_grpo_has_reward_variance_and_improves_reward(demo):
    root, _, _ = demo
    steps = grpo_log(root)
    assert len(steps) >= 20
    with_signal = [entry for entry in steps if entry["frac_reward_zero_std"] < 1.0]
    assert len(with_signal) > 0.8 * len(steps), "most steps must have non-zero reward variance"
    window = len(steps) // 3
    first = sum(entry["reward"] for entry in steps[:window]) / window
    last = sum(entry["reward"] for entry in steps[-window:]) / window
    assert last > first, f"mean reward fell: first {first:.3f}, last {last:.3f}"


def test_grpo_hands_on_new_weights_with_the_right_lineage(demo):
    root, results, _ = demo
    sft_weights = load_file(root / "sft" / "merged" / "model.safetensors")
    grpo_weights = load_file(root / "grpo" / "merged" / "model.safetensors")
    assert sft_weights.keys() == grpo_weights.keys()
    assert any(not torch.equal(sft_weights[k], grpo_weights[k]) for k in sft_weights), "GRPO changed nothing"

    sft_lineage = json.loads((root / "sft" / "merged" / "lineage.json").read_text())
    grpo_lineage = json.loads((root / "grpo" / "merged" / "lineage.json").read_text())
    assert (sft_lineage["phase"], sft_lineage["base"]) == ("sft", str(root / "tiny-model"))
    assert (grpo_lineage["phase"], grpo_lineage["base"]) == ("grpo", str(root / "sft" / "merged"))
    assert grpo_lineage["splits_hash"] == sft_lineage["splits_hash"], "one split; each phase's own dev slice"
    assert grpo_lineage["split_manifest_hash"] != sft_lineage["split_manifest_hash"]
    selection = grpo_lineage["selection"]
    assert selection["selected"]["step"] > 0 and selection["selected"]["accuracy"] > selection["start"]["accuracy"]
    grpo_adapter = json.loads((root / "grpo" / "adapter" / "adapter_config.json").read_text())
    assert grpo_adapter["base_model_name_or_path"] == str(root / "sft" / "merged")
    assert results["models"]["grpo"]["resolved"]["lineage"]["phase"] == "grpo"


def test_eval_prints_the_comparison_table(demo):
    _, results, stdout = demo
    for label in ("base", "sft", "grpo"):
        assert label in stdout
    assert "accuracy" in stdout and "valid JSON" in stdout and "McNemar" in stdout
    pairs = {frozenset((pair["a"], pair["b"])) for pair in results["pairwise"]}
    assert pairs == {frozenset(p) for p in (("base", "sft"), ("base", "grpo"), ("sft", "grpo"))}
    assert all(
        0.0 <= pair["mcnemar_p"] <= 1.0 and pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
        for pair in results["pairwise"]
    )
