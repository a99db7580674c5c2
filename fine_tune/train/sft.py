"""The SFT phase: LoRA on the SFT split with TRL's SFTTrainer, length and numerics checks, held-out selection."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import set_seed
from trl import get_peft_config

from fine_tune.errors import RecipeError
from fine_tune.hub_access import hf_token, require_source
from fine_tune.models.lineage import run_config
from fine_tune.models.loading import full_precision_adapters, load_tokenizer
from fine_tune.task.prompts import chat_format, sft_example
from fine_tune.train.checkpoints import resolve_resume
from fine_tune.train.common import finish, load_phase_rows, load_trainable_model, log_training_length
from fine_tune.train.numerics import NonFiniteGuard
from fine_tune.train.overlong import enforce_max_length
from fine_tune.train.selection import (
    DevScorer,
    PerplexityDevScorer,
    SelectingSFTTrainer,
    selection_callbacks,
    selection_outcome,
)

logger = logging.getLogger(__name__)


EXACT_PACKING_ATTENTION = ("flash_attention_2", "flash_attention_3")


def check_packing(packing: bool, model) -> None:
    """Packing plain texts is exact only padding-free, which needs FlashAttention (TRL's `bfd` packing flattens a
    batch into one sequence; other attention kernels would let texts attend across their boundaries)."""
    attention = getattr(model.config, "_attn_implementation", None)
    if packing and attention not in EXACT_PACKING_ATTENTION:
        raise RecipeError(
            f"packing: true needs FlashAttention to keep packed texts apart (padding-free); this model uses "
            f"{attention!r}: set packing: false, or attn_implementation: flash_attention_2 on a GPU that has it"
        )


def run_sft(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    require_source(model_args.model_name_or_path, "SFT's base model")  # before anything is written
    rows = load_phase_rows(script_args, training_args, "sft")
    tokenizer = load_tokenizer(
        model_args.model_name_or_path,
        token=token,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    text = any(part.task.is_text for part in rows.parts)
    template = None if text else chat_format(tokenizer)  # plain text: no chat template, loss on every token
    dataset = enforce_max_length(rows.examples(sft_example, template), tokenizer, training_args)
    dev = rows.examples(sft_example, template, "dev")
    log_training_length(training_args, "sft", len(dataset))
    model = load_trainable_model(model_args, training_args, token)
    if text:
        check_packing(training_args.packing, model)
    trainer = SelectingSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        eval_dataset=dev,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[NonFiniteGuard(), *selection_callbacks(training_args)],
    )
    full_precision_adapters(trainer.model)
    if rows.has_dev:
        trainer.dev_scorer = DevScorer.from_parts(
            rows.dev_parts(), training_args.dev_batch_size, training_args.dev_max_new_tokens
        )
        if isinstance(trainer.dev_scorer, PerplexityDevScorer):
            trainer.dev_scorer.max_length = training_args.max_length  # the texts as training sees them
    trainer.train(resume_from_checkpoint=resolve_resume(training_args))
    selection = selection_outcome(trainer, training_args.no_improvement_action)
    return finish(
        trainer,
        tokenizer,
        phase="sft",
        base=model_args.model_name_or_path,
        manifest=rows.manifest,
        config=run_config(script_args, training_args, model_args),
        training_args=training_args,
        token=token,
        selection=selection,
        revision=model_args.model_revision,
    )
