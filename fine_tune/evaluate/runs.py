"""One model's run over the eval set: resolve and load it, generate greedily, score every answer. A model that
fails at any stage is recorded with its stage and error, and the others still run."""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from accelerate.utils.memory import clear_device_cache
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from fine_tune.data.rows import row_label
from fine_tune.evaluate.error_taxonomy import error_category
from fine_tune.evaluate.eval_set import EvalSet
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.evaluate.open_scoring import open_records
from fine_tune.evaluate.perplexity import TextLosses, text_losses
from fine_tune.evaluate.scored_models import check_source, model_identities, resolve_source
from fine_tune.evaluate.stats import wilson_interval
from fine_tune.evaluate.vllm_backend import generator_for, resolve_backend
from fine_tune.hub_access import hf_token
from fine_tune.models.loading import load_for_inference
from fine_tune.models.precision import Precision
from fine_tune.recipes.arguments import EvalConfig
from fine_tune.task.prompts import LETTERS, gold_letter, prompt_messages
from fine_tune.task.scoring import SampleScore, score_sample
from fine_tune.task.spec import TaskSpec
from fine_tune.task.variants import PromptVariant

logger = logging.getLogger(__name__)


@dataclass
class ModelRun:
    label: str
    source: str
    status: str = "ok"
    stage: str | None = None
    error: str | None = None
    traceback: str | None = None
    resolved: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    scores: list[SampleScore] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    prompt_variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> strict accuracy
    harness: dict[str, Any] | None = (
        None  # lm-evaluation-harness's log-likelihood accuracy (fine_tune.evaluate.harness)
    )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def correct(self) -> list[bool]:
        """Strict correctness per eval row, in eval-set order."""
        return [record["correct"] for record in self.records]

    def identities(self) -> set[str]:
        """The names of the weights this run scored (see `model_identities`)."""
        resolved = self.resolved or {}
        return model_identities(resolved.get("path") or self.source, resolved.get("lineage"))


