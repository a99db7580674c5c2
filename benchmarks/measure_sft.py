"""SFT measurements: tokens/s, padding efficiency and MFU of SFTTrainer steps per batching variant, and the check
that padding-free training gives the padded batch's loss and gradients."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from benchmarks.cost import TrainingCost
from benchmarks.device import PeakMemory, TimeCapReached, median, synchronize
from benchmarks.lengths import Lengths
from benchmarks.models import ModelSource
from benchmarks.settings import NO_SELECTION, SFT_VARIANTS, Recipe, Settings, lora_config

logger = logging.getLogger(__name__)


class TokenMeter:
    """Real / processed / trained tokens and model FLOPs of every training micro-batch SFTTrainer computes."""

    def __init__(self, cost: TrainingCost):
        self.cost = cost.model()
        self.real = self.processed = self.trained = self.sequences = 0
        self.model_flops = 0.0

    def add(self, inputs: dict[str, Any]) -> None:
        ids, labels = inputs["input_ids"], inputs["labels"]
        self.processed += ids.numel()
        if "attention_mask" in inputs:
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            trained = (labels[:, 1:] != -100).sum(dim=1).tolist()
        else:  # padding-free: one packed row, sequence boundaries in cu_seq_lens_q
            bounds = inputs["cu_seq_lens_q"].tolist()
            lengths = [end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
            flat = labels[0]
            trained = [
                int((flat[start + 1 : end] != -100).sum()) for start, end in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        for length, count in zip(lengths, trained, strict=True):
            self.real += int(length)
            self.trained += int(count)
            self.sequences += 1
            self.model_flops += self.cost.flops(length, length * length, count)

    def snapshot(self) -> dict[str, float]:
        return {
            "real": self.real,
            "processed": self.processed,
            "trained": self.trained,
            "sequences": self.sequences,
            "model_flops": self.model_flops,
        }


def metered_sft_trainer_class():
    from trl import SFTTrainer

    class MeteredSFTTrainer(SFTTrainer):
        meter: TokenMeter | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.meter is not None and model.training:
                self.meter.add(inputs)
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return MeteredSFTTrainer


def step_clock(device: torch.device, snapshot: Callable[[], dict[str, float]]):
    """A TrainerCallback that marks (time, counters) at train begin and after every optimizer step."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, dict[str, float]]] = []

        def mark(self) -> None:
            synchronize(device)
            self.marks.append((time.perf_counter(), snapshot()))

        def on_train_begin(self, args, state, control, **kwargs):
            self.mark()

        def on_step_end(self, args, state, control, **kwargs):
            self.mark()

        def steps(self, skip: int) -> list[dict[str, float]]:
            out = []
            for (t0, c0), (t1, c1) in zip(self.marks[:-1], self.marks[1:], strict=True):
                out.append({"seconds": t1 - t0, **{key: c1[key] - c0[key] for key in c1}})
            return out[skip:]

    return StepClock()


def sft_training_rows(lengths: Lengths, n_rows: int, vocab_size: int, seed: int = 0) -> list[dict[str, Any]]:
    """Pre-tokenised SFT rows whose lengths are `n_rows` draws from the length distribution; token ids are random
    (a random-init model learns nothing either way; only the shapes matter)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(lengths.full), size=n_rows, replace=n_rows > len(lengths.full))
    rows = []
    for index in picks:
        total, trained = int(lengths.full[index]), int(lengths.completion[index])
        rows.append(
            {
                "input_ids": rng.integers(16, vocab_size, total).tolist(),
                "completion_mask": [0] * (total - trained) + [1] * trained,
            }
        )
    return rows


def sft_args(recipe: dict[str, Any], overrides: dict[str, Any], output_dir: str, max_steps: int, device: torch.device):
    """MedSFTConfig of the recipe's training keys (`Recipe.trainer_kwargs`) and a variant's overrides, for a run of
    `max_steps` steps that logs, saves and reports nothing."""
    from fine_tune.recipes.trainer_configs import MedSFTConfig

    values = {**recipe, **overrides}
    values.update(
        output_dir=output_dir,
        max_steps=max_steps,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
        **NO_SELECTION,
    )
    if device.type == "cpu":
        values["precision"] = "fp32"
    return MedSFTConfig(**values)


def run_sft_variant(
    source: ModelSource,
    dataset,
    recipe: Recipe,
    variant: str,
    settings: Settings,
    device: torch.device,
    cost: TrainingCost,
) -> dict[str, Any]:
    """One training run of `warmup + steps` optimizer steps; the measured steps' figures."""
    from fine_tune.models.loading import load_tokenizer
    from fine_tune.models.precision import resolve_precision
    from fine_tune.recipes.trainer_configs import MedSFTConfig
    from fine_tune.train.common import training_dtype

    overrides = dict(SFT_VARIANTS[variant])
    attn_implementation = overrides.pop("attn_implementation", "sdpa")
    with tempfile.TemporaryDirectory() as tmp:
        args = sft_args(
            recipe.trainer_kwargs(MedSFTConfig), overrides, tmp, settings.sft_warmup_steps + settings.sft_steps, device
        )
        precision = resolve_precision(args.precision)
        model = source.build(training_dtype(precision, use_peft=True), attn_implementation=attn_implementation)
        tokenizer = load_tokenizer(source.tokenizer_dir)
        meter = TokenMeter(TrainingCost(cost.shape, cost.lora_rank, cost.lora_targets, args.activation_checkpointing))
        clock = step_clock(device, meter.snapshot)
        trainer = metered_sft_trainer_class()(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora_config(recipe.lora),
            callbacks=[clock],
        )
        trainer.meter = meter
        with PeakMemory(device) as memory:
            trainer.train()
        steps = clock.steps(skip=settings.sft_warmup_steps)
        del trainer, model
    return {"steps": steps, "peak_memory_bytes": memory.peak, "memory_kind": memory.kind}


