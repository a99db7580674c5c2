from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from fine_tune.errors import ModelSourceError
from fine_tune.models.precision import Precision
from fine_tune.models.source import resolve_model_source

logger = logging.getLogger(__name__)


def load_tokenizer(source: str, token: str | None = None, padding_side: str = "right"):
    tokenizer = AutoTokenizer.from_pretrained(source, token=token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(
    source: str,
    dtype: torch.dtype | str,
    *,
    load_in_4bit: bool = False,
    attn_implementation: str | None = None,
    token: str | None = None,
):
    """Load a model by Hub ID or local path in `dtype` ("auto": as saved), optionally with 4-bit NF4 weights."""
    kwargs: dict[str, Any] = {"dtype": dtype, "token": token}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise ModelSourceError("load_in_4bit needs a CUDA GPU (bitsandbytes); unset it to train on CPU")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
    logger.info("loading %s (dtype %s%s)", source, dtype, ", 4-bit" if load_in_4bit else "")
    return AutoModelForCausalLM.from_pretrained(source, **kwargs)


def load_for_inference(source: str, precision: Precision, token: str | None = None):
    """Load a model for generation: a full model as is, an adapter onto the base it names, merged."""
    from peft import PeftModel

    resolved = resolve_model_source(source, token=token)
    if resolved.kind == "adapter":
        base_model = load_causal_lm(resolved.base, precision.torch_dtype, token=token)
        model = PeftModel.from_pretrained(base_model, source, token=token).merge_and_unload()
    else:
        model = load_causal_lm(source, precision.torch_dtype, token=token)
    tokenizer = load_tokenizer(source, token=token, padding_side="left")
    model.eval()
    return model, tokenizer, resolved
