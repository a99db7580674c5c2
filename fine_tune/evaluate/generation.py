"""Greedy, batched generation with left padding: the same prompts as training, Qwen3 in non-thinking mode.

Prompts are rendered by `fine_tune.prompts.render_prompt` (the text SFT and GRPO trained on), batched in order of
token length so that little padding is wasted, decoded greedily until an end-of-turn token, and returned in input
order. Left padding plus the attention mask makes each row's result independent of its batch: on fp32 the batched
outputs equal one-prompt-at-a-time outputs token for token (tests/test_generation.py checks this).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from fine_tune.task.prompts import render_prompt


@dataclass
class GenerationResult:
    """Completions in input order, with per-completion token counts and whether an end-of-turn token ended them."""

    texts: list[str]
    token_counts: list[int]
    stopped: list[bool]
    seconds: float

    @property
    def generated_tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def samples_per_second(self) -> float:
        return len(self.texts) / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


@dataclass
class BatchOutput:
    texts: list[str]
    token_counts: list[int]
    stopped: list[bool]


def stop_token_ids(tokenizer, model) -> list[int]:
    """End of turn: the generation config's EOS ids plus the tokenizer's EOS (`<|im_end|>` for Qwen3)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def cut_at_stop(tokens: Sequence[int], stops: Sequence[int]) -> tuple[list[int], int, bool]:
    """The tokens before the first stop token, the number generated (the stop token included), whether one came."""
    stop_set = set(stops)
    for position, token in enumerate(tokens):
        if token in stop_set:
            return list(tokens[:position]), position + 1, True
    return list(tokens), len(tokens), False


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> BatchOutput:
    """Greedy-decode one left-padded batch.

    Each completion is cut at its first end-of-turn token and decoded without skipping special tokens, so the raw
    text is exactly what the model wrote before ending its turn (a stray `<|im_start|>` stays visible to the strict
    parser).
    """
    tokenizer.padding_side = "left"
    inputs = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    stops = stop_token_ids(tokenizer, model)
    output = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
    )
    texts, counts, stopped = [], [], []
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():
        kept, count, ended = cut_at_stop(row, stops)
        texts.append(tokenizer.decode(kept, skip_special_tokens=False))
        counts.append(count)
        stopped.append(ended)
    return BatchOutput(texts, counts, stopped)


def length_order(tokenizer, prompts: Sequence[str]) -> list[int]:
    """Prompt indices, longest first (stable), so each batch holds prompts of similar length."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    return sorted(range(len(prompts)), key=lambda index: -lengths[index])


def generate_responses(
    model,
    tokenizer,
    messages: Sequence[Sequence[Mapping[str, str]]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    sort_by_length: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GenerationResult:
    """Generate one completion per conversation, `batch_size` prompts at a time; results in input order.

    `progress(k)` is called after each batch with the number of prompts it finished.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [render_prompt(tokenizer, conversation) for conversation in messages]
    order = length_order(tokenizer, prompts) if sort_by_length and prompts else list(range(len(prompts)))
    texts: list[str] = [""] * len(prompts)
    counts: list[int] = [0] * len(prompts)
    stopped: list[bool] = [False] * len(prompts)
    start = time.perf_counter()
    for first in range(0, len(order), batch_size):
        indices = order[first : first + batch_size]
        batch = generate_batch(model, tokenizer, [prompts[i] for i in indices], max_new_tokens)
        for position, index in enumerate(indices):
            texts[index] = batch.texts[position]
            counts[index] = batch.token_counts[position]
            stopped[index] = batch.stopped[position]
        if progress is not None:
            progress(len(indices))
    return GenerationResult(texts, counts, stopped, time.perf_counter() - start)
