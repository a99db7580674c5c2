"""Dev records, the mixture split and the log reader shared by the selection tests (tests/test_selection*.py)."""

from pathlib import Path

from fine_tune.data.task_splits import phase_split
from fine_tune.recipes.arguments import SplitArguments
from fine_tune.train import selection
from fine_tune.train.selection import selection_score

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks"
TASKS_2 = ("medqa", "pubmedqa")
TEXT_TASK = {"name": "notes", "type": "text", "dataset_path": "./t.jsonl", "fields": {"text": "body"}}
TEXT_ROWS = [{"id": "t0", "text": "The heart has four chambers."}, {"id": "t1", "text": "Kidneys filter blood."}]


def metrics(correct, schema_valid, n=10):
    return {"n": n, "correct": correct, "schema_valid": schema_valid}


def history(*accuracies, n=10):
    return [
        {
            "step": 10 * i,
            "n": n,
            "accuracy": a,
            "valid_json_rate": 1.0,
            "schema_pass_rate": 1.0,
            "score": selection_score(metrics(round(a * n), n, n)),
            "examples": ['{"predicted_category": "A"}'],
        }
        for i, a in enumerate(accuracies)
    ]


def scored(step, correct, tasks):
    """A dev record as DevScorer writes it, from per-row correctness."""
    n, k = len(correct), sum(correct)
    return {"step": step, "n": n, "accuracy": k / n, "valid_json_rate": 1.0, "schema_pass_rate": 1.0,
            "score": selection_score(metrics(k, n, n)), "examples": [], "correct": correct,
            "per_task": selection.per_task_accuracy(tasks, correct)}  # fmt: skip


def mixture_split():
    task = {name: {"weight": weight, "dataset_name": str(FIXTURES / f"{name}.jsonl")}
            for name, weight in (("medqa", 2), ("pubmedqa", 1))}  # fmt: skip
    return phase_split(SplitArguments(task=task, sft_size=9, grpo_size=2, eval_size=2, split_seed=1))


def selection_logs(caplog):
    """(level, message) of every record fine_tune.train.selection logged."""
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == selection.__name__]
