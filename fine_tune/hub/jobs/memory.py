"""Peak GPU memory of each phase, planned term by term from the code that allocates it (docs/memory.md).

Every term is a function below whose docstring names the library code that allocates the bytes it counts, for the
installed versions (transformers 5.x, trl 1.16, peft 0.21, bitsandbytes 0.50). Widths: `w` the compute width (2 for
fp16/bf16 autocast, 4 for fp32), `res` the residual stream's width (4 after k-bit preparation, which casts the
embeddings to fp32, so every decoder layer's input and output is fp32 under autocast).
`benchmarks/memory_check.py` measures the same terms on CPU through the same code paths (docs/measurements.md).

The model's shape comes from config.json (`fine_tune.models.known_shapes` for the recipe bases, offline); token
lengths from the task's measured figures (`known_shapes.MEASURED_TOKEN_LENGTHS`) capped by the recipe's `max_length`;
the device's usable memory from the hardware table (what torch reports as total_memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fine_tune.hub.jobs.hardware import JOBS_FLAVORS, DeviceSpec, flavor_memory_gib
from fine_tune.models.known_shapes import LINEAR_NAMES, ModelShape, task_token_lengths
from fine_tune.models.precision import ELEMENT_BYTES, resolve_precision

GIB = 1024**3
FP32 = 4
BNB_BLOCK = 64  # bitsandbytes 4-bit: one fp32 absmax per 64 weights (Params4bit, blocksize=64)
NESTED_BLOCK = 256  # nested quantisation: the absmax stored in 8 bits, one fp32 constant per 256 of them
ADAPTER_BYTES = 16  # fp32 weight + fp32 grad + AdamW's two fp32 moments (full_precision_adapters)
# trl/kernels/chunked_logprob.py: TOKEN_CHUNK_SIZE tokens x _CHUNKED_LOGPROB_CHUNK_SIZE (trl/trainer/utils.py) columns
FUSED_TOKEN_TILE = 4096
FUSED_VOCAB_TILE = 32768
# Fp32 tile-sized tensors alive at once in `_backward_tile`, the torch fold that replaces the Triton kernel off CUDA:
# y = tile.float(), z, log_p, p, grad, and the two temporaries of `grad_logprobs * (is_target.float() - p)`.
TORCH_FOLD_FP32_TILES = 7
# What dropout saves per element: CUDA's fused `native_dropout` a bool mask; elsewhere `_dropout_impl` an fp32 noise
# tensor (checked with saved_tensors_hooks on CPU).
DROPOUT_MASK_BYTES = {"cuda": 1, "cpu": 4}


@dataclass(frozen=True)
class MemoryPlan:
    phase: str
    parts: dict[str, int]  # bytes of each term at the peak
    notes: list[str] = field(default_factory=list)
    precision: str = "bf16"
    off_peak: dict[str, int] = field(default_factory=dict)  # terms of the stage that is not the peak (not summed)

    @property
    def peak_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value / GIB:.2f}" for name, value in self.parts.items())
        return f"{self.phase} ({self.precision}): about {self.peak_gib:.1f} GiB peak ({parts} GiB)"


def lora_targets(values: Mapping[str, Any]) -> tuple[str, ...]:
    targets = values.get("lora_target_modules")
    if targets in (None, "all-linear") or targets == ["all-linear"]:
        return LINEAR_NAMES
    if isinstance(targets, str):  # peft reads one string as a regex over module names
        return tuple(name for name in LINEAR_NAMES if name in targets) or LINEAR_NAMES
    targets = list(targets)
    unknown = [t for t in targets if t not in LINEAR_NAMES]
    if unknown:
        raise ValueError(f"lora_target_modules {unknown} are not decoder linears {LINEAR_NAMES}")
    return tuple(targets)


def quantised(values: Mapping[str, Any]) -> bool:
    return bool(values.get("load_in_4bit") or values.get("load_in_8bit"))


def checkpointed(values: Mapping[str, Any]) -> bool:
    return bool(values.get("activation_checkpointing") or values.get("gradient_checkpointing"))


def weight_bytes(shape: ModelShape, values: Mapping[str, Any], width: int) -> int:
    """The base model's parameters as they sit on the GPU during training.

    4-bit: transformers' bitsandbytes quantiser (`quantizers/quantizer_bnb_4bit.py`, `replace_with_bnb_linear`)
    turns every nn.Linear into `bnb.nn.Linear4bit` except `get_keys_to_not_convert` (the LM head, tied weights, the
    last module): decoder linears and a vision tower's linears (MedGemma's SigLIP) are NF4 at 0.5 B/weight plus one
    fp32 absmax per 64 weights (8-bit absmax + one fp32 per 256 with nested quantisation). peft's
    `prepare_model_for_kbit_training` (peft/utils/other.py) then casts every fp16/bf16 parameter that is not a
    Params4bit to fp32: the embeddings, the (untied) LM head, the norms, a vision tower's non-linear parameters.
    8-bit: Int8Params, 1 B/weight plus one fp32 scale per output row. Unquantised: every parameter at the load width.
    """
    if values.get("load_in_4bit"):
        scale = 1 / BNB_BLOCK + FP32 / (BNB_BLOCK * NESTED_BLOCK) if values.get("use_bnb_nested_quant") else 4 / 64
        linear = shape.quantised_linear_params * (0.5 + scale)
        return int(linear + shape.unquantised_params * FP32)
    if values.get("load_in_8bit"):
        return int(shape.quantised_linear_params + shape.quantised_rows * FP32 + shape.unquantised_params * FP32)
    return shape.params * width


def adapter_bytes(shape: ModelShape, values: Mapping[str, Any], width: int) -> int:
    """LoRA A and B of every targeted linear (peft `LoraModel`): r x (in + out) parameters each. On a quantised base
    `full_precision_adapters` (fine_tune/models/loading.py) keeps them fp32, so weight, gradient and AdamW's
    `exp_avg`/`exp_avg_sq` (torch.optim.AdamW, fp32) are 4 B each: 16 B per parameter. Otherwise the weights and
    their gradients follow the load width and the moments stay fp32."""
    n = shape.lora_params(int(values.get("lora_r") or 16), lora_targets(values))
    return n * (ADAPTER_BYTES if quantised(values) else 2 * width + 2 * FP32)


def residual_width(values: Mapping[str, Any], width: int) -> int:
    """Width of the residual stream: `prepare_model_for_kbit_training` casts the embedding to fp32, so the embedding
    output is fp32 and `residual + attn_output` (fp32 + fp16/bf16) stays fp32 through every layer."""
    return FP32 if quantised(values) else width


def checkpoint_bytes(shape: ModelShape, values: Mapping[str, Any], tokens: int, width: int) -> int:
    """Activation checkpointing (transformers `GradientCheckpointingLayer`, torch.utils.checkpoint): each decoder
    layer keeps only its input, tokens x hidden at the residual width, until its backward recomputes it."""
    return shape.num_layers * tokens * shape.hidden_size * residual_width(values, width)


def linear_output_width(values: Mapping[str, Any], width: int) -> int:
    """bnb `Linear4bit.forward` returns `matmul_4bit(...).to(inp_dtype)`: a linear fed the fp32 residual stream
    (q, k, v, gate, up) or the fp32 MLP product (down) answers in fp32 on a k-bit base; a plain frozen nn.Linear
    under autocast answers at w."""
    return FP32 if values.get("load_in_4bit") else width


def layer_saved_bytes_per_token(shape: ModelShape, values: Mapping[str, Any], width: int, device: str = "cuda") -> int:
    """Bytes autograd saves per token in one decoder layer under autocast (Qwen3/Llama/Mistral/Gemma blocks), as
    `torch.autograd.graph.saved_tensors_hooks` lists them for an NF4 + LoRA layer (docs/memory.md).

    - Frozen base linears save nothing of their input: bnb `MatMul4Bit.forward` keeps `(None, B)`, and a frozen
      nn.Linear needs only its weight for the input's gradient.
    - LoRA per target (peft `lora.Linear.forward`: `lora_B(lora_A(dropout(x)))`, the input first cast to the fp32
      adapter's dtype): dropout's saved mask (lora_dropout > 0: a bool per element on CUDA, `native_dropout`; an fp32
      noise tensor elsewhere, `_dropout_impl`) and autocast's cast of lora_A's input (w per input feature).
    - RMSNorm (`hidden.to(float32)`, `pow`, `* rsqrt`) keeps its input: the post-attention norm the fp32 residual
      sum (res x h); Qwen3's/Gemma 3's q_norm and k_norm the q and k projections, at the linears' output width.
    - SDPA keeps q and its output at w, and k and v repeated to every head (`repeat_kv`, as a padded batch's mask
      forces; an unpadded batch keeps them at kv width, which this over-counts by 2 x w x (q - kv)).
    - MLP: SiLU's input, its output and up's output, at the linears' output width.
    """
    h, i = shape.hidden_size, shape.intermediate_size
    q = shape.num_heads * shape.head_dim
    kv = shape.num_kv_heads * shape.head_dim
    out = linear_output_width(values, width)
    lora = 0
    if values.get("use_peft", True):
        mask = (DROPOUT_MASK_BYTES[device] if float(values.get("lora_dropout") or 0) > 0 else 0) + width
        rank = int(values.get("lora_r") or 16)
        lora = sum((shape.linear_shapes()[name][0] * mask + rank * width) for name in lora_targets(values))
    norms = residual_width(values, width) * h + (out * (q + kv) if shape.qk_norm else 0)
    attention = width * 4 * q
    mlp = 3 * out * i
    return lora + norms + attention + mlp


def layer_bytes(shape: ModelShape, values: Mapping[str, Any], tokens: int, width: int, device: str = "cuda") -> int:
    """What the layers' autograd graph holds at the start of the backward: with checkpointing one layer recomputed
    (`layer_saved_bytes_per_token`); without, every layer's saved tensors plus its input (saved by its input norm).
    Each layer also keeps autocast's w-wide copies of its LoRA weights (the autocast weight cache)."""
    per_layer = tokens * layer_saved_bytes_per_token(shape, values, width, device)
    if values.get("use_peft", True):
        adapter = shape.lora_params(int(values.get("lora_r") or 16), lora_targets(values))
        per_layer += adapter // shape.num_layers * width
    if checkpointed(values):
        return per_layer
    return shape.num_layers * (per_layer + tokens * shape.hidden_size * residual_width(values, width))


def backward_bytes(shape: ModelShape, values: Mapping[str, Any], tokens: int, width: int) -> int:
    """Alive on top of the recomputed layer's saved tensors early in its backward: the gradient of the residual
    stream arriving (res x h), the MLP's gradients once down_proj's saved tensors are freed (the product's, SiLU's
    and up's gradients less down_proj's input: a net 2 x i at the linears' output width), and the dequantised weight
    of the largest linear (bnb `MatMul4Bit.backward`: `dequantize_4bit(B)`, at w)."""
    per_token = residual_width(values, width) * shape.hidden_size
    per_token += 2 * linear_output_width(values, width) * shape.intermediate_size
    largest = max(a * b for a, b in shape.linear_shapes().values()) * width if values.get("load_in_4bit") else 0
    return tokens * per_token + largest


def fused_lm_head_bytes(
    shape: ModelShape, values: Mapping[str, Any], tokens: int, scored_tokens: int, width: int, *, triton: bool = True
) -> int:
    """TRL's fused LM head (`add_fused_lm_head`, trl/trainer/utils.py, applied by `SFTTrainer.__init__` and
    `GRPOTrainer`; the kernel `ChunkedLogProbFunction`, trl/kernels/chunked_logprob.py). It never holds
    tokens x vocabulary logits: the projection runs on a `[min(N, 4096), 32768]` tile buffer at w, with the LM
    head's 32768-row weight slice cast to w; it saves the final hidden states (N x h, fp32 after k-bit prep: the
    final norm's weight is fp32) and its backward returns an fp32 `grad_hidden` (N x h). The final norm keeps its
    input (tokens x h at the residual width). N is the number of scored tokens: on CUDA (Triton) only labelled
    positions (`hidden_states[mask]`); elsewhere every position, plus the torch fold's fp32 temporaries of tile size
    (TORCH_FOLD_FP32_TILES)."""
    n = scored_tokens
    tile = min(n, FUSED_TOKEN_TILE) * min(FUSED_VOCAB_TILE, shape.vocab_size)
    weight_slice = min(FUSED_VOCAB_TILE, shape.vocab_size) * shape.hidden_size * width
    hidden_and_grad = 2 * n * shape.hidden_size * FP32 + tokens * shape.hidden_size * residual_width(values, width)
    fold = 0 if triton else TORCH_FOLD_FP32_TILES * tile * FP32
    return tile * width + weight_slice + hidden_and_grad + fold


def kv_cache_bytes(shape: ModelShape, sequences: int, tokens: int, width: int) -> int:
    """transformers `DynamicCache` (generate): key and value per layer, kv heads x head_dim at the model width, for
    every token of every sequence generated at once."""
    return shape.kv_bytes_per_token(width) * sequences * tokens


def generation_step_bytes(shape: ModelShape, sequences: int, prompt_tokens: int, width: int) -> int:
    """The prefill's largest transient (no autograd): the MLP's gate, up and product (3 x i at w) of every prompt
    token of the batch, plus `generate`'s next-token logits (`logits_to_keep=1`) upcast to fp32 with the processed
    scores beside them (2 x sequences x V x 4)."""
    prefill = sequences * prompt_tokens * 3 * shape.intermediate_size * width
    return prefill + 2 * sequences * shape.vocab_size * FP32


def training_tokens(values: Mapping[str, Any], micro_batch: int, length: int) -> int:
    return micro_batch * length


def sft_length(values: Mapping[str, Any]) -> tuple[int, str]:
    """The longest micro-batch row: TRL's collator pads to the longest row of the batch, so a task whose measured
    longest SFT example is shorter than `max_length` never reaches it."""
    max_length = int(values.get("max_length") or 1024)
    lengths = task_token_lengths(values.get("task"))
    if lengths is None:
        return max_length, f"rows up to max_length {max_length} (no measured token lengths for the task)"
    if lengths.full < max_length:
        return lengths.full, f"rows up to {lengths.full} tokens ({lengths.source}), under max_length {max_length}"
    return max_length, f"rows cut at max_length {max_length} (longest measured {lengths.full})"


def prompt_length(values: Mapping[str, Any]) -> int:
    lengths = task_token_lengths(values.get("task"))
    return lengths.prompt if lengths is not None else int(values.get("max_prompt_length") or 512)


def plan_memory(
    values: Mapping[str, Any],
    model_config: Mapping[str, Any],
    phase: str,
    *,
    precision: str = "bf16",
    device: str = "cuda",
    length: int | None = None,
) -> MemoryPlan:
    """The peak GPU memory of `phase` ("sft", "grpo", "eval") for a recipe (`recipe_values(load_recipe(...))`) run
    at `precision` (what the flavor's GPU resolves `precision: auto` to; fp32 where fp16 is unsafe).

    Training: weights, adapters and the checkpointed layer inputs (without checkpointing: every layer's saved
    tensors) are held throughout; on top of them the peak is the larger of two stages of the backward, the fused LM
    head (`lm_head`) and a decoder layer's backward (`backward`, with the recomputed `layer` under checkpointing);
    the other stage is kept in `off_peak`. `device="cpu"` plans what differs off
    CUDA (the fused head's torch fold, dropout's fp32 noise); `length` replaces the rows' length (a measurement's
    fixed-length rows)."""
    if precision not in ELEMENT_BYTES:
        raise ValueError(f"precision must be one of {tuple(ELEMENT_BYTES)}, got {precision!r}")
    shape = ModelShape.from_config(model_config)
    width = ELEMENT_BYTES[precision]
    if phase == "eval":
        return plan_eval(shape, values, width, precision)
    if phase not in ("sft", "grpo"):
        raise ValueError(f"phase must be sft, grpo or eval, got {phase!r}")
    micro_batch = int(values.get("per_device_train_batch_size") or 8)
    parts = {"weights": weight_bytes(shape, values, width), "adapters": adapter_bytes(shape, values, width)}
    if phase == "sft":
        row_length, note = sft_length(values)
        if length is not None:
            row_length, note = length, "fixed-length rows"
        tokens = micro_batch * row_length
        scored = tokens  # conservative: every position labelled (completion-only loss scores fewer)
        notes = [f"{micro_batch} x {row_length} tokens per micro-batch: {note}"]
    else:
        completion = int(values.get("max_completion_length") or 256)
        prompt = prompt_length(values)
        tokens = micro_batch * (prompt + completion)
        scored = micro_batch * completion  # GRPOTrainer labels only the completion (`labels[:, :-logits_to_keep]`)
        notes = [f"{micro_batch} x ({prompt} prompt + {completion} completion) tokens per micro-batch"]
    head = {"lm_head": fused_lm_head_bytes(shape, values, tokens, scored, width, triton=device == "cuda")}
    layer = {"backward": backward_bytes(shape, values, tokens, width)}
    if checkpointed(values):  # the layer inputs are held; one layer's saved tensors exist only in its backward
        parts["checkpoints"] = checkpoint_bytes(shape, values, tokens, width)
        layer = {"layer": layer_bytes(shape, values, tokens, width, device), **layer}
    else:  # every layer's saved tensors are held until the backward reaches it
        parts["layer"] = layer_bytes(shape, values, tokens, width, device)
    peak, off_peak = (head, layer) if sum(head.values()) >= sum(layer.values()) else (layer, head)
    parts.update(peak)
    if phase == "grpo":
        parts, off_peak, notes = with_generation(shape, values, parts, off_peak, notes, width, micro_batch)
    return MemoryPlan(phase, parts, notes, precision, off_peak)


def with_generation(shape, values, parts, off_peak, notes, width, micro_batch):
    """GRPO alternates generation (no autograd: weights + adapters + KV cache of the generation batch) and the
    training step; the peak is the larger. TRL: generation_batch_size = per_device_train_batch_size x
    steps_per_generation (default: gradient_accumulation_steps). With beta > 0 and peft the reference is the same
    model with the adapter disabled (GRPOTrainer sets `ref_model = None`): no second copy of the weights."""
    steps = values.get("steps_per_generation") or values.get("gradient_accumulation_steps") or 1
    sequences = int(values.get("generation_batch_size") or micro_batch * int(steps))
    prompt, completion = prompt_length(values), int(values.get("max_completion_length") or 256)
    generating = kv_cache_bytes(shape, sequences, prompt + completion, width)
    generating += generation_step_bytes(shape, sequences, prompt, width)
    training = {k: v for k, v in parts.items() if k not in ("weights", "adapters")}
    if generating > sum(training.values()):
        parts = {"weights": parts["weights"], "adapters": parts["adapters"], "generation": generating}
        return parts, training, [*notes, f"peak in generation ({sequences} sequences at once)"]
    note = f"peak in the training step (generation of {sequences} sequences is smaller)"
    return parts, {**off_peak, "generation": generating}, [*notes, note]


def plan_eval(shape: ModelShape, values: Mapping[str, Any], width: int, precision: str) -> MemoryPlan:
    """Eval loads the merged model unquantised at the compute width (`load_for_inference`) and generates
    `batch_size` sequences at once."""
    sequences = int(values.get("batch_size") or 16)
    prompt, generated = prompt_length(values), int(values.get("max_new_tokens") or 256)
    parts = {
        "weights": shape.params * width,
        "kv_cache": kv_cache_bytes(shape, sequences, prompt + generated, width),
        "generation": generation_step_bytes(shape, sequences, prompt, width),
    }
    return MemoryPlan("eval", parts, [f"{sequences} sequences x ({prompt} + {generated}) tokens"], precision)


RUNTIME_OVERHEAD_GIB = 0.75  # CUDA context + cuBLAS workspace + allocator fragmentation (assumed; docs/memory.md)


def model_type(model_config: Mapping[str, Any]) -> str:
    text = model_config.get("text_config") or {}
    return str(model_config.get("model_type") or text.get("model_type") or "")


def planned_precision(values: Mapping[str, Any], model_config: Mapping[str, Any], device: DeviceSpec) -> str:
    """The dtype the phase runs in on `device`, by the one precision rule (`fine_tune.models.precision`): the
    recipe's explicit precision, else bf16 where the GPU has it, fp16 where it has not, and fp32 for an architecture
    that overflows in fp16 (a refused explicit fp16 is planned as asked; the job's precision check refuses it)."""
    requested = str(values.get("precision") or "auto")
    architecture = values.get("model_type") or model_type(model_config)
    try:
        return resolve_precision(requested, model_type=architecture, device=device.precision_device()).name
    except ValueError:
        return requested


def fits(plan: MemoryPlan, usable_gib: float, overhead_gib: float = RUNTIME_OVERHEAD_GIB) -> bool:
    """Whether the planned peak plus the CUDA runtime's own memory fits a GPU whose torch-reported memory is
    `usable_gib`."""
    return plan.peak_gib + overhead_gib <= usable_gib


def plan_on_flavor(values: Mapping[str, Any], model_config: Mapping[str, Any], phase: str, flavor: str) -> MemoryPlan:
    precision = planned_precision(values, model_config, JOBS_FLAVORS[flavor].device)
    return plan_memory(values, model_config, phase, precision=precision)


def cheapest_fitting_flavor(values: Mapping[str, Any], model_config: Mapping[str, Any], phase: str) -> str | None:
    """The cheapest listed Jobs flavor whose GPU fits the phase at the recipe's own batch (each flavor planned at the
    precision it resolves to); None when none does."""
    for flavor, usable in flavor_memory_gib().items():
        if fits(plan_on_flavor(values, model_config, phase, flavor), usable):
            return flavor
    return None


@dataclass(frozen=True)
class Fit:
    """A setting that fits: the micro-batch and accumulation keep the effective batch; max_length only when no
    micro-batch fits at the recipe's length."""

    overrides: dict[str, int]
    plan: MemoryPlan

    def describe(self) -> str:
        return " ".join(f"--{key} {value}" for key, value in self.overrides.items())


BATCH_KEYS = {"sft": "per_device_train_batch_size", "grpo": "per_device_train_batch_size", "eval": "batch_size"}
LENGTH_CAPS = (1024, 768, 512, 384, 256)


def fit_to(
    values: Mapping[str, Any], model_config: Mapping[str, Any], phase: str, usable_gib: float, precision: str
) -> Fit | None:
    """The largest micro-batch that fits `usable_gib`, with gradient_accumulation_steps raised so that micro-batch x
    accumulation stays the recipe's effective batch (divisors of it only); then, for SFT at micro-batch 1, the longest
    max_length cap that fits. None when nothing fits. Eval's batch_size is throughput only: it is halved alone."""
    key = BATCH_KEYS[phase]
    micro = int(values.get(key) or (16 if phase == "eval" else 8))
    accumulation = int(values.get("gradient_accumulation_steps") or 1)
    effective = micro * accumulation
    for candidate in range(micro, 0, -1):
        if phase != "eval" and effective % candidate:
            continue
        overrides = {key: candidate}
        if phase != "eval":
            overrides["gradient_accumulation_steps"] = effective // candidate
        plan = plan_memory({**values, **overrides}, model_config, phase, precision=precision)
        if fits(plan, usable_gib):
            return Fit(overrides, plan)
    if phase != "sft":
        return None
    single = {key: 1, "gradient_accumulation_steps": effective}
    length = int(values.get("max_length") or 1024)
    for cap in (cap for cap in LENGTH_CAPS if cap < length):
        overrides = {**single, "max_length": cap}
        plan = plan_memory({**values, **overrides}, model_config, phase, precision=precision)
        if fits(plan, usable_gib):
            return Fit(overrides, plan)
    return None


def fit_on_flavor(values: Mapping[str, Any], model_config: Mapping[str, Any], phase: str, flavor: str) -> Fit | None:
    device = JOBS_FLAVORS[flavor].device
    precision = planned_precision(values, model_config, device)
    return fit_to(values, model_config, phase, device.usable_memory_gib, precision)


def main(argv: list[str] | None = None) -> None:
    from fine_tune.cli import run_main

    run_main(lambda: print_plan(argv))


def print_plan(argv: list[str] | None = None) -> int | None:
    """`python -m fine_tune.hub.jobs.memory sft --config configs/qwen3-8b/sft.yaml`: the plan on every listed flavor,
    with the micro-batch x accumulation that fits where the recipe's does not."""
    from fine_tune.cli import OneLineArgumentParser, parse_only_exit
    from fine_tune.models.known_shapes import read_model_config
    from fine_tune.recipes.loader import load_recipe, recipe_values

    parser = OneLineArgumentParser(description="Plan a phase's peak GPU memory on each Jobs flavor.")
    parser.add_argument("phase", choices=("sft", "grpo", "eval"))
    parser.add_argument("--config", required=True, help="the phase's recipe (YAML)")
    parser.add_argument(
        "--model_config", help="config.json, model folder or Hub ID of the model's shape; default: the recipe's model"
    )
    args, overrides = parser.parse_known_args(argv)
    values = recipe_values(load_recipe(args.phase, args.config, overrides))
    parse_only_exit("fine_tune.hub.jobs.memory")
    source = args.model_config or values.get("model_name_or_path") or next(iter((values.get("models") or {}).values()))
    config = read_model_config(source, revision=values.get("model_revision"))
    for flavor, usable in flavor_memory_gib().items():
        plan = plan_on_flavor(values, config, args.phase, flavor)
        verdict = "fits" if fits(plan, usable) else "too small"
        if verdict != "fits":
            fitted = fit_on_flavor(values, config, args.phase, flavor)
            verdict += f"; --fit: {fitted.describe()}" if fitted else "; no micro-batch fits"
        print(f"{flavor:<11} {usable:6.2f} GiB usable  {plan.describe()}  {verdict}")
    for note in plan.notes:
        print(f"  {note}")
    print(f"cheapest flavor at the recipe's batch: {cheapest_fitting_flavor(values, config, args.phase) or 'none'}")
    return None


if __name__ == "__main__":
    main()