def inference_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate_model(
    label: str,
    source: str,
    eval_sets: Sequence[EvalSet],
    config: EvalConfig,
    precision: Precision,
    *,
    token: str | None = None,
    lineage: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    exemplars: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    prompt_variants: Sequence[PromptVariant] = (),
) -> list[ModelRun]:
    """Load one model, generate every eval set's prompts in one call (one set per task, each prompted with its task)
    and score each set: one run per set; with `exemplars` (per task), the same load also runs every set k-shot as
    `<label>-<k>shot` (its runs follow); with `prompt_variants`, the same call also answers every set (0-shot) under
    each other variant, whose strict accuracies go into the 0-shot runs' `prompt_variants`. An exception fails all
    the model's runs, recorded with the stage and error; the other models still run."""
    others = [variant for variant in prompt_variants if not variant.is_project]
    variants = [(label, {})]
    if exemplars:
        variants.append((label + shot_suffix(len(next(iter(exemplars.values())))), exemplars))
    runs = [
        ModelRun(name, source, resolved={"kind": None, "base": None, "lineage": lineage})
        for name, _ in variants
        for _ in eval_sets
    ]
    stage, start, model = "load", time.perf_counter(), None
    try:
        texts_only = all(eval_set.task.is_text for eval_set in eval_sets)
        backend = "hf" if texts_only else resolve_backend(config.backend)  # perplexity needs the model's logits
        path = resolve_source(source)
        check_source(path, label)
        model, tokenizer, resolved = load_for_inference(path, precision, token=token)
        if backend == "hf":  # vLLM serves its own copy of the saved weights: the HF one stays off the GPU
            model.to(inference_device())
        load_seconds = time.perf_counter() - start
        for run in runs:
            run.resolved = {"path": path, **dataclasses.asdict(resolved)}
            run.timings["load_seconds"] = load_seconds
        if texts_only:
            stage = "score"
            for run, eval_set in zip(runs, eval_sets, strict=True):
                began = time.perf_counter()
                scored = text_losses(model, tokenizer, eval_set.rows["text"], TEXT_BATCH, config.text_max_length)
                run.records = text_records(run.label, eval_set.rows, scored)
                run.timings.update(truncated_texts=scored.truncated, score_seconds=time.perf_counter() - began)
            return runs
        stage = "generate"
        if progress is not None:
            progress(0)  # loaded: generation starts
        messages = [
            prompt_messages(row, task=eval_set.task, exemplars=shots.get(eval_set.task.name, ()))
            for _, shots in variants
            for eval_set in eval_sets
            for row in eval_set.rows
        ]
        messages += [
            prompt_messages(row, task=eval_set.task, variant=variant)
            for variant in others
            for eval_set in eval_sets
            for row in eval_set.rows
        ]
        generation = generator_for(backend)(
            model,
            tokenizer,
            messages,
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            progress=progress,
        )
        stage, first = "score", 0
        for run, eval_set in zip(runs, list(eval_sets) * len(variants), strict=True):
            task, part = eval_set.task, generation.part(first, first + len(eval_set.rows))
            first += len(eval_set.rows)
            if task.is_open:
                run.records = open_records(run.label, eval_set.rows, part, task)
            else:
                pairs = zip(part.texts, eval_set.rows, strict=True)
                run.scores = [score_sample(text, gold_letter(row, task), task.letters) for text, row in pairs]
                run.records = prediction_records(run.label, eval_set.rows, part, run.scores, task)
            run.timings.update(generation_timings(part))
        for run in runs[: len(eval_sets)] if prompt_variants else ():
            run.prompt_variants[prompt_variants[0].name] = variant_accuracy(run.scores)
        for variant in others:
            for run, eval_set in zip(runs, eval_sets, strict=False):
                part = generation.part(first, first + len(eval_set.rows))
                first += len(eval_set.rows)
                pairs = zip(part.texts, eval_set.rows, strict=True)
                scores = [
                    score_sample(text, gold_letter(row, eval_set.task), eval_set.task.letters) for text, row in pairs
                ]
                run.prompt_variants[variant.name] = variant_accuracy(scores)
    except Exception as error:  # one model's failure must not lose the others' results
        logger.error("%s (%s) failed at %s: %s", label, source, stage, error)
        for run in runs:
            run.status, run.stage, run.error = "failed", stage, f"{type(error).__name__}: {error}"
            run.traceback = traceback.format_exc()
            run.records, run.scores = [], []
            run.timings.setdefault("load_seconds", time.perf_counter() - start)
    finally:
        del model
        clear_device_cache(garbage_collection=True)
    return runs


TEXT_BATCH = 8  # texts per forward pass when scoring perplexity


def text_records(label: str, rows: datasets.Dataset, losses: TextLosses) -> list[dict[str, Any]]:
    """One predictions.jsonl line per text: its summed NLL and predicted tokens (the corpus perplexity's parts)."""
    return [
        {
            "model": label,
            "index": index,
            "id": row_label(row, index),
            "subject": row.get("subject"),
            "nll": float(losses.nll[index]),
            "tokens": int(losses.tokens[index]),
        }
        for index, row in enumerate(rows)
    ]


def variant_accuracy(scores: Sequence[SampleScore]) -> dict[str, Any]:
    """Strict accuracy under one prompt variant, with its count and 95% Wilson interval."""
    correct = sum(score.correct for score in scores)
    low, high = wilson_interval(correct, len(scores))
    return {
        "accuracy": correct / len(scores) if scores else None,
        "n": len(scores),
        "correct": correct,
        "ci_low": low,
        "ci_high": high,
    }


def generation_timings(generation: GenerationResult) -> dict[str, Any]:
    n = len(generation.texts)
    return {
        "generation_seconds": generation.seconds,
        "samples_per_second": generation.samples_per_second,
        "tokens_per_second": generation.tokens_per_second,
        "generated_tokens": generation.generated_tokens,
        "mean_generated_tokens": generation.generated_tokens / n if n else 0.0,
        "hit_max_new_tokens": sum(not stopped for stopped in generation.stopped),
        "batch_size": generation.batch_size,
    }


