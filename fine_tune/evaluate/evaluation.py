"""The evaluation phase: models x eval set -> strict/lenient metrics with intervals, paired tests, calibration,
per-subject accuracy, position bias and confusion matrices, written as `eval_results/<run_name>/`.

`python scripts/eval_medmcqa.py --config configs/eval.yaml [--limit 20] [--eval_split validation]`

Rows go through `fine_tune.data` (the same split function as training, or a whole official split), prompts through
`fine_tune.prompts`, completions through `fine_tune.parsing` via `fine_tune.metrics`, statistics through
`fine_tune.stats`. A model that fails to load or generate is recorded with its error and the others still run.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import datasets
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fine_tune.constants import (
    ADAPTER_CONFIG_FILE,
    EXIT_MODEL_FAILED,
    MERGED_DIR,
    PREDICTIONS_FILE,
    REPORT_FILE,
    RESULTS_FILE,
)
from fine_tune.data.splits import load_eval_rows, load_split, manifest_hash, read_manifest
from fine_tune.data.validation import content_hash, row_label
from fine_tune.errors import DatasetError, ModelSourceError
from fine_tune.evaluate import report
from fine_tune.evaluate.generation import GenerationResult, generate_responses
from fine_tune.evaluate.stats import (
    brier_score,
    confusion_matrix,
    expected_calibration_error,
    letter_distribution_test,
    mcnemar_exact,
    paired_bootstrap_diff,
    per_group_accuracy,
    reliability_bins,
    wilson_interval,
)
from fine_tune.hub import access as hub
from fine_tune.hub.access import hf_token
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_jsonl
from fine_tune.models.lineage import read_lineage
from fine_tune.models.loading import load_for_inference
from fine_tune.models.precision import Precision, resolve_precision
from fine_tune.models.source import is_local, written_as_path
from fine_tune.provenance import provenance
from fine_tune.recipes.arguments import SPLIT_EVAL, EvalConfig
from fine_tune.task.prompts import CHAT_TEMPLATE_KWARGS, SYSTEM_PROMPT, gold_letter, prompt_messages
from fine_tune.task.scoring import SampleScore, aggregate_metrics, score_sample

logger = logging.getLogger(__name__)

CALIBRATION_BINS = 10
RESULTS_FORMAT = 1
TRAINING_SPLITS = ("sft", "grpo")

# metric -> (numerator, denominator) in aggregate_metrics' counts, for the Wilson intervals
METRIC_COUNTS: dict[str, tuple[str, str]] = {
    "accuracy": ("correct", "n"),
    "valid_json_rate": ("json_valid", "n"),
    "schema_pass_rate": ("schema_valid", "n"),
    "accuracy_on_schema": ("correct_and_schema_valid", "schema_valid"),
    "lenient_accuracy": ("lenient_correct", "n"),
    "lenient_schema_pass_rate": ("lenient_schema_valid", "n"),
}

# per-model split-check verdicts
VERIFIED = "verified"
NOT_FINE_TUNED = "no training split (no lineage split_manifest_hash)"
UNVERIFIED = "unverified"


@dataclass
class EvalSet:
    rows: datasets.Dataset
    info: dict[str, Any]  # the "dataset" section of the results
    manifest: dict[str, Any] | None  # the split manifest recomputed here (eval_split 'split' only)


def load_eval_set(config: EvalConfig) -> EvalSet:
    """The rows to score (limit applied), with what was dropped; DatasetError when they cannot be had."""
    if config.eval_split == SPLIT_EVAL:
        rows, manifest = load_split(
            config.dataset_name,
            "eval",
            hub_split=config.dataset_train_split,
            sizes=config.split_sizes,
            seed=config.split_seed,
            token_env=config.hf_token_env,
        )
        dropped = dict(manifest["skipped"])
        description = f"EVAL split ({config.eval_size} rows, seed {config.split_seed}) of the shuffled "
        description += f"'{config.dataset_train_split}' split"
    else:
        rows, validation = load_eval_rows(config.dataset_name, config.eval_split, config.hf_token_env)
        manifest, dropped = None, {name: len(ix) for name, ix in validation.invalid.items()}
        description = f"official '{config.eval_split}' split"
    available = len(rows)
    if config.limit is not None:
        rows = rows.select(range(min(config.limit, available)))
    info = {
        "source": config.dataset_name,
        "eval_split": config.eval_split,
        "description": description,
        "available_rows": available,
        "limit": config.limit,
        "rows": len(rows),
        "dropped": dropped,
        "fingerprint": rows._fingerprint,
        "eval_rows_hash": eval_rows_hash(rows),
    }
    return EvalSet(rows=rows, info=info, manifest=manifest)


def eval_rows_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over every row's id, content hash and gold answer: equal hashes mean the same questions, same order."""
    digest = hashlib.sha256()
    for index, row in enumerate(rows):
        digest.update(f"{row_label(row, index)}\x1f{content_hash(row)}\x1f{row['cop']}\n".encode())
    return digest.hexdigest()


