"""Loading models and tokenizers from TRL's ModelConfig: every field is honoured or refused with one line.

Quantisation goes through TRL's `get_quantization_config` (bitsandbytes 4-bit NF4/FP4 with optional nested
quantisation, or 8-bit); a quantised base is placed on this process's device and prepared for k-bit training
(peft's `prepare_model_for_kbit_training`: norms and embeddings in fp32, input gradients on). LoRA settings reach the
trainer through TRL's `get_peft_config`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fine_tune.errors import ModelSourceError, RecipeError
from fine_tune.hub_access import require_source
from fine_tune.models.precision import Precision, check_model_precision
from fine_tune.models.source import resolve_model_source

logger = logging.getLogger(__name__)

# TRL's ModelConfig.dtype default: read as "not set", the precision decides (an explicit other value must agree).
MODEL_CONFIG_DEFAULT_DTYPE = "float32"
BNB_4BIT_ONLY_DEFAULTS: dict[str, Any] = {"bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": False}


def dtype_name(dtype: torch.dtype | str) -> str:
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")


def check_model_args(model_args: Any, dtype: torch.dtype | str) -> None:
    """Refuse ModelConfig combinations that would otherwise be ignored or fail deep inside a library."""
    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    if model_args.load_in_4bit and model_args.load_in_8bit:
        raise RecipeError("load_in_4bit and load_in_8bit are both set: choose one")
    if quantized and not model_args.use_peft:
        bits = 4 if model_args.load_in_4bit else 8
        raise RecipeError(f"load_in_{bits}bit needs use_peft: true (quantised weights are frozen; only LoRA trains)")
    if not model_args.use_peft:
        raise RecipeError("use_peft: false is not supported: a phase saves a LoRA adapter and the merged model")
    if not model_args.load_in_4bit:
        for key, default in BNB_4BIT_ONLY_DEFAULTS.items():
            if getattr(model_args, key, default) != default:
                raise RecipeError(f"{key} is set but load_in_4bit is not: it would be ignored")
        if getattr(model_args, "bnb_4bit_quant_storage", None) is not None:
            raise RecipeError("bnb_4bit_quant_storage is set but load_in_4bit is not: it would be ignored")
    if getattr(model_args, "lora_task_type", "CAUSAL_LM") != "CAUSAL_LM":
        raise RecipeError(f"lora_task_type must be CAUSAL_LM for this pipeline, got {model_args.lora_task_type!r}")
    requested = model_args.dtype
    if requested not in (None, "auto", MODEL_CONFIG_DEFAULT_DTYPE) and requested != dtype_name(dtype):
        raise RecipeError(
            f"dtype {requested!r} conflicts with the precision's {dtype_name(dtype)!r}: set `precision` only "
            "(it picks the load and compute dtype)"
        )


def kbit_device_map() -> dict[str, Any]:
    """Every module of a quantised model on this process's device (what TRL's removed `get_kbit_device_map` did);
    bitsandbytes quantises as weights are placed, and cannot offload part of a 4-bit model."""
    from accelerate import PartialState

    return {"": PartialState().device}


def model_init_kwargs(
    model_args: Any, dtype: torch.dtype | str, token: str | None = None, *, trust_remote_code: bool = False
) -> dict[str, Any]:
    """`from_pretrained` kwargs from ModelConfig, with `dtype` (from `precision`) as load and 4-bit compute dtype."""
    from trl import get_quantization_config

    check_model_args(model_args, dtype)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "revision": model_args.model_revision,
        "trust_remote_code": trust_remote_code,
        "token": token,
    }
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quant_args = copy.copy(model_args)
    quant_args.dtype = dtype_name(dtype) if dtype != "auto" else "float32"
    quantization_config = get_quantization_config(quant_args)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = kbit_device_map()
    return kwargs


def load_tokenizer(
    source: str,
    token: str | None = None,
    padding_side: str = "right",
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    require_source(source, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, token=token, revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:  # a wrong path or repo, a gated repo, an unreadable tokenizer file
        raise ModelSourceError(
            f"cannot load the tokenizer of {source}: {' '.join(str(error).split())[:300]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(source: str, dtype: torch.dtype | str, *, token: str | None = None, **kwargs: Any):
    """Load a full-precision model by Hub ID or local path in `dtype` ("auto": as saved)."""
    require_source(source, "model")
    logger.info("loading %s (dtype %s)", source, dtype)
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, token=token, **kwargs)


def load_model_for_training(
    model_args: Any,
    dtype: torch.dtype | str,
    *,
    token: str | None = None,
    trust_remote_code: bool = False,
    activation_checkpointing: bool = False,
):
    """The starting model of a training phase, as ModelConfig asks: quantised bases prepared for k-bit training."""
    kwargs = model_init_kwargs(model_args, dtype, token, trust_remote_code=trust_remote_code)
    quantized = "quantization_config" in kwargs
    source = model_args.model_name_or_path
    require_source(source, "model")
    logger.info("loading %s (dtype %s%s)", source, dtype_name(dtype), ", quantised" if quantized else "")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (ImportError, RuntimeError, NotImplementedError) as error:
        if not quantized:
            raise
        raise ModelSourceError(f"cannot load {source} quantised on {kbit_device_map()['']}: {error}") from error
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=activation_checkpointing)
    return model


def load_for_inference(source: str, precision: Precision, token: str | None = None):
    """Load a model for generation: a full model as is, an adapter onto the base it names, merged."""
    from peft import PeftModel

    resolved = resolve_model_source(source, token=token)
    if resolved.kind == "adapter":
        base_model = load_causal_lm(resolved.base, precision.torch_dtype, token=token)
        model = PeftModel.from_pretrained(base_model, source, token=token).merge_and_unload()
    else:
        model = load_causal_lm(source, precision.torch_dtype, token=token)
    check_model_precision(precision, getattr(model.config, "model_type", None), source)
    tokenizer = load_tokenizer(source, token=token, padding_side="left")
    model.eval()
    return model, tokenizer, resolved


def full_precision_adapters(model: Any) -> Any:
    """Keep a quantised base's trainable (adapter) weights in fp32. TRL casts them to bf16 for QLoRA; fp32 master
    weights are what fp16 AMP's grad scaler needs on a T4, and small updates do not round away. Returns `model`."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        for parameter in model.parameters():
            if parameter.requires_grad and parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
    return model
