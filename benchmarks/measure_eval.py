"""Eval generation: batched HF generate (as the eval runs it) against the one-prompt-at-a-time loop, and vLLM where
it is importable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.device import TimeCapReached, median, synchronize
from benchmarks.models import ModelSource
from benchmarks.settings import Recipe, Settings

logger = logging.getLogger(__name__)


def eval_messages(shared_dir: Path | None, n: int) -> tuple[list[list[dict[str, str]]], str]:
    from fine_tune.task.prompts import prompt_messages

    if shared_dir is not None:
        rows = validation_rows(shared_dir)
        return [prompt_messages(row) for row in rows.select(range(min(n, len(rows))))], "real MedMCQA validation rows"
    from fine_tune.data.synthetic import generate_canonical_rows

    return [prompt_messages(row) for row in generate_canonical_rows(n, seed=7)], "synthetic MedMCQA-schema rows"


def validation_rows(shared_dir: Path) -> Any:
    """The valid rows of the real MedMCQA validation file, canonical (the medmcqa task's reader and normaliser)."""
    from fine_tune.data.normalise import load_task
    from fine_tune.task.spec import resolve_task

    return load_task(
        resolve_task("medmcqa"), "validation", str(shared_dir / "data" / "medmcqa" / "validation.jsonl")
    ).dataset


def benchmark_eval(
    source: ModelSource,
    messages: list[list[dict[str, str]]],
    settings: Settings,
    device: torch.device,
    dtype: torch.dtype,
    recipe: Recipe,
) -> dict[str, Any]:
    """Batched generation (HF generate, as the eval runs it) against the one-prompt-at-a-time loop, in prompts/s and
    generated tokens/s; and the batched rate through vLLM where it is importable on CUDA."""
    from fine_tune.evaluate.generation import generate_responses
    from fine_tune.models.loading import load_tokenizer

    max_new_tokens = settings.eval_max_new_tokens or int(recipe["max_new_tokens"])
    batch_sizes = settings.eval_batch_sizes or (int(recipe["batch_size"]),)
    sequential_messages = messages[: settings.eval_sequential_prompts or len(messages)]
    model = source.build(dtype).to(device).eval()
    tokenizer = load_tokenizer(source.tokenizer_dir, padding_side="left")

    def generate(batch_size: int, prompts: list[list[dict[str, str]]]):
        synchronize(device)
        result = generate_responses(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
        synchronize(device)
        return result

    generate(max(batch_sizes), messages[: max(batch_sizes)])  # warm-up
    runs: dict[int, list[Any]] = {1: [], **{b: [] for b in batch_sizes}}
    stopped = None
    try:
        for round_index in range(settings.eval_rounds):
            for batch_size in runs:
                logger.info("eval: batch size %d, round %d/%d", batch_size, round_index + 1, settings.eval_rounds)
                runs[batch_size].append(generate(batch_size, sequential_messages if batch_size == 1 else messages))
    except TimeCapReached as reached:
        if not all(runs.values()):
            raise
        stopped = str(reached)
    sequential = runs[1][0]
    identical = all(
        r.texts[: len(sequential.texts)] == sequential.texts
        and r.token_counts[: len(sequential.texts)] == sequential.token_counts
        and r.stopped[: len(sequential.texts)] == sequential.stopped
        for results in runs.values()
        for r in results
    )

    def summary(results, prompts: int) -> dict[str, Any]:
        seconds = median([r.seconds for r in results])
        return {
            "prompts": prompts,
            "seconds_median": seconds,
            "seconds_all": [round(r.seconds, 4) for r in results],
            "generated_tokens": results[0].generated_tokens,
            "tokens_per_s": results[0].generated_tokens / seconds,
            "prompts_per_s": prompts / seconds,
        }

    out = {
        "sequential": summary(runs[1], len(sequential_messages)),
        "batched": {str(b): summary(runs[b], len(messages)) for b in batch_sizes},
    }
    for b in batch_sizes:
        out["batched"][str(b)]["speedup_vs_sequential"] = (
            out["batched"][str(b)]["prompts_per_s"] / out["sequential"]["prompts_per_s"]
        )
    best = max(batch_sizes, key=lambda b: out["batched"][str(b)]["speedup_vs_sequential"])
    prompt_lengths = [len(ids) for ids in tokenizer([m[-1]["content"] for m in messages])["input_ids"]]
    configured = out["batched"].get(str(recipe["batch_size"]))
    return {
        "model": source.name,
        "prompts": len(messages),
        "max_new_tokens": max_new_tokens,
        "stopped_early": sum(sequential.stopped),
        "user_message_tokens_mean": float(np.mean(prompt_lengths)),
        "sequential_loop": (
            f"generate_responses(batch_size=1) over the first {len(sequential_messages)} prompts: one prompt per "
            "generate() call, as upstream"
        ),
        **out,
        "best_batch_size": best,
        "speedup_vs_sequential": out["batched"][str(best)]["speedup_vs_sequential"],
        "outputs_identical": identical,
        "seconds_per_question": 1 / configured["prompts_per_s"] if configured else None,
        "stopped_by_time_cap": stopped,
        "vllm": (
            {"available": False, "reason": f"not run: {stopped}"}
            if stopped
            else vllm_generation(source, messages, max_new_tokens, device, dtype)
        ),
    }


def vllm_generation(
    source: ModelSource,
    messages: list[list[dict[str, str]]],
    max_new_tokens: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Any]:
    """The eval's own vLLM path (`generate_responses_vllm`: the weights saved from memory, an engine built on them,
    every prompt scheduled at once) on the same prompts, or why it did not run. Engine start-up is not timed; the
    first requests are, as in an eval run."""
    unavailable = vllm_unavailable(device)
    if unavailable:
        return {"available": False, "reason": unavailable}
    try:
        from fine_tune.evaluate.vllm_backend import generate_responses_vllm
        from fine_tune.models.loading import load_tokenizer

        tokenizer = load_tokenizer(source.tokenizer_dir, padding_side="left")
        result = generate_responses_vllm(source.build(dtype), tokenizer, messages, max_new_tokens=max_new_tokens)
        synchronize(device)
        return {
            "available": True,
            "seconds": result.seconds,
            "prompts_per_s": result.samples_per_second,
            "tokens_per_s": result.tokens_per_second,
            "generated_tokens": result.generated_tokens,
            "note": "the eval's vLLM backend (generate_responses_vllm): continuous batching, greedy, same prompts",
        }
    except TimeCapReached as reached:
        return {"available": False, "reason": str(reached)}
    except Exception as error:  # an optional engine that fails to start is a finding, not a crash
        return {"available": False, "reason": f"vLLM failed: {type(error).__name__}: {error}"}


def vllm_unavailable(device: torch.device) -> str | None:
    """Why vLLM cannot run in this benchmark (None: it can)."""
    from fine_tune.models.acceleration import VLLM_EXTRA_HINT, installed_version

    if device.type != "cuda":
        return "vLLM needs a CUDA device"
    if installed_version("vllm") is None:
        return f"vllm is not installed ({VLLM_EXTRA_HINT})"
    return None
