"""Training and inference precision from the hardware: bf16 where the GPU runs it, fp16 on older GPUs, fp32 on CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from fine_tune.constants import PRECISIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    name: str
    torch_dtype: torch.dtype
    bf16: bool
    fp16: bool
    reason: str


def resolve_precision(requested: str = "auto") -> Precision:
    """bf16 only where the GPU runs it natively (compute capability >= 8), fp16 on older GPUs (T4), fp32 on CPU."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "auto":
        if not torch.cuda.is_available():
            requested, reason = "fp32", "no CUDA device: fp32 on CPU"
        else:
            major, minor = torch.cuda.get_device_capability()
            name = torch.cuda.get_device_name()
            if major >= 8:
                requested, reason = "bf16", f"{name} (sm_{major}{minor}) runs bf16 natively"
            else:
                requested, reason = "fp16", f"{name} (sm_{major}{minor}) has no native bf16: fp16 mixed precision"
    else:
        reason = "set in the config"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[requested]
    return Precision(requested, dtype, bf16=requested == "bf16", fp16=requested == "fp16", reason=reason)
