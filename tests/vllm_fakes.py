"""A stand-in `vllm` module for the CPU tests (vLLM itself needs CUDA and is not installed here): the engine loads
the checkpoint it is pointed at and decodes greedily with transformers, returning vLLM-shaped outputs.

`pytest_plugins = ["vllm_fakes"]` gives a test module the `fake_vllm` fixture. The engine refuses (TypeError) any
keyword that `vllm.LLM` of the pinned release does not take (tests/fixtures/vllm/engine_args.json, from its
wheel)."""

import inspect
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

# read from the pinned vLLM wheel by scripts/vllm_engine_args.py
ENGINE = json.loads((Path(__file__).parent / "fixtures" / "vllm" / "engine_args.json").read_text())
# vllm.LLM(model, *, <its parameters>, **kwargs) hands the parameters and every other keyword to EngineArgs(...)
ENGINE_SIGNATURE = inspect.Signature(
    [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in dict.fromkeys([*ENGINE["llm_parameters"], *ENGINE["engine_args"]])
        if name != "model"
    ]
)


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    max_tokens: int = 16
    stop_token_ids: list[int] = field(default_factory=list)
    skip_special_tokens: bool = True


@dataclass
class CompletionOutput:
    token_ids: list[int]
    finish_reason: str


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]


class FakeLLM:
    """vllm.LLM stand-in: greedy transformers decoding of token-id prompts from the folder it was given."""

    instances: list["FakeLLM"] = []
    keep_stop_token = True

    def __init__(self, *args, **kwargs):
        self.kwargs = ENGINE_SIGNATURE.bind(*args, **kwargs).arguments  # vLLM's engine would reject anything else
        kwargs = self.kwargs
        self.files = sorted(path.name for path in Path(kwargs["model"]).iterdir())  # what it was handed
        self.model = AutoModelForCausalLM.from_pretrained(kwargs["model"], dtype=getattr(torch, kwargs["dtype"]))
        self.calls: list[tuple[list[dict], SamplingParams]] = []
        FakeLLM.instances.append(self)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):  # vllm.LLM.generate's parameters
        params = sampling_params
        self.calls.append((prompts, params))
        results = []
        for prompt in prompts:
            ids = torch.tensor([prompt["prompt_token_ids"]])
            output = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=params.max_tokens,
                do_sample=False,
                eos_token_id=params.stop_token_ids,
                pad_token_id=params.stop_token_ids[0],
            )[0, ids.shape[1] :].tolist()
            stopped = bool(output) and output[-1] in params.stop_token_ids
            if stopped and not self.keep_stop_token:
                output = output[:-1]
            results.append(RequestOutput([CompletionOutput(output, "stop" if stopped else "length")]))
        return results


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = FakeLLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.instances, FakeLLM.keep_stop_token = [], True
    return module
