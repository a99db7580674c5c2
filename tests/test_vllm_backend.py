"""The vLLM eval backend's wiring, on CPU with a stand-in `vllm` module (vLLM itself needs CUDA and is not installed).

The stand-in engine loads the checkpoint vLLM is pointed at and decodes greedily with transformers, returning
vLLM-shaped outputs; so these tests check what the backend controls: the model folder and dtype it hands vLLM, the
prompt token ids, the sampling parameters, the stop-token bookkeeping, decoding and input order.
"""

import pytest
import torch
from signatures import bound_to
from transformers import AutoModelForCausalLM
from vllm_fakes import CompletionOutput, FakeLLM

from fine_tune.data.synthetic import generate_canonical_rows
from fine_tune.evaluate.generation import generate_responses, stop_token_ids
from fine_tune.evaluate.vllm_backend import (
    compare_backends,
    generate_responses_vllm,
    generator_for,
    resolve_backend,
    vllm_completion,
)
from fine_tune.models.acceleration import AccelerationError
from fine_tune.models.loading import load_for_inference
from fine_tune.models.precision import resolve_precision
from fine_tune.task.prompts import prompt_messages

MAX_NEW_TOKENS = 12
pytestmark = pytest.mark.usefixtures("single_torch_thread")
pytest_plugins = ["vllm_fakes"]  # fixture: fake_vllm


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model, tokenizer, _ = load_for_inference(str(tiny_model_dir), resolve_precision("fp32"))
    return model, tokenizer


@pytest.fixture(scope="module")
def messages():
    return [prompt_messages(row) for row in generate_canonical_rows(6, seed=11)]


@pytest.fixture(scope="module")
def reference(tiny, messages):
    model, tokenizer = tiny
    return generate_responses(model, tokenizer, messages, batch_size=1, max_new_tokens=MAX_NEW_TOKENS)


@pytest.mark.parametrize("keep_stop_token", [True, False])
def test_vllm_backend_matches_transformers(fake_vllm, tiny, messages, reference, keep_stop_token):
    model, tokenizer = tiny
    FakeLLM.keep_stop_token = keep_stop_token
    calls = []
    result = generate_responses_vllm(
        model, tokenizer, messages, batch_size=4, max_new_tokens=MAX_NEW_TOKENS, progress=calls.append
    )
    assert (result.texts, result.token_counts, result.stopped) == (
        reference.texts,
        reference.token_counts,
        reference.stopped,
    )
    assert calls == [4, 2] and result.batch_size == 4
    (engine,) = FakeLLM.instances
    assert engine.kwargs["dtype"] == "float32" and engine.kwargs["tokenizer"] == engine.kwargs["model"]
    prompts, params = engine.calls[0]
    assert params.temperature == 0.0 and params.n == 1 and params.max_tokens == MAX_NEW_TOKENS
    assert params.stop_token_ids == stop_token_ids(tokenizer, model) and params.skip_special_tokens is False
    longest = max(len(p["prompt_token_ids"]) for call, _ in engine.calls for p in call)
    assert engine.kwargs["max_model_len"] == longest + MAX_NEW_TOKENS


def test_vllm_backend_auto_batch_sends_every_prompt_at_once(fake_vllm, tiny, messages):
    model, tokenizer = tiny
    result = generate_responses_vllm(model, tokenizer, messages, max_new_tokens=4)
    (engine,) = FakeLLM.instances
    assert [len(prompts) for prompts, _ in engine.calls] == [len(messages)] and result.batch_size == len(messages)
    assert generate_responses_vllm(model, tokenizer, [], max_new_tokens=4).texts == []
    with pytest.raises(ValueError, match="batch_size"):
        generate_responses_vllm(model, tokenizer, messages, batch_size=0)


def test_vllm_serves_the_weights_in_memory(fake_vllm, tiny, messages):
    """A model changed in memory (as an adapter merged at load time is) is what vLLM generates with."""
    model, tokenizer = tiny
    changed = AutoModelForCausalLM.from_config(model.config)
    changed.load_state_dict(model.state_dict())
    changed.generation_config = model.generation_config
    with torch.no_grad():
        changed.lm_head.weight.mul_(-1.0)
    result = generate_responses_vllm(changed, tokenizer, messages, max_new_tokens=MAX_NEW_TOKENS)
    expected = generate_responses(changed, tokenizer, messages, batch_size=1, max_new_tokens=MAX_NEW_TOKENS)
    assert result.texts == expected.texts


def test_compare_backends_counts_identical_completions(fake_vllm, tiny, messages, reference):
    model, tokenizer = tiny
    agreement = compare_backends(model, tokenizer, messages, sample_size=4, max_new_tokens=MAX_NEW_TOKENS)
    assert (agreement.sample, agreement.identical, agreement.rate, agreement.first_mismatch) == (4, 4, 1.0, None)

    @bound_to(generate_responses_vllm)
    def one_flipped(*args, **kwargs):
        result = generate_responses_vllm(*args, **kwargs)
        result.texts[2] += "!"
        return result

    agreement = compare_backends(
        model, tokenizer, messages, sample_size=4, max_new_tokens=MAX_NEW_TOKENS, vllm_generate=one_flipped
    )
    assert (agreement.identical, agreement.rate) == (3, 0.75)
    assert agreement.first_mismatch == {"index": 2, "hf": reference.texts[2], "vllm": reference.texts[2] + "!"}


@pytest.mark.parametrize(
    ("tokens", "finish_reason", "expected"),
    [
        ([5, 6, 2], "stop", ([5, 6], 3, True)),  # the stop token kept in the ids (EOS)
        ([5, 6], "stop", ([5, 6], 3, True)),  # a stop_token_ids hit, left out of the ids
        ([5, 6], "length", ([5, 6], 2, False)),
    ],
)
def test_vllm_completion_counts_the_stop_token_once(tokens, finish_reason, expected):
    assert vllm_completion(CompletionOutput(tokens, finish_reason), [2]) == expected


def test_backend_resolution():
    assert resolve_backend("hf") == "hf"
    assert resolve_backend("auto", vllm_version="0.31.0", capability=(9, 0)) == "vllm"
    assert resolve_backend("auto", vllm_version=None, capability=(9, 0)) == "hf"
    assert resolve_backend("auto", vllm_version="0.31.0", capability=None) == "hf"
    assert resolve_backend("auto", vllm_version="0.40.0", capability=(9, 0)) == "hf", "outside TRL's range"
    with pytest.raises(AccelerationError, match=r"backend: vllm, but vllm is not installed .*medmcqa-ft\[vllm\]"):
        resolve_backend("vllm", vllm_version=None, capability=(9, 0))
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tgi")
    assert generator_for("hf") is generate_responses and generator_for("vllm") is generate_responses_vllm


def test_auto_backend_is_transformers_on_this_machine():
    """No CUDA here (and no vLLM): `auto` must fall back without an error."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert resolve_backend("auto") == "hf"
