"""Held-out selection: a dev slice of the phase's own training rows, scored by the project's strict greedy eval.

The Trainer's `evaluate()` is replaced by dev scoring (same prompts, greedy decoding and strict parser as
`eval_medmcqa.py`), so transformers' own machinery does the rest: `metric_for_best_model` keeps the best checkpoint,
`load_best_model_at_end` restores it, `EarlyStoppingCallback` stops after `early_stopping_patience` evaluations
without a gain, `TargetAccuracyCallback` stops at `target_accuracy`. `eval_on_start` scores the starting model
(step 0); `check_improvement` refuses to hand on a model that no trained step made better than that start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import EarlyStoppingCallback, TrainerCallback
from trl import GRPOTrainer, SFTTrainer

from fine_tune.data.splits import DEV_KEY
from fine_tune.errors import NoImprovementError, RecipeError
from fine_tune.evaluate.generation import generate_responses
from fine_tune.evaluate.perplexity import text_losses
from fine_tune.evaluate.regressions import REGRESSION_ALPHA
from fine_tune.evaluate.stats import mcnemar_exact
from fine_tune.evaluate.text_metrics import rouge
from fine_tune.task.mixture import apportion
from fine_tune.task.parsing import parse_open_response
from fine_tune.task.prompts import LETTERS, gold_letter, prompt_messages
from fine_tune.task.scoring import aggregate_metrics, score_sample
from fine_tune.task.spec import DEFAULT_TASK, TaskSpec

logger = logging.getLogger(__name__)

SELECTION_METRIC = "dev_score"  # logged as eval_dev_score
# a dev record's field -> the metric it is logged as (with the "eval_" prefix)
DEV_METRICS = {
    "accuracy": "dev_accuracy",
    "valid_json_rate": "dev_valid_json",
    "schema_pass_rate": "dev_schema_pass",
    "score": SELECTION_METRIC,
}
# Exit 3 is the expected end of a smoke run (a few steps rarely beat the start); the fix is one flag.
SMOKE_RUN_HINT = (
    "This is expected for a smoke run of a few steps: add --no_improvement_action warn (no_improvement_action: warn "
    "in the recipe) to hand on the best trained step anyway"
)


def carve_dev(parts: Sequence[Any], manifest: dict[str, Any], phase: str, dev_size: int) -> list[tuple[Any, Any]]:
    """(train rows, dev rows) per task part: the last rows of each part of the phase's split, `dev_size` shared out
    in proportion to the parts' sizes, recorded in `manifest["dev"]`.

    Each part is already a seeded shuffle, so its tail is a random sample; the eval split is never touched. The parts
    lie in the manifest's split in order (a mixture's split lists its tasks' rows one task after another).
    """
    if dev_size <= 0:
        return [(rows, None) for rows in parts]
    total = sum(len(rows) for rows in parts)
    if dev_size >= total:
        raise RecipeError(f"dev_size {dev_size} leaves no {phase} rows to train on ({total} in the split)")
    shares = apportion(dev_size, [len(rows) for rows in parts])
    split, carved, positions, start = manifest["splits"][phase], [], [], 0
    for rows, share in zip(parts, shares, strict=True):
        if share >= len(rows):
            raise RecipeError(f"dev_size {dev_size} leaves no {phase} rows of one task to train on ({len(rows)} rows)")
        cut = len(rows) - share
        carved.append((rows.select(range(cut)), rows.select(range(cut, len(rows))) if share else None))
        positions += range(start + cut, start + len(rows))
        start += len(rows)
    manifest[DEV_KEY] = {
        "phase": phase,
        "size": dev_size,
        "row_ids": [split["row_ids"][i] for i in positions],
        "content_hashes": [split["content_hashes"][i] for i in positions],
    }
    return carved


def selection_score(metrics: Mapping[str, Any]) -> float:
    """Strict accuracy, ties broken by schema pass: k/n + s/(n(n+1)); the schema term is < 1/n, one accuracy step."""
    n = metrics["n"]
    return metrics["correct"] / n + metrics["schema_valid"] / (n * (n + 1))


def generate_dev_answers(model, tokenizer, messages, batch_size: int, max_new_tokens: int):
    """Greedy answers to the dev prompts, the tokenizer's padding side restored afterwards (generation pads left)."""
    padding_side = tokenizer.padding_side
    try:
        return generate_responses(model, tokenizer, messages, batch_size=batch_size, max_new_tokens=max_new_tokens)
    finally:
        tokenizer.padding_side = padding_side


