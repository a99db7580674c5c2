"""The SFT and GRPO phases: data -> model -> TRL trainer -> adapter + merged model with lineage."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer, SFTTrainer, get_peft_config

from fine_tune.acceleration import resolve_use_vllm
from fine_tune.data import load_split, manifest_hash
from fine_tune.jobs import RESUME_LATEST, fetch_checkpoint_for_resume
from fine_tune.modeling import (
    build_lineage,
    hf_token,
    load_causal_lm,
    load_tokenizer,
    push_to_hub,
    read_lineage,
    resolve_precision,
    save_adapter_and_merged,
)
from fine_tune.prompts import grpo_example, sft_example
from fine_tune.rewards import get_reward_funcs

logger = logging.getLogger(__name__)

SPLIT_MANIFEST_FILE = "split_manifest.json"


class LineageError(RuntimeError):
    """The starting model is not what this phase must start from."""


class RewardHealthError(RuntimeError):
    """GRPO rewards carried no learning signal for too long."""


def run_config(*configs: Any) -> dict[str, Any]:
    """The full configuration of a run, for lineage records (secrets are never part of these dataclasses)."""
    out = {}
    for config in configs:
        out[type(config).__name__] = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    return out


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest `checkpoint-N` that finished saving; a folder cut off mid-save has no trainer_state.json."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = {
        int(path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")): path
        for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit() and (path / "trainer_state.json").is_file()
    }
    return str(steps[max(steps)]) if steps else None


def resolve_resume(training_args) -> str | None:
    """A checkpoint path, or for true/latest the last complete checkpoint in output_dir, fetched from the Hub repo
    (`hub_model_id`, pushed with hub_strategy checkpoint) when output_dir has none; none anywhere: a fresh start."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() not in RESUME_LATEST:
        return value
    fetch_checkpoint_for_resume(training_args)
    last = last_complete_checkpoint(training_args.output_dir)
    if last is None:
        logger.warning("resume requested but %s holds no checkpoint: starting from step 0", training_args.output_dir)
    else:
        logger.info("resuming from %s", last)
    return last


def training_dtype(precision, use_peft: bool):
    """Frozen LoRA bases load in the compute dtype; full fine-tuning keeps fp32 master weights under fp16 AMP."""
    if precision.fp16 and not use_peft:
        return resolve_precision("fp32").torch_dtype
    return precision.torch_dtype


def load_phase_split(script_args, split_name: str, output_dir: str) -> tuple[Any, dict]:
    return load_split(
        script_args.dataset_name,
        split_name,
        hub_split=script_args.dataset_train_split,
        sizes=script_args.split_sizes,
        seed=script_args.split_seed,
        manifest_path=Path(output_dir) / SPLIT_MANIFEST_FILE,
        token_env=script_args.hf_token_env,
    )


def load_trainable_model(model_args, training_args, token: str | None):
    precision = resolve_precision(training_args.precision)
    logger.info("precision %s: %s", precision.name, precision.reason)
    return load_causal_lm(
        model_args.model_name_or_path,
        training_dtype(precision, model_args.use_peft),
        load_in_4bit=model_args.load_in_4bit,
        attn_implementation=model_args.attn_implementation,
        token=token,
    )


def finish(trainer, tokenizer, *, phase: str, base: str, manifest: dict, config: dict, training_args, token) -> dict:
    """Save the log history (trainer_state.json), adapter + merged model with lineage; push when asked."""
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
        model = trainer.accelerator.unwrap_model(trainer.model)
        lineage = build_lineage(phase, base, config=config, split_manifest_hash=manifest_hash(manifest))
        paths = save_adapter_and_merged(model, tokenizer, output_dir, base=base, lineage=lineage, token=token)
        if training_args.push_to_hub and training_args.hub_model_id:
            url = push_to_hub(
                output_dir, training_args.hub_model_id, token=token, private=training_args.hub_private_repo
            )
            logger.info("pushed %s to %s", phase, url)
    trainer.accelerator.wait_for_everyone()
    return paths