@dataclass
class ManifestSource:
    origin: str  # "config" or "lineage of <label>"
    path: str
    manifest: dict[str, Any]


def model_lineages(models: Mapping[str, str], token: str | None) -> dict[str, dict[str, Any] | None]:
    """Each model's lineage record, None when it has none or it cannot be read (loading will report why)."""
    lineages = {}
    for label, source in models.items():
        path = resolve_source(source)
        if not is_local(path) and not hub_available():
            lineages[label] = None
            continue
        try:
            lineages[label] = read_lineage(path, token=token)
        except Exception as error:  # unreadable lineage is not fatal here; the model's load reports the problem
            logger.info("no lineage for %s (%s): %s", label, source, error)
            lineages[label] = None
    return lineages


def discover_manifests(
    config: EvalConfig, lineages: Mapping[str, dict[str, Any] | None]
) -> tuple[list[ManifestSource], list[str]]:
    """The configured manifest plus, for local trained models, OUTPUT/split_manifest.json when its hash matches."""
    from fine_tune.constants import SPLIT_MANIFEST_FILE

    sources, warnings = [], []
    if config.split_manifest:
        sources.append(ManifestSource("config", config.split_manifest, read_manifest(config.split_manifest)))
    for label, model_source in config.models.items():
        expected = (lineages.get(label) or {}).get("split_manifest_hash")
        source = resolve_source(model_source)
        if not expected or not is_local(source):
            continue
        candidate = Path(source).expanduser().parent / SPLIT_MANIFEST_FILE
        if not candidate.is_file() or any(Path(s.path) == candidate for s in sources):
            continue
        manifest = read_manifest(candidate)
        if manifest_hash(manifest) == expected:
            sources.append(ManifestSource(f"lineage of {label}", str(candidate), manifest))
        else:
            warnings.append(f"{candidate} does not match the split_manifest_hash in {label}'s lineage: not used")
    return sources, warnings


def training_overlap(eval_hashes: Sequence[str], manifest: Mapping[str, Any]) -> dict[str, list[int]]:
    """Indices of eval rows whose content is in each training split (sft, grpo) of `manifest`."""
    overlap = {}
    for name in TRAINING_SPLITS:
        split = manifest.get("splits", {}).get(name)
        if split is None:
            continue
        train = set(split["content_hashes"])
        overlap[name] = [index for index, digest in enumerate(eval_hashes) if digest in train]
    return overlap


def check_split(
    config: EvalConfig, eval_set: EvalSet, lineages: Mapping[str, dict[str, Any] | None]
) -> tuple[EvalSet, dict[str, Any], list[str]]:
    """Refuse (or drop, if asked) eval rows that a training split holds; judge each model's split lineage.

    Returns the eval set (smaller only with drop_contaminated), the "split_check" results section and warnings.
    """
    sources, warnings = discover_manifests(config, lineages)
    eval_hashes = [content_hash(row) for row in eval_set.rows]
    checked, contaminated = [], set()
    for source in sources:
        overlap = training_overlap(eval_hashes, source.manifest)
        bad = {index for indices in overlap.values() for index in indices}
        contaminated |= bad
        checked.append(
            {
                "origin": source.origin,
                "path": source.path,
                "hash": manifest_hash(source.manifest),
                "overlap": {name: len(indices) for name, indices in overlap.items()},
                "overlap_total": len(bad),
            }
        )
    if contaminated:
        eval_set, warning = handle_contamination(config, eval_set, contaminated, checked)
        warnings.append(warning)
    recomputed = manifest_hash(eval_set.manifest) if eval_set.manifest is not None else None
    warnings += manifest_hash_warnings(config, recomputed, checked)
    verdicts, verdict_warnings = model_split_verdicts(lineages, recomputed, checked)
    section = {
        "manifest_hash": recomputed,
        "manifests_checked": checked,
        "contaminated_rows_dropped": len(contaminated),
        "models": verdicts,
    }
    return eval_set, section, warnings + verdict_warnings