@dataclass
class DevScorer:
    messages: list[list[dict[str, str]]]
    golds: list[str]
    batch_size: int
    max_new_tokens: int
    history: list[dict[str, Any]] = field(default_factory=list)
    letters: Sequence[Sequence[str]] | None = None  # each row's task letters; None: A-D for every row
    tasks: Sequence[str] | None = None  # each row's task name (a mixture's dev rows are scored per task too)
    metrics: Mapping[str, str] = field(default_factory=lambda: dict(DEV_METRICS))  # record field -> logged name

    def describe(self, record: Mapping[str, Any]) -> str:
        return (
            f"dev step {record['step']}: accuracy {record['accuracy']:.3f}, valid JSON "
            f"{record['valid_json_rate']:.3f}, schema pass {record['schema_pass_rate']:.3f}"
        )

    @classmethod
    def from_rows(cls, rows, batch_size: int, max_new_tokens: int, task: TaskSpec | None = None) -> DevScorer:
        return cls.from_parts([(task, rows)], batch_size, max_new_tokens)

    @classmethod
    def from_parts(
        cls, parts: Sequence[tuple[TaskSpec | None, Any]], batch_size: int, max_new_tokens: int
    ) -> DevScorer:
        """The dev rows of every task, each prompted and scored with its own task's letters (an open task's rows:
        `OpenDevScorer`)."""
        if any(task is not None and task.is_text for task, _ in parts):
            return PerplexityDevScorer.from_text_parts(parts, batch_size)
        if any(task is not None and task.is_open for task, _ in parts):
            return OpenDevScorer.from_open_parts(parts, batch_size, max_new_tokens)
        messages = [prompt_messages(row, task=task) for task, rows in parts for row in rows]
        golds = [gold_letter(row, task) for task, rows in parts for row in rows]
        letters = [task.letters if task else LETTERS for task, rows in parts for _ in range(len(rows))]
        tasks = [task.name if task else DEFAULT_TASK for task, rows in parts for _ in range(len(rows))]
        return cls(messages, golds, batch_size, max_new_tokens, letters=letters, tasks=tasks)

    def score(self, model, tokenizer, step: int) -> dict[str, Any]:
        result = generate_dev_answers(model, tokenizer, self.messages, self.batch_size, self.max_new_tokens)
        letters = self.letters or [LETTERS] * len(self.golds)
        scores = [
            score_sample(text, gold, row_letters)
            for text, gold, row_letters in zip(result.texts, self.golds, letters, strict=True)
        ]
        metrics = aggregate_metrics(scores)
        record = {
            "step": step,
            "n": metrics["n"],
            "accuracy": metrics["accuracy"],
            "valid_json_rate": metrics["valid_json_rate"],
            "schema_pass_rate": metrics["schema_pass_rate"],
            "score": selection_score(metrics),
            "examples": result.texts[:3],
            "correct": [score.correct for score in scores],
        }
        if self.tasks and len(set(self.tasks)) > 1:
            record["per_task"] = per_task_accuracy(self.tasks, record["correct"])
        self.history.append(record)
        return record


