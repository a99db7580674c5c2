"""Peak GPU memory of each phase, planned from the model's shape (config.json) and the recipe.

Terms (bytes; t = tokens in a micro-batch, L layers, h hidden, i intermediate, V vocabulary, kv = KV heads x head_dim):
- weights: each decoder linear at the storage width (4-bit: 0.5 B/param + 4 B per 64-weight block of absmax, or
  ~0.127 B with nested quantisation; 8-bit: 1 B + 4 B per row); embeddings and lm_head stay unquantised, and k-bit
  preparation casts every unquantised parameter to fp32 (so a QLoRA base carries fp32 embeddings).
- adapter: LoRA parameters r x (in + out) per target linear, with their gradient and AdamW's two fp32 moments
  (full fine-tuning: the same for every parameter, with fp32 master weights).
- activations (training): per layer and token, the tensors autograd keeps for a LLaMA-style block (norm inputs and
  outputs, q/k/v, attention output, gate/up/act/product of the gated MLP) = (6h + 2kv + 4i) x compute width, plus a
  dropout copy of a target's input per LoRA target when lora_dropout > 0; with activation checkpointing only each
  layer's input is kept, plus one layer recomputed. Logits: t x V at compute width + fp32 copy + its gradient.
- KV cache (generation): 2 x L x kv x compute width per token of every sequence generated at once.
The largest of the phase's stages is the peak; a fixed CUDA context (RUNTIME_OVERHEAD_GIB) is added for `fits`.
Measured against the tiny CPU runs in PLAN.md ("Memory planner").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.errors import ModelSourceError
from fine_tune.hub.jobs.hardware import JOBS_FLAVORS, flavor_memory_gib
from fine_tune.hub_access import is_hub_id
from fine_tune.models.shape import ModelShape

logger = logging.getLogger(__name__)

GIB = 1024**3
BNB_BLOCK = 64  # bitsandbytes 4-bit block size: one absmax per 64 weights
NESTED_BLOCK = 256  # nested quantisation: absmax stored in 8 bits, one fp32 constant per 256 of them
RUNTIME_OVERHEAD_GIB = 0.75  # CUDA context + cuBLAS workspace + allocator slack (assumed, not measured here)
# The longest MedMCQA prompt: 311 tokens on the 4,183 official dev rows with the Qwen3 tokenizer (PLAN.md); other
# tokenizers write up to ~20% more tokens for the same text.
PROMPT_TOKENS = 384
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAM_STATE_BYTES = 8  # two fp32 moments per trained parameter


def _decoder(hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied, **extra) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        **extra,
    }


# The shape fields of each recipe base's config.json, for planning without the Hub (read_model_config prefers the
# real file). Qwen3-4B and Llama-3-8B checked against public copies of their config.json; the others as published
# on their model pages (Qwen3 family table, Mistral v0.3, Gemma 3 4B with its 27-layer SigLIP tower), not re-checked
# offline here.
KNOWN_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-0.6B": _decoder(1024, 3072, 28, 16, 8, 128, 151936, True),
    "Qwen/Qwen3-4B": _decoder(2560, 9728, 36, 32, 8, 128, 151936, True),
    "Qwen/Qwen3-8B": _decoder(4096, 12288, 36, 32, 8, 128, 151936, False),
    "mistralai/Mistral-7B-Instruct-v0.3": _decoder(4096, 14336, 32, 32, 8, 128, 32768, False),
    "dmis-lab/llama-3-meerkat-8b-v1.0": _decoder(4096, 14336, 32, 32, 8, 128, 128256, False),
    "google/medgemma-4b-it": {
        "text_config": _decoder(2560, 10240, 34, 8, 4, 256, 262208, True),
        "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27},
        "tie_word_embeddings": True,
    },
}


@dataclass(frozen=True)
class MemoryPlan:
    phase: str
    parts: dict[str, int]  # bytes of each term at the peak
    notes: list[str] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value / GIB:.2f}" for name, value in self.parts.items())
        return f"{self.phase}: about {self.peak_gib:.1f} GiB peak ({parts} GiB)"


def fits(plan: MemoryPlan, gpu_memory_gib: float, overhead_gib: float = RUNTIME_OVERHEAD_GIB) -> bool:
    """Whether the planned peak plus the CUDA runtime's own memory fits a GPU of `gpu_memory_gib`."""
    return plan.peak_gib + overhead_gib <= gpu_memory_gib


def smallest_fitting_flavor(
    plan: MemoryPlan, flavors: Mapping[str, float] | None = None, cost_per_hour: Mapping[str, float] | None = None
) -> str | None:
    """The cheapest flavor whose GPU fits the plan (by `cost_per_hour`; without costs, the first in `flavors`' order,
    cheapest first); None when none does. Default: the Jobs flavors of the hardware table, at their prices."""
    if flavors is None:
        flavors = flavor_memory_gib()
        cost_per_hour = cost_per_hour or {name: flavor.hourly_usd for name, flavor in JOBS_FLAVORS.items()}
    order = {name: index for index, name in enumerate(flavors)}
    fitting = [name for name, gib in flavors.items() if fits(plan, gib)]
    if not fitting:
        return None
    return min(fitting, key=lambda name: ((cost_per_hour or {}).get(name, 0.0), order[name]))


