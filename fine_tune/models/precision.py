"""Training and inference precision from the hardware and the architecture: one pure rule.

`precision: auto` is bf16 where the GPU runs it natively (compute capability >= 8), fp16 on older GPUs (T4), fp32 on
CPU; except that an architecture with documented fp16 overflow (FP16_OVERFLOW) never runs in fp16: it runs in bf16
where the GPU has it, otherwise in fp32. The memory planner and the Jobs flavor choice call the same function with a
`Device` that describes a flavor's GPU instead of the local one (docs/bases.md, "Precision"). Torch-free at import
(the Jobs dry run and the hardware table use it); torch is read only for the local device and the dtype object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fine_tune.constants import PRECISIONS
from fine_tune.errors import RecipeError

logger = logging.getLogger(__name__)

# config.json `model_type` -> where its fp16 overflow is documented (docs/bases.md, "Precision by architecture").
# Gemma 3 (MedGemma is Gemma 3): activations exceed fp16's 65504 after its large RMSNorm weights and post-norms
# (transformers issues 39972 and 36822; Unsloth upcasts gemma3 / gemma3_text / gemma3n when fp16 is asked: its
# FORCE_FLOAT32 list, unsloth PRs 4014 and 5092). Gemma 2: its soft-capped logits overflow fp16 (mistral.rs PR 2075).
# Qwen2: the Qwen maintainers answer fp16 NaN reports: "trained in bf16; use bf16, or fp32 without it" (QwenLM/Qwen3
# issues 670, 761, 868). Qwen3-MoE: NaN gradients in fp16 (unsloth-zoo PR 866). Not listed, for want of a report on
# them: dense Qwen3, Llama 3 (the Llama fp16 reports, transformers 27179, concern Llama 2), Mistral; fp16 runs there
# are watched by the numerics guard (fine_tune.train.numerics), which stops at the first non-finite loss.
GEMMA3 = "Gemma 3 overflows fp16 (transformers#39972, #36822; Unsloth upcasts it)"
FP16_OVERFLOW: dict[str, str] = {
    "gemma3": GEMMA3,
    "gemma3_text": GEMMA3,
    "gemma3n": "Gemma 3n overflows fp16 (Unsloth upcasts it: unsloth PR 5092)",
    "gemma2": "Gemma 2's soft-capped logits overflow fp16 (mistral.rs PR 2075)",
    "qwen2": "Qwen2 overflows fp16 (QwenLM/Qwen3#670, #761, #868: use bf16, or fp32 without it)",
    "qwen3_moe": "Qwen3-MoE gradients overflow fp16 (unsloth-zoo PR 866)",
}
MODEL_TYPE_HELP = (
    "The base's architecture as its config.json names it (gemma3, qwen3, llama, mistral, ...), for the precision rule "
    "(fp16 is never picked for one that overflows in it); unset: the hardware rule, and a loaded model whose "
    "architecture overflows in fp16 is refused"
)
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}  # bytes per value of each precision


@dataclass(frozen=True)
class Device:
    """What the precision rule needs to know of a device: its name, whether it is a GPU, whether it runs bf16."""

    name: str
    cuda: bool
    bf16: bool

    @classmethod
    def local(cls) -> Device:
        import torch

        if not torch.cuda.is_available():
            return cls("CPU", cuda=False, bf16=False)
        major, minor = torch.cuda.get_device_capability()
        return cls(f"{torch.cuda.get_device_name()} (sm_{major}{minor})", cuda=True, bf16=major >= 8)


@dataclass(frozen=True)
class Precision:
    name: str
    bf16: bool
    fp16: bool
    reason: str

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, DTYPE_NAMES[self.name])


def _precision(name: str, reason: str) -> Precision:
    return Precision(name, bf16=name == "bf16", fp16=name == "fp16", reason=reason)


def resolve_precision(
    requested: str = "auto", *, model_type: str | None = None, device: Device | None = None
) -> Precision:
    """The dtype a phase runs in and why: `requested` (auto, fp32, fp16, bf16) on `device` (default: this machine's)
    for an architecture `model_type` (config.json's; None: not known, the hardware rule alone). An explicit fp16 for
    an architecture in FP16_OVERFLOW is refused (ValueError naming the choices)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    overflow = FP16_OVERFLOW.get(str(model_type).lower()) if model_type else None
    if requested != "auto":
        if requested == "fp16" and overflow:
            raise ValueError(f"precision fp16 is refused for {model_type}: {overflow}; set precision bf16 or fp32")
        return _precision(requested, "set in the config")
    device = device or Device.local()
    if not device.cuda:
        return _precision("fp32", "no CUDA device: fp32 on CPU")
    if device.bf16:
        return _precision("bf16", f"{device.name} runs bf16 natively")
    if overflow:
        return _precision("fp32", f"{device.name} has no native bf16 and {overflow}: fp32, never fp16")
    return _precision("fp16", f"{device.name} has no native bf16: fp16 mixed precision")


def check_model_precision(precision: Precision, model_type: str | None, source: str) -> None:
    """Refuse fp16 for a loaded model whose architecture overflows in it (the recipe did not say which it was)."""
    overflow = FP16_OVERFLOW.get(str(model_type).lower()) if model_type else None
    if precision.fp16 and overflow:
        raise RecipeError(
            f"{source} is {model_type} and {overflow}, but precision resolved to fp16 ({precision.reason}): set "
            f"model_type: {model_type} in the recipe (the rule then picks bf16 or fp32), or precision: bf16 / fp32"
        )
