"""Greedy, batched generation with left padding: the same prompts as training, Qwen3 in non-thinking mode.

Prompts are rendered by `fine_tune.task.prompts.render_prompt` (the text SFT and GRPO trained on), batched longest
first so that little padding is wasted, decoded greedily until an end-of-turn token, and returned in input order.
Left padding plus the attention mask makes each row's result independent of its batch: on fp32 the batched outputs
equal one-prompt-at-a-time outputs token for token (tests/test_generation.py checks this).

`batch_size="auto"` sizes batches from free GPU memory (`auto_batch_size`); a batch that still runs out of memory is
halved and retried, so an estimate that is too high costs time, never the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

from fine_tune.constants import AUTO_BATCH_SIZE
from fine_tune.recipes.arguments import DEFAULT_BATCH_SIZE
from fine_tune.task.prompts import render_prompt

logger = logging.getLogger(__name__)

# Share of the free GPU memory one batch may fill: the rest covers allocator fragmentation and the estimate's slack.
GPU_MEMORY_FRACTION = 0.8


@dataclass
class GenerationResult:
    """Completions in input order, with per-completion token counts and whether an end-of-turn token ended them."""

    texts: list[str]
    token_counts: list[int]
    stopped: list[bool]
    seconds: float
    batch_size: int = 0  # the batch size generation started with (after `auto` was resolved)

    @property
    def generated_tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def samples_per_second(self) -> float:
        return len(self.texts) / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0

    def part(self, start: int, stop: int) -> GenerationResult:
        """Completions start..stop of one call (one task of a mixture), with the call's time shared out by
        generated tokens (by completions when none were generated), so throughput is the whole call's."""
        counts = self.token_counts[start:stop]
        share = sum(counts) / self.generated_tokens if self.generated_tokens else (stop - start) / len(self.texts)
        return GenerationResult(
            self.texts[start:stop], counts, self.stopped[start:stop], self.seconds * share, self.batch_size
        )


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


def prompt_lengths(tokenizer, prompts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]] if prompts else []


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Indices, longest first (stable), so each batch holds prompts of similar length and the first is the largest."""
    return sorted(range(len(lengths)), key=lambda index: -lengths[index])


def sequence_bytes(
    config, dtype: torch.dtype, prompt_tokens: int, max_new_tokens: int, logits_positions: int = 1
) -> int:
    """GPU memory one sequence of a batch needs while generating: its KV cache at full length, the prefill's
    largest per-layer activations (the MLP's gate/up/act tensors, and the attention scores when attention is eager),
    and fp32 logits for `logits_positions` positions (1 where generate passes `logits_to_keep=1`, else the prompt).
    Weights are already resident, so they are not counted."""
    text = config.get_text_config()
    element = torch.finfo(dtype).bits // 8
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    kv_cache = (prompt_tokens + max_new_tokens) * 2 * text.num_hidden_layers * kv_heads * head_dim * element
    prefill = prompt_tokens * (4 * text.hidden_size + 3 * text.intermediate_size) * element
    if getattr(config, "_attn_implementation", None) == "eager":
        prefill += heads * prompt_tokens * prompt_tokens * element
    logits = 2 * logits_positions * text.vocab_size * 4
    return kv_cache + prefill + logits


def auto_batch_size(
    model, longest_prompt: int, max_new_tokens: int, n_prompts: int, free_bytes: int | None = None
) -> int:
    """The largest batch whose generation fits in GPU_MEMORY_FRACTION of the free GPU memory (at most n_prompts).

    Off CUDA there is no device memory to size against: DEFAULT_BATCH_SIZE. `free_bytes` overrides the reading.
    """
    if free_bytes is None:
        if model.device.type != "cuda":
            return max(1, min(DEFAULT_BATCH_SIZE, n_prompts))
        free_bytes, _ = torch.cuda.mem_get_info(model.device)
    keeps_last_logits = getattr(model, "_supports_logits_to_keep", lambda: False)()
    positions = 1 if keeps_last_logits else longest_prompt
    per_sequence = sequence_bytes(model.config, model.dtype, longest_prompt, max_new_tokens, positions)
    fitting = int(GPU_MEMORY_FRACTION * free_bytes // per_sequence)
    return max(1, min(fitting, n_prompts))


def check_batch_size(batch_size: int | str | None) -> None:
    if batch_size is None or batch_size == AUTO_BATCH_SIZE:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or '{AUTO_BATCH_SIZE}', got {batch_size!r}")


def resolve_batch_size(batch_size: int | str | None, model, lengths: Sequence[int], max_new_tokens: int) -> int:
    check_batch_size(batch_size)
    if batch_size is None or batch_size == AUTO_BATCH_SIZE:
        resolved = auto_batch_size(model, max(lengths, default=0), max_new_tokens, len(lengths))
        logger.info(
            "batch_size auto: %d (%d prompts, longest %d tokens)", resolved, len(lengths), max(lengths, default=0)
        )
        return resolved
    return batch_size


def generate_responses(
    model,
    tokenizer,
    messages: Sequence[Sequence[Mapping[str, str]]],
    *,
    batch_size: int | str | None = AUTO_BATCH_SIZE,
    max_new_tokens: int = 256,
    sort_by_length: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GenerationResult:
    """Generate one completion per conversation, `batch_size` prompts at a time; results in input order.

    `batch_size` "auto" (or None) sizes batches from free GPU memory. A batch that runs out of memory is halved and
    retried, and later batches keep the smaller size. `progress(k)` is called after each batch with the number of
    prompts it finished.
    """
    prompts = [render_prompt(tokenizer, conversation) for conversation in messages]
    lengths = prompt_lengths(tokenizer, prompts)
    size = resolve_batch_size(batch_size, model, lengths, max_new_tokens)
    started_with = size
    order = longest_first(lengths) if sort_by_length else list(range(len(prompts)))
    texts: list[str] = [""] * len(prompts)
    counts: list[int] = [0] * len(prompts)
    stopped: list[bool] = [False] * len(prompts)
    start = time.perf_counter()
    first = 0
    while first < len(order):
        indices = order[first : first + size]
        try:
            batch = generate_batch(model, tokenizer, [prompts[i] for i in indices], max_new_tokens)
        except Exception as error:  # accelerate's test for out-of-memory errors (CUDA, XPU, MPS, CPU)
            if not should_reduce_batch_size(error) or len(indices) == 1:
                raise
            clear_device_cache(garbage_collection=True)
            size = max(1, len(indices) // 2)
            logger.warning("out of memory at batch size %d; retrying with %d", len(indices), size)
            continue
        for position, index in enumerate(indices):
            texts[index] = batch.texts[position]
            counts[index] = batch.token_counts[position]
            stopped[index] = batch.stopped[position]
        first += len(indices)
        if progress is not None:
            progress(len(indices))
    return GenerationResult(texts, counts, stopped, time.perf_counter() - start, started_with)