def compute_bytes(precision: str | None) -> int:
    """Width of weights and activations: fp32 only when asked; "auto" is bf16/fp16 on any GPU."""
    return 4 if precision == "fp32" else 2


def lora_targets(values: Mapping[str, Any]) -> tuple[str, ...]:
    targets = values.get("lora_target_modules")
    if targets in (None, "all-linear") or targets == ["all-linear"]:
        return LINEAR_NAMES  # peft's default for these architectures is q/v; TRL recipes here always name them
    if isinstance(targets, str):  # peft reads one string as a regex over module names
        return tuple(name for name in LINEAR_NAMES if name in targets) or LINEAR_NAMES
    targets = list(targets)
    unknown = [t for t in targets if t not in LINEAR_NAMES]
    if unknown:
        raise ValueError(f"lora_target_modules {unknown} are not decoder linears {LINEAR_NAMES}")
    return tuple(targets)


def weight_bytes(shape: ModelShape, values: Mapping[str, Any], width: int) -> tuple[int, list[str]]:
    if values.get("load_in_4bit"):
        nested = values.get("use_bnb_nested_quant")
        scale = 1 / BNB_BLOCK + 4 / (BNB_BLOCK * NESTED_BLOCK) if nested else 4 / BNB_BLOCK
        linear = shape.backbone_linear_params * (0.5 + scale)
        # k-bit preparation casts every unquantised parameter (embeddings, lm_head, norms, vision tower) to fp32
        rest = (shape.embedding_params + shape.extra_params) * 4
        return int(linear + rest), ["4-bit NF4 decoder linears; embeddings and lm_head in fp32 after k-bit prep"]
    if values.get("load_in_8bit"):
        row_scales = shape.num_layers * sum(out for _, out in shape.linear_shapes().values()) * 4
        linear = shape.backbone_linear_params + row_scales
        return int(linear + (shape.embedding_params + shape.extra_params) * 4), ["8-bit decoder linears"]
    return shape.params * width, []


def adapter_params(shape: ModelShape, values: Mapping[str, Any]) -> int:
    return shape.lora_params(int(values.get("lora_r") or 16), lora_targets(values))


def trainable_bytes(shape: ModelShape, values: Mapping[str, Any], width: int) -> int:
    """Trained parameters with their gradients and AdamW states."""
    if values.get("use_peft", True):
        n = adapter_params(shape, values)
        # TRL keeps LoRA weights in bf16 for a quantised base (QLoRA paper), else in the load dtype
        adapter_width = 2 if values.get("load_in_4bit") or values.get("load_in_8bit") else width
        return n * (2 * adapter_width + ADAM_STATE_BYTES)
    return shape.params * (4 + 4 + ADAM_STATE_BYTES) - shape.params * width  # fp32 master + grad + moments


def activation_bytes(shape: ModelShape, values: Mapping[str, Any], tokens: int, width: int) -> int:
    h, i = shape.hidden_size, shape.intermediate_size
    kv = shape.num_kv_heads * shape.head_dim
    per_token_layer = 6 * h + 2 * kv + 4 * i
    if values.get("use_peft", True) and float(values.get("lora_dropout") or 0) > 0:
        shapes = shape.linear_shapes()
        per_token_layer += sum(shapes[name][0] for name in lora_targets(values))
    layer = tokens * per_token_layer * width
    if values.get("activation_checkpointing") or values.get("gradient_checkpointing"):
        return shape.num_layers * tokens * h * width + layer
    return shape.num_layers * layer


def logits_bytes(shape: ModelShape, tokens: int, width: int) -> int:
    return tokens * shape.vocab_size * (width + 4 + 4)


def kv_cache_bytes(shape: ModelShape, sequences: int, tokens: int, width: int) -> int:
    return shape.kv_bytes_per_token(width) * sequences * tokens


