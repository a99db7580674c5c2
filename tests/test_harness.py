"""lm-evaluation-harness's log-likelihood protocol beside the generative accuracy (`--harness lm_eval`), offline on
the tiny model; refused with one line when the [harness] extra is absent."""

import io
import json
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from fine_tune.constants import REPORT_FILE, RESULTS_FILE
from fine_tune.errors import RecipeError
from fine_tune.evaluate.harness import check_harness, harness_prompt
from fine_tune.evaluate.phase import run_evaluation
from fine_tune.recipes.arguments import EvalConfig

MEDQA_FIXTURE = Path(__file__).parent / "fixtures" / "tasks" / "medqa.jsonl"
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_without_the_extra_the_option_is_refused_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval -> ImportError
    with pytest.raises(RecipeError, match=r"--harness lm_eval needs lm-evaluation-harness.*\[harness\]") as error:
        check_harness("lm_eval")
    assert "\n" not in str(error.value)
    with pytest.raises(RecipeError, match="harness must be one of lm_eval"):
        check_harness("helm")


def test_the_prompt_is_the_leaderboards_medmcqa_doc_to_text():
    row = {"question": "Q?", "options": ["a", "b", "c", "d"], "answer": 1, "context": None}
    assert harness_prompt(row, "ABCD") == "Question: Q?\nChoices:\nA. a\nB. b\nC. c\nD. d\nAnswer:"


def hand_loglikelihood_accuracy(model_dir: Path, rows: list[dict], letters: str) -> float:
    """What the protocol means, computed directly: the letter with the highest log-likelihood after the prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    right = 0
    for row in rows:
        context = tokenizer(harness_prompt(row, letters)).input_ids
        scores = []
        for letter in letters[: len(row["options"])]:
            continuation = tokenizer(harness_prompt(row, letters) + " " + letter).input_ids[len(context) :]
            ids = torch.tensor([context + continuation])
            with torch.no_grad():
                logprobs = model(ids).logits[0, :-1].log_softmax(-1)
            scores.append(sum(logprobs[len(context) - 1 + i, t].item() for i, t in enumerate(continuation)))
        right += max(range(len(scores)), key=scores.__getitem__) == row["answer"]
    return right / len(rows)


def test_a_harness_run_reports_loglikelihood_accuracy_beside_the_generative_one(tmp_path, tiny_model_dir):
    pytest.importorskip("lm_eval", reason="the [harness] extra (lm-eval) is not installed")
    config = EvalConfig(
        models={"base": str(tiny_model_dir)}, task="medqa", dataset_name=str(MEDQA_FIXTURE), sft_size=4,
        grpo_size=2, eval_size=6, split_manifest=None, harness="lm_eval", max_new_tokens=8, batch_size=8,
        bootstrap_resamples=100, output_dir=str(tmp_path), run_name="harness",
    )  # fmt: skip
    outcome = run_evaluation(config, console=Console(file=io.StringIO(), width=200))
    results = json.loads((outcome.folder / RESULTS_FILE).read_text())
    harness = results["models"]["base"]["harness"]
    assert harness["harness_task"] == "medft_medqa" and harness["n"] == 6 and "log-likelihood" in harness["protocol"]
    from fine_tune.evaluate.eval_set import load_eval_sets

    rows = list(load_eval_sets(config)[0].rows)
    assert harness["loglikelihood_accuracy"] == pytest.approx(
        hand_loglikelihood_accuracy(tiny_model_dir, rows, "ABCD")
    )
    report = (outcome.folder / REPORT_FILE).read_text()
    assert "## Two protocols on the same rows" in report and "log-likelihood acc" in report
