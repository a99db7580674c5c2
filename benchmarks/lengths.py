"""Sequence lengths (the real MedMCQA distribution as SFTTrainer tokenises it, or a synthetic draw of its
statistics) and the padding each batching strategy costs over a whole training schedule."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.cost import TrainingCost
from fine_tune.models.shape import ModelShape

# Real MedMCQA length statistics, used to draw synthetic lengths when ../shared is absent. Token counts of the full
# SFT sequence (rendered prompt + target JSON + end of turn) and of its completion, as SFTTrainer tokenises them with
# the Qwen3 tokenizer. The lead measured the train split at mean 216 / p95 293 / max 876; the 4,183 validation rows
# measure 196.5 / 266.9 / 412 (completion 60.0 / 103.9 / 170). The synthetic draw uses the train-split figures (the
# longer, so the safer for projections).
SYNTHETIC_FULL_STATS = {"mean": 216.0, "p95": 293.0, "max": 876}
SYNTHETIC_COMPLETION_STATS = {"mean": 60.0, "p95": 104.0, "max": 170}
SYNTHETIC_ROWS = 4000


@dataclass
class Lengths:
    full: np.ndarray  # tokens per SFT sequence
    completion: np.ndarray  # trained tokens per sequence
    source: str

    @property
    def prompt(self) -> np.ndarray:
        return self.full - self.completion

    def stats(self) -> dict[str, Any]:
        def summary(values: np.ndarray) -> dict[str, float]:
            return {
                "mean": round(float(values.mean()), 1),
                "p50": round(float(np.percentile(values, 50)), 1),
                "p95": round(float(np.percentile(values, 95)), 1),
                "max": int(values.max()),
            }

        return {
            "source": self.source,
            "rows": len(self.full),
            "full": summary(self.full),
            "completion": summary(self.completion),
            "prompt": summary(self.prompt),
        }


def lognormal_lengths(rng: np.random.Generator, n: int, stats: dict[str, float], low: int) -> np.ndarray:
    """`n` integer lengths from a lognormal with the given mean and p95, one row at exactly `max`, clipped to
    [low, max]."""
    z95 = 1.6448536269514722
    # mean = exp(mu + s^2/2), p95 = exp(mu + z s): s^2/2 - z s + ln(p95/mean) = 0, the smaller root
    gap = math.log(stats["p95"] / stats["mean"])
    sigma = z95 - math.sqrt(z95**2 - 2 * gap)
    mu = math.log(stats["mean"]) - sigma**2 / 2
    values = np.clip(np.rint(rng.lognormal(mu, sigma, n)), low, stats["max"]).astype(int)
    values[rng.integers(n)] = int(stats["max"])
    return values


def synthetic_lengths(n: int = SYNTHETIC_ROWS, seed: int = 0) -> Lengths:
    rng = np.random.default_rng(seed)
    full = lognormal_lengths(rng, n, SYNTHETIC_FULL_STATS, low=40)
    completion = lognormal_lengths(rng, n, SYNTHETIC_COMPLETION_STATS, low=12)
    completion = np.minimum(completion, full - 20)
    return Lengths(full, completion, f"synthetic: lognormal fitted to {SYNTHETIC_FULL_STATS} (full sequence)")


def real_lengths(shared_dir: Path, max_rows: int | None = None) -> Lengths:
    """Lengths of the real validation rows as SFTTrainer tokenises them (Qwen3 tokenizer, non-thinking template)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from benchmarks.measure_eval import validation_rows
    from fine_tune.task.prompts import sft_example

    tokenizer = AutoTokenizer.from_pretrained(str(shared_dir / "tokenizers" / "qwen3"))
    rows = validation_rows(shared_dir)
    rows = rows.select(range(min(max_rows, len(rows)))) if max_rows else rows
    tokenized = sft_token_dataset(Dataset.from_list([sft_example(row) for row in rows]), tokenizer)
    full = np.array([len(ids) for ids in tokenized["input_ids"]])
    completion = np.array([sum(label != -100 for label in labels) for labels in tokenized["labels"]])
    return Lengths(
        full, completion, f"real: {len(full)} MedMCQA validation rows, Qwen3 tokenizer, SFTTrainer tokenisation"
    )


def sft_token_dataset(dataset, tokenizer):
    """SFTTrainer's own tokenisation of conversational prompt/completion rows (`input_ids`, `labels` with the prompt
    at -100), through a real SFTTrainer around a throwaway one-layer model."""
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from fine_tune.recipes.trainer_configs import MedSFTConfig

    throwaway = ModelShape("throwaway", len(tokenizer), 8, 16, num_layers=1, num_heads=1, num_kv_heads=1, head_dim=8)
    config = throwaway.qwen3_config(tie_word_embeddings=False)
    with tempfile.TemporaryDirectory() as tmp:
        args = MedSFTConfig(output_dir=tmp, report_to="none", precision="fp32", max_length=None)
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_config(config),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    return trainer.train_dataset