def run_sft(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    rows, manifest = load_phase_split(script_args, "sft", training_args.output_dir)
    dataset = rows.map(sft_example, remove_columns=rows.column_names)
    model = load_trainable_model(model_args, training_args, token)
    tokenizer = load_tokenizer(model_args.model_name_or_path, token=token)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    return finish(
        trainer,
        tokenizer,
        phase="sft",
        base=model_args.model_name_or_path,
        manifest=manifest,
        config=run_config(script_args, training_args, model_args),
        training_args=training_args,
        token=token,
    )


def check_sft_lineage(source: str, lineage: dict | None, manifest: dict, required: bool) -> None:
    """GRPO must start from an SFT model trained on the same split (so the GRPO rows are provably unseen)."""
    problems = []
    if lineage is None:
        problems.append(f"{source} has no lineage.json: it was not saved by train_medmcqa_sft.py")
    elif lineage.get("phase") != "sft":
        problems.append(f"{source} is a {lineage.get('phase')!r} model, not an SFT model")
    elif lineage.get("split_manifest_hash") != manifest_hash(manifest):
        problems.append(
            f"{source} was trained on split manifest {lineage.get('split_manifest_hash')}, this run splits as "
            f"{manifest_hash(manifest)}: same dataset, seed and sizes are needed to keep GRPO rows unseen"
        )
    if not problems:
        logger.info("starting from SFT model %s (base %s)", source, lineage["base"])
        return
    message = "; ".join(problems)
    if required:
        raise LineageError(f"{message}. Pass the SFT merged model, or set require_sft_lineage: false to override.")
    logger.warning("lineage check overridden: %s", message)


class RewardHealthGuard(TrainerCallback):
    """Fires when every group's rewards are identical, or the mean reward is 0, for `patience` logging steps.

    Zero reward variance means zero advantages and no gradient: the upstream run "completed" 400 steps this way.
    """

    def __init__(self, patience: int, action: str, sample_completions=lambda: []):
        self.patience = patience
        self.action = action
        self.sample_completions = sample_completions
        self.recent: deque[str] = deque(maxlen=patience)
        self.message: str | None = None

    @staticmethod
    def problem(logs: dict[str, float]) -> str | None:
        if logs.get("frac_reward_zero_std") == 1.0:
            return f"frac_reward_zero_std = 1.0 (reward {logs.get('reward')})"
        if logs.get("reward") == 0.0:
            return "mean reward = 0.0"
        return None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or ("reward" not in logs and "frac_reward_zero_std" not in logs):
            return
        problem = self.problem(logs)
        if problem is None:
            self.recent.clear()
            return
        self.recent.append(f"step {state.global_step}: {problem}")
        if len(self.recent) < self.patience or self.message is not None:
            return
        samples = "\n".join(f"  {text!r}" for text in self.sample_completions()[-4:]) or "  (none captured)"
        self.message = (
            f"REWARD HEALTH GUARD: no learning signal for {self.patience} consecutive logging steps "
            f"({'; '.join(self.recent)}). Every completion in each group scored the same, so every advantage is 0 "
            "and GRPO learns nothing. Check that the reward functions parse TRL's conversational completions and "
            f"that Qwen3 runs with enable_thinking=False. Last completions:\n{samples}"
        )
        logger.error(self.message)
        if self.action == "stop":
            control.should_training_stop = True


def recent_completion_texts(trainer) -> list[str]:
    completions = list(getattr(trainer, "_logs", {}).get("completion", []))
    return [c[-1]["content"] if isinstance(c, list) and c else str(c) for c in completions]


def run_grpo(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    source = model_args.model_name_or_path
    rows, manifest = load_phase_split(script_args, "grpo", training_args.output_dir)
    check_sft_lineage(source, read_lineage(source, token=token), manifest, script_args.require_sft_lineage)
    dataset = rows.map(grpo_example, remove_columns=rows.column_names)
    vllm = resolve_use_vllm(training_args.vllm, model_path=source)
    training_args.use_vllm = vllm.enabled
    if vllm.enabled:
        training_args.vllm_mode = "colocate"
    model = load_trainable_model(model_args, training_args, token)
    tokenizer = load_tokenizer(source, token=token, padding_side="left")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=get_reward_funcs(script_args.reward_funcs),
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    guard = RewardHealthGuard(
        training_args.reward_guard_patience,
        training_args.reward_guard_action,
        sample_completions=lambda: recent_completion_texts(trainer),
    )
    trainer.add_callback(guard)
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    if guard.message is not None and training_args.reward_guard_action == "stop":
        raise RewardHealthError(guard.message)
    return finish(
        trainer,
        tokenizer,
        phase="grpo",
        base=source,
        manifest=manifest,
        config=run_config(script_args, training_args, model_args),
        training_args=training_args,
        token=token,
    )
