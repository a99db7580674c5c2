"""Greedy generation with vLLM, a drop-in for `generation.generate_responses` (same signature, same result type).

Same rendered prompts (as token ids, so both backends see identical inputs), same end-of-turn stop tokens, same
decoding of the kept tokens: the two backends differ only in their kernels, and `compare_backends` measures how often
that changes a greedy completion. The eval picks a backend with `generator_for(resolve_backend(setting))`.
vLLM is imported only when it generates (it is the optional extra `medmcqa-ft[vllm]`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils.memory import clear_device_cache

from fine_tune.constants import AUTO_BATCH_SIZE, GENERATION_BACKENDS
from fine_tune.evaluate.generation import (
    GPU_MEMORY_FRACTION,
    GenerationResult,
    check_batch_size,
    cut_at_stop,
    generate_responses,
    stop_token_ids,
)
from fine_tune.models.acceleration import AccelerationError, cuda_capability, installed_version, vllm_problems
from fine_tune.task.prompts import render_prompt

logger = logging.getLogger(__name__)


def resolve_backend(
    setting: str = "auto",
    *,
    vllm_version: str | None | bool = False,
    capability: tuple[int, int] | None | bool = False,
) -> str:
    """'hf' or 'vllm'. `auto` takes vLLM when it is installed in TRL's supported range and a CUDA GPU is present;
    `vllm` insists (an error says why it cannot run). The keyword arguments override detection (tests)."""
    if setting not in GENERATION_BACKENDS:
        raise ValueError(f"backend must be one of {GENERATION_BACKENDS}, got {setting!r}")
    if setting == "hf":
        return "hf"
    version = installed_version("vllm") if vllm_version is False else vllm_version
    cap = cuda_capability() if capability is False else capability
    problems = vllm_problems(version, cap)
    if not problems:
        logger.info("generation backend: vllm %s", version)
        return "vllm"
    reason = "; ".join(problems)
    if setting == "vllm":
        raise AccelerationError(f"backend: vllm, but {reason}. Set backend: auto to fall back to transformers.")
    logger.info("backend auto: transformers generate (%s)", reason)
    return "hf"


def generator_for(backend: str) -> Callable[..., GenerationResult]:
    """The generation function of a resolved backend; both take (model, tokenizer, messages, **options)."""
    return {"hf": generate_responses, "vllm": generate_responses_vllm}[backend]


def vllm_dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def gpu_memory_utilization() -> float:
    """vLLM's share of the whole GPU, sized to what is free now (the HF copy of the model may still be resident)."""
    if not torch.cuda.is_available():
        return GPU_MEMORY_FRACTION
    free, total = torch.cuda.mem_get_info()
    return round(GPU_MEMORY_FRACTION * free / total, 3)


def vllm_completion(output: Any, stops: Sequence[int]) -> tuple[list[int], int, bool]:
    """Kept tokens, tokens generated (stop token included) and whether a stop token ended one vLLM completion.

    vLLM keeps a stop token id in `token_ids` for EOS but not always for other `stop_token_ids`; a completion that
    finished with reason "stop" without one in its ids still generated it.
    """
    kept, count, stopped = cut_at_stop(list(output.token_ids), stops)
    if not stopped and output.finish_reason == "stop":
        return kept, count + 1, True
    return kept, count, stopped


def start_engine(model_path: str, dtype: torch.dtype, max_model_len: int, seed: int = 0):
    from vllm import LLM

    return LLM(
        model=model_path,
        tokenizer=model_path,
        dtype=vllm_dtype(dtype),
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization(),
        seed=seed,
    )


def generate_responses_vllm(
    model,
    tokenizer,
    messages: Sequence[Sequence[Mapping[str, str]]],
    *,
    batch_size: int | str | None = AUTO_BATCH_SIZE,
    max_new_tokens: int = 256,
    sort_by_length: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GenerationResult:
    """`generate_responses` on a vLLM engine built from the loaded transformers `model`.

    The model is saved to a temporary folder first, so vLLM serves exactly the weights the HF backend would (an
    adapter merged in memory included), in the same dtype. vLLM schedules its own batches; an integer `batch_size`
    only sets how many prompts go per `generate` call (progress granularity). `sort_by_length` is accepted for
    signature parity; vLLM's continuous batching makes prompt order irrelevant.
    """
    del sort_by_length
    from vllm import SamplingParams

    prompts = [render_prompt(tokenizer, conversation) for conversation in messages]
    if not prompts:
        return GenerationResult([], [], [], 0.0, 0)
    check_batch_size(batch_size)
    token_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    chunk = batch_size if isinstance(batch_size, int) else len(prompts)
    stops = stop_token_ids(tokenizer, model)
    params = SamplingParams(
        n=1, temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=list(stops), skip_special_tokens=False
    )
    max_model_len = max(len(ids) for ids in token_ids) + max_new_tokens
    with tempfile.TemporaryDirectory(prefix="vllm-model-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        engine = start_engine(folder, model.dtype, max_model_len)
        texts, counts, stopped = [], [], []
        start = time.perf_counter()
        try:
            for first in range(0, len(prompts), chunk):
                batch = [{"prompt_token_ids": ids} for ids in token_ids[first : first + chunk]]
                for request in engine.generate(batch, params, use_tqdm=False):
                    kept, count, ended = vllm_completion(request.outputs[0], stops)
                    texts.append(tokenizer.decode(kept, skip_special_tokens=False))
                    counts.append(count)
                    stopped.append(ended)
                if progress is not None:
                    progress(len(batch))
            seconds = time.perf_counter() - start
        finally:
            del engine  # the engine's finalizer stops vLLM's engine-core process and frees its KV cache
            clear_device_cache(garbage_collection=True)
    return GenerationResult(texts, counts, stopped, seconds, chunk)


@dataclass
class BackendAgreement:
    """How many greedy completions of a sample the two backends wrote identically; the first that differs."""

    sample: int
    identical: int
    first_mismatch: dict[str, Any] | None

    @property
    def rate(self) -> float:
        return self.identical / self.sample if self.sample else 1.0


def compare_backends(
    model,
    tokenizer,
    messages: Sequence[Sequence[Mapping[str, str]]],
    *,
    sample_size: int = 32,
    max_new_tokens: int = 256,
    vllm_generate: Callable[..., GenerationResult] = generate_responses_vllm,
) -> BackendAgreement:
    """Generate the first `sample_size` conversations with transformers and with vLLM and count identical outputs.

    Greedy decoding is deterministic per backend, but different kernels round differently, so on bf16 a near-tie
    can flip a token: a rate below 1 on bf16 is expected; on fp32 differences should be rare.
    """
    sample = list(messages[:sample_size])
    reference = generate_responses(model, tokenizer, sample, max_new_tokens=max_new_tokens)
    candidate = vllm_generate(model, tokenizer, sample, max_new_tokens=max_new_tokens)
    pairs = list(zip(reference.texts, candidate.texts, strict=True))
    mismatches = [index for index, (hf, vllm) in enumerate(pairs) if hf != vllm]
    first = None
    if mismatches:
        index = mismatches[0]
        first = {"index": index, "hf": pairs[index][0], "vllm": pairs[index][1]}
    return BackendAgreement(len(pairs), len(pairs) - len(mismatches), first)
