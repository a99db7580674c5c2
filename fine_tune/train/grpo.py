"""The GRPO phase: from the SFT model (lineage checked), rewards from the registry, guards, held-out selection."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import set_seed
from trl import get_peft_config

from fine_tune.data.splits import splits_hash
from fine_tune.errors import LineageError, RewardHealthError, handoff_hint
from fine_tune.hub_access import hf_token, require_source
from fine_tune.models.acceleration import resolve_use_vllm
from fine_tune.models.lineage import read_lineage, run_config
from fine_tune.models.loading import full_precision_adapters, load_tokenizer
from fine_tune.task.prompts import chat_format, grpo_example, usable_template_kwargs
from fine_tune.task.rewards import check_reward_columns, get_reward_funcs
from fine_tune.train.checkpoints import resolve_resume
from fine_tune.train.common import finish, load_phase_rows, load_trainable_model, log_training_length
from fine_tune.train.guards import CompletionRecorder, GuardThresholds, RewardHealthGuard
from fine_tune.train.numerics import NonFiniteGuard, non_finite_sampling_stops
from fine_tune.train.selection import (
    DevScorer,
    SelectingGRPOTrainer,
    selection_callbacks,
    selection_outcome,
)

logger = logging.getLogger(__name__)


def check_sft_lineage(source: str, lineage: dict | None, manifest: dict, required: bool) -> None:
    """GRPO must start from an SFT model trained on the same split (so the GRPO rows are provably unseen)."""
    problems = []
    expected = splits_hash(manifest)
    if lineage is None:
        problems.append(f"{source} has no lineage.json: it was not saved by train_medmcqa_sft.py")
    elif lineage.get("phase") != "sft":
        problems.append(f"{source} is a {lineage.get('phase')!r} model, not an SFT model")
    elif (lineage.get("splits_hash") or lineage.get("split_manifest_hash")) != expected:
        problems.append(
            f"{source} was trained on a split manifest with splits hash "
            f"{lineage.get('splits_hash') or lineage.get('split_manifest_hash')}, this run splits as {expected}: "
            "same dataset, seed and sizes are needed to keep GRPO rows unseen"
        )
    if not problems:
        logger.info("starting from SFT model %s (base %s)", source, lineage["base"])
        return
    message = "; ".join(problems)
    if required:
        raise LineageError(f"{message}. Pass the SFT merged model, or set require_sft_lineage: false to override.")
    logger.warning("lineage check overridden: %s", message)


def run_grpo(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    source = model_args.model_name_or_path
    require_source(source, "GRPO's starting model", produced_by=handoff_hint("sft"))  # before anything is written
    rows = load_phase_rows(script_args, training_args, "grpo")
    check_sft_lineage(source, read_lineage(source, token=token), rows.manifest, script_args.require_sft_lineage)
    tokenizer = load_tokenizer(
        source,
        token=token,
        padding_side="left",
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    template = chat_format(tokenizer)
    dataset = rows.examples(grpo_example, template)
    dev = rows.examples(grpo_example, template, "dev")
    log_training_length(training_args, "grpo", len(dataset))
    training_args.chat_template_kwargs = usable_template_kwargs(tokenizer, training_args.chat_template_kwargs)
    reward_funcs = get_reward_funcs(script_args.reward_funcs)
    check_reward_columns(reward_funcs, dataset.column_names)
    recorder = CompletionRecorder()
    vllm = resolve_use_vllm(training_args.vllm, model_path=source)
    training_args.use_vllm = vllm.enabled
    if vllm.enabled:
        training_args.vllm_mode = vllm.mode
    model = load_trainable_model(model_args, training_args, token)
    guard = RewardHealthGuard(
        GuardThresholds.from_args(training_args), training_args.reward_guard_action, recorder=recorder
    )
    trainer = SelectingGRPOTrainer(
        model=model,
        reward_funcs=recorder.wrap(reward_funcs),
        args=training_args,
        train_dataset=dataset,
        eval_dataset=dev,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[guard, NonFiniteGuard(), *selection_callbacks(training_args)],
    )
    full_precision_adapters(trainer.model)
    if rows.has_dev:
        trainer.dev_scorer = DevScorer.from_parts(
            rows.dev_parts(), training_args.dev_batch_size, training_args.dev_max_new_tokens
        )
    with non_finite_sampling_stops(trainer):
        trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    if guard.message is not None and training_args.reward_guard_action == "stop":
        raise RewardHealthError(guard.message)
    selection = selection_outcome(trainer, training_args.no_improvement_action)
    return finish(
        trainer,
        tokenizer,
        phase="grpo",
        base=source,
        manifest=rows.manifest,
        config=run_config(script_args, training_args, model_args),
        training_args=training_args,
        token=token,
        selection=selection,
        revision=model_args.model_revision,
    )
