"""Leaderboard-comparable numbers: lm-evaluation-harness's log-likelihood multiple-choice protocol on the same eval
rows, beside the project's generative JSON accuracy (`--harness lm_eval`, the optional `[harness]` extra).

The Open Medical-LLM Leaderboard scores medmcqa, medqa_4options, pubmedqa and the MMLU medical subsets with
lm-evaluation-harness: the prompt `Question: ...\\nChoices:\\nA. ...\\nAnswer:` (its medmcqa task's doc_to_text), the
letters as the choices, and the model's log-likelihood of each letter after it; the highest is the answer (`acc`;
`acc_norm` divides by the choice's byte length). Here the harness runs that protocol offline on the eval set's rows,
written to a local JSONL with a task YAML that points at it, and on each scored model's local weights.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fine_tune.errors import RecipeError

LM_EVAL = "lm_eval"
HARNESSES = (LM_EVAL,)
PROTOCOL = "lm-evaluation-harness log-likelihood multiple choice (acc), the Open Medical-LLM Leaderboard's protocol"
EXTRA_HINT = "pip install -e '.[harness]' (lm-eval)"


def check_harness(name: str | None) -> None:
    """Refuse an unknown harness, or lm_eval when the extra is not installed: one line, before any model loads."""
    if name is None:
        return
    if name not in HARNESSES:
        raise RecipeError(f"harness must be one of {', '.join(HARNESSES)} (or unset), got {name!r}")
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise RecipeError(
            f"--harness {name} needs lm-evaluation-harness, which is not installed: {EXTRA_HINT}"
        ) from None


def harness_prompt(row: Mapping[str, Any], letters: Sequence[str]) -> str:
    """lm-eval's medmcqa doc_to_text for any task's canonical row (a context, when the task has one, first)."""
    lines = [f"Context: {row['context']}"] if row.get("context") else []
    lines.append(f"Question: {row['question']}\nChoices:")
    lines += [f"{letter}. {option}" for letter, option in zip(letters, row["options"], strict=False)]
    return "\n".join(lines) + "\nAnswer:"


def write_task(rows: Iterable[Mapping[str, Any]], letters: Sequence[str], name: str, folder: Path) -> Path:
    """The eval rows as a local JSONL and a task YAML of the harness's multiple-choice type pointing at it."""
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"text": harness_prompt(row, letters), "target": int(row["answer"])}) + "\n")
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{text}}",
        "doc_to_target": "{{target}}",
        "doc_to_choice": list(letters),
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False), encoding="utf-8")
    return path


def run_harness(
    model_path: str, rows: Sequence[Mapping[str, Any]], letters: Sequence[str], task_name: str, *, device: str,
    dtype: str, batch_size: int,
) -> dict[str, Any]:  # fmt: skip
    """Score one model's local weights with lm-evaluation-harness on `rows`; the accuracy and what produced it."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    name = f"medft_{task_name}".replace("-", "_").replace("+", "_")
    with tempfile.TemporaryDirectory(prefix="harness-") as folder:
        write_task(rows, letters, name, Path(folder))
        output = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": model_path, "dtype": dtype},
            tasks=[name],
            task_manager=TaskManager(include_path=folder, include_defaults=False),
            batch_size=batch_size,
            device=device,
        )
    scores = output["results"][name]
    return {
        "protocol": PROTOCOL,
        "harness_task": name,
        "lm_eval_version": lm_eval.__version__,
        "n": len(rows),
        "loglikelihood_accuracy": scores["acc,none"],
        "loglikelihood_accuracy_stderr": scores.get("acc_stderr,none"),
        "loglikelihood_accuracy_norm": scores.get("acc_norm,none"),
    }