def handle_contamination(
    config: EvalConfig, eval_set: EvalSet, contaminated: set[int], checked: list[dict[str, Any]]
) -> tuple[EvalSet, str]:
    where = "; ".join(f"{c['path']}: {c['overlap']}" for c in checked if c["overlap_total"])
    examples = ", ".join(row_label(eval_set.rows[i], i) for i in sorted(contaminated)[:5])
    message = (
        f"{len(contaminated)} of {len(eval_set.rows)} eval rows appear in a training split ({where}; e.g. {examples})"
    )
    if not config.drop_contaminated:
        raise DatasetError(
            f"{message}: scores on them would measure memorisation. Evaluate on rows the models never trained on "
            "(same dataset, split_seed and sizes as training), or set drop_contaminated: true to drop them."
        )
    keep = [i for i in range(len(eval_set.rows)) if i not in contaminated]
    rows = eval_set.rows.select(keep)
    info = {
        **eval_set.info,
        "rows": len(rows),
        "fingerprint": rows._fingerprint,
        "eval_rows_hash": eval_rows_hash(rows),
    }
    info["dropped"] = {**info["dropped"], "in_training_split": len(contaminated)}
    return EvalSet(rows, info, eval_set.manifest), f"{message}: dropped (drop_contaminated)"


def manifest_hash_warnings(config: EvalConfig, recomputed: str | None, checked: list[dict[str, Any]]) -> list[str]:
    configured = next((c for c in checked if c["origin"] == "config"), None)
    if recomputed is None or configured is None or configured["hash"] == recomputed:
        return []
    return [
        f"the split recomputed here ({recomputed[:12]}) differs from {configured['path']} ({configured['hash'][:12]}):"
        " dataset, split_seed or sizes differ from that training run, so this EVAL split is not the one it held out "
        "(its rows were still checked against that run's sft/grpo splits)"
    ]


