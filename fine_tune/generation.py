"""Greedy, batched generation with left padding: the same prompts as training, Qwen3 in non-thinking mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from fine_tune.prompts import render_prompt


@dataclass
class GenerationResult:
    texts: list[str]
    seconds: float
    generated_tokens: int

    @property
    def samples_per_second(self) -> float:
        return len(self.texts) / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


def stop_token_ids(tokenizer, model) -> list[int]:
    """End of turn: the generation config's EOS ids plus the tokenizer's EOS (`<|im_end|>` for Qwen3)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> tuple[list[str], int]:
    """Greedy-decode one left-padded batch; returns the completions (special tokens removed) and tokens generated."""
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
    completions = output[:, inputs["input_ids"].shape[1] :]
    generated = 0
    for row in completions.tolist():
        length = next((i + 1 for i, token in enumerate(row) if token in stops), len(row))
        generated += length
    texts = tokenizer.batch_decode(completions, skip_special_tokens=True)
    return texts, generated


def generate_responses(
    model,
    tokenizer,
    messages: Sequence[Sequence[Mapping[str, str]]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 256,
    progress: Callable[[int], None] | None = None,
) -> GenerationResult:
    """Generate one completion per conversation, `batch_size` prompts at a time, in input order."""
    prompts = [render_prompt(tokenizer, conversation) for conversation in messages]
    texts: list[str] = []
    generated = 0
    start = time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        batch_texts, batch_tokens = generate_batch(
            model, tokenizer, prompts[first : first + batch_size], max_new_tokens
        )
        texts += batch_texts
        generated += batch_tokens
        if progress is not None:
            progress(len(batch_texts))
    return GenerationResult(texts, time.perf_counter() - start, generated)
