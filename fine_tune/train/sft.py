from __future__ import annotations

import logging
from pathlib import Path

from transformers import set_seed
from trl import SFTTrainer, get_peft_config

from fine_tune.hub.access import hf_token
from fine_tune.models.lineage import run_config
from fine_tune.models.loading import load_tokenizer
from fine_tune.task.prompts import chat_format, sft_example
from fine_tune.train.checkpoints import resolve_resume
from fine_tune.train.common import finish, load_phase_split, load_trainable_model
from fine_tune.train.lengths import enforce_max_length
from fine_tune.train.numerics import NonFiniteGuard

logger = logging.getLogger(__name__)


def run_sft(script_args, training_args, model_args) -> dict[str, Path]:
    set_seed(training_args.seed)
    token = hf_token(script_args.hf_token_env)
    rows, manifest = load_phase_split(script_args, "sft", training_args.output_dir)
    tokenizer = load_tokenizer(
        model_args.model_name_or_path,
        token=token,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    fn_kwargs = {"chat_format": chat_format(tokenizer)}
    dataset = rows.map(sft_example, fn_kwargs=fn_kwargs, remove_columns=rows.column_names)
    model = load_trainable_model(model_args, training_args, token)
    dataset = enforce_max_length(dataset, tokenizer, training_args)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.add_callback(NonFiniteGuard())
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