STRATEGIES = ("pad_to_longest_random", "group_by_length", "batch_rebalance", "padding_free")


def schedule_micro_batches(
    lengths: Sequence[int], strategy: str, micro_batch: int, grad_accum: int, steps: int, seed: int = 42
) -> list[list[int]]:
    """Row indices of every micro-batch of `steps` optimizer steps, drawn as transformers' samplers draw them."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler, get_length_grouped_indices

    lengths = [int(x) for x in lengths]
    wanted = steps * grad_accum
    out: list[list[int]] = []
    epoch = 0
    while len(out) < wanted:
        generator = torch.Generator().manual_seed(seed + epoch)
        if strategy in ("pad_to_longest_random", "padding_free"):
            order = torch.randperm(len(lengths), generator=generator).tolist()
            out += [order[i : i + micro_batch] for i in range(0, len(order), micro_batch)]
        elif strategy == "group_by_length":
            order = get_length_grouped_indices(lengths, micro_batch * grad_accum, generator=generator)
            out += [order[i : i + micro_batch] for i in range(0, len(order), micro_batch)]
        elif strategy == "batch_rebalance":
            sampler = BatchRebalanceSampler(
                lengths, micro_batch * grad_accum, dp_size=1, grad_accum=grad_accum, seed=seed, drop_last=False
            )
            sampler.set_epoch(epoch)
            out += [list(batch) for batch in sampler]
        else:
            raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")
        epoch += 1
    return out[:wanted]


def batch_tokens(lengths: Sequence[int], batch: Sequence[int], padding_free: bool) -> dict[str, int]:
    """Real and processed tokens and attention pairs of one micro-batch (padding-free with SDPA: one packed row whose
    block-diagonal mask is dense, so attention is computed over the whole packed square)."""
    sizes = [int(lengths[i]) for i in batch]
    real = sum(sizes)
    real_pairs = sum(s * s for s in sizes)
    if padding_free:
        return {"real": real, "processed": real, "real_pairs": real_pairs, "processed_pairs": real * real}
    longest = max(sizes)
    return {
        "real": real,
        "processed": len(sizes) * longest,
        "real_pairs": real_pairs,
        "processed_pairs": len(sizes) * longest * longest,
    }


def padding_efficiency(
    lengths: Lengths, micro_batch: int, grad_accum: int, steps: int, seed: int = 42
) -> dict[str, dict[str, Any]]:
    """Real / processed tokens of each strategy over `steps` optimizer steps of the configured batch shape."""
    out = {}
    for strategy in STRATEGIES:
        batches = schedule_micro_batches(lengths.full, strategy, micro_batch, grad_accum, steps, seed)
        totals = {"real": 0, "processed": 0, "real_pairs": 0, "processed_pairs": 0}
        for batch in batches:
            for key, value in batch_tokens(lengths.full, batch, strategy == "padding_free").items():
                totals[key] += value
        out[strategy] = {
            "padding_efficiency": round(totals["real"] / totals["processed"], 4),
            "attention_efficiency": round(totals["real_pairs"] / totals["processed_pairs"], 4),
            "real_tokens_per_step": round(totals["real"] / steps, 1),
            "processed_tokens_per_step": round(totals["processed"] / steps, 1),
            "sequences_per_step": round(sum(len(b) for b in batches) / steps, 2),
        }
    return out


def step_flops(
    lengths: Lengths,
    cost: TrainingCost,
    strategy: str,
    micro_batch: int,
    grad_accum: int,
    steps: int,
    seed: int = 42,
    scored: str = "completion",
) -> dict[str, float]:
    """Mean processed and model FLOPs per optimizer step over a schedule (`scored`: "completion" on CUDA, "all" on
    CPU, where TRL's fused head scores every position)."""
    batches = schedule_micro_batches(lengths.full, strategy, micro_batch, grad_accum, steps, seed)
    processed = model = 0.0
    model_cost = cost.model()
    for batch in batches:
        counts = batch_tokens(lengths.full, batch, strategy == "padding_free")
        trained = float(sum(int(lengths.completion[i]) for i in batch))
        positions = trained if scored == "completion" else counts["processed"]
        processed += cost.flops(counts["processed"], counts["processed_pairs"], positions)
        model += model_cost.flops(counts["real"], counts["real_pairs"], trained)
    return {"processed_flops_per_step": processed / steps, "model_flops_per_step": model / steps}