def summarise_sft(runs: list[dict[str, Any]], peak_flops: float) -> dict[str, Any]:
    steps = [step for run in runs for step in run["steps"]]
    seconds = [s["seconds"] for s in steps]
    real = sum(s["real"] for s in steps)
    processed = sum(s["processed"] for s in steps)
    model_flops_per_s = median([s["model_flops"] / s["seconds"] for s in steps])
    return {
        "steps_measured": len(steps),
        "seconds_per_step_median": median(seconds),
        "seconds_per_step_all": [round(x, 4) for x in seconds],
        "real_tokens_per_s": median([s["real"] / s["seconds"] for s in steps]),
        "processed_tokens_per_s": median([s["processed"] / s["seconds"] for s in steps]),
        "padding_efficiency_measured": real / processed if processed else None,
        "sequences_per_step": sum(s["sequences"] for s in steps) / len(steps) if steps else None,
        "model_flops_per_s": model_flops_per_s,
        "mfu": model_flops_per_s / peak_flops if model_flops_per_s and peak_flops else None,
        "peak_memory_bytes": max(run["peak_memory_bytes"] for run in runs),
        "memory_kind": runs[0]["memory_kind"],
    }


def benchmark_sft(
    source: ModelSource,
    lengths: Lengths,
    recipe: Recipe,
    settings: Settings,
    device: torch.device,
    peak_flops: float,
) -> dict[str, Any]:
    """Interleaved rounds of every variant (A B C A B C ...) so that load from other processes hits all alike. At a
    time cap the rounds stop: the summary holds the rounds that finished (`rounds_completed`)."""
    from datasets import Dataset

    shape = source.shape()
    cost = TrainingCost(shape, recipe.lora["r"], recipe.lora["targets"])
    dataset = Dataset.from_list(sft_training_rows(lengths, settings.sft_rows, shape.vocab_size))
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in settings.sft_variants}
    stopped = None
    try:
        for round_index in range(settings.sft_rounds):
            for variant in settings.sft_variants:
                logger.info("SFT %s: %s, round %d/%d", source.name, variant, round_index + 1, settings.sft_rounds)
                runs[variant].append(run_sft_variant(source, dataset, recipe, variant, settings, device, cost))
    except TimeCapReached as reached:
        stopped = str(reached)
    if not any(runs.values()):
        raise TimeCapReached(stopped or "SFT: no run finished")
    variants = {
        variant: {
            **summarise_sft(r, peak_flops),
            "overrides": jsonable(SFT_VARIANTS[variant]),
            "rounds_completed": len(r),
        }
        for variant, r in runs.items()
        if r
    }
    baseline = variants.get("pad_to_longest_random", {}).get("real_tokens_per_s")
    for summary in variants.values():
        rate = summary.get("real_tokens_per_s")
        summary["speedup_vs_pad_to_longest_random"] = rate / baseline if rate and baseline else None
    return {
        "model": source.name,
        "shape": asdict(shape),
        "rows": settings.sft_rows,
        "variants": variants,
        "stopped_by_time_cap": stopped,
    }


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def padded_vs_padding_free(source: ModelSource, rows: list[dict[str, Any]], lora: dict[str, Any]) -> dict[str, Any]:
    """Loss and LoRA gradients of one fixed batch through SFTTrainer padded and SFTTrainer(padding_free=True).

    The LoRA B factors are set to non-zero values (identical in both) so the adapters shape the loss; dropout is off.
    """
    from datasets import Dataset

    from fine_tune.models.loading import load_tokenizer

    dataset = Dataset.from_list(rows)
    out: dict[str, Any] = {}
    grads: dict[bool, dict[str, torch.Tensor]] = {}
    for padding_free in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            args = sft_args(
                {"per_device_train_batch_size": len(rows), "precision": "fp32"},
                {"padding_free": padding_free, "max_length": None},
                tmp,
                1,
                torch.device("cpu"),
            )
            model = source.build(torch.float32)
            trainer = metered_sft_trainer_class()(
                model=model,
                args=args,
                train_dataset=dataset,
                processing_class=load_tokenizer(source.tokenizer_dir),
                peft_config=lora_config({**lora, "dropout": 0.0}),
            )
            generator = torch.Generator().manual_seed(1)
            for name, param in sorted(trainer.model.named_parameters()):
                if "lora_B" in name:
                    with torch.no_grad():
                        param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
            trainer.model.train()
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, batch)
            loss.backward()
            key = "padding_free" if padding_free else "padded"
            out[f"loss_{key}"] = loss.item()
            out[f"shape_{key}"] = list(batch["input_ids"].shape)
            grads[padding_free] = {
                name: param.grad.detach().clone()
                for name, param in trainer.model.named_parameters()
                if param.grad is not None
            }
    out["abs_loss_difference"] = abs(out["loss_padded"] - out["loss_padding_free"])
    out["max_abs_grad_difference"] = max(
        float((grads[False][name] - grads[True][name]).abs().max()) for name in grads[False]
    )
    out["max_abs_grad"] = max(float(g.abs().max()) for g in grads[False].values())
    return out
