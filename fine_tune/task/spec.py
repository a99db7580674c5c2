"""A multiple-choice task as data: where its rows come from and where each part of a question lives in them.

One YAML file per task under `configs/tasks/` (`--task medqa`), or a user's own file (`--task path/to/task.yaml`):

    name: medqa
    dataset_path: GBaker/MedQA-USMLE-4-options   # Hub ID, or a local path (relative to the task file)
    dataset_configs: [null]                      # Hub configs, concatenated (e.g. MMLU's subjects)
    train_split: train                           # the split that is shuffled into sft/grpo/eval
    eval_split: test                             # the official split for scoring (null: none)
    language: en
    source_columns: null                         # the source's columns in order (optional): absent ones read as
                                                 # null, others dropped (one schema for partial files and the Hub)
    letters: [A, B, C, D]                        # 2..10 labels; default: the first N of A..J
    min_options: 4                               # rows may have min_options..len(letters) options
    fields:
      id: null
      question: question
      options: {dict: options}                   # or {columns: [..]}, {list: f}, {key_value: {field, key, value}},
                                                 # or {fixed: [yes, no, maybe]} (the same options for every row)
      answer: {field: answer_idx, encoding: letter}   # letter | index0 | index1 | text | key
      context: null                              # e.g. context.contexts (a list is joined with newlines)
      explanation: null
      subject: meta_info
      image: null                                # rows with a value here need an image the prompt cannot show

A field is a column name or a dotted path into nested columns (`context.contexts`). Every problem is a one-line
`RecipeError` naming the file and the key.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.constants import PROJECT_ROOT
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml

TASKS_DIR = PROJECT_ROOT / "configs" / "tasks"
DEFAULT_TASK = "medmcqa"
LETTER_POOL: tuple[str, ...] = tuple("ABCDEFGHIJ")
MIN_OPTIONS = 2
MAX_OPTIONS = len(LETTER_POOL)
OPTION_LAYOUTS: tuple[str, ...] = ("columns", "list", "dict", "key_value", "fixed")
ANSWER_ENCODINGS: tuple[str, ...] = ("letter", "index0", "index1", "text", "key")
TASK_TYPES: tuple[str, ...] = ("mcq", "open", "text")
ANSWER_FORMATS: tuple[str, ...] = ("json", "text")  # an open task's target: {"answer", "confidence"} or plain text
OPEN_FIELD_KEYS: tuple[str, ...] = ("id", "question", "answer", "context", "subject")
TEXT_FIELD_KEYS: tuple[str, ...] = ("id", "text", "subject")
TOP_KEYS: tuple[str, ...] = (
    "name",
    "type",
    "answer_format",
    "description",
    "dataset_path",
    "dataset_configs",
    "train_split",
    "eval_split",
    "language",
    "source_columns",
    "letters",
    "min_options",
    "fields",
    "prompt",
)
FIELD_KEYS: tuple[str, ...] = ("id", "question", "options", "answer", "context", "explanation", "subject", "image")
PROMPT_KEYS: tuple[str, ...] = ("question_label", "context_label", "system")
RESPONSE_KEYS: tuple[str, ...] = ("predicted_category", "confidence", "reason")  # the answer JSON, in order
SUBJECT_FIELD, SUBJECT_CONFIG, SUBJECT_TAGGED = "field", "config", "tagged"  # TaskSpec.subject_source
CHOICES_FIELD = "{choices}"  # where a task's own system prompt names its letters
OPEN_RESPONSE_KEYS: tuple[str, ...] = ("answer", "confidence")  # an open task's JSON answer
REFERENCE_ENCODING = "reference"  # an open task's answer: the reference text as it is


@dataclass(frozen=True)
class OptionsSpec:
    """Where a row's options are: `columns` (one column per letter), `list`, `dict` keyed by letter, `key_value` (a
    list of {key, value} objects), or `fixed` (the same option texts for every row, e.g. yes/no/maybe)."""

    layout: str
    columns: tuple[str, ...] = ()
    field: str | None = None
    key: str = "key"
    value: str = "value"
    fixed: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnswerSpec:
    """The gold answer: a `letter` of the task, a 0- or 1-based index (`index0`, `index1`), the option's `text`, or
    the `key` of a {key, value} option."""

    field: str
    encoding: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset_path: str
    question: str
    options: OptionsSpec | None  # None for an open task
    answer: AnswerSpec  # an open task's: the reference text's field, encoding "reference"
    letters: tuple[str, ...]
    min_options: int
    type: str = "mcq"  # mcq | open | text
    answer_format: str = "json"  # open tasks: json ({"answer", "confidence"}) | text
    dataset_configs: tuple[str | None, ...] = (None,)
    train_split: str = "train"
    eval_split: str | None = None
    language: str = "en"
    description: str = ""
    id: str | None = None
    context: str | None = None
    explanation: str | None = None
    subject: str | None = None
    image: str | None = None
    question_label: str = "Question"
    context_label: str = "Context"
    system: str | None = None  # the instructions in the task's language, naming the letters at {choices}
    source_columns: tuple[str, ...] = ()  # the source's columns, in order, when the task file lists them
    source_file: str | None = field(default=None, compare=False)

    @property
    def max_options(self) -> int:
        return len(self.letters)

    @property
    def is_open(self) -> bool:
        return self.type == "open"

    @property
    def is_text(self) -> bool:
        """Plain text for continued pretraining: `question` names the text field."""
        return self.type == "text"

    @property
    def subject_source(self) -> str:
        """Where a row's subject comes from: its subject field, the Hub config it was read from, or the topic tagger
        (`fine_tune.data.topics`) for a set that has neither (one Hub config names the set, not a subject)."""
        if self.subject is not None:
            return SUBJECT_FIELD
        return SUBJECT_CONFIG if len([c for c in self.dataset_configs if c]) > 1 else SUBJECT_TAGGED

    def to_dict(self) -> dict[str, Any]:
        """What a run records about its task (results, manifests)."""
        return {
            "name": self.name,
            "type": self.type,
            **({"answer_format": self.answer_format} if self.is_open else {}),
            "source_file": self.source_file,
            "dataset_path": self.dataset_path,
            "dataset_configs": list(self.dataset_configs),
            "letters": list(self.letters),
            "min_options": self.min_options,
            "language": self.language,
            "has_context": self.context is not None,
            "own_system_prompt": self.system is not None,
        }


def available_tasks() -> list[str]:
    return sorted(path.stem for path in TASKS_DIR.glob("*.yaml"))


def resolve_task(task: str | TaskSpec | None = None) -> TaskSpec:
    """A preset name (`medqa`), a path to a task YAML file, or an already loaded spec; None gives the default."""
    if isinstance(task, TaskSpec):
        return task
    task = DEFAULT_TASK if task is None or not str(task).strip() else str(task).strip()
    path = Path(task).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file() or "/" in task:
        if not path.is_file():
            raise RecipeError(f"task file not found: {task}")
        return load_task_spec(path)
    preset = TASKS_DIR / f"{task}.yaml"
    if not preset.is_file():
        names = available_tasks()
        close = difflib.get_close_matches(task, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(
            f"unknown task {task!r}{hint}; presets: {', '.join(names)}; or pass a task file (--task path/to/task.yaml)"
        )
    return _load_preset(preset)


@functools.cache
def _load_preset(path: Path) -> TaskSpec:
    return load_task_spec(path)


def load_task_spec(path: str | Path) -> TaskSpec:
    path = Path(path)
    return parse_task_spec(read_yaml(path), source=path)


def _source_fields(values: Mapping[str, Any], dataset_path: str, where: str) -> dict[str, Any]:
    """The keys every task type reads the same way: where its rows are and what it is."""
    return {
        "description": str(values.get("description") or ""),
        "dataset_path": dataset_path,
        "dataset_configs": _configs(values.get("dataset_configs"), where),
        "train_split": _text(values, "train_split", where, default="train"),
        "eval_split": _optional_text(values, "eval_split", where),
        "language": _text(values, "language", where, default="en"),
    }


def parse_task_spec(values: Mapping[str, Any], source: str | Path | None = None) -> TaskSpec:
    """Validate a task mapping (as read from YAML) into a TaskSpec; RecipeError naming `source` and the key."""
    where = str(source) if source is not None else "task"
    _check_keys(values, TOP_KEYS, where)
    task_type = values.get("type", "mcq")
    if task_type not in TASK_TYPES:
        raise RecipeError(f"{where}: `type` must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    if task_type in ("open", "text"):
        return _open_spec(values, source, where, task_type)
    if values.get("answer_format") is not None:
        raise RecipeError(f"{where}: `answer_format` is a setting of open tasks (type: open)")
    fields = values.get("fields")
    if not isinstance(fields, Mapping):
        raise RecipeError(f"{where}: `fields` must be a mapping with at least question, options and answer")
    _check_keys(fields, FIELD_KEYS, f"{where}: fields")
    prompt = values.get("prompt") or {}
    if not isinstance(prompt, Mapping):
        raise RecipeError(f"{where}: `prompt` must be a mapping of {', '.join(PROMPT_KEYS)}")
    _check_keys(prompt, PROMPT_KEYS, f"{where}: prompt")

    name = _text(values, "name", where) if values.get("name") is not None else _default_name(source)
    options = _options(fields.get("options"), where)
    letters = _letters(values.get("letters"), options, where)
    min_options = values.get("min_options", len(letters) if options.layout != "fixed" else len(options.fixed))
    if isinstance(min_options, bool) or not isinstance(min_options, int) or min_options < MIN_OPTIONS:
        raise RecipeError(f"{where}: min_options must be an integer >= {MIN_OPTIONS}, got {min_options!r}")
    if min_options > len(letters):
        raise RecipeError(f"{where}: min_options ({min_options}) exceeds the number of letters ({len(letters)})")
    answer = _answer(fields.get("answer"), options, where)
    dataset_path = _text(values, "dataset_path", where)
    if source is not None and not Path(dataset_path).is_absolute() and _looks_like_path(dataset_path):
        dataset_path = str((Path(source).parent / dataset_path).resolve())
    spec = TaskSpec(
        name=name,
        **_source_fields(values, dataset_path, where),
        letters=letters,
        min_options=min_options,
        question=_field_path(fields, "question", where, required=True),
        options=options,
        answer=answer,
        id=_field_path(fields, "id", where),
        context=_field_path(fields, "context", where),
        explanation=_field_path(fields, "explanation", where),
        subject=_field_path(fields, "subject", where),
        image=_field_path(fields, "image", where),
        question_label=_text(prompt, "question_label", f"{where}: prompt", default="Question"),
        context_label=_text(prompt, "context_label", f"{where}: prompt", default="Context"),
        system=_system(prompt, f"{where}: prompt"),
        source_columns=_source_columns(values.get("source_columns"), where),
        source_file=str(source) if source is not None else None,
    )
    _check_source_columns(spec, where)
    return spec


def _check_source_columns(spec: TaskSpec, where: str) -> None:
    """Every column a field reads must be one of the task's `source_columns` (when it lists them)."""
    paths = [spec.question, spec.answer.field, spec.options.field, *spec.options.columns]
    paths += [spec.id, spec.context, spec.explanation, spec.subject, spec.image]
    missing = [p for p in paths if p and spec.source_columns and p.split(".")[0] not in spec.source_columns]
    if missing:
        raise RecipeError(f"{where}: `source_columns` lacks {', '.join(missing)}, which `fields` read")


