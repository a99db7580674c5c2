"""A toy multiple-choice task spec the task and data tests build variants of, and the seven presets."""

from fine_tune.task.spec import parse_task_spec

PRESETS = ("medmcqa", "medqa", "medqa5", "kormedmcqa", "mmlu_medical", "headqa", "pubmedqa")


def spec(**overrides):
    values = {
        "name": "toy",
        "dataset_path": "owner/toy",
        "fields": {
            "question": "q",
            "options": {"columns": ["a", "b", "c"]},
            "answer": {"field": "y", "encoding": "index0"},
        },
    }
    values.update(overrides)
    return parse_task_spec(values)
