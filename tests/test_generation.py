"""Batched greedy generation with left padding gives exactly the one-prompt-at-a-time outputs."""

import pytest
import torch

from benchmarks.cost import QWEN3_0_6B_SHAPE
from fine_tune.data.synthetic import generate_canonical_rows
from fine_tune.data.task_splits import load_task_eval_rows
from fine_tune.evaluate.generation import (
    GPU_MEMORY_FRACTION,
    GenerationResult,
    auto_batch_size,
    cut_at_stop,
    generate_responses,
    longest_first,
    sequence_bytes,
    stop_token_ids,
)
from fine_tune.models.loading import load_for_inference
from fine_tune.models.precision import resolve_precision
from fine_tune.recipes.arguments import DEFAULT_BATCH_SIZE
from fine_tune.task.prompts import prompt_messages, render_prompt

MAX_NEW_TOKENS = 20
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def load(path):
    model, tokenizer, _ = load_for_inference(str(path), resolve_precision("fp32"))
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load(tiny_model_dir)


def prompt_lengths(tokenizer, messages):
    prompts = [render_prompt(tokenizer, m) for m in messages]
    return [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]


def assert_same(a: GenerationResult, b: GenerationResult):
    assert a.texts == b.texts
    assert a.token_counts == b.token_counts
    assert a.stopped == b.stopped


@pytest.mark.parametrize(("batch_size", "sort_by_length"), [(4, True), (3, False), (16, True)])
def test_batched_equals_sequential(tiny, batch_size, sort_by_length):
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(10, seed=5)]
    assert len(set(prompt_lengths(tokenizer, messages))) > 1  # batches really are padded
    sequential = generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=MAX_NEW_TOKENS)
    batched = generate_responses(
        model, tokenizer, messages, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS, sort_by_length=sort_by_length
    )
    assert_same(batched, sequential)
    assert all(0 < n <= MAX_NEW_TOKENS for n in batched.token_counts)


def test_batched_equals_sequential_with_the_real_tokenizer(tiny_qwen3_model_dir, shared_dir):
    """Real MedMCQA prompts differ in length by over a hundred tokens: heavy left padding."""
    model, tokenizer = load(tiny_qwen3_model_dir)
    rows, _ = load_task_eval_rows("medmcqa", source=str(shared_dir / "data" / "medmcqa" / "validation.jsonl"))
    messages = [prompt_messages(row) for row in rows.select(range(8))]
    lengths = prompt_lengths(tokenizer, messages)
    assert max(lengths) - min(lengths) > 20
    sequential = generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=12)
    batched = generate_responses(model, tokenizer, messages, batch_size=8, max_new_tokens=12, sort_by_length=False)
    assert_same(batched, sequential)


def test_generation_stops_at_end_of_turn_per_row(tiny):
    """A row that ends its turn early stops there (its text cut before the stop token) without changing the others."""
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(3, seed=1)]
    inputs = tokenizer(render_prompt(tokenizer, messages[0]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        first_token = int(model(**inputs).logits[0, -1].argmax())
    original = model.generation_config.eos_token_id
    try:
        model.generation_config.eos_token_id = [*stop_token_ids(tokenizer, model), first_token]
        batched = generate_responses(model, tokenizer, messages, batch_size=3, max_new_tokens=MAX_NEW_TOKENS)
        sequential = generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=MAX_NEW_TOKENS)
    finally:
        model.generation_config.eos_token_id = original
    assert (batched.texts[0], batched.token_counts[0], batched.stopped[0]) == ("", 1, True)
    assert_same(batched, sequential)


def test_stop_tokens_include_end_of_turn(tiny):
    model, tokenizer = tiny
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tokenizer, model)


def test_progress_and_input_order(tiny):
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(5, seed=2)]
    calls = []
    result = generate_responses(
        model, tokenizer, messages, batch_size=2, max_new_tokens=4, progress=calls.append, sort_by_length=True
    )
    assert calls and sum(calls) == 5 and len(calls) == 3
    for index in (0, 4):
        alone = generate_responses(model, tokenizer, messages[index : index + 1], batch_size=1, max_new_tokens=4)
        assert alone.texts[0] == result.texts[index]
    assert result.samples_per_second > 0 and result.tokens_per_second > 0


@pytest.mark.parametrize("batch_size", [0, -1, "8", 2.0, True])
def test_batch_size_must_be_positive_or_auto(tiny, batch_size):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="batch_size"):
        generate_responses(model, tokenizer, [], batch_size=batch_size)


def test_auto_batch_size_equals_sequential(tiny):
    """On CPU `auto` falls back to DEFAULT_BATCH_SIZE (no device memory to size against); outputs are unchanged."""
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(DEFAULT_BATCH_SIZE + 3, seed=7)]
    sequential = generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=8)
    calls = []
    auto = generate_responses(model, tokenizer, messages, batch_size="auto", max_new_tokens=8, progress=calls.append)
    assert_same(auto, sequential)
    assert auto.batch_size == DEFAULT_BATCH_SIZE and calls == [DEFAULT_BATCH_SIZE, 3]
    assert generate_responses(model, tokenizer, messages[:2], batch_size=None, max_new_tokens=2).batch_size == 2