def _open_spec(values: Mapping[str, Any], source: str | Path | None, where: str, task_type: str) -> TaskSpec:
    """An open-answer task (question, reference answer, optional context/subject/id) or a plain-text task (text,
    optional subject/id; `question` then names the text field); neither has options or letters."""
    text = task_type == "text"
    fields = values.get("fields")
    if not isinstance(fields, Mapping):
        needed = "text" if text else "question and answer"
        raise RecipeError(f"{where}: `fields` must be a mapping with at least {needed}")
    _check_keys(fields, TEXT_FIELD_KEYS if text else OPEN_FIELD_KEYS, f"{where}: fields (type: {task_type})")
    for key in ("letters", "min_options"):
        if values.get(key) is not None:
            raise RecipeError(f"{where}: `{key}` is a setting of multiple-choice tasks, not of type: {task_type}")
    if text and (values.get("answer_format") is not None or values.get("prompt") is not None):
        raise RecipeError(f"{where}: a text task has no prompt and no answer_format (it trains on the text as is)")
    answer_format = values.get("answer_format", "json")
    if answer_format not in ANSWER_FORMATS:
        raise RecipeError(
            f"{where}: `answer_format` must be one of {', '.join(ANSWER_FORMATS)}, got {answer_format!r}"
        )
    prompt = values.get("prompt") or {}
    if not isinstance(prompt, Mapping):
        raise RecipeError(f"{where}: `prompt` must be a mapping of {', '.join(PROMPT_KEYS)}")
    _check_keys(prompt, PROMPT_KEYS, f"{where}: prompt")
    system = _optional_text(prompt, "system", f"{where}: prompt")
    if system is not None and answer_format == "json" and any(f'"{k}"' not in system for k in OPEN_RESPONSE_KEYS):
        raise RecipeError(
            f"{where}: prompt: system must name the JSON keys {', '.join(repr(k) for k in OPEN_RESPONSE_KEYS)} as "
            "they are, in double quotes (answer_format: json)"
        )
    dataset_path = _text(values, "dataset_path", where)
    if source is not None and not Path(dataset_path).is_absolute() and _looks_like_path(dataset_path):
        dataset_path = str((Path(source).parent / dataset_path).resolve())
    answer = None if text else _field_path(fields, "answer", where, required=True)
    return TaskSpec(
        name=_text(values, "name", where) if values.get("name") is not None else _default_name(source),
        type=task_type,
        answer_format=answer_format,
        **_source_fields(values, dataset_path, where),
        letters=(),
        min_options=0,
        question=_field_path(fields, "text" if text else "question", where, required=True),
        options=None,
        answer=AnswerSpec(field=answer or "", encoding=REFERENCE_ENCODING),
        id=_field_path(fields, "id", where),
        context=None if text else _field_path(fields, "context", where),
        subject=_field_path(fields, "subject", where),
        question_label=_text(prompt, "question_label", f"{where}: prompt", default="Question"),
        context_label=_text(prompt, "context_label", f"{where}: prompt", default="Context"),
        system=system,
        source_file=str(source) if source is not None else None,
    )


