"""What a training step costs: the model shape, FLOPs per token / attention pair / scored position, and the
activation memory autograd saves.

FLOP accounting (stated in every benchmark result under `flops.formula`):

- Per token, the frozen base's linear layers cost 2N forward and 2N backward (the gradient with respect to their
  input; there is no weight gradient for a frozen W0): 4N for LoRA training, against 6N for full fine-tuning. N counts
  the non-embedding linear weights (q, k, v, o, gate, up, down of every layer). The LoRA factors themselves (N_lora)
  cost 6 N_lora.
- The LM head (d x V, tied to the embedding) costs 4 d V per *scored* position: TRL 1.16's fused LM head projects only
  the positions whose next token is trained (the completion) on CUDA; on CPU it scores every position.
- Attention scores and values cost 12 L H d_head per (query, key) pair for forward + backward (PaLM's convention: the
  full T x T square per sequence, causal masking not halved), so a sequence of length T costs 12 L H d_head T^2.
- Activation checkpointing recomputes the forward (2N per token plus 4 L H d_head per pair). MFU counts *model*
  FLOPs: real tokens only, no padding, no recomputation. The formula is checked against torch's FlopCounterMode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fine_tune.models.known_shapes import KNOWN_MODEL_CONFIGS
from fine_tune.models.shape import ModelShape

# Qwen/Qwen3-0.6B config.json (transformers' Qwen3Config() defaults are the 8B shape, not this one).
QWEN3_0_6B = {
    **KNOWN_MODEL_CONFIGS["Qwen/Qwen3-0.6B"],
    "max_position_embeddings": 40_960,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
}
QWEN3_0_6B_SHAPE = ModelShape.from_config(QWEN3_0_6B, name="Qwen3-0.6B")


@dataclass(frozen=True)
class TrainingCost:
    """How one training token / attention pair / scored position is charged."""

    shape: ModelShape
    lora_rank: int | None  # None: full fine-tuning
    lora_targets: tuple[str, ...] = ()
    recompute: bool = False  # activation checkpointing

    @property
    def per_token(self) -> float:
        n = self.shape.backbone_linear_params
        if self.lora_rank is None:
            base = 6 * n
        else:
            base = 4 * n + 6 * self.shape.lora_params(self.lora_rank, self.lora_targets)
        return base + (2 * n if self.recompute else 0)

    @property
    def per_pair(self) -> float:
        return (12 + (4 if self.recompute else 0)) * self.shape.attention_coefficient

    @property
    def per_scored(self) -> float:
        return (6 if self.lora_rank is None else 4) * self.shape.lm_head_params

    def flops(self, tokens: float, pairs: float, scored: float) -> float:
        return self.per_token * tokens + self.per_pair * pairs + self.per_scored * scored

    def model(self) -> TrainingCost:
        """The same without recomputation: what MFU counts."""
        return TrainingCost(self.shape, self.lora_rank, self.lora_targets, recompute=False)


FLOPS_FORMULA = (
    "LoRA training FLOPs of a sequence of T real tokens with C trained (completion) tokens = "
    "T*(4*N + 6*N_lora) + 12*L*H*d_head*T^2 + 4*d*V*C, where N = non-embedding linear weights (q,k,v,o,gate,up,down "
    "of all layers), N_lora = LoRA A+B parameters, 4N = forward 2N + backward through the frozen weights' inputs 2N "
    "(no weight gradients for frozen W0), attention counted on the full T x T square (PaLM convention), LM head "
    "(tied, frozen) on the C trained positions only (TRL 1.16's fused head on CUDA). Full fine-tuning would be 6N. "
    "MFU = model FLOPs of the real (non-pad) tokens per second / device peak; padding and activation-checkpointing "
    "recomputation are not model FLOPs."
)


def counted_training_flops(
    shape: ModelShape, seq_len: int, lora_rank: int, lora_targets: Sequence[str], device: str = "meta"
) -> float:
    """FLOPs of one LoRA forward + backward over one sequence (loss on every position), counted by torch's
    FlopCounterMode on a model of exactly `shape` built on the meta device (no memory, no compute)."""
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    config = shape.qwen3_config()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model = get_peft_model(
        model,
        LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=list(lora_targets), task_type="CAUSAL_LM"),
    )
    ids = torch.zeros(1, seq_len, dtype=torch.long, device=device)
    # A ready 4D mask: mask creation would otherwise read tensor values, which meta tensors do not have
    mask = torch.zeros(1, 1, seq_len, seq_len, device=device)
    positions = torch.arange(seq_len, device=device)[None]
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(input_ids=ids, labels=ids, attention_mask=mask, position_ids=positions, use_cache=False)
        out.loss.backward()
    return float(counter.get_total_flops())


def flop_check(shape: ModelShape, seq_len: int, lora_rank: int, lora_targets: Sequence[str]) -> dict[str, Any]:
    """The formula against FlopCounterMode for one sequence scored everywhere (as on CPU)."""
    counted = counted_training_flops(shape, seq_len, lora_rank, lora_targets)
    cost = TrainingCost(shape, lora_rank, tuple(lora_targets))
    formula = cost.flops(seq_len, seq_len**2, seq_len)
    return {
        "seq_len": seq_len,
        "counted_flops": counted,
        "formula_flops": formula,
        "counted_over_formula": counted / formula,
        "note": "the counter skips the first layer's input gradient (frozen embedding), the formula does not",
    }


def activation_bytes(
    shape: ModelShape, batch: int, seq_len: int, lora_rank: int, lora_targets: Sequence[str], dtype: torch.dtype
) -> dict[str, int]:
    """Bytes the backbone saves for backward over one micro-batch, without activation checkpointing: every tensor
    autograd saves (deduplicated by storage, parameters excluded), measured on the meta device. T x T tensors
    (attention scores of the math path, the mask) are reported apart: SDPA's fused kernels keep none of them."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = shape.qwen3_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    model = get_peft_model(
        model,
        LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=list(lora_targets), task_type="CAUSAL_LM"),
    )
    parameters = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, int] = {}
    square: dict[int, int] = {}

    def pack(tensor):
        key = tensor.untyped_storage()._cdata
        if key not in parameters:
            bucket = square if tensor.dim() >= 2 and tuple(tensor.shape[-2:]) == (seq_len, seq_len) else seen
            bucket[key] = max(bucket.get(key, 0), tensor.untyped_storage().nbytes())
        return tensor

    ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
    mask = torch.zeros(batch, 1, seq_len, seq_len, device="meta", dtype=dtype)
    positions = torch.arange(seq_len, device="meta")[None].expand(batch, -1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        hidden = model.base_model.model.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state
    del hidden
    return {"activations": sum(v for k, v in seen.items() if k not in square), "square": sum(square.values())}