def model_split_verdicts(
    lineages: Mapping[str, dict[str, Any] | None], recomputed: str | None, checked: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """verified: the split the model trained on was checked here; unverified: it could not be (warned)."""
    known = {c["hash"] for c in checked} | ({recomputed} if recomputed else set())
    verdicts, warnings = {}, []
    for label, lineage in lineages.items():
        trained_on = (lineage or {}).get("split_manifest_hash")
        if not trained_on:
            verdicts[label] = NOT_FINE_TUNED
        elif trained_on in known:
            verdicts[label] = VERIFIED
        else:
            verdicts[label] = UNVERIFIED
            warnings.append(
                f"{label} was trained on split manifest {trained_on[:12]}, which was not available to check against "
                "the eval rows: pass that run's split_manifest.json as split_manifest to verify there is no overlap"
            )
    return verdicts, warnings


def resolve_source(source: str) -> str:
    """A training OUTPUT folder (holding merged/ and adapter/) means its merged model; anything else as given."""
    path = Path(source).expanduser()
    holds_model = (path / "config.json").is_file() or (path / ADAPTER_CONFIG_FILE).is_file()
    if path.is_dir() and not holds_model and (path / MERGED_DIR / "config.json").is_file():
        logger.info("%s is a training output folder: evaluating %s", source, path / MERGED_DIR)
        return str(path / MERGED_DIR)
    return source


def check_source(source: str) -> None:
    """A source written like a path (./, /, ~, or more than one '/') must exist; a Hub ID needs the Hub."""
    if is_local(source):
        return
    if written_as_path(source):
        raise ModelSourceError(f"model path not found: {source} (train it first, or pass a Hub ID like owner/name)")
    if not hub_available():
        raise ModelSourceError(
            f"{source} is a Hub ID but the Hugging Face Hub ({hub.hub_endpoint()}) is unreachable: pass a local "
            "path, or set HF_HUB_OFFLINE=1 to load a copy from the local Hugging Face cache"
        )


def hub_available() -> bool:
    """Whether Hub IDs can be tried: offline mode (the libraries use the cache) or a reachable endpoint.

    Checked up front because, unreachable, every Hub file request retries for about 25 s before failing.
    """
    return hub.offline_mode() or _reachable(hub.hub_endpoint())


@functools.cache
def _reachable(endpoint: str) -> bool:
    return hub.hub_reachable(endpoint)


def inference_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def evaluate_model(
    label: str,
    source: str,
    eval_set: EvalSet,
    config: EvalConfig,
    precision: Precision,
    *,
    token: str | None = None,
    lineage: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ModelRun:
    """Load, generate and score one model; any exception is recorded on the run instead of raised."""
    run = ModelRun(label, source, resolved={"kind": None, "base": None, "lineage": lineage})
    stage, start, model = "load", time.perf_counter(), None
    try:
        path = resolve_source(source)
        check_source(path)
        model, tokenizer, resolved = load_for_inference(path, precision, token=token)
        model.to(inference_device())
        run.resolved = {"path": path, **dataclasses.asdict(resolved)}
        run.timings["load_seconds"] = time.perf_counter() - start
        stage = "generate"
        if progress is not None:
            progress(0)  # loaded: generation starts
        messages = [prompt_messages(row) for row in eval_set.rows]
        generation = generate_responses(
            model,
            tokenizer,
            messages,
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            progress=progress,
        )
        stage = "score"
        pairs = zip(generation.texts, eval_set.rows, strict=True)
        run.scores = [score_sample(text, gold_letter(row)) for text, row in pairs]
        run.records = prediction_records(label, eval_set.rows, generation, run.scores)
        run.timings.update(generation_timings(generation))
    except Exception as error:  # one model's failure must not lose the others' results
        logger.error("%s (%s) failed at %s: %s", label, source, stage, error)
        run.status, run.stage, run.error = "failed", stage, f"{type(error).__name__}: {error}"
        run.traceback = traceback.format_exc()
        run.records, run.scores = [], []
        run.timings.setdefault("load_seconds", time.perf_counter() - start)
    finally:
        del model
        release_memory()
    return run


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def generation_timings(generation: GenerationResult) -> dict[str, Any]:
    n = len(generation.texts)
    return {
        "generation_seconds": generation.seconds,
        "samples_per_second": generation.samples_per_second,
        "tokens_per_second": generation.tokens_per_second,
        "generated_tokens": generation.generated_tokens,
        "mean_generated_tokens": generation.generated_tokens / n if n else 0.0,
        "hit_max_new_tokens": sum(not stopped for stopped in generation.stopped),
    }


def prediction_records(
    label: str, rows: datasets.Dataset, generation: GenerationResult, scores: Sequence[SampleScore]
) -> list[dict[str, Any]]:
    """One predictions.jsonl line per sample."""
    records = []
    for index, (row, score) in enumerate(zip(rows, scores, strict=True)):
        records.append(
            {
                "model": label,
                "index": index,
                "id": row_label(row, index),
                "subject": row.get("subject_name"),
                "gold": gold_letter(row),
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
                "generated_tokens": generation.token_counts[index],
                "stopped": generation.stopped[index],
            }
        )
    return records


def metric_intervals(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each rate with its count, total and 95% Wilson interval."""
    intervals = {}
    for name, (count_key, total_key) in METRIC_COUNTS.items():
        count, total = metrics[count_key], metrics[total_key]
        low, high = wilson_interval(count, total)
        intervals[name] = {"value": metrics[name], "count": count, "total": total, "ci_low": low, "ci_high": high}
    return intervals


def calibration(records: Sequence[Mapping[str, Any]], n_bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """ECE, Brier score and reliability bins of the stated confidence, over schema-valid answers."""
    valid = [r for r in records if r["schema_valid"]]
    confidences = [r["confidence"] for r in valid]
    correct = [r["correct"] for r in valid]
    return {
        "n": len(valid),
        "accuracy": sum(correct) / len(valid) if valid else None,
        "mean_confidence": sum(confidences) / len(valid) if valid else None,
        "ece": expected_calibration_error(confidences, correct, n_bins),
        "brier": brier_score(confidences, correct),
        "bins": reliability_bins(confidences, correct, n_bins),
    }


def model_summary(records: Sequence[Mapping[str, Any]], scores: Sequence[SampleScore]) -> dict[str, Any]:
    """Everything reported per model, from its records and scores."""
    metrics = aggregate_metrics(scores)
    gold = [r["gold"] for r in records]
    predicted = [r["predicted"] for r in records]
    return {
        "metrics": metrics,
        "intervals": metric_intervals(metrics),
        "calibration": calibration(records),
        "per_subject": per_group_accuracy([r["subject"] for r in records], [r["correct"] for r in records]),
        "letter_distribution": letter_distribution_test(predicted, gold),
        "confusion_matrix": confusion_matrix(gold, predicted),
    }


def pairwise_comparisons(runs: Sequence[ModelRun], resamples: int, seed: int) -> list[dict[str, Any]]:
    """Strict accuracy difference for every pair of successful models: paired bootstrap CI and exact McNemar."""
    ok = [run for run in runs if run.status == "ok"]
    comparisons = []
    for a, b in combinations(ok, 2):
        correct_a = [r["correct"] for r in a.records]
        correct_b = [r["correct"] for r in b.records]
        boot = paired_bootstrap_diff(correct_a, correct_b, n_resamples=resamples, seed=seed)
        test = mcnemar_exact(correct_a, correct_b)
        comparisons.append(
            {
                "a": a.label,
                "b": b.label,
                "n": len(correct_a),
                "accuracy_a": sum(correct_a) / len(correct_a),
                "accuracy_b": sum(correct_b) / len(correct_b),
                "diff": boot["diff"],
                "ci_low": boot["low"],
                "ci_high": boot["high"],
                **test,
            }
        )
    return comparisons


def merged_from(merged: ModelRun, adapter: ModelRun) -> bool:
    """Whether `merged`'s lineage names `adapter`'s folder as its adapter (then identical outputs are expected)."""
    adapter_path = ((merged.resolved or {}).get("lineage") or {}).get("adapter_path")
    path = (adapter.resolved or {}).get("path")
    return bool(adapter_path and path) and Path(adapter_path).resolve() == Path(path).resolve()


def identical_output_warnings(runs: Sequence[ModelRun]) -> list[str]:
    """Two models with different sources but the same text on every question are probably the same weights."""
    ok = [run for run in runs if run.status == "ok" and run.records]
    warnings = []
    for a, b in combinations(ok, 2):
        if a.source == b.source or merged_from(a, b) or merged_from(b, a):
            continue
        if [r["raw_output"] for r in a.records] == [r["raw_output"] for r in b.records]:
            warnings.append(
                f"{a.label} and {b.label} gave identical outputs on all {len(a.records)} questions: check that they "
                "really are different models (upstream once evaluated the base model under the name 'grpo')"
            )
    return warnings


def json_safe(value: Any) -> Any:
    """Non-finite floats become None so the file is strict JSON (a chi2 of inf keeps its p-value of 0)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def model_section(run: ModelRun, verdict: str | None) -> dict[str, Any]:
    section = {
        "source": run.source,
        "status": run.status,
        "resolved": run.resolved,
        "split_check": verdict,
        "timings": run.timings,
    }
    if run.status != "ok":
        return {**section, "stage": run.stage, "error": run.error, "traceback": run.traceback}
    return {**section, **model_summary(run.records, run.scores)}


def environment(precision: Precision) -> dict[str, Any]:
    device = inference_device()
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)",
        "precision": precision.name,
        "precision_reason": precision.reason,
        "torch_threads": torch.get_num_threads(),
        **provenance(),
    }


def build_results(
    config: EvalConfig,
    eval_set: EvalSet,
    split_section: dict[str, Any],
    runs: Sequence[ModelRun],
    precision: Precision,
    warnings: list[str],
    seconds: float,
) -> dict[str, Any]:
    verdicts = split_section["models"]
    results = {
        "format_version": RESULTS_FORMAT,
        "run_name": config.resolved_run_name,
        "config": config.to_dict(),
        "dataset": eval_set.info,
        "split_check": split_section,
        "prompt": {"system_prompt": SYSTEM_PROMPT, "chat_template_kwargs": CHAT_TEMPLATE_KWARGS},
        "generation": {
            "decoding": "greedy",
            "batch_size": config.batch_size,
            "max_new_tokens": config.max_new_tokens,
            "padding_side": "left",
        },
        "models": {run.label: model_section(run, verdicts.get(run.label)) for run in runs},
        "pairwise": pairwise_comparisons(runs, config.bootstrap_resamples, config.seed),
        "failed": [run.label for run in runs if run.status != "ok"],
        "warnings": warnings,
        "environment": environment(precision),
        "timings": {"total_seconds": seconds},
    }
    return json_safe(results)


def write_outputs(results: Mapping[str, Any], records: list[dict[str, Any]], folder: Path) -> Path:
    """eval_results.json, predictions.jsonl, report.md and plots, swapped into place as one folder."""

    def write(tmp: Path) -> None:
        atomic_write_json(tmp / RESULTS_FILE, results)
        atomic_write_jsonl(tmp / PREDICTIONS_FILE, [json_safe(record) for record in records])
        report.write_report(results, tmp, REPORT_FILE)

    return atomic_write_dir(folder, write)


@dataclass
class EvalOutcome:
    results: dict[str, Any]
    folder: Path

    @property
    def failed(self) -> list[str]:
        return list(self.results["failed"])

    @property
    def exit_code(self) -> int:
        return EXIT_MODEL_FAILED if self.failed else 0


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
    eval_set: EvalSet,
    precision: Precision,
    lineages: Mapping[str, dict[str, Any] | None],
    console: Console,
) -> list[ModelRun]:
    token = hf_token(config.hf_token_env)
    runs = []
    for label, source in config.models.items():
        with progress_bar(console) as bar:
            task = bar.add_task(f"{label}: loading", total=len(eval_set.rows))
            run = evaluate_model(
                label,
                source,
                eval_set,
                config,
                precision,
                token=token,
                lineage=lineages.get(label),
                progress=lambda k, task=task, bar=bar, label=label: bar.update(
                    task, advance=k, description=f"{label}: generating"
                ),
            )
        runs.append(run)
        if run.status == "ok":
            t = run.timings
            console.print(
                f"{label}: {len(run.records)} samples in {t['generation_seconds']:.1f} s, "
                f"{t['samples_per_second']:.2f} samples/s, {t['tokens_per_second']:.1f} generated tokens/s",
                highlight=False,
            )
        else:
            console.print(f"[red]{label}: FAILED at {run.stage}: {run.error}[/red]", highlight=False)
    return runs