def prediction_records(
    label: str,
    rows: datasets.Dataset,
    generation: GenerationResult,
    scores: Sequence[SampleScore],
    task: TaskSpec | None = None,
) -> list[dict[str, Any]]:
    """One predictions.jsonl line per sample."""
    records = []
    for index, (row, score) in enumerate(zip(rows, scores, strict=True)):
        records.append(
            {
                "model": label,
                "index": index,
                "id": row_label(row, index),
                "subject": row.get("subject"),
                "gold": gold_letter(row, task),
                "raw_output": generation.texts[index],
                "json_valid": score.json_valid,
                "schema_valid": score.schema_valid,
                "failure": score.failure,
                "predicted": score.category,
                "confidence": score.confidence,
                "correct": score.correct,
                "lenient_json_valid": score.lenient_json_valid,
                "lenient_schema_valid": score.lenient_schema_valid,
                "lenient_correct": score.lenient_correct,
                "reason": score.reason,
                "explanation": row.get("exp"),
                "generated_tokens": generation.token_counts[index],
                "stopped": generation.stopped[index],
            }
        )
        records[-1]["error_category"] = error_category(records[-1], task.letters if task is not None else LETTERS)
    return records


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def run_models(
    config: EvalConfig,
    eval_sets: Sequence[EvalSet],
    precision: Precision,
    lineages: Mapping[str, dict[str, Any] | None],
    console: Console,
    exemplars: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    prompt_variants: Sequence[PromptVariant] = (),
) -> list[list[ModelRun]]:
    """Every configured model in order over every eval set, each loaded once, with a progress bar and a one-line
    speed (or failure) summary per run; with `exemplars` (per task), each model without a training lineage is also
    run k-shot as `<label>-<k>shot` (right after its 0-shot run: base, base-kshot, sft, grpo). Returns the runs per
    eval set, in the sets' order."""
    token = hf_token(config.hf_token_env)
    per_set: list[list[ModelRun]] = [[] for _ in eval_sets]
    rows = sum(len(eval_set.rows) for eval_set in eval_sets)
    for label, source in config.models.items():
        lineage = lineages.get(label)
        shots = exemplars if exemplars and not (lineage or {}).get("phase") else None
        with progress_bar(console) as bar:
            extra = max(len(prompt_variants) - 1, 0)
            task = bar.add_task(f"{label}: loading", total=rows * ((2 if shots else 1) + extra))
            runs = evaluate_model(
                label,
                source,
                eval_sets,
                config,
                precision,
                token=token,
                lineage=lineage,
                progress=lambda k, task=task, bar=bar, label=label: bar.update(
                    task, advance=k, description=f"{label}: generating"
                ),
                exemplars=shots,
                prompt_variants=prompt_variants,
            )
        for index, run in enumerate(runs):
            eval_set = eval_sets[index % len(eval_sets)]
            per_set[index % len(eval_sets)].append(run)
            console.print(run_line(run, eval_set.task.name if len(eval_sets) > 1 else None))
    return per_set


def run_line(run: ModelRun, task: str | None = None) -> Text:
    """The one-line speed (or failure) summary of a run; `task` names the eval set in a mixture."""
    name = run.label if task is None else f"{run.label} [{task}]"
    if not run.ok:
        return Text(f"{name}: FAILED at {run.stage}: {run.error}", style="red")
    t = run.timings
    if "generation_seconds" not in t:  # a text task: scored, not generated
        return Text(f"{name}: {len(run.records)} texts scored in {t['score_seconds']:.1f} s")
    return Text(
        f"{name}: {len(run.records)} samples in {t['generation_seconds']:.1f} s, "
        f"{t['samples_per_second']:.2f} samples/s, {t['tokens_per_second']:.1f} generated tokens/s"
    )


def shot_suffix(k: int) -> str:
    return f"-{k}shot"
