import json

import pytest

from fine_tune.data.synthetic import generate_rows
from fine_tune.data.tasks import normalise_dataset
from fine_tune.task import prompts, render
from fine_tune.task.parsing import parse_response
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")


def medmcqa_pairs(rows):
    normalised = normalise_dataset(MEDMCQA, rows)
    return [(rows[i], canonical) for i, canonical in zip(normalised.source_indices, normalised.dataset, strict=True)]


def assert_same_format(raw, canonical):
    assert render.prompt_messages(MEDMCQA, canonical) == prompts.prompt_messages(raw)
    assert render.sft_example(MEDMCQA, canonical) == prompts.sft_example(raw)
    grpo = render.grpo_example(MEDMCQA, canonical)
    assert grpo.pop("letters") == ["A", "B", "C", "D"]
    assert grpo == prompts.grpo_example(raw)


def test_medmcqa_prompts_are_byte_identical_on_synthetic_rows():
    for raw, canonical in medmcqa_pairs(generate_rows(200, seed=3)):
        assert_same_format(raw, canonical)


def test_medmcqa_prompts_are_byte_identical_on_real_rows(shared_dir):
    lines = (shared_dir / "data/medmcqa/validation.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = medmcqa_pairs([json.loads(line) for line in lines])
    assert len(pairs) > 4000
    for raw, canonical in pairs:
        assert_same_format(raw, canonical)


def test_five_letter_task_lists_its_letters_and_target_parses():
    spec = resolve_task("kormedmcqa")
    row = {"question": "Q?", "options": list("vwxyz"), "answer": 4, "context": None, "exp": None, "subject": None}
    assert '"predicted_category" (one of "A", "B", "C", "D", "E")' in render.system_prompt(spec.letters)
    assert render.format_question(spec, row).splitlines()[-1] == "E) z"
    assert json.loads(render.target_response(spec, row))["predicted_category"] == "E"


def test_context_precedes_the_question_under_the_task_label():
    spec = resolve_task("pubmedqa")
    row = {
        "question": "Does X help?",
        "options": ["yes", "no", "maybe"],
        "answer": 2,
        "context": "P1.\nP2.",
        "exp": None,
        "subject": None,
    }
    assert render.format_question(spec, row) == "Abstract: P1.\nP2.\nQuestion: Does X help?\nA) yes\nB) no\nC) maybe"


def test_k_shot_prompt_repeats_the_contract_before_the_question():
    rows = normalise_dataset(MEDMCQA, generate_rows(10, seed=1)).dataset
    shots = [rows[i] for i in render.select_exemplars(len(rows) - 1, 3, seed=42)]
    messages = render.prompt_messages(MEDMCQA, rows[9], shots)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[-1]["content"] == render.format_question(MEDMCQA, rows[9])
    assert all(parse_response(m["content"]).schema_valid for m in messages if m["role"] == "assistant")
    assert render.prompt_messages(MEDMCQA, rows[9], ()) == render.prompt_messages(MEDMCQA, rows[9])


def test_exemplar_selection_is_deterministic_and_distinct():
    first = render.select_exemplars(50, 5, seed=7)
    assert first == render.select_exemplars(50, 5, seed=7) and len(set(first)) == 5
    assert render.select_exemplars(50, 5, seed=8) != first
    assert render.select_exemplars(3, 0, seed=0) == []
    with pytest.raises(ValueError, match="only 2 training rows"):
        render.select_exemplars(2, 3, seed=0)
