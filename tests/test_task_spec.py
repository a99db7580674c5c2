"""fine_tune/task/spec.py: the presets, and task specs refused in one line naming the key."""

import pytest
from task_specs import PRESETS, spec

from fine_tune.errors import RecipeError
from fine_tune.task.spec import DEFAULT_TASK, available_tasks, resolve_task


def test_presets_are_the_seven_and_default_is_medmcqa():
    assert set(PRESETS) <= set(available_tasks())
    assert resolve_task(None).name == DEFAULT_TASK == "medmcqa"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"feilds": {}}, r"unknown key 'feilds' \(did you mean 'fields'\?\)"),
        ({"letters": ["A", "B"]}, r"2 letters but 3 columns options"),
        ({"letters": ["A", "A", "B"]}, r"distinct labels"),
        ({"letters": list("ABCDEFGHIJK")}, r"needs 2..10 labels"),
        ({"min_options": 4}, r"min_options \(4\) exceeds"),
        (
            {"fields": {"question": "q", "options": {"list": "o"}, "answer": {"field": "y", "encoding": "index0"}}},
            r"`letters` is required for list options",
        ),
        (
            {
                "fields": {
                    "question": "q",
                    "options": {"columns": ["a", "b"]},
                    "answer": {"field": "y", "encoding": "idx"},
                }
            },
            r"encoding must be one of letter, index0, index1, text, key",
        ),
        (
            {
                "fields": {
                    "question": "q",
                    "options": {"columns": ["a", "b"]},
                    "answer": {"field": "y", "encoding": "key"},
                }
            },
            r"'key' needs key_value or dict options",
        ),
        (
            {"fields": {"question": "q", "options": {"rows": "o"}, "answer": {"field": "y", "encoding": "index0"}}},
            r"fields.options must be one of",
        ),
        (
            {"fields": {"options": {"columns": ["a", "b"]}, "answer": {"field": "y", "encoding": "index0"}}},
            r"fields.question is required",
        ),
        ({"source_columns": "q"}, r"`source_columns` must be a non-empty list of column names"),
        ({"source_columns": ["q", "a", "q"]}, r"`source_columns` lists a column twice"),
        ({"source_columns": ["q", "a", "b", "c"]}, r"`source_columns` lacks y, which `fields` read"),
    ],
)
def test_bad_task_specs_are_one_line_recipe_errors(overrides, message):
    with pytest.raises(RecipeError, match=message) as error:
        spec(**overrides)
    assert "\n" not in str(error.value)


def test_unknown_task_name_suggests_a_preset(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown task 'medqa4' \(did you mean 'medqa'\?\)"):
        resolve_task("medqa4")
    with pytest.raises(RecipeError, match="task file not found"):
        resolve_task(str(tmp_path / "absent.yaml"))