@dataclass
class OpenDevScorer(DevScorer):
    """An open task's dev slice: the record's `accuracy` is the mean ROUGE-L F of the answers against the references,
    `valid_json_rate`/`schema_pass_rate` the strict JSON checks (answer_format: text: the share of non-empty answers);
    the selection score is that ROUGE-L, ties broken by the schema pass as for multiple-choice tasks."""

    answer_format: str = "json"

    @classmethod
    def from_open_parts(
        cls, parts: Sequence[tuple[TaskSpec | None, Any]], batch_size: int, max_new_tokens: int
    ) -> OpenDevScorer:
        if len(parts) != 1:
            names = ", ".join(task.name if task else DEFAULT_TASK for task, _ in parts)
            raise RecipeError(f"task: an open task is trained alone, not in a mixture ({names})")
        task, rows = parts[0]
        messages = [prompt_messages(row, task=task) for row in rows]
        references = [row["answer"] for row in rows]
        return cls(messages, references, batch_size, max_new_tokens, answer_format=task.answer_format)

    def score(self, model, tokenizer, step: int) -> dict[str, Any]:
        result = generate_dev_answers(model, tokenizer, self.messages, self.batch_size, self.max_new_tokens)
        answers = [parse_open_response(text, self.answer_format) for text in result.texts]
        rouge_l = [rouge(a.answer, gold)["rougeL"] for a, gold in zip(answers, self.golds, strict=True)]
        n = len(answers)
        valid = [a.json_valid if a.json_valid is not None else bool(a.answer) for a in answers]
        passed = [a.schema_valid if a.schema_valid is not None else bool(a.answer) for a in answers]
        record = {
            "step": step,
            "n": n,
            "accuracy": sum(rouge_l) / n,
            "valid_json_rate": sum(valid) / n,
            "schema_pass_rate": sum(passed) / n,
            "score": sum(rouge_l) / n + sum(passed) / (n * (n + 1)),
            "examples": result.texts[:3],
        }
        self.history.append(record)
        return record


@dataclass
class PerplexityDevScorer(DevScorer):
    """A text task's dev slice: the corpus perplexity of the dev texts (`fine_tune.evaluate.perplexity`); the
    selection score is minus the mean NLL per token, so the lowest perplexity is kept."""

    max_length: int | None = None

    @classmethod
    def from_text_parts(cls, parts: Sequence[tuple[TaskSpec | None, Any]], batch_size: int) -> PerplexityDevScorer:
        if len(parts) != 1:
            names = ", ".join(task.name if task else DEFAULT_TASK for task, _ in parts)
            raise RecipeError(f"task: a text task is trained alone, not in a mixture ({names})")
        texts = [row["text"] for row in parts[0][1]]
        return cls([], texts, batch_size, 0, metrics={"perplexity": "dev_perplexity", "score": SELECTION_METRIC})

    def describe(self, record: Mapping[str, Any]) -> str:
        return f"dev step {record['step']}: perplexity {record['perplexity']:.3f} over {record['tokens']} tokens"

    def score(self, model, tokenizer, step: int) -> dict[str, Any]:
        losses = text_losses(model, tokenizer, self.golds, self.batch_size, self.max_length)
        mean_nll = float(losses.nll.sum() / losses.tokens.sum())
        record = {
            "step": step,
            "n": len(self.golds),
            "tokens": int(losses.tokens.sum()),
            "perplexity": losses.perplexity,
            "score": -mean_nll,
            "examples": [],
        }
        self.history.append(record)
        return record


class TargetPerplexityCallback(TrainerCallback):
    """Stop training once a trained step's dev perplexity is at or below `target`."""

    def __init__(self, target: float):
        self.target = target

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        perplexity = (metrics or {}).get("eval_dev_perplexity")
        if state.global_step > 0 and perplexity is not None and perplexity <= self.target:
            logger.info(
                "dev perplexity %.3f reached the target %.3f at step %d", perplexity, self.target, state.global_step
            )
            control.should_training_stop = True


def headline(record: Mapping[str, Any]) -> str:
    """A dev record's headline: its perplexity (text tasks) or its accuracy."""
    if "perplexity" in record:
        return f"perplexity {record['perplexity']:.3f}"
    return f"accuracy {record['accuracy']:.3f}"