def plan_memory(
    values: Mapping[str, Any], model_config: Mapping[str, Any], phase: str, *, prompt_tokens: int = PROMPT_TOKENS
) -> MemoryPlan:
    """The peak GPU memory of `phase` ("sft", "grpo", "eval") for a recipe (`recipe_values(load_recipe(...))`)."""
    shape = ModelShape.from_config(model_config)
    width = compute_bytes(values.get("precision"))
    if phase == "eval":
        sequences = int(values.get("batch_size") or 16)
        generated = int(values.get("max_new_tokens") or 256)
        parts = {
            "weights": shape.params * width,  # eval loads the merged model in full precision
            "kv_cache": kv_cache_bytes(shape, sequences, prompt_tokens + generated, width),
            "logits": sequences * shape.vocab_size * 4 * 2,
        }
        return MemoryPlan(phase, parts)
    weights, notes = weight_bytes(shape, values, width)
    micro_batch = int(values.get("per_device_train_batch_size") or 8)
    parts = {"weights": weights, "trainable_and_optimizer": trainable_bytes(shape, values, width)}
    if phase == "sft":
        tokens = micro_batch * int(values.get("max_length") or 1024)
        parts["activations"] = activation_bytes(shape, values, tokens, width)
        parts["logits"] = logits_bytes(shape, tokens, width)
        return MemoryPlan(phase, parts, notes)
    if phase != "grpo":
        raise ValueError(f"phase must be sft, grpo or eval, got {phase!r}")
    completion = int(values.get("max_completion_length") or 256)
    tokens = micro_batch * (prompt_tokens + completion)
    training = activation_bytes(shape, values, tokens, width) + logits_bytes(shape, tokens, width)
    # TRL: generation_batch_size defaults to per_device_train_batch_size x steps_per_generation (= accumulation)
    steps_per_generation = values.get("steps_per_generation") or values.get("gradient_accumulation_steps") or 1
    generation_batch = int(values.get("generation_batch_size") or micro_batch * int(steps_per_generation))
    generating = kv_cache_bytes(shape, generation_batch, prompt_tokens + completion, width)
    generating += generation_batch * shape.vocab_size * 4 * 2
    stage = "training step" if training >= generating else "generation"
    parts["activations" if training >= generating else "kv_cache"] = max(training, generating)
    notes = [*notes, f"peak in the {stage} ({generation_batch} sequences generated at once)"]
    return MemoryPlan(phase, parts, notes)


def offline_model_config(source: str | Path) -> dict[str, Any] | None:
    """config.json of a local model folder or file, or the stored shape of a known base; None otherwise (no network:
    what a job's dry run can know)."""
    path = Path(source).expanduser()
    if path.is_file():
        return json.loads(path.read_text())
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    return KNOWN_MODEL_CONFIGS.get(str(source))


def read_model_config(source: str | Path, token: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """config.json of a config file, a local model folder or a Hub repo (only that file is downloaded); a known base
    whose file cannot be fetched (offline) falls back to KNOWN_MODEL_CONFIGS."""
    path = Path(source).expanduser()
    if path.is_file():
        return json.loads(path.read_text())
    if path.is_dir() and (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    if str(source) in KNOWN_MODEL_CONFIGS and os.environ.get("HF_HUB_OFFLINE") == "1":
        return KNOWN_MODEL_CONFIGS[str(source)]
    if not is_hub_id(str(source)):
        raise ModelSourceError(
            f"{source}: no config.json there; pass --model_config with the base's Hub ID, model folder or "
            "config.json (a fine-tuned model has its base's shape)"
        )
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(
            Path(hf_hub_download(str(source), "config.json", token=token, revision=revision)).read_text()
        )
    except Exception as error:  # offline, gated or unreachable: the stored shape of a known base still plans
        if str(source) in KNOWN_MODEL_CONFIGS:
            logger.info("config.json of %s not fetched (%s): using its stored shape", source, type(error).__name__)
            return KNOWN_MODEL_CONFIGS[str(source)]
        raise ModelSourceError(
            f"cannot read config.json of {source} ({type(error).__name__}); pass --model_config with the base's "
            "Hub ID, model folder or config.json (a fine-tuned model has its base's shape)"
        ) from None


def main(argv: list[str] | None = None) -> None:
    from fine_tune.cli import run_main

    run_main(lambda: print_plan(argv))


def print_plan(argv: list[str] | None = None) -> int | None:
    from fine_tune.recipes.loader import load_recipe, recipe_values

    parser = argparse.ArgumentParser(description="Plan a phase's peak GPU memory from its recipe and model config.")
    parser.add_argument("phase", choices=("sft", "grpo", "eval"))
    parser.add_argument("--config", required=True, help="the phase's recipe (YAML)")
    parser.add_argument(
        "--model_config", help="config.json, model folder or Hub ID of the model's shape; default: the recipe's model"
    )
    parser.add_argument("--gpu_memory_gib", type=float, help="also say whether this GPU fits (exit 1 when not)")
    args, overrides = parser.parse_known_args(argv)
    values = recipe_values(load_recipe(args.phase, args.config, overrides))
    source = args.model_config or values.get("model_name_or_path") or next(iter((values.get("models") or {}).values()))
    model_config = read_model_config(source, revision=values.get("model_revision"))
    plan = plan_memory(values, model_config, args.phase)
    print(plan.describe())
    for note in plan.notes:
        print(f"  {note}")
    for flavor, gib in flavor_memory_gib().items():
        print(f"  {flavor:<12} {gib:>4.0f} GiB  {'fits' if fits(plan, gib) else 'too small'}")
    print(f"smallest fitting flavor: {smallest_fitting_flavor(plan) or 'none'}")
    if args.gpu_memory_gib is not None and not fits(plan, args.gpu_memory_gib):
        print(f"does not fit {args.gpu_memory_gib:g} GiB ({plan.peak_gib:.1f} + {RUNTIME_OVERHEAD_GIB} GiB runtime)")
        return 1
    return None


if __name__ == "__main__":
    main()
