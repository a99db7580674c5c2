"""What SFT and GRPO share: the phase's rows (less its dev slice), the trainable model, saving what is handed on."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets

from fine_tune.constants import SPLIT_MANIFEST_FILE
from fine_tune.data.splits import manifest_hash, splits_hash, write_manifest
from fine_tune.data.task_splits import phase_split
from fine_tune.models.lineage import Lineage
from fine_tune.models.loading import load_model_for_training
from fine_tune.models.precision import check_model_precision, resolve_precision
from fine_tune.models.saving import save_adapter_and_merged
from fine_tune.recipes.length import training_length
from fine_tune.task.spec import TaskSpec
from fine_tune.train.curves import CURVES_FILE, write_training_curves
from fine_tune.train.selection import carve_dev

logger = logging.getLogger(__name__)


def training_dtype(precision, use_peft: bool):
    """Frozen LoRA bases load in the compute dtype; full fine-tuning keeps fp32 master weights under fp16 AMP."""
    if precision.fp16 and not use_peft:
        return resolve_precision("fp32").torch_dtype
    return precision.torch_dtype


@dataclasses.dataclass
class TaskPart:
    task: TaskSpec
    train: Any  # canonical rows (`fine_tune.data.normalise`)
    dev: Any | None


@dataclasses.dataclass
class PhaseRows:
    parts: list[TaskPart]  # one per task of the recipe
    manifest: dict

    @property
    def has_dev(self) -> bool:
        return any(part.dev is not None for part in self.parts)

    def examples(self, example: Callable[..., dict], chat_format, which: str = "train"):
        """`example` (sft_example, grpo_example) over every task's train (or dev) rows, each with its own task, as
        one dataset in task order (the trainers' samplers shuffle it); None when there are no such rows."""
        mapped = []
        for part in self.parts:
            rows = getattr(part, which)
            if rows is not None:
                kwargs = {"chat_format": chat_format, "task": part.task}
                mapped.append(rows.map(example, fn_kwargs=kwargs, remove_columns=rows.column_names))
        if not mapped:
            return None
        return mapped[0] if len(mapped) == 1 else datasets.concatenate_datasets(mapped)

    def dev_parts(self) -> list[tuple[TaskSpec, Any]]:
        return [(part.task, part.dev) for part in self.parts if part.dev is not None]


def load_phase_rows(script_args, training_args, phase: str) -> PhaseRows:
    """The phase's split of the recipe's task(s), less its dev slice (recorded in the manifest beside the output)."""
    split = phase_split(script_args, Path(training_args.output_dir) / SPLIT_MANIFEST_FILE)
    manifest = split.manifest
    carved = carve_dev([part.splits[phase] for part in split.parts], manifest, phase, training_args.dev_size)
    parts = [TaskPart(p.task, train, dev) for p, (train, dev) in zip(split.parts, carved, strict=True)]
    if training_args.dev_size > 0:
        write_manifest(manifest, Path(training_args.output_dir) / SPLIT_MANIFEST_FILE)
    for part in parts:
        logger.info(
            "task %s (letters %s): %d %s rows train, %d dev (selection)",
            part.task.name,
            "".join(part.task.letters),
            len(part.train),
            phase,
            0 if part.dev is None else len(part.dev),
        )
    return PhaseRows(parts, manifest)


LENGTH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs")


def log_training_length(training_args, phase: str, rows: int) -> None:
    """One line with both units of the run's length (fine_tune.recipes.length): steps and epochs over its rows."""
    values = {key: getattr(training_args, key) for key in LENGTH_KEYS}
    values["num_generations"] = getattr(training_args, "num_generations", None)
    length = training_length(values, phase, world_size=training_args.world_size, rows=rows)
    logger.info("training length: %s", length.describe())


def load_trainable_model(model_args, training_args, token: str | None):
    precision = resolve_precision(training_args.precision, model_type=training_args.model_type)
    logger.info("precision %s: %s", precision.name, precision.reason)
    model = load_model_for_training(
        model_args,
        training_dtype(precision, model_args.use_peft),
        token=token,
        trust_remote_code=training_args.trust_remote_code,
        activation_checkpointing=training_args.activation_checkpointing,
    )
    check_model_precision(precision, getattr(model.config, "model_type", None), model_args.model_name_or_path)
    return model


def finish(
    trainer,
    tokenizer,
    *,
    phase: str,
    base: str,
    manifest: dict,
    config: dict,
    training_args,
    token,
    selection: dict | None = None,
    revision: str | None = None,
) -> dict:
    """Save the log history (trainer_state.json), adapter + merged model with lineage (the entry script publishes).

    `split_manifest_hash` is the hash of the manifest file written beside the model (with this phase's dev record);
    `splits_hash` covers the splits alone, which the SFT and GRPO phases of one split share."""
    output_dir = Path(training_args.output_dir)
    state = trainer.state
    logger.info(
        "process %d of %d finished %s at step %d",
        training_args.process_index,
        training_args.world_size,
        phase,
        state.global_step,
    )
    config = {**config, "world_size": training_args.world_size, "global_step": state.global_step, "epoch": state.epoch}
    trainer.save_state()
    paths: dict[str, Path] = {}
    if trainer.is_world_process_zero():
        write_training_curves(state.log_history, output_dir / CURVES_FILE, f"{phase} {output_dir.name}")
        model = trainer.accelerator.unwrap_model(trainer.model)
        lineage = Lineage(
            phase=phase,
            base=base,
            config=config,
            split_manifest_hash=manifest_hash(manifest),
            splits_hash=splits_hash(manifest),
            selection=selection,
        )
        paths = save_adapter_and_merged(
            model,
            tokenizer,
            output_dir,
            base=base,
            lineage=lineage,
            token=token,
            revision=revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    trainer.accelerator.wait_for_everyone()
    return paths
