"""Evaluate base / SFT / GRPO models on MedMCQA against the strict JSON contract.

python scripts/eval_medmcqa.py --config configs/eval.yaml [--limit 20] [--eval_split validation]
    [--models base=Qwen/Qwen3-0.6B,grpo=outputs/medmcqa-grpo/merged] [--batch_size 32] [--run_name NAME]

Writes eval_results/<run_name>/{eval_results.json,predictions.jsonl,report.md,plots/}. Exit status: 0 when every model
was evaluated, 1 when some model failed to load or generate (the others' results are still written), 2 for bad input
(config, dataset, contamination of the eval rows), 5 with --fail_on_regression true when a model is significantly
worse than the parent its lineage names.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fine_tune.cli import parse_only_exit, run_main
from fine_tune.recipes.loader import parse_recipe


def failure_summary(failed: int, models: int, folder) -> str:
    if failed >= models:
        return f"every model failed ({failed} of {models}): nothing was scored (the errors above say why)"
    return f"{failed} of {models} model(s) failed; results of the others are in {folder}"


def main(argv: Sequence[str] | None = None) -> int:
    (config,) = parse_recipe("eval", argv)
    parse_only_exit("eval_medmcqa.py")
    import datasets

    from fine_tune.evaluate.phase import run_evaluation
    from fine_tune.hub.model_card import update_cards_from_results
    from fine_tune.hub_access import hf_token

    datasets.disable_progress_bars()
    outcome = run_evaluation(config)
    if config.update_model_cards:
        for where in update_cards_from_results(outcome.results, token=hf_token(config.hf_token_env)):
            print(f"model card updated: {where}")
    if outcome.failed:
        for label in outcome.failed:
            model = outcome.results["models"][label]
            print(f"error: {label} failed at {model['stage']}: {model['error']}", file=sys.stderr)
        print(failure_summary(len(outcome.failed), len(outcome.results["models"]), outcome.folder), file=sys.stderr)
    if outcome.regressed:
        severity = "error" if config.fail_on_regression else "warning"
        regressed = ", ".join(outcome.regressed)
        print(f"{severity}: regressed against its lineage parent: {regressed} (see {outcome.folder})", file=sys.stderr)
    return outcome.exit_code


if __name__ == "__main__":
    run_main(main)