def qwen3_0_6b_config(attention: str):
    """Qwen/Qwen3-0.6B's config.json shape (no weights are built)."""
    config = QWEN3_0_6B_SHAPE.qwen3_config()
    config._attn_implementation = attention
    return config


def test_sequence_bytes_for_qwen3_0_6b():
    """KV cache: 2 (K, V) x 28 layers x 8 KV heads x 128 dims x 2 bytes = 112 KiB per token in bf16."""
    kv_per_token = 2 * 28 * 8 * 128 * 2
    assert kv_per_token == 112 * 1024
    prompt, new = 300, 256
    expected = (prompt + new) * kv_per_token + prompt * (4 * 1024 + 3 * 3072) * 2 + 2 * 151936 * 4
    assert sequence_bytes(qwen3_0_6b_config("sdpa"), torch.bfloat16, prompt, new) == expected
    eager = sequence_bytes(qwen3_0_6b_config("eager"), torch.bfloat16, prompt, new)
    assert eager == expected + 16 * prompt * prompt * 2, "eager attention materialises the scores"
    assert sequence_bytes(qwen3_0_6b_config("sdpa"), torch.float32, prompt, new) > 1.9 * expected
    all_logits = sequence_bytes(qwen3_0_6b_config("sdpa"), torch.bfloat16, prompt, new, logits_positions=prompt)
    assert all_logits == expected + 2 * (prompt - 1) * 151936 * 4


def test_auto_batch_size_fits_the_free_memory(tiny):
    model, _ = tiny
    assert model._supports_logits_to_keep()
    per_sequence = sequence_bytes(model.config, model.dtype, 120, 64)
    fits = 7
    free = int(fits * per_sequence / GPU_MEMORY_FRACTION) + 1
    assert auto_batch_size(model, 120, 64, n_prompts=100, free_bytes=free) == fits
    assert auto_batch_size(model, 120, 64, n_prompts=5, free_bytes=free) == 5, "never more than the prompts"
    assert auto_batch_size(model, 120, 64, n_prompts=100, free_bytes=1) == 1, "at least one"
    assert auto_batch_size(model, 120, 64, n_prompts=100, free_bytes=free * 4) > auto_batch_size(
        model, 240, 64, n_prompts=100, free_bytes=free * 4
    ), "longer prompts, smaller batches"


def out_of_memory_above(model, monkeypatch, limit: int, error: Exception):
    """Make model.generate fail like CUDA does when a batch holds more than `limit` prompts; record the sizes."""
    original, sizes = model.generate, []

    def generate(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        sizes.append(rows)
        if rows > limit:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)
    return sizes


def test_out_of_memory_halves_the_batch_and_keeps_outputs(tiny, monkeypatch):
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(9, seed=4)]
    sequential = generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=8)
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    sizes = out_of_memory_above(model, monkeypatch, 2, oom)
    calls = []
    result = generate_responses(model, tokenizer, messages, batch_size=8, max_new_tokens=8, progress=calls.append)
    assert_same(result, sequential)
    assert sizes == [8, 4, 2, 2, 2, 2, 1] and sum(calls) == 9 and calls == [2, 2, 2, 2, 1]
    assert result.batch_size == 8


def test_out_of_memory_at_batch_size_one_and_other_errors_are_raised(tiny, monkeypatch):
    model, tokenizer = tiny
    messages = [prompt_messages(row) for row in generate_canonical_rows(3, seed=4)]
    out_of_memory_above(model, monkeypatch, 0, torch.cuda.OutOfMemoryError("CUDA out of memory."))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        generate_responses(model, tokenizer, messages, batch_size=2, max_new_tokens=4)
    monkeypatch.undo()
    out_of_memory_above(model, monkeypatch, 1, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        generate_responses(model, tokenizer, messages, batch_size=2, max_new_tokens=4)


def test_empty_input(tiny):
    model, tokenizer = tiny
    result = generate_responses(model, tokenizer, [], batch_size=4)
    assert result.texts == [] and result.generated_tokens == 0


def test_length_order_is_longest_first_and_stable():
    assert longest_first([1, 4, 1, 4]) == [1, 3, 0, 2]


@pytest.mark.parametrize(
    ("tokens", "stops", "expected"),
    [
        ([5, 6, 7, 2, 0, 0], [2, 0], ([5, 6, 7], 4, True)),
        ([2, 9], [2], ([], 1, True)),
        ([5, 6], [2], ([5, 6], 2, False)),
        ([], [2], ([], 0, False)),
    ],
)
def test_cut_at_stop(tokens, stops, expected):
    assert cut_at_stop(tokens, stops) == expected


def test_rates_without_time():
    result = GenerationResult(texts=["a"], token_counts=[3], stopped=[True], seconds=0.0)
    assert result.samples_per_second == 0.0 and result.tokens_per_second == 0.0 and result.generated_tokens == 3