def default_console() -> Console:
    """stdout; 160 columns when it is not a terminal (logs, CI), where rich would otherwise wrap at 80."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def run_evaluation(config: EvalConfig, console: Console | None = None) -> EvalOutcome:
    """The whole evaluation; DatasetError (bad data, contamination) propagates, model failures are recorded."""
    console = console or default_console()
    start = time.perf_counter()
    torch.manual_seed(config.seed)  # decoding is greedy; this only pins anything else that samples
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    precision = resolve_precision(config.precision)
    logger.info("precision %s: %s", precision.name, precision.reason)
    eval_set = load_eval_set(config)
    lineages = model_lineages(config.models, hf_token(config.hf_token_env))
    eval_set, split_section, warnings = check_split(config, eval_set, lineages)
    if not len(eval_set.rows):
        raise DatasetError("no eval rows left to score")
    console.print(
        f"evaluating {len(config.models)} model(s) on {len(eval_set.rows)} rows: {eval_set.info['description']}"
    )
    runs = run_models(config, eval_set, precision, lineages, console)
    warnings += identical_output_warnings(runs)
    for warning in warnings:
        logger.warning(warning)
    results = build_results(config, eval_set, split_section, runs, precision, warnings, time.perf_counter() - start)
    records = [record for run in runs for record in run.records]
    folder = write_outputs(results, records, Path(config.output_dir) / config.resolved_run_name)
    report.print_summary(results, console)
    console.print(f"wrote {folder / RESULTS_FILE}, {folder / PREDICTIONS_FILE}, {folder / REPORT_FILE}")
    return EvalOutcome(results, folder)
