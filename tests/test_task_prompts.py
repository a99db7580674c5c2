"""The task format for any task (`fine_tune.task.prompts` with a TaskSpec): MedMCQA stays byte-identical."""

import json
from pathlib import Path

import pytest
import yaml

from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.synthetic import generate_rows
from fine_tune.errors import RecipeError
from fine_tune.task import prompts
from fine_tune.task.parsing import parse_response
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")
REPO = Path(__file__).resolve().parent.parent
OLD_SYSTEM = (
    "You are a medical expert answering a multiple-choice exam question. Reply with exactly one JSON object and "
    'nothing else, with these keys: "predicted_category" (one of "A", "B", "C", "D"), "confidence" (a number between '
    '0 and 1), "reason" (one short sentence).'
)


def old_messages(row):
    """The MedMCQA format as it was before tasks existed (the reference the demo and trained models use)."""
    options = [
        f"{letter}) {str(row[col]).strip()}" for letter, col in zip("ABCD", ("opa", "opb", "opc", "opd"), strict=True)
    ]
    user = "\n".join([f"Question: {row['question'].strip()}", *options])
    return [{"role": "system", "content": OLD_SYSTEM}, {"role": "user", "content": user}]


def old_target(row):
    letter = "ABCD"[row["cop"]]
    explanation = " ".join((row.get("exp") or "").split())
    option = " ".join(str(row[("opa", "opb", "opc", "opd")[row["cop"]]]).split())
    reason = explanation[:250].rstrip() if explanation else f"The correct answer is {letter}) {option}."[:250]
    return json.dumps({"predicted_category": letter, "confidence": 0.95, "reason": reason}, ensure_ascii=False)


def assert_medmcqa_unchanged(rows):
    normalised = normalise_dataset(MEDMCQA, rows)
    for index, canonical in zip(normalised.source_indices, normalised.dataset, strict=True):
        raw = rows[index]
        assert prompts.prompt_messages(canonical) == old_messages(raw)
        assert prompts.prompt_messages(canonical, task=MEDMCQA) == old_messages(raw)
        assert prompts.target_response(canonical) == old_target(raw)
        assert prompts.grpo_example(canonical)["ground_truth"] == "ABCD"[raw["cop"]]
    return len(normalised.source_indices)


def test_medmcqa_prompts_are_byte_identical_on_synthetic_rows():
    assert prompts.SYSTEM_PROMPT == OLD_SYSTEM
    assert assert_medmcqa_unchanged(generate_rows(200, seed=3)) == 200


def test_medmcqa_prompts_are_byte_identical_on_real_rows(shared_dir):
    lines = (shared_dir / "data/medmcqa/validation.jsonl").read_text(encoding="utf-8").splitlines()
    assert assert_medmcqa_unchanged([json.loads(line) for line in lines]) > 4000


def test_five_letter_task_lists_its_letters_and_target_parses():
    spec = resolve_task("kormedmcqa")
    row = {"question": "Q?", "options": list("vwxyz"), "answer": 4, "context": None, "exp": None, "subject": None}
    assert '"predicted_category" (one of "A", "B", "C", "D", "E")' in prompts.system_prompt(spec.letters)
    assert prompts.format_question(row, spec).splitlines()[-1] == "E) z"
    target = prompts.target_response(row, spec)
    assert json.loads(target)["predicted_category"] == "E"
    assert parse_response(target, letters=spec.letters).schema_valid
    assert prompts.grpo_example(row, task=spec)["letters"] == list("ABCDE")


def test_context_precedes_the_question_under_the_task_label():
    spec = resolve_task("pubmedqa")
    row = {"question": "Does X help?", "options": ["yes", "no", "maybe"], "answer": 2, "context": "P1.\nP2.",
           "exp": None, "subject": None}  # fmt: skip
    assert prompts.format_question(row, spec) == "Abstract: P1.\nP2.\nQuestion: Does X help?\nA) yes\nB) no\nC) maybe"


KOREAN_SYSTEM = (
    "당신은 객관식 의학 시험 문제에 답하는 의학 전문가입니다. 다른 말 없이 JSON 객체 하나로만 답하십시오. 키: "
    '"predicted_category" ({choices} 중 하나), "confidence" (0과 1 사이의 숫자), "reason" (짧은 한 문장).'
)


def korean_task(tmp_path, system=KOREAN_SYSTEM):
    spec = yaml.safe_load((REPO / "configs/tasks/kormedmcqa.yaml").read_text(encoding="utf-8"))
    spec["prompt"] = {"question_label": "문제", "system": system}
    path = tmp_path / "kormedmcqa_ko.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def test_a_task_can_give_its_instructions_in_its_own_language(tmp_path):
    spec = resolve_task(str(korean_task(tmp_path)))
    row = {"question": "Q?", "options": list("vwxyz"), "answer": 4, "context": None, "exp": None, "subject": None}
    system, user = prompts.prompt_messages(row, task=spec)
    assert system["content"].startswith("당신은") and '("A", "B", "C", "D", "E" 중 하나)' in system["content"]
    assert user["content"].startswith("문제: Q?")
    assert spec.to_dict()["own_system_prompt"] and not MEDMCQA.to_dict()["own_system_prompt"]
    assert parse_response(prompts.target_response(row, spec), letters=spec.letters).schema_valid, "keys stay English"


@pytest.mark.parametrize(
    ("system", "message"),
    [
        ("Answer with one of the letters.", "system must name the letters once, at {choices}"),
        (
            KOREAN_SYSTEM.replace('"confidence"', '"확신도"'),
            "must name the JSON keys 'predicted_category', 'confidence', 'reason' as they are",
        ),
    ],
)
def test_a_task_system_prompt_must_keep_the_contract(tmp_path, system, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        resolve_task(str(korean_task(tmp_path, system)))


def test_k_shot_prompt_repeats_the_contract_before_the_question():
    rows = normalise_dataset(MEDMCQA, generate_rows(10, seed=1)).dataset
    shots = [rows[i] for i in prompts.select_exemplars(len(rows) - 1, 3, seed=42)]
    messages = prompts.prompt_messages(rows[9], task=MEDMCQA, exemplars=shots)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[-1]["content"] == prompts.format_question(rows[9])
    assert all(parse_response(m["content"]).schema_valid for m in messages if m["role"] == "assistant")


def test_exemplar_selection_is_deterministic_and_distinct():
    first = prompts.select_exemplars(50, 5, seed=7)
    assert first == prompts.select_exemplars(50, 5, seed=7) and len(set(first)) == 5
    assert prompts.select_exemplars(50, 5, seed=8) != first
    assert prompts.select_exemplars(3, 0, seed=0) == []
    with pytest.raises(ValueError, match="only 2 training rows"):
        prompts.select_exemplars(2, 3, seed=0)
