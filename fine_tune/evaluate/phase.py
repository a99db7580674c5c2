"""The evaluation phase: models x eval set -> strict/lenient metrics with intervals, paired tests, calibration,
per-subject accuracy, position bias, confusion matrices and regression flags, written as `eval_results/<run_name>/`.

`python scripts/eval_medmcqa.py --config configs/eval.yaml [--limit 20] [--eval_split validation]`

The steps, one module each: the rows (`eval_set`), the contamination and split-lineage check (`split_check`), each
model's load / generate / score (`runs`, `sources`, `generation`), the statistics (`summaries`, `stats`), the parent
checks (`regressions`), the outputs (`results`, `report`, `plots`). A model that fails to load or generate is
recorded with its error and the others still run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from fine_tune import hub_access as hub
from fine_tune.constants import EXIT_MODEL_FAILED, EXIT_REGRESSION, PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.data.task_splits import phase_split
from fine_tune.errors import DatasetError, RecipeError
from fine_tune.evaluate import report
from fine_tune.evaluate.eval_set import fewshot_exemplars, load_eval_sets
from fine_tune.evaluate.extra_metrics import add_extra_scores, parse_extra_metrics, require_extra_metrics
from fine_tune.evaluate.harness import check_harness, run_harness
from fine_tune.evaluate.mixture_results import mixture_results, print_mixture_summary, write_mixture_outputs
from fine_tune.evaluate.open_results import build_open_results, print_open_summary, write_open_outputs
from fine_tune.evaluate.regressions import parent_checks
from fine_tune.evaluate.results import ScoredSet, build_results, write_outputs
from fine_tune.evaluate.runs import run_models
from fine_tune.evaluate.scored_models import model_lineages
from fine_tune.evaluate.split_check import check_split
from fine_tune.evaluate.summaries import identical_output_warnings
from fine_tune.evaluate.text_results import build_text_results, print_text_summary, write_text_outputs
from fine_tune.hub_access import hf_token
from fine_tune.models.precision import resolve_precision
from fine_tune.recipes.arguments import SPLIT_EVAL, EvalConfig
from fine_tune.task.variants import load_variants

logger = logging.getLogger(__name__)


@dataclass
class EvalOutcome:
    results: dict[str, Any]
    folder: Path
    fail_on_regression: bool = False

    @property
    def failed(self) -> list[str]:
        return list(self.results["failed"])

    @property
    def regressed(self) -> list[str]:
        return list(dict.fromkeys(check["model"] for check in self.results["regressions"]))

    @property
    def exit_code(self) -> int:
        """EXIT_REGRESSION when a model regressed and fail_on_regression is on, else EXIT_MODEL_FAILED when a model
        failed, else 0: a regression is the verdict the pipeline must not miss, even beside a failed model."""
        if self.fail_on_regression and self.regressed:
            return EXIT_REGRESSION
        return EXIT_MODEL_FAILED if self.failed else 0


def default_console() -> Console:
    """stdout; 160 columns when it is not a terminal (logs, CI), where rich would otherwise wrap at 80."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def score_with_harness(config: EvalConfig, eval_sets, runs_per_task, precision, console: Console) -> None:
    """The configured models (not their k-shot runs) scored again by lm-evaluation-harness on the same rows."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[precision.name]
    batch_size = config.batch_size if isinstance(config.batch_size, int) else 1
    for eval_set, runs in zip(eval_sets, runs_per_task, strict=True):
        for run in runs:
            if not run.ok or run.label not in config.models:
                continue
            rows, letters = list(eval_set.rows), eval_set.task.letters
            run.harness = run_harness(
                run.resolved["path"], rows, letters, eval_set.task.name, device=device, dtype=dtype,
                batch_size=batch_size,
            )  # fmt: skip
            console.print(f"{run.label}: harness log-likelihood accuracy {run.harness['loglikelihood_accuracy']:.3f}")


def run_evaluation(config: EvalConfig, console: Console | None = None) -> EvalOutcome:
    """The whole evaluation; DatasetError (bad data, contamination) propagates, model failures are recorded.

    A mixture of tasks is scored task by task in one run (each model loaded once): each task's results are those of
    a single-task run, written in their own folder, beside a summary (`fine_tune.evaluate.mixture_results`)."""
    console = console or default_console()
    hub.bound_hub_calls()  # lineage reads and model downloads cannot wait forever on a silent endpoint
    start = time.perf_counter()
    torch.manual_seed(config.seed)  # decoding is greedy; this only pins anything else that samples
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    precision = resolve_precision(config.precision, model_type=config.model_type)
    logger.info("precision %s: %s", precision.name, precision.reason)
    lineages = model_lineages(config.models, hf_token(config.hf_token_env))
    eval_sets, split_sections, warnings = [], [], []
    split = phase_split(config) if config.eval_split == SPLIT_EVAL or config.shots else None  # computed once
    extras = parse_extra_metrics(config.extra_metrics)
    for eval_set in load_eval_sets(config, split):
        if config.is_mixture and eval_set.task.type != "mcq":
            raise DatasetError(
                f"{eval_set.task.name}: an {eval_set.task.type} task is evaluated alone, not in a mixture"
            )
        if eval_set.task.is_text and config.shots:
            raise RecipeError(f"{eval_set.task.name}: a text task is scored by perplexity; shots do not apply")
        if extras and not eval_set.task.is_open:
            raise RecipeError(f"extra_metrics ({', '.join(extras)}) score open tasks; {eval_set.task.name} is not one")
        eval_set, section, set_warnings = check_split(config, eval_set, lineages)
        if not len(eval_set.rows):
            raise DatasetError(f"{eval_set.task.name}: no eval rows left to score")
        eval_sets.append(eval_set)
        split_sections.append(section)
        warnings.append(set_warnings)
    require_extra_metrics(extras, config.bertscore_model)  # before any model runs
    described = "; ".join(f"{s.task.name}: {len(s.rows)} rows, {s.info['description']}" for s in eval_sets)
    console.print(f"evaluating {len(config.models)} model(s) on {described}", markup=False)
    exemplars = fewshot_exemplars(config, split)
    shots = {name: rows for name, (rows, _) in exemplars.items()}
    variants = load_variants(config.prompt_variants) if config.prompt_variants else ()
    check_harness(config.harness)
    runs_per_task = run_models(config, eval_sets, precision, lineages, console, shots, variants)
    if config.harness:
        score_with_harness(config, eval_sets, runs_per_task, precision, console)
    seconds = time.perf_counter() - start
    task_results = []
    for eval_set, section, set_warnings, runs in zip(eval_sets, split_sections, warnings, runs_per_task, strict=True):
        shots = exemplars.get(eval_set.task.name, (None, {"k": 0}))[1]
        if eval_set.task.is_text:
            task_results.append(
                build_text_results(ScoredSet(config, eval_set, section, runs, precision, set_warnings, seconds, shots))
            )
            continue
        if eval_set.task.is_open:
            for run in runs:
                add_extra_scores(run.records, extras, config.bertscore_model)
            set_warnings = set_warnings + identical_output_warnings(runs)
            task_results.append(
                build_open_results(ScoredSet(config, eval_set, section, runs, precision, set_warnings, seconds, shots))
            )
            continue
        checks = parent_checks(runs, config.bootstrap_resamples, config.seed)
        set_warnings = set_warnings + identical_output_warnings(runs)
        for warning in set_warnings:
            logger.warning(warning)
        for check in checks:
            if check["regressed"]:
                logger.warning(report.regression_message(check))
        scored = ScoredSet(config, eval_set, section, runs, precision, set_warnings, seconds, shots)
        task_results.append(build_results(scored, checks))
    task_records = [[record for run in runs for record in run.records] for runs in runs_per_task]
    folder = Path(config.output_dir) / config.resolved_run_name
    if not config.is_mixture:
        results = task_results[0]
        if eval_sets[0].task.is_text:
            write_text_outputs(results, task_records[0], folder)
            print_text_summary(results, console)
        elif eval_sets[0].task.is_open:
            write_open_outputs(results, task_records[0], folder)
            print_open_summary(results, console)
        else:
            write_outputs(results, task_records[0], folder)
            report.print_summary(results, console)
        written = f"wrote {folder / RESULTS_FILE}, {folder / PREDICTIONS_FILE}, {folder / REPORT_FILE}"
        console.print(written, markup=False)
        return EvalOutcome(results, folder, config.fail_on_regression)
    results = mixture_results(config, task_results, runs_per_task, precision, seconds)
    write_mixture_outputs(results, task_results, task_records, folder)
    for task_result in task_results:
        console.rule(f"task {task_result['task']['name']}")
        report.print_summary(task_result, console)
    console.rule(f"{len(task_results)} tasks")
    print_mixture_summary(results, console)
    console.print(f"wrote {folder / RESULTS_FILE}, {folder / REPORT_FILE} and one folder per task", markup=False)
    return EvalOutcome(results, folder, config.fail_on_regression)
