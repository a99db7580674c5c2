"""The text task type (continued pretraining): task files, .txt paragraphs and JSONL records, plain-text SFT examples,
perplexity against the model's own loss, SFT selecting on dev perplexity and stopping at a target, and the eval's
perplexity with its interval."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fine_tune.data.normalise import load_task
from fine_tune.errors import RecipeError
from fine_tune.evaluate.perplexity import (
    TextLosses,
    paired_perplexity_difference,
    perplexity_interval,
    text_losses,
)
from fine_tune.recipes.loader import parse_recipe
from fine_tune.task.prompts import sft_example
from fine_tune.task.spec import parse_task_spec, resolve_task
from fine_tune.train.overlong import conversation_length
from fine_tune.train.sft import check_packing

TEXT = Path(__file__).resolve().parent / "fixtures" / "text"
CORPUS = TEXT / "corpus.yaml"


def test_text_task_file_and_its_refusals():
    spec = resolve_task(str(CORPUS))
    assert (spec.type, spec.question, spec.letters) == ("text", "text", ())
    base = {"name": "t", "type": "text", "dataset_path": "./t.jsonl", "fields": {"text": "body"}}
    assert parse_task_spec(base).question == "body"
    for values, message in [
        ({**base, "fields": {}}, "fields.text is required"),
        ({**base, "fields": {"text": "b", "answer": "a"}}, "unknown key 'answer'"),
        ({**base, "answer_format": "json"}, "a text task has no prompt and no answer_format"),
    ]:
        with pytest.raises(RecipeError, match=message):
            parse_task_spec(values, source="t.yaml")


def test_txt_paragraphs_and_jsonl_records(tmp_path):
    rows = load_task(resolve_task(str(CORPUS)), "train")
    assert len(rows.dataset) == 14 and rows.dataset[0]["text"].startswith("The heart has four chambers")
    assert rows.dataset[12]["text"] == "당뇨병은 혈당이 높은 상태가 오래 지속되는 대사 질환이다."
    records = [{"body": "Aspirin inhibits cyclooxygenase.", "s": "pharm"}, {"body": "  ", "s": "x"}, {"body": 3}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = parse_task_spec(
        {"type": "text", "dataset_path": "./t.jsonl", "fields": {"text": "body", "subject": "s"}},
        source=tmp_path / "t.yaml",
    )
    normalised = load_task(spec, "train")
    assert [dict(r) for r in normalised.dataset] == [
        {"id": None, "text": "Aspirin inhibits cyclooxygenase.", "subject": "pharm"}
    ]
    assert normalised.report.invalid_counts() == {"missing_text": 1, "wrong_type": 1}


def test_sft_example_is_the_plain_text_and_its_length_counts_the_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    spec = resolve_task(str(CORPUS))
    example = sft_example({"id": None, "text": "Insulin lowers glucose.", "subject": None}, task=spec)
    assert example == {"text": "Insulin lowers glucose."}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = len(tokenizer("Insulin lowers glucose.")["input_ids"]) + 1
    assert conversation_length(example, tokenizer) == expected
    assert conversation_length(example, tokenizer, prompt_only=True) == 0


@pytest.mark.usefixtures("single_torch_thread")
def test_perplexity_is_the_models_own_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    texts = ["The liver makes bile.", "Platelets start the clot that stops bleeding at a cut vessel."]
    losses = text_losses(model, tokenizer, texts, batch_size=2)  # batched, padded
    total_nll, total_tokens = 0.0, 0
    for text in texts:  # one at a time, unpadded: HF's mean loss over the predicted tokens
        ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
        total_nll, total_tokens = total_nll + loss * (len(ids) - 1), total_tokens + len(ids) - 1
    assert losses.tokens.sum() == total_tokens
    assert losses.perplexity == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-4)


def test_perplexity_interval_and_paired_difference():
    a = TextLosses(np.array([10.0, 20.0, 5.0, 8.0]), np.array([5, 10, 5, 4]), 0)
    interval = perplexity_interval(a, 500, 0)
    assert interval["value"] == pytest.approx(math.exp(43 / 24)) and interval["tokens"] == 24
    assert interval["ci_low"] <= interval["value"] <= interval["ci_high"]
    same = paired_perplexity_difference(a, a, 200, 0)
    assert same == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    better = TextLosses(a.nll / 2, a.tokens, 0)
    diff = paired_perplexity_difference(a, better, 200, 0)
    assert diff["diff"] == pytest.approx(a.perplexity - better.perplexity) and diff["ci_low"] > 0


def test_packing_is_refused_where_it_is_not_exact(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    check_packing(False, model)
    with pytest.raises(RecipeError, match="packing: true needs FlashAttention"):
        check_packing(True, model)
    model.config._attn_implementation = "flash_attention_2"
    check_packing(True, model)


COMMON = ["--task", str(CORPUS), "--dataset_name", str(TEXT / "corpus.txt"), "--sft_size", "10", "--grpo_size", "0",
          "--eval_size", "4", "--split_seed", "1"]  # fmt: skip


@pytest.mark.usefixtures("single_torch_thread")
def test_continued_pretraining_selects_on_perplexity_and_the_eval_reports_it(tiny_model_dir, tmp_path):
    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.train.sft import run_sft

    cpt = tmp_path / "cpt"
    run_sft(*parse_recipe("sft", ["--config", "configs/demo/sft.yaml", *COMMON,
        "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(cpt), "--max_steps", "6",
        "--per_device_train_batch_size", "4", "--save_strategy", "no", "--logging_steps", "1", "--dev_size", "3",
        "--eval_steps", "2", "--learning_rate", "0.01", "--target_perplexity", "1e9"]))  # fmt: skip
    selection = json.loads((cpt / "merged" / "lineage.json").read_text())["selection"]
    assert [r["step"] for r in selection["history"]] == [0, 2]  # the target (any perplexity) stopped it at step 2
    assert selection["selected"]["perplexity"] < selection["start"]["perplexity"]
    (config,) = parse_recipe("eval", ["--config", "configs/demo/eval.yaml", *COMMON,
        "--models", f"base={tiny_model_dir},cpt={cpt / 'merged'}",
        "--split_manifest", str(cpt / "split_manifest.json"),
        "--output_dir", str(tmp_path / "eval"), "--run_name", "text", "--bootstrap_resamples", "200"])  # fmt: skip
    results = run_evaluation(config).results
    records = [json.loads(line) for line in (tmp_path / "eval" / "text" / "predictions.jsonl").open()]
    for label, model in results["models"].items():
        entry = model["intervals"]["perplexity"]
        assert entry["ci_low"] <= model["metrics"]["perplexity"] <= entry["ci_high"] and entry["n"] == 4
        mine = [r for r in records if r["model"] == label]
        expected = math.exp(sum(r["nll"] for r in mine) / sum(r["tokens"] for r in mine))
        assert model["metrics"]["perplexity"] == pytest.approx(expected)
    assert results["models"]["cpt"]["metrics"]["perplexity"] < results["models"]["base"]["metrics"]["perplexity"]
    (pair,) = results["pairwise"]
    assert pair["metrics"]["perplexity"]["diff"] > 0  # base - cpt


def test_validator_lengths_of_a_text_task_are_the_text_and_its_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    from fine_tune.data.validation_report import rendered_lengths

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"id": None, "text": "The liver makes bile.", "subject": None}]
    lengths = rendered_lengths(tokenizer, rows, resolve_task(str(CORPUS)))
    expected = len(tokenizer("The liver makes bile.", add_special_tokens=False)["input_ids"]) + 1
    assert lengths["prompt"]["max"] == 0 and lengths["full"]["max"] == expected
