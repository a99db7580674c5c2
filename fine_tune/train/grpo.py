from __future__ import annotations

import logging
from pathlib import Path

from transformers import set_seed
from trl import GRPOTrainer, get_peft_config

from fine_tune.data.splits import manifest_hash
from fine_tune.errors import LineageError, RewardHealthError
from fine_tune.hub.access import hf_token
from fine_tune.models.lineage import read_lineage, run_config
from fine_tune.models.loading import load_tokenizer
from fine_tune.task.prompts import chat_format, grpo_example, usable_template_kwargs
from fine_tune.task.rewards import get_reward_funcs
from fine_tune.train.acceleration import resolve_use_vllm
from fine_tune.train.checkpoints import resolve_resume
from fine_tune.train.common import finish, load_phase_split, load_trainable_model
from fine_tune.train.guards import RewardHealthGuard
from fine_tune.train.numerics import NonFiniteGuard

logger = logging.getLogger(__name__)


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


def recent_completion_texts(trainer) -> list[str]:
    completions = list(getattr(trainer, "_logs", {}).get("completion", []))
    return [c[-1]["content"] if isinstance(c, list) and c else str(c) for c in completions]


def run_grpo(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    source = model_args.model_name_or_path
    rows, manifest = load_phase_split(script_args, "grpo", training_args.output_dir)
    check_sft_lineage(source, read_lineage(source, token=token), manifest, script_args.require_sft_lineage)
    tokenizer = load_tokenizer(
        source,
        token=token,
        padding_side="left",
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    dataset = rows.map(
        grpo_example, fn_kwargs={"chat_format": chat_format(tokenizer)}, remove_columns=rows.column_names
    )
    training_args.chat_template_kwargs = usable_template_kwargs(tokenizer, training_args.chat_template_kwargs)
    vllm = resolve_use_vllm(training_args.vllm, model_path=source)
    training_args.use_vllm = vllm.enabled
    if vllm.enabled:
        training_args.vllm_mode = "colocate"
    model = load_trainable_model(model_args, training_args, token)
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
    trainer.add_callback(NonFiniteGuard())
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