def _system(prompt: Mapping[str, Any], where: str) -> str | None:
    system = _optional_text(prompt, "system", where)
    if system is not None and system.count(CHOICES_FIELD) != 1:
        raise RecipeError(f"{where}: system must name the letters once, at {CHOICES_FIELD}, got {system!r}")
    if system is not None and any(f'"{key}"' not in system for key in RESPONSE_KEYS):
        raise RecipeError(
            f"{where}: system must name the JSON keys {', '.join(repr(k) for k in RESPONSE_KEYS)} as they are, in "
            "double quotes (the contract's keys are not translated)"
        )
    return system


def _check_keys(values: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"{where}: unknown key {key!r}{hint}; expected one of {', '.join(known)}")


def _default_name(source: str | Path | None) -> str:
    if source is None:
        raise RecipeError("task: `name` is required")
    return Path(source).stem


def _text(values: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = values.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(f"{where}: `{key}` must be a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(values: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if values.get(key) is None else _text(values, key, where)


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or Path(value).suffix.lower() in (".jsonl", ".json", ".csv", ".parquet")


def _configs(value: Any, where: str) -> tuple[str | None, ...]:
    if value is None:
        return (None,)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(v is None or isinstance(v, str) for v in value):
        raise RecipeError(f"{where}: `dataset_configs` must be a config name or a non-empty list of names")
    if len(set(value)) != len(value):
        raise RecipeError(f"{where}: `dataset_configs` lists a config twice: {value}")
    return tuple(value)


def _source_columns(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise RecipeError(f"{where}: `source_columns` must be a non-empty list of column names, got {value!r}")
    if len(set(value)) != len(value):
        raise RecipeError(f"{where}: `source_columns` lists a column twice: {value}")
    return tuple(value)


def _field_path(fields: Mapping[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise RecipeError(f"{where}: fields.{key} is required (the column that holds it)")
        return None
    if not isinstance(value, str) or not value.strip() or any(not part for part in value.split(".")):
        raise RecipeError(f"{where}: fields.{key} must be a column name or dotted path, got {value!r}")
    return value.strip()


def _options(value: Any, where: str) -> OptionsSpec:
    forms = "{columns: [..]}, {list: col}, {dict: col}, {key_value: {field, key, value}} or {fixed: [..]}"
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in OPTION_LAYOUTS:
        raise RecipeError(f"{where}: fields.options must be one of {forms}, got {value!r}")
    layout, body = next(iter(value.items()))
    if layout in ("columns", "fixed"):
        if not isinstance(body, list) or not all(isinstance(v, str) and v.strip() for v in body):
            raise RecipeError(f"{where}: fields.options.{layout} must be a list of non-empty strings, got {body!r}")
        if not MIN_OPTIONS <= len(body) <= MAX_OPTIONS or len(set(body)) != len(body):
            raise RecipeError(
                f"{where}: fields.options.{layout} needs {MIN_OPTIONS}..{MAX_OPTIONS} distinct entries, got {body}"
            )
        return OptionsSpec(layout=layout, **{layout: tuple(body)})
    if layout == "key_value":
        if not isinstance(body, Mapping) or set(body) - {"field", "key", "value"} or "field" not in body:
            raise RecipeError(f"{where}: fields.options.key_value must be {{field, key, value}}, got {body!r}")
        parts = {name: body.get(name, name) for name in ("key", "value")}
        if not all(isinstance(v, str) and v for v in (body["field"], *parts.values())):
            raise RecipeError(f"{where}: fields.options.key_value entries must be non-empty strings, got {body!r}")
        return OptionsSpec(layout=layout, field=body["field"], **parts)
    if not isinstance(body, str) or not body.strip():
        raise RecipeError(f"{where}: fields.options.{layout} must name the column, got {body!r}")
    return OptionsSpec(layout=layout, field=body.strip())


def _letters(value: Any, options: OptionsSpec, where: str) -> tuple[str, ...]:
    implied = len(options.columns or options.fixed)
    if value is None:
        if not implied:
            raise RecipeError(f"{where}: `letters` is required for {options.layout} options (e.g. [A, B, C, D, E])")
        return LETTER_POOL[:implied]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{where}: `letters` must be a list of labels, e.g. [A, B, C, D], got {value!r}")
    letters = tuple(value)
    if not MIN_OPTIONS <= len(letters) <= MAX_OPTIONS:
        raise RecipeError(f"{where}: `letters` needs {MIN_OPTIONS}..{MAX_OPTIONS} labels, got {len(letters)}")
    bad = [v for v in letters if not v or v != v.strip() or any(c.isspace() or c in "\"'\\" for c in v)]
    if bad or len(set(letters)) != len(letters):
        raise RecipeError(f"{where}: `letters` must be distinct labels without spaces or quotes, got {list(letters)}")
    if implied and implied != len(letters):
        raise RecipeError(
            f"{where}: {len(letters)} letters but {implied} {options.layout} options; give one letter per option"
        )
    return letters


def _answer(value: Any, options: OptionsSpec, where: str) -> AnswerSpec:
    if not isinstance(value, Mapping) or set(value) - {"field", "encoding"} or not value.get("field"):
        raise RecipeError(
            f"{where}: fields.answer must be {{field: <column>, encoding: <{'|'.join(ANSWER_ENCODINGS)}>}}"
        )
    encoding = value.get("encoding")
    if encoding not in ANSWER_ENCODINGS:
        raise RecipeError(
            f"{where}: fields.answer.encoding must be one of {', '.join(ANSWER_ENCODINGS)}, got {encoding!r}"
        )
    if encoding == "key" and options.layout not in ("key_value", "dict"):
        raise RecipeError(f"{where}: answer encoding 'key' needs key_value or dict options, not {options.layout}")
    return AnswerSpec(field=_field_path(value, "field", f"{where}: fields.answer", required=True), encoding=encoding)
