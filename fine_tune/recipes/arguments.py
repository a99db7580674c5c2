"""The recipe schema that needs no torch: data source and split, script arguments, the eval config.

The trainer configs (`fine_tune.recipes.trainer_configs`) subclass TRL's and import torch; `fine_tune.recipes.loader`
reads every recipe through these dataclasses, so each key and default is defined once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ScriptArguments

from fine_tune.constants import (
    AUTO_BATCH_SIZE,
    DEFAULT_MODELS,
    DEFAULT_SPLIT_SEED,
    DEFAULT_SPLIT_SIZES,
    GENERATION_BACKENDS,
    MEDMCQA_HUB_ID,
    PRECISIONS,
    STRATIFY_COLUMNS,
    TOKEN_ENV,
)
from fine_tune.errors import RecipeError
from fine_tune.models.precision import MODEL_TYPE_HELP
from fine_tune.task.mixture import MixtureEntry, mixture_sizes, parse_task_mixture
from fine_tune.task.rewards import DEFAULT_REWARD_MODE, REWARD_FUNCS, REWARD_MODES
from fine_tune.task.spec import DEFAULT_TASK
from fine_tune.task.variants import load_variants

SPLIT_EVAL = "split"  # eval_split value: the EVAL split of the training shuffle
OFFICIAL_EVAL = "official"  # eval_split value: each task's own official split (its task file's eval_split)
# The target JSON is 58 tokens on average with the Qwen3 tokenizer over the 4,183 validation rows (p95 102, max 168).
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 16
NULL_WORDS = ("", "none", "null")


@dataclass
class SplitArguments:
    """Where the data comes from and how it is split: the same in every phase, so each can prove its rows disjoint."""

    task: str = field(
        default=DEFAULT_TASK,
        metadata={
            "help": "Task preset (configs/tasks/<name>.yaml: medmcqa, medqa, ...) or a task YAML file; several tasks "
            "as a weighted mixture: 'medqa:2,headqa:1' (in YAML also a mapping task -> weight or {weight, "
            "dataset_name, dataset_train_split})"
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset ID or local path (JSONL/JSON/Parquet/CSV/save_to_disk); default: the task's "
            f"dataset_path ({MEDMCQA_HUB_ID} for medmcqa)"
        },
    )
    dataset_train_split: str | None = field(
        default=None, metadata={"help": "Split of the source that is shuffled; default: the task's train_split"}
    )
    stratify_by: str | None = field(
        default=None,
        metadata={"help": "Keep each value's share equal across the sft/grpo/eval splits: subject or answer"},
    )
    split_seed: int = field(default=DEFAULT_SPLIT_SEED, metadata={"help": "Seed of the upstream shuffle"})
    curriculum: str | None = field(
        default=None,
        metadata={
            "help": "A specialty curriculum or training_recommendations.json (docs/rounds.md): a holdout of N rows "
            "per subject is the EVAL split, each subject trains its recommended share of the rest, the remainder is "
            "a pool; replaces the split sizes (not with stratify_by)"
        },
    )
    sft_size: int = field(default=DEFAULT_SPLIT_SIZES["sft"])
    grpo_size: int = field(default=DEFAULT_SPLIT_SIZES["grpo"])
    eval_size: int = field(default=DEFAULT_SPLIT_SIZES["eval"])
    hf_token_env: str = field(default=TOKEN_ENV, metadata={"help": "Name of the env var holding the Hub token"})

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"sft": self.sft_size, "grpo": self.grpo_size, "eval": self.eval_size}

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # TRL's ScriptArguments has its own
            parent()
        for key in ("stratify_by", "dataset_name", "dataset_train_split", "curriculum"):
            value = getattr(self, key)
            if value is not None and value.strip().lower() in NULL_WORDS:
                setattr(self, key, None)
        if self.stratify_by is not None and self.stratify_by not in STRATIFY_COLUMNS:
            raise RecipeError(
                f"stratify_by must be one of {', '.join(STRATIFY_COLUMNS)} (or unset), got {self.stratify_by!r}"
            )
        if self.curriculum is not None and self.stratify_by is not None:
            raise RecipeError(
                f"stratify_by {self.stratify_by!r} and curriculum are both set: a curriculum splits by subject "
                "itself (docs/rounds.md); unset one"
            )
        if self.is_mixture:
            given = [key for key in ("dataset_name", "dataset_train_split") if getattr(self, key)]
            if given:
                raise RecipeError(
                    f"{given[0]} names one task's data but task is a mixture of "
                    f"{', '.join(e.task for e in self.task_entries)}: give each task its own "
                    f"(task: {{NAME: {{weight: W, {given[0]}: ...}}}}) or leave it to the task files"
                )
            mixture_sizes(self.split_sizes, self.task_entries)  # every task gets rows of every split asked for

    @property
    def task_entries(self) -> tuple[MixtureEntry, ...]:
        """The task(s) of the run: one entry, or a weighted mixture (`fine_tune.task.mixture`)."""
        return parse_task_mixture(self.task)

    @property
    def is_mixture(self) -> bool:
        return len(self.task_entries) > 1

    @property
    def task_label(self) -> str:
        """The task name(s) as a file-name stem: `medqa`, `medqa+headqa` for a mixture."""
        return "+".join(Path(entry.task).stem for entry in self.task_entries)


@dataclass
class TrainScriptArguments(SplitArguments, ScriptArguments):
    """TRL's script arguments with the project's data source and split."""


@dataclass
class GRPOScriptArguments(TrainScriptArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: list(REWARD_MODES[DEFAULT_REWARD_MODE]),
        metadata={"help": f"Reward functions by registry name: {sorted(REWARD_FUNCS)}"},
    )
    require_sft_lineage: bool = field(
        default=True, metadata={"help": "Refuse a starting model whose lineage.json does not say phase 'sft'"}
    )


@dataclass
class EvalConfig(SplitArguments):
    """What to evaluate, on which rows, and how; parsed from a YAML recipe with command-line overrides."""

    models: dict[str, str] | str | None = field(
        default_factory=lambda: dict(DEFAULT_MODELS),
        metadata={
            "help": "label -> Hub ID or local path; YAML mapping, or on the command line 'base=ID,sft=PATH' "
            "(replaces the config's models)"
        },
    )
    eval_split: str = field(
        default=SPLIT_EVAL,
        metadata={
            "help": f"'{SPLIT_EVAL}': the EVAL split of the training shuffle (per task); '{OFFICIAL_EVAL}': each "
            "task's official eval split (its task file's eval_split); or a split name of dataset_name (e.g. "
            "'validation', the 4,183-row dev split comparable with published MedMCQA results)"
        },
    )
    split_manifest: str | None = field(
        default=None,
        metadata={
            "help": "A training run's split_manifest.json: eval rows found in its sft/grpo splits are refused. "
            "Manifests beside local models (OUTPUT/split_manifest.json) are found from their lineage as well"
        },
    )
    drop_contaminated: bool = field(
        default=False, metadata={"help": "Drop (and count) eval rows found in a training split instead of refusing"}
    )
    shots: int = field(
        default=0,
        metadata={
            "help": "k-shot baselines: each model without a training lineage is also scored with k exemplars drawn "
            "(seeded) from the SFT split, labelled '<label>-<k>shot'"
        },
    )
    prompt_variants: str | None = field(
        default=None,
        metadata={
            "help": "Also score each model under the prompt variants of a file: 'default' "
            "(configs/tasks/variants/default.yaml: wording, option formats, instructions in or out) or a YAML path; "
            "the headline stays the project's own prompt"
        },
    )
    harness: str | None = field(
        default=None,
        metadata={
            "help": "Also score each model with lm-evaluation-harness's log-likelihood multiple-choice protocol (the "
            "Open Medical-LLM Leaderboard's) on the same rows: 'lm_eval' (needs the [harness] extra)"
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N eval rows"})
    batch_size: int | str = field(
        default=DEFAULT_BATCH_SIZE,
        metadata={"help": "Prompts per generate() call, or 'auto': sized from free GPU memory (16 on CPU)"},
    )
    backend: str = field(
        default="auto",
        metadata={"help": "Generation backend: hf (transformers), vllm, or auto (vLLM when installed and on CUDA)"},
    )
    max_new_tokens: int = field(default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Generation budget per answer"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on sm>=8, fp16 older GPUs, fp32 CPU), ..."})
    model_type: str | None = field(default=None, metadata={"help": MODEL_TYPE_HELP})
    torch_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch (default: torch's choice); 1 suits tiny models on busy CPUs"},
    )
    run_name: str | None = field(
        default=None, metadata={"help": "Results folder name; default <task>-<eval_split>[-limit<N>]"}
    )
    output_dir: str = field(default="eval_results", metadata={"help": "Parent folder of the run folder"})
    seed: int = field(default=42, metadata={"help": "Seed for the bootstrap (generation is greedy)"})
    bootstrap_resamples: int = field(default=10000, metadata={"help": "Paired bootstrap resamples"})
    text_max_length: int = field(
        default=2048, metadata={"help": "Text tasks: tokens of each text scored for perplexity (longer: cut, counted)"}
    )
    extra_metrics: str | None = field(
        default=None,
        metadata={
            "help": "Open tasks: 'meteor' and/or 'bertscore' (comma-separated), scored per row with intervals; "
            "refused in one line when NLTK's WordNet data or the BERTScore model cannot be loaded"
        },
    )
    bertscore_model: str = field(
        default="roberta-large",
        metadata={"help": "BERTScore's model: an ID in bert-score's model table (default: its English default)"},
    )
    fail_on_regression: bool = field(
        default=False,
        metadata={
            "help": "Exit with status 5 when a model is significantly worse (strict accuracy, exact McNemar p < 0.05) "
            "than the parent its lineage names, scored in the same run; it is always flagged"
        },
    )
    update_model_cards: bool = field(
        default=False,
        metadata={"help": "Write the results table into the model cards of the scored (non-base) models"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.models = parse_models(self.models)
        if self.split_manifest is not None and self.split_manifest.strip().lower() in NULL_WORDS:
            self.split_manifest = None
        if self.prompt_variants is not None and self.prompt_variants.strip().lower() in NULL_WORDS:
            self.prompt_variants = None
        if self.prompt_variants is not None:
            load_variants(self.prompt_variants)  # a bad variants file is refused before any model loads
        if self.harness is not None and self.harness.strip().lower() in NULL_WORDS:
            self.harness = None
        if self.precision not in PRECISIONS:
            raise RecipeError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise RecipeError(f"torch_threads must be >= 1 (or unset), got {self.torch_threads}")
        self.batch_size = parse_batch_size(self.batch_size)
        if self.backend not in GENERATION_BACKENDS:
            raise RecipeError(f"backend must be one of {GENERATION_BACKENDS}, got {self.backend!r}")
        for name in ("max_new_tokens", "bootstrap_resamples"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.shots < 0:
            raise RecipeError(f"shots must be >= 0, got {self.shots}")
        if self.limit is not None and self.limit < 1:
            raise RecipeError(f"limit must be >= 1 (or unset for all rows), got {self.limit}")
        if self.eval_split == SPLIT_EVAL and self.eval_size < 1:
            raise RecipeError(f"eval_split '{SPLIT_EVAL}' needs eval_size >= 1, got {self.eval_size}")

    @property
    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        return f"{self.task_label}-{self.eval_split}" + (f"-limit{self.limit}" if self.limit else "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_batch_size(value: int | str) -> int | str:
    """A positive int, or "auto"; the command line gives both as text."""
    text = str(value).strip().lower()
    if text == AUTO_BATCH_SIZE:
        return AUTO_BATCH_SIZE
    if not text.isdigit() or int(text) < 1:
        raise RecipeError(f"batch_size must be a whole number >= 1 or '{AUTO_BATCH_SIZE}', got {value!r}")
    return int(text)


def parse_models(value: Mapping[str, Any] | str | None) -> dict[str, str]:
    """A YAML mapping or 'label=source,label=source' as an ordered {label: source}; labels unique and non-empty."""
    if value is None:
        raise RecipeError("no models to evaluate: set `models` (e.g. --models base=Qwen/Qwen3-0.6B)")
    if isinstance(value, str):
        pairs = []
        for item in (part.strip() for part in value.split(",") if part.strip()):
            label, sep, source = item.partition("=")
            if not sep:
                raise RecipeError(f"models: expected label=source, got {item!r} (e.g. base=Qwen/Qwen3-0.6B)")
            pairs.append((label.strip(), source.strip()))
    elif isinstance(value, Mapping):
        pairs = [(str(label), str(source) if source is not None else "") for label, source in value.items()]
    else:
        raise RecipeError(f"models must be a mapping or 'label=source,...', got {type(value).__name__}")
    labels = [label for label, _ in pairs]
    if not pairs:
        raise RecipeError("no models to evaluate: `models` is empty")
    if len(set(labels)) != len(labels):
        raise RecipeError(f"models: duplicate label in {labels}")
    bad = [label for label, source in pairs if not label or not source]
    if bad:
        raise RecipeError(f"models: every label needs a name and a source, got {dict(pairs)}")
    return dict(pairs)


@dataclass
class ValidateArguments(SplitArguments):
    """`scripts/validate_dataset.py`: the data source and split of a recipe, plus what the report measures."""

    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer ID or path, for token-length statistics"})
    token_rows: int | None = field(default=None, metadata={"help": "Measure token lengths on the first N valid rows"})
    json: bool = field(default=False, metadata={"help": "Print one JSON object (errors too)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.token_rows is not None and self.token_rows < 1:
            raise RecipeError(f"token_rows must be >= 1 (or unset for all valid rows), got {self.token_rows}")