def per_task_accuracy(tasks: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    return {
        name: sum(c for t, c in zip(tasks, correct, strict=True) if t == name) / tasks.count(name)
        for name in dict.fromkeys(tasks)
    }


class DevSelectionMixin:
    """`evaluate()` scores the dev slice; the metrics go through `log()` (trackio/console) and `on_evaluate`."""

    dev_scorer: DevScorer | None = None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if self.dev_scorer is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            record = self.dev_scorer.score(model, self.processing_class, self.state.global_step)
            metrics = {f"{metric_key_prefix}_{name}": record[key] for key, name in self.dev_scorer.metrics.items()}
            for task, accuracy in record.get("per_task", {}).items():
                metrics[f"{metric_key_prefix}_dev_accuracy/{task}"] = accuracy
            self.log(metrics)  # in eval mode, so TRL's log adds no training metrics to these
        finally:
            model.train(was_training)
        logger.info("%s", self.dev_scorer.describe(record))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class SelectingSFTTrainer(DevSelectionMixin, SFTTrainer):
    pass


class SelectingGRPOTrainer(DevSelectionMixin, GRPOTrainer):
    pass


class TargetAccuracyCallback(TrainerCallback):
    """Stop training once a trained step reaches `target` dev accuracy (the starting model's score never stops it)."""

    def __init__(self, target: float):
        self.target = target

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        accuracy = (metrics or {}).get("eval_dev_accuracy")
        if state.global_step > 0 and accuracy is not None and accuracy >= self.target:
            logger.info(
                "dev accuracy %.3f reached the target %.3f at step %d", accuracy, self.target, state.global_step
            )
            control.should_training_stop = True


def selection_callbacks(args) -> list[TrainerCallback]:
    callbacks: list[TrainerCallback] = []
    if args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience))
    if args.target_accuracy is not None:
        callbacks.append(TargetAccuracyCallback(args.target_accuracy))
    if args.target_perplexity is not None:
        callbacks.append(TargetPerplexityCallback(args.target_perplexity))
    return callbacks


def selection_summary(history: Sequence[Mapping[str, Any]], best_step: int | None) -> dict[str, Any]:
    """What lineage.json records: the start's and the handed-on step's dev scores, and every evaluation."""
    by_step = {record["step"]: record for record in history}
    start = by_step.get(0)
    best = by_step.get(best_step)  # None when no step was selected (best_step None)
    strip = ("step", "n", "accuracy", "valid_json_rate", "schema_pass_rate", "per_task", "perplexity", "tokens")
    return {
        "metric": f"eval_{SELECTION_METRIC}",
        "start": {k: start[k] for k in strip if k in start} if start else None,
        "selected": {k: best[k] for k in strip if k in best} if best else None,
        "history": [{k: r[k] for k in strip if k in r} for r in history],
    }


def logged_history(
    log_history: Sequence[Mapping[str, Any]], n: int, metrics: Mapping[str, str] = DEV_METRICS
) -> list[dict[str, Any]]:
    """The dev evaluations in the Trainer's log: a resumed run restores it from the checkpoint, so the starting
    model's step-0 score survives a resume."""
    return [
        {"step": entry["step"], "n": n, **{key: entry[f"eval_{name}"] for key, name in metrics.items()},
         "examples": []}
        for entry in log_history
        if f"eval_{SELECTION_METRIC}" in entry
    ]  # fmt: skip


def selection_outcome(trainer, action: str) -> dict[str, Any] | None:
    """After training: the lineage record of the selection, or NoImprovementError when nothing beat the start.
    Evaluations of this process win over those restored from a checkpoint's log at the same step."""
    if trainer.dev_scorer is None:
        return None
    scorer = trainer.dev_scorer
    scored = {r["step"]: r for r in logged_history(trainer.state.log_history, len(scorer.golds), scorer.metrics)}
    scored.update({record["step"]: record for record in trainer.dev_scorer.history})
    history = [scored[step] for step in sorted(scored)]
    summary = selection_summary(history, trainer.state.best_global_step)
    check_improvement(summary, history, action, trainer.dev_scorer.tasks)
    return summary


