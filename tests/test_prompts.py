import json

import pytest
from transformers import AutoTokenizer

from fine_tune.task.prompts import (
    CHAT_TEMPLATE_KWARGS,
    REASON_MAX_CHARS,
    RESPONSE_KEYS,
    SYSTEM_PROMPT,
    format_question,
    gold_letter,
    grpo_example,
    prompt_messages,
    render_prompt,
    sft_example,
    target_reason,
    target_response,
)

ROW = {
    "id": "r1",
    "question": "  Which nerve supplies the deltoid? ",
    "opa": "Radial",
    "opb": "Axillary",
    "opc": "Ulnar",
    "opd": "Median",
    "cop": 1,
    "exp": "The axillary nerve (C5, C6) supplies the deltoid and teres minor.",
}


def test_user_message_layout():
    assert format_question(ROW) == (
        "Question: Which nerve supplies the deltoid?\nA) Radial\nB) Axillary\nC) Ulnar\nD) Median"
    )
    assert prompt_messages(ROW) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": format_question(ROW)},
    ]


def test_target_is_exactly_the_three_keys():
    target = json.loads(target_response(ROW))
    assert list(target) == list(RESPONSE_KEYS)
    assert target == {"predicted_category": "B", "confidence": 0.95, "reason": ROW["exp"]}


def test_reason_is_truncated_and_never_empty():
    assert len(target_reason({**ROW, "exp": "x" * 1000})) == REASON_MAX_CHARS
    assert target_reason({**ROW, "exp": None}) == "The correct answer is B) Axillary."
    assert target_reason({**ROW, "exp": "   \n "}) == "The correct answer is B) Axillary."
    assert target_reason({**ROW, "exp": "a\n\nb   c"}) == "a b c"


def test_sft_and_grpo_examples():
    sft = sft_example(ROW)
    assert sft["prompt"] == prompt_messages(ROW)
    assert sft["completion"] == [{"role": "assistant", "content": target_response(ROW)}]
    assert sft["chat_template_kwargs"] == {"enable_thinking": False}
    assert grpo_example(ROW) == {"prompt": prompt_messages(ROW), "ground_truth": "B"}
    assert [gold_letter({**ROW, "cop": cop}) for cop in range(4)] == ["A", "B", "C", "D"]


def assert_eval_prompt_is_token_prefix(tokenizer):
    """The eval-time prompt must be a token prefix of the SFT training sequence, in non-thinking mode."""
    prompt = render_prompt(tokenizer, prompt_messages(ROW))
    full = tokenizer.apply_chat_template(
        prompt_messages(ROW) + sft_example(ROW)["completion"], tokenize=False, **CHAT_TEMPLATE_KWARGS
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), "non-thinking mode must be on"
    completion = tokenizer.decode(full_ids[len(prompt_ids) :])
    assert completion == target_response(ROW) + "<|im_end|>\n"


def test_prompt_is_token_prefix_with_tiny_tokenizer(tiny_model_dir):
    assert_eval_prompt_is_token_prefix(AutoTokenizer.from_pretrained(tiny_model_dir))


def test_prompt_is_token_prefix_with_real_qwen3_tokenizer(qwen3_tokenizer):
    assert_eval_prompt_is_token_prefix(qwen3_tokenizer)


@pytest.mark.parametrize("enable_thinking", [True, False])
def test_thinking_mode_changes_the_prompt(qwen3_tokenizer, enable_thinking):
    """Guards the upstream failure: without enable_thinking=False, Qwen3 is invited to open a <think> block."""
    text = qwen3_tokenizer.apply_chat_template(
        prompt_messages(ROW), tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking
    )
    assert text.endswith("<think>\n\n</think>\n\n") is (not enable_thinking)
    assert render_prompt(qwen3_tokenizer, prompt_messages(ROW)).endswith("<think>\n\n</think>\n\n")
