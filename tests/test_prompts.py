import json

import pytest
from transformers import AutoTokenizer

from fine_tune.task.prompts import (
    CHAT_TEMPLATE_KWARGS,
    REASON_MAX_CHARS,
    SYSTEM_PROMPT,
    chat_format,
    format_question,
    gold_letter,
    grpo_example,
    prompt_messages,
    render_prompt,
    render_training_text,
    sft_example,
    target_reason,
    target_response,
)
from fine_tune.task.spec import RESPONSE_KEYS

ROW = {
    "id": "r1",
    "question": "  Which nerve supplies the deltoid? ",
    "options": ["Radial", "Axillary", "Ulnar", "Median"],
    "answer": 1,
    "exp": "The axillary nerve (C5, C6) supplies the deltoid and teres minor.",
}
SHORT_ROW = {**ROW, "question": "Deltoid?", "answer": 0, "exp": None}


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
    assert grpo_example(ROW) == {"prompt": prompt_messages(ROW), "ground_truth": "B", "letters": ["A", "B", "C", "D"]}
    assert [gold_letter({**ROW, "answer": answer}) for answer in range(4)] == ["A", "B", "C", "D"]


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


# What each shipped template writes after the assistant's content (from ../shared/tokenizers/templates/README.md),
# and before it: Mistral v0.3 renders assistant turns as " " + content + eos.
ASSISTANT_TURN = {
    "qwen3": ("", "<|im_end|>\n"),
    "llama3": ("", "<|eot_id|>"),
    "mistral": (" ", "</s>"),
    "gemma3": ("", "<end_of_turn>\n"),
}


@pytest.fixture(scope="module")
def arch_tokenizers(tiny_arch_dirs):
    return {arch: AutoTokenizer.from_pretrained(path) for arch, path in tiny_arch_dirs.items()}


@pytest.mark.parametrize("arch", sorted(ASSISTANT_TURN))
def test_every_template_sees_the_system_prompt_in_training_and_eval(arch_tokenizers, arch):
    tokenizer = arch_tokenizers[arch]
    prompt = render_prompt(tokenizer, prompt_messages(ROW))
    full = render_training_text(tokenizer, ROW)
    assert SYSTEM_PROMPT in prompt and SYSTEM_PROMPT in full
    assert full.startswith(prompt), "the eval prompt must be a text prefix of the training sequence"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids, "and a token prefix"
    before, after = ASSISTANT_TURN[arch]
    assert tokenizer.decode(full_ids[len(prompt_ids) :]) == before + target_response(ROW) + after


def test_chat_format_is_probed_from_the_template(arch_tokenizers):
    formats = {arch: chat_format(tokenizer) for arch, tokenizer in arch_tokenizers.items()}
    assert {arch: f.system_role for arch, f in formats.items()} == {
        "qwen3": True,
        "llama3": True,
        "gemma3": True,  # Gemma 3 folds the system message itself
        "mistral": False,  # v0.3 drops it from [system, user, assistant]
    }
    assert {arch: dict(f.template_kwargs) for arch, f in formats.items()} == {
        "qwen3": {"enable_thinking": False},
        "llama3": {},
        "gemma3": {},
        "mistral": {},
    }
    folded = formats["mistral"].conversation(prompt_messages(ROW))
    assert folded == [{"role": "user", "content": SYSTEM_PROMPT + "\n\n" + format_question(ROW)}]
    assert sft_example(ROW, formats["mistral"])["prompt"] == folded
    assert grpo_example(ROW, formats["llama3"])["prompt"] == prompt_messages(ROW)


def test_a_template_that_refuses_a_system_role_is_folded(arch_tokenizers):
    tokenizer = arch_tokenizers["llama3"]
    strict = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}"
    strict += "{{ m.content }}{% endfor %}"
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = strict
        assert chat_format(tokenizer).system_role is False
        assert SYSTEM_PROMPT in render_prompt(tokenizer, prompt_messages(ROW))
    finally:
        tokenizer.chat_template = original


@pytest.mark.parametrize("arch", sorted(ASSISTANT_TURN))
def test_collator_labels_are_exactly_the_target_and_end_of_turn(tiny_arch_dirs, arch_tokenizers, tmp_path, arch):
    """The loss falls on the assistant's answer and the template's end-of-turn only, for every template."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer = arch_tokenizers[arch]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # what load_tokenizer does for Llama 3 and Mistral
    dataset = Dataset.from_list(
        [sft_example(ROW, chat_format(tokenizer)), sft_example(SHORT_ROW, chat_format(tokenizer))]
    )
    args = SFTConfig(output_dir=str(tmp_path), bf16=False, report_to="none", max_length=None, use_cpu=True)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_arch_dirs[arch]),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    before, after = ASSISTANT_TURN[arch]
    for labels, row in zip(batch["labels"], (ROW, SHORT_ROW), strict=True):
        kept = labels[labels != -100].tolist()
        assert tokenizer.decode(kept) == before + target_response(row) + after