def task_regressions(
    start: Mapping[str, Any], chosen: Mapping[str, Any], tasks: Sequence[str], alpha: float = REGRESSION_ALPHA
) -> list[str]:
    """The tasks on whose dev rows `chosen` is worse than `start` with exact McNemar p < alpha, described."""
    found = []
    for name in dict.fromkeys(tasks):
        rows = [i for i, task in enumerate(tasks) if task == name]
        now, before = [chosen["correct"][i] for i in rows], [start["correct"][i] for i in rows]
        p_value = mcnemar_exact(now, before)["mcnemar_p"]
        if sum(now) < sum(before) and p_value < alpha:
            found.append(f"{name} ({sum(now)}/{len(rows)} vs {sum(before)}/{len(rows)} at the start, p={p_value:.3g})")
    return found


def check_tasks(start: Mapping[str, Any], chosen: Mapping[str, Any], tasks: Sequence[str] | None, action: str) -> None:
    """A mixture's selected step must not be significantly worse than the start on any one task's dev rows."""
    if not tasks or len(set(tasks)) < 2:
        return
    if "correct" not in start or "correct" not in chosen:  # restored from a checkpoint's log after a resume
        logger.warning(
            "NOT CHECKED per task: the dev answers of step 0 or step %d came from a checkpoint's log (resumed run)",
            chosen["step"],
        )
        return
    found = task_regressions(start, chosen, tasks)
    if not found:
        return
    message = (
        f"TASK REGRESSION: step {chosen['step']} beats the start on the whole dev slice but is significantly worse "
        f"(exact McNemar) on {'; '.join(found)}"
    )
    if action == "fail":
        raise NoImprovementError(message + ". Nothing is handed on (no_improvement_action: warn keeps it anyway).")
    logger.warning("%s. no_improvement_action is 'warn': handing on step %d.", message, chosen["step"])


def check_improvement(
    summary: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    action: str,
    tasks: Sequence[str] | None = None,
) -> None:
    """Refuse (action 'fail') or warn when no trained step scored above the starting model on the dev slice, or, in
    a mixture (`tasks`: each dev row's task), when the selected step is significantly worse on one task's rows."""
    start = next((r for r in history if r["step"] == 0), None)
    selected = summary["selected"]
    if start is None:
        if history:  # resumed from a checkpoint whose log lacks step 0 (eval_on_start was off when it was written)
            logger.warning(
                "NOT CHECKED: this run resumed at step %d, so the starting model's dev score is not known here and "
                "no step could be compared with it; rerun from step 0 to check for an improvement",
                history[0]["step"],
            )
        return
    if selected is None:
        message = (
            f"NO IMPROVEMENT: no trained step was scored on the {start['n']}-row dev slice (is max_steps below "
            "eval_steps?), so nothing shows the model beats its start"
        )
        if action == "fail":
            raise NoImprovementError(f"{message}. Nothing is handed on. {SMOKE_RUN_HINT}")
        logger.warning("%s. no_improvement_action is 'warn': handing on the last step.", message)
        return
    chosen = next(r for r in history if r["step"] == selected["step"])
    if chosen["score"] > start["score"]:
        logger.info("selected step %d: dev %s (start %s)", selected["step"], headline(selected), headline(start))
        check_tasks(start, chosen, tasks, action)
        return
    measure = "perplexity" if "perplexity" in start else "accuracy"
    trajectory = ", ".join(f"step {r['step']}: {r[measure]:.3f}" for r in history)
    examples = "; ".join(repr(text[:120]) for text in history[-1]["examples"])
    schema = f"; start schema pass {start['schema_pass_rate']:.3f}" if "schema_pass_rate" in start else ""
    message = (
        f"NO IMPROVEMENT: no trained step beat the starting model on the {start['n']}-row dev slice (dev "
        f"{'perplexity' if measure == 'perplexity' else 'strict accuracy'} {trajectory}{schema}). Latest dev "
        f"answers: {examples or 'none (perplexity)'}"
    )
    if action == "fail":
        raise NoImprovementError(f"{message}. Nothing is handed on. {SMOKE_RUN_HINT}")
    logger.warning("%s. no_improvement_action is 'warn': handing on trained step %d.", message, selected["step"])
