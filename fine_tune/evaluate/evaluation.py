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

from fine_tune.constants import EXIT_MODEL_FAILED, EXIT_REGRESSION, PREDICTIONS_FILE, REPORT_FILE, RESULTS_FILE
from fine_tune.errors import DatasetError
from fine_tune.evaluate import report
from fine_tune.evaluate.eval_set import fewshot_exemplars, load_eval_set
from fine_tune.evaluate.regressions import parent_checks
from fine_tune.evaluate.results import build_results, write_outputs
from fine_tune.evaluate.runs import run_models
from fine_tune.evaluate.sources import model_lineages
from fine_tune.evaluate.split_check import check_split
from fine_tune.evaluate.summaries import identical_output_warnings
from fine_tune.hub import access as hub
from fine_tune.hub.access import hf_token
from fine_tune.models.precision import resolve_precision
from fine_tune.recipes.arguments import EvalConfig

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


def run_evaluation(config: EvalConfig, console: Console | None = None) -> EvalOutcome:
    """The whole evaluation; DatasetError (bad data, contamination) propagates, model failures are recorded."""
    console = console or default_console()
    hub.bound_hub_calls()  # lineage reads and model downloads cannot wait forever on a silent endpoint
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
        f"evaluating {len(config.models)} model(s) on {len(eval_set.rows)} rows: {eval_set.info['description']}",
        markup=False,
    )
    exemplars, shots = fewshot_exemplars(config, eval_set.task)
    runs = run_models(config, eval_set, precision, lineages, console, exemplars)
    checks = parent_checks(runs, config.bootstrap_resamples, config.seed)
    warnings += identical_output_warnings(runs)
    for warning in warnings:
        logger.warning(warning)
    for check in checks:
        if check["regressed"]:
            logger.warning(report.regression_message(check))
    seconds = time.perf_counter() - start
    results = build_results(config, eval_set, split_section, runs, precision, warnings, seconds, checks, shots)
    records = [record for run in runs for record in run.records]
    folder = write_outputs(results, records, Path(config.output_dir) / config.resolved_run_name)
    report.print_summary(results, console)
    console.print(f"wrote {folder / RESULTS_FILE}, {folder / PREDICTIONS_FILE}, {folder / REPORT_FILE}", markup=False)
    return EvalOutcome(results, folder, config.fail_on_regression)
