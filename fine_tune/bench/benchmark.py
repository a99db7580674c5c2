"""Throughput benchmark: SFT tokens/s, padding efficiency and MFU; batched vs one-at-a-time eval generation; GRPO
seconds per step and the share spent generating; a T4 projection of the real configs from counted FLOPs.

Everything here runs on 2 CPU cores with the tiny random-init model (`fine_tune.tiny`), and on a CUDA device with a
random-init model of Qwen3-0.6B's exact shape. `scripts/benchmark.py` is the command line; the result is one JSON
object (`eval_results/benchmarks/<device>[-<mode>].json`) plus a markdown table beside it.

FLOP accounting (stated in every result under `flops.formula`):

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

import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fine_tune.constants import PROJECT_ROOT
from fine_tune.io import atomic_write_json, atomic_write_text
from fine_tune.provenance import library_versions

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_OUT_DIR = PROJECT_ROOT / "eval_results" / "benchmarks"
DEFAULT_SHARED_DIR = PROJECT_ROOT.parent / "shared"
SFT_CONFIG = PROJECT_ROOT / "configs" / "sft.yaml"
GRPO_CONFIG = PROJECT_ROOT / "configs" / "grpo.yaml"
EVAL_CONFIG = PROJECT_ROOT / "configs" / "eval.yaml"

# Real MedMCQA length statistics, used to draw synthetic lengths when ../shared is absent. Token counts of the full
# SFT sequence (rendered prompt + target JSON + end of turn) and of its completion, as SFTTrainer tokenises them with
# the Qwen3 tokenizer. The lead measured the train split at mean 216 / p95 293 / max 876; the 4,183 validation rows
# measure 196.5 / 266.9 / 412 (completion 60.0 / 103.9 / 170). The synthetic draw uses the train-split figures (the
# longer, so the safer for projections).
SYNTHETIC_FULL_STATS = {"mean": 216.0, "p95": 293.0, "max": 876}
SYNTHETIC_COMPLETION_STATS = {"mean": 60.0, "p95": 104.0, "max": 170}
SYNTHETIC_ROWS = 4000

# Qwen/Qwen3-0.6B config.json (transformers' Qwen3Config() defaults are the 8B shape, not this one).
QWEN3_0_6B = {
    "vocab_size": 151_936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "tie_word_embeddings": True,
    "max_position_embeddings": 40_960,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
}


# ---------------------------------------------------------------------------------------------------------------
# Devices: dense peak FLOP/s (no 2:4 sparsity) and memory bandwidth, from the vendors' datasheets.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    peak_flops: dict[str, float]  # by dtype: "fp16", "bf16", "fp32"
    memory_bandwidth: float  # bytes/s
    memory_bytes: float
    source: str


GB = 1e9
GIB = 2**30
# Matched in order against torch.cuda.get_device_name(): more specific names first (A100 before A10, L40S before L4).
DEVICE_SPECS: tuple[tuple[str, DeviceSpec], ...] = (
    (
        "H200",
        DeviceSpec(
            "NVIDIA H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 4800 * GB, 141 * GB, "H200 datasheet"
        ),
    ),
    (
        "H100 PCIE",
        DeviceSpec(
            "NVIDIA H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12}, 2000 * GB, 80 * GB, "H100 datasheet"
        ),
    ),
    (
        "H100",
        DeviceSpec(
            "NVIDIA H100 SXM", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 3350 * GB, 80 * GB, "H100 datasheet"
        ),
    ),
    (
        "A100",
        DeviceSpec(
            "NVIDIA A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}, 2039 * GB, 80 * GB, "A100 datasheet"
        ),
    ),
    (
        "L40S",
        DeviceSpec(
            "NVIDIA L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}, 864 * GB, 48 * GB, "L40S datasheet"
        ),
    ),
    (
        "L4",
        DeviceSpec("NVIDIA L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}, 300 * GB, 24 * GB, "L4 datasheet"),
    ),
    (
        "A10",
        DeviceSpec(
            "NVIDIA A10G",
            {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12},
            600 * GB,
            24 * GB,
            "A10 datasheet (A10G is AWS's A10; sustained clocks are lower)",
        ),
    ),
    (
        "T4",
        DeviceSpec(
            "NVIDIA T4",
            # No bf16 tensor cores on sm_75: bf16 runs at (at best) the fp32 rate. This is why upstream's bf16 SFT
            # ran out of time.
            {"fp16": 65e12, "bf16": 8.1e12, "fp32": 8.1e12},
            320 * GB,
            16 * GB,
            "T4 datasheet (fp16 tensor cores 65 TFLOP/s, fp32 8.1 TFLOP/s, GDDR6 320 GB/s)",
        ),
    ),
)
T4 = dict(DEVICE_SPECS)["T4"]


def device_spec(name: str) -> DeviceSpec | None:
    """The spec whose key occurs in a CUDA device name ("Tesla T4", "NVIDIA A100-SXM4-80GB", ...), if known."""
    upper = name.upper()
    for key, spec in DEVICE_SPECS:
        if key in upper:
            return spec
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 1024, repeats: int = 7) -> float:
    """Achieved FLOP/s of an n x n matmul, median of `repeats` timed runs after a warm-up (CUDA events on a GPU)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = 8 if device.type == "cuda" else 2
    for _ in range(2):
        a @ b
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                a @ b
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            for _ in range(inner):
                a @ b
            times.append(time.perf_counter() - begin)
    return 2 * n**3 * inner / statistics.median(times)


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_device(device: torch.device, precision: str) -> dict[str, Any]:
    """Name, peak FLOP/s in the compute dtype (table on a GPU, a measured fp32 matmul on the CPU), bandwidth."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        spec = device_spec(name)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        measured = measure_matmul_flops(device, dtype, n=4096)
        return {
            "type": "cuda",
            "name": name,
            "capability": f"sm_{major}{minor}",
            "precision": precision,
            "memory_bytes": torch.cuda.get_device_properties(device).total_memory,
            "peak_flops": spec.peak_flops.get(precision, spec.peak_flops["fp32"]) if spec else measured,
            "peak_source": spec.source if spec else "not in the table: measured matmul (4096^3) used as peak",
            "memory_bandwidth": spec.memory_bandwidth if spec else None,
            "measured_matmul_flops": measured,
        }
    measured = measure_matmul_flops(device, torch.float32, n=1024)
    return {
        "type": "cpu",
        "name": cpu_name(),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "precision": precision,
        "peak_flops": measured,
        "peak_source": (
            f"measured on the spot: fp32 1024^3 matmul, {torch.get_num_threads()} threads, median of 7 "
            "(shared machine: the denominator is what the cores delivered then)"
        ),
        "memory_bandwidth": None,
        "measured_matmul_flops": measured,
    }


# ---------------------------------------------------------------------------------------------------------------
# Model shape and FLOPs.
# ---------------------------------------------------------------------------------------------------------------

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config, name: str | None = None) -> ModelShape:
        return cls(
            name=name or getattr(config, "name_or_path", "") or config.model_type,
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_layers=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            num_kv_heads=config.num_key_value_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of one decoder layer."""
        d, q, kv, i = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
            self.intermediate_size,
        )
        return {
            "q_proj": (d, q),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "o_proj": (q, d),
            "gate_proj": (d, i),
            "up_proj": (d, i),
            "down_proj": (i, d),
        }

    @property
    def backbone_linear_params(self) -> int:
        return self.num_layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def lm_head_params(self) -> int:
        return self.hidden_size * self.vocab_size

    def lora_params(self, rank: int, targets: Sequence[str]) -> int:
        shapes = self.linear_shapes()
        return self.num_layers * sum(rank * sum(shapes[t]) for t in targets if t in shapes)

    @property
    def attention_coefficient(self) -> int:
        """L * H * d_head: attention FLOPs per (query, key) pair are 4x this forward, 12x forward + backward."""
        return self.num_layers * self.num_heads * self.head_dim

    def weight_bytes(self, bytes_per_param: int) -> int:
        """Weights read by one decode step (tied embedding counted once, as the LM head)."""
        return (self.backbone_linear_params + self.lm_head_params) * bytes_per_param

    def kv_bytes_per_token(self, bytes_per_value: int) -> int:
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * bytes_per_value


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
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=True,
    )
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
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=True,
    )
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


# ---------------------------------------------------------------------------------------------------------------
# Sequence lengths: the real MedMCQA distribution (SFTTrainer's own tokenisation) or a synthetic one of its statistics.
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Lengths:
    full: np.ndarray  # tokens per SFT sequence
    completion: np.ndarray  # trained tokens per sequence
    source: str

    @property
    def prompt(self) -> np.ndarray:
        return self.full - self.completion

    def stats(self) -> dict[str, Any]:
        def summary(values: np.ndarray) -> dict[str, float]:
            return {
                "mean": round(float(values.mean()), 1),
                "p50": round(float(np.percentile(values, 50)), 1),
                "p95": round(float(np.percentile(values, 95)), 1),
                "max": int(values.max()),
            }

        return {
            "source": self.source,
            "rows": len(self.full),
            "full": summary(self.full),
            "completion": summary(self.completion),
            "prompt": summary(self.prompt),
        }


def lognormal_lengths(rng: np.random.Generator, n: int, stats: dict[str, float], low: int) -> np.ndarray:
    """`n` integer lengths from a lognormal with the given mean and p95, one row at exactly `max`, clipped to
    [low, max]."""
    z95 = 1.6448536269514722
    # mean = exp(mu + s^2/2), p95 = exp(mu + z s): s^2/2 - z s + ln(p95/mean) = 0, the smaller root
    gap = math.log(stats["p95"] / stats["mean"])
    sigma = z95 - math.sqrt(z95**2 - 2 * gap)
    mu = math.log(stats["mean"]) - sigma**2 / 2
    values = np.clip(np.rint(rng.lognormal(mu, sigma, n)), low, stats["max"]).astype(int)
    values[rng.integers(n)] = int(stats["max"])
    return values


def synthetic_lengths(n: int = SYNTHETIC_ROWS, seed: int = 0) -> Lengths:
    rng = np.random.default_rng(seed)
    full = lognormal_lengths(rng, n, SYNTHETIC_FULL_STATS, low=40)
    completion = lognormal_lengths(rng, n, SYNTHETIC_COMPLETION_STATS, low=12)
    completion = np.minimum(completion, full - 20)
    return Lengths(full, completion, f"synthetic: lognormal fitted to {SYNTHETIC_FULL_STATS} (full sequence)")


def real_lengths(shared_dir: Path, max_rows: int | None = None) -> Lengths:
    """Lengths of the real validation rows as SFTTrainer tokenises them (Qwen3 tokenizer, non-thinking template)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from fine_tune.data.loading import load_medmcqa
    from fine_tune.data.validation import validate_rows
    from fine_tune.task.prompts import sft_example

    tokenizer = AutoTokenizer.from_pretrained(str(shared_dir / "tokenizers" / "qwen3"))
    rows = load_medmcqa(str(shared_dir / "data" / "medmcqa" / "validation.jsonl"))
    valid = validate_rows(rows).valid_indices
    rows = rows.select(valid[:max_rows] if max_rows else valid)
    tokenized = sft_token_dataset(Dataset.from_list([sft_example(row) for row in rows]), tokenizer)
    full = np.array([len(ids) for ids in tokenized["input_ids"]])
    completion = np.array([sum(label != -100 for label in labels) for labels in tokenized["labels"]])
    return Lengths(
        full, completion, f"real: {len(full)} MedMCQA validation rows, Qwen3 tokenizer, SFTTrainer tokenisation"
    )


def sft_token_dataset(dataset, tokenizer):
    """SFTTrainer's own tokenisation of conversational prompt/completion rows (`input_ids`, `labels` with the prompt
    at -100), through a real SFTTrainer around a throwaway one-layer model."""
    from transformers import AutoModelForCausalLM, Qwen3Config
    from trl import SFTTrainer

    from fine_tune.recipes.trainer_configs import MedSFTConfig

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = MedSFTConfig(output_dir=tmp, report_to="none", precision="fp32", max_length=None)
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_config(config),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    return trainer.train_dataset


# ---------------------------------------------------------------------------------------------------------------
# Padding efficiency of batching strategies, simulated over a whole training schedule.
# ---------------------------------------------------------------------------------------------------------------

STRATEGIES = ("pad_to_longest_random", "group_by_length", "batch_rebalance", "padding_free")


def schedule_micro_batches(
    lengths: Sequence[int], strategy: str, micro_batch: int, grad_accum: int, steps: int, seed: int = 42
) -> list[list[int]]:
    """Row indices of every micro-batch of `steps` optimizer steps, drawn as transformers' samplers draw them."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler, get_length_grouped_indices

    lengths = [int(x) for x in lengths]
    wanted = steps * grad_accum
    out: list[list[int]] = []
    epoch = 0
    while len(out) < wanted:
        generator = torch.Generator().manual_seed(seed + epoch)
        if strategy in ("pad_to_longest_random", "padding_free"):
            order = torch.randperm(len(lengths), generator=generator).tolist()
            out += [order[i : i + micro_batch] for i in range(0, len(order), micro_batch)]
        elif strategy == "group_by_length":
            order = get_length_grouped_indices(lengths, micro_batch * grad_accum, generator=generator)
            out += [order[i : i + micro_batch] for i in range(0, len(order), micro_batch)]
        elif strategy == "batch_rebalance":
            sampler = BatchRebalanceSampler(
                lengths, micro_batch * grad_accum, dp_size=1, grad_accum=grad_accum, seed=seed, drop_last=False
            )
            sampler.set_epoch(epoch)
            out += [list(batch) for batch in sampler]
        else:
            raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")
        epoch += 1
    return out[:wanted]


def batch_tokens(lengths: Sequence[int], batch: Sequence[int], padding_free: bool) -> dict[str, int]:
    """Real and processed tokens and attention pairs of one micro-batch (padding-free with SDPA: one packed row whose
    block-diagonal mask is dense, so attention is computed over the whole packed square)."""
    sizes = [int(lengths[i]) for i in batch]
    real = sum(sizes)
    real_pairs = sum(s * s for s in sizes)
    if padding_free:
        return {"real": real, "processed": real, "real_pairs": real_pairs, "processed_pairs": real * real}
    longest = max(sizes)
    return {
        "real": real,
        "processed": len(sizes) * longest,
        "real_pairs": real_pairs,
        "processed_pairs": len(sizes) * longest * longest,
    }


def padding_efficiency(
    lengths: Lengths, micro_batch: int, grad_accum: int, steps: int, seed: int = 42
) -> dict[str, dict[str, Any]]:
    """Real / processed tokens of each strategy over `steps` optimizer steps of the configured batch shape."""
    out = {}
    for strategy in STRATEGIES:
        batches = schedule_micro_batches(lengths.full, strategy, micro_batch, grad_accum, steps, seed)
        totals = {"real": 0, "processed": 0, "real_pairs": 0, "processed_pairs": 0}
        for batch in batches:
            for key, value in batch_tokens(lengths.full, batch, strategy == "padding_free").items():
                totals[key] += value
        out[strategy] = {
            "padding_efficiency": round(totals["real"] / totals["processed"], 4),
            "attention_efficiency": round(totals["real_pairs"] / totals["processed_pairs"], 4),
            "real_tokens_per_step": round(totals["real"] / steps, 1),
            "processed_tokens_per_step": round(totals["processed"] / steps, 1),
            "sequences_per_step": round(sum(len(b) for b in batches) / steps, 2),
        }
    return out


def step_flops(
    lengths: Lengths,
    cost: TrainingCost,
    strategy: str,
    micro_batch: int,
    grad_accum: int,
    steps: int,
    seed: int = 42,
    scored: str = "completion",
) -> dict[str, float]:
    """Mean processed and model FLOPs per optimizer step over a schedule (`scored`: "completion" on CUDA, "all" on
    CPU, where TRL's fused head scores every position)."""
    batches = schedule_micro_batches(lengths.full, strategy, micro_batch, grad_accum, steps, seed)
    processed = model = 0.0
    model_cost = cost.model()
    for batch in batches:
        counts = batch_tokens(lengths.full, batch, strategy == "padding_free")
        trained = float(sum(int(lengths.completion[i]) for i in batch))
        positions = trained if scored == "completion" else counts["processed"]
        processed += cost.flops(counts["processed"], counts["processed_pairs"], positions)
        model += model_cost.flops(counts["real"], counts["real_pairs"], trained)
    return {"processed_flops_per_step": processed / steps, "model_flops_per_step": model / steps}


# ---------------------------------------------------------------------------------------------------------------
# Measurement helpers.
# ---------------------------------------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory over a block: CUDA allocator peak on a GPU, sampled process RSS (every 10 ms) on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss() -> int:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = self.rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(self.peak, self.rss())

    @property
    def kind(self) -> str:
        return "cuda_max_memory_allocated" if self.device.type == "cuda" else "process_rss_sampled"


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def lora_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "r": int(config.get("lora_r", 16)),
        "alpha": int(config.get("lora_alpha", 32)),
        "dropout": float(config.get("lora_dropout", 0.05)),
        "targets": tuple(config.get("lora_target_modules") or ("q_proj", "k_proj", "v_proj", "o_proj")),
    }


def lora_config(settings: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=list(settings["targets"]),
        task_type="CAUSAL_LM",
    )


# ---------------------------------------------------------------------------------------------------------------
# Benchmark settings per mode.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    mode: str
    length_rows: int | None  # rows whose lengths are measured (None: all 4,183 validation rows)
    sft_rows: int
    sft_variants: tuple[str, ...]
    sft_rounds: int
    sft_warmup_steps: int
    sft_steps: int
    simulation_steps: int | None  # None: the configured max_steps
    eval_prompts: int
    eval_max_new_tokens: int
    eval_batch_sizes: tuple[int, ...]
    eval_rounds: int
    grpo_variants: tuple[str, ...]
    grpo_warmup_steps: int
    grpo_steps: int
    grpo_max_completion_length: int | None  # None: as configured
    grpo_micro_batch: int | None  # None: as configured
    grpo_grad_accum: int | None
    overhead_decode_tokens: int
    overhead_repeats: int
    flop_check_len: int


SFT_VARIANTS: dict[str, dict[str, Any]] = {
    # name: overrides of the configured SFT arguments (activation checkpointing as configured unless named)
    "pad_to_longest_random": {"train_sampling_strategy": "random"},
    "group_by_length": {"train_sampling_strategy": "group_by_length"},
    "batch_rebalance": {"train_sampling_strategy": "batch_rebalance"},
    "padding_free": {"train_sampling_strategy": "random", "padding_free": True, "max_length": None},
    "padding_free_no_checkpointing": {
        "train_sampling_strategy": "random",
        "padding_free": True,
        "max_length": None,
        "activation_checkpointing": False,
    },
    "batch_rebalance_no_checkpointing": {
        "train_sampling_strategy": "batch_rebalance",
        "activation_checkpointing": False,
    },
    "eager_attention": {"train_sampling_strategy": "random", "attn_implementation": "eager"},
}
GRPO_VARIANTS: dict[str, dict[str, Any]] = {
    "as_configured": {},
    "no_checkpointing": {"activation_checkpointing": False},
}

MODES: dict[str, Settings] = {
    "smoke": Settings(
        mode="smoke",
        length_rows=400,
        sft_rows=64,
        sft_variants=("pad_to_longest_random", "padding_free"),
        sft_rounds=1,
        sft_warmup_steps=1,
        sft_steps=1,
        simulation_steps=100,
        eval_prompts=4,
        eval_max_new_tokens=6,
        eval_batch_sizes=(4,),
        eval_rounds=1,
        grpo_variants=("as_configured",),
        grpo_warmup_steps=0,
        grpo_steps=1,
        grpo_max_completion_length=8,
        grpo_micro_batch=2,
        grpo_grad_accum=2,
        overhead_decode_tokens=3,
        overhead_repeats=1,
        flop_check_len=64,
    ),
    "quick": Settings(
        mode="quick",
        length_rows=None,
        sft_rows=1000,
        sft_variants=("pad_to_longest_random", "group_by_length", "batch_rebalance", "padding_free"),
        sft_rounds=2,
        sft_warmup_steps=1,
        sft_steps=3,
        simulation_steps=None,
        eval_prompts=16,
        eval_max_new_tokens=32,
        eval_batch_sizes=(16,),
        eval_rounds=2,
        grpo_variants=("as_configured",),
        grpo_warmup_steps=1,
        grpo_steps=2,
        grpo_max_completion_length=64,
        grpo_micro_batch=None,
        grpo_grad_accum=None,
        overhead_decode_tokens=12,
        overhead_repeats=3,
        flop_check_len=256,
    ),
    "full": Settings(
        mode="full",
        length_rows=None,
        sft_rows=1000,
        sft_variants=tuple(SFT_VARIANTS),
        sft_rounds=4,
        sft_warmup_steps=1,
        sft_steps=8,
        simulation_steps=None,
        eval_prompts=64,
        eval_max_new_tokens=64,
        eval_batch_sizes=(16, 32),
        eval_rounds=3,
        grpo_variants=tuple(GRPO_VARIANTS),
        grpo_warmup_steps=1,
        grpo_steps=6,
        grpo_max_completion_length=None,
        grpo_micro_batch=None,
        grpo_grad_accum=None,
        overhead_decode_tokens=24,
        overhead_repeats=9,
        flop_check_len=256,
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Models: the tiny model (CPU) and a random-init model of Qwen3-0.6B's exact shape (GPU).
# ---------------------------------------------------------------------------------------------------------------


def qwen3_0_6b_config(vocab_size: int | None = None, pad_token_id: int | None = None, eos_token_id: int | None = None):
    from transformers import Qwen3Config

    values = {**QWEN3_0_6B, "vocab_size": vocab_size or QWEN3_0_6B["vocab_size"]}
    return Qwen3Config(**values, pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=None)


QWEN3_0_6B_SHAPE = ModelShape.from_config(qwen3_0_6b_config(), name="Qwen3-0.6B")


@dataclass
class ModelSource:
    """How a benchmark builds a fresh copy of its model: from a saved folder, or random-init from a config."""

    name: str
    tokenizer_dir: str
    model_dir: str | None = None
    config: Any = None

    def build(self, dtype: torch.dtype, seed: int = 0, attn_implementation: str = "sdpa"):
        from transformers import AutoModelForCausalLM

        if self.model_dir is not None:
            return AutoModelForCausalLM.from_pretrained(
                self.model_dir, dtype=dtype, attn_implementation=attn_implementation
            )
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(self.config, dtype=dtype, attn_implementation=attn_implementation)

    def shape(self) -> ModelShape:
        from transformers import AutoConfig

        config = self.config if self.config is not None else AutoConfig.from_pretrained(self.model_dir)
        return ModelShape.from_config(config, name=self.name)


def tiny_source(work_dir: Path, tokenizer_dir: Path | None = None, name: str = "tiny") -> ModelSource:
    from fine_tune.models.tiny import build_tiny_model

    out = work_dir / name
    if not (out / "config.json").is_file():
        build_tiny_model(out, tokenizer_source=str(tokenizer_dir) if tokenizer_dir else None, seed=0)
    return ModelSource(name=name, tokenizer_dir=str(out), model_dir=str(out))


def qwen3_shape_source(tokenizer_dir: str) -> ModelSource:
    """Qwen3-0.6B's exact shape (random init); the real vocabulary when the tokenizer is the real one."""
    from fine_tune.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    real_vocabulary = len(tokenizer) > 100_000
    # With a small stand-in tokenizer the vocabulary shrinks to it, so every generated id decodes
    vocab = QWEN3_0_6B["vocab_size"] if real_vocabulary else len(tokenizer)
    config = qwen3_0_6b_config(vocab, tokenizer.pad_token_id, tokenizer.eos_token_id)
    name = "qwen3-0.6b-shape (random init)" + ("" if real_vocabulary else f", vocabulary {vocab}")
    return ModelSource(name=name, tokenizer_dir=tokenizer_dir, config=config)


# ---------------------------------------------------------------------------------------------------------------
# SFT.
# ---------------------------------------------------------------------------------------------------------------


class TokenMeter:
    """Real / processed / trained tokens and model FLOPs of every training micro-batch SFTTrainer computes."""

    def __init__(self, cost: TrainingCost):
        self.cost = cost.model()
        self.real = self.processed = self.trained = self.sequences = 0
        self.model_flops = 0.0

    def add(self, inputs: dict[str, Any]) -> None:
        ids, labels = inputs["input_ids"], inputs["labels"]
        self.processed += ids.numel()
        if "attention_mask" in inputs:
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            trained = (labels[:, 1:] != -100).sum(dim=1).tolist()
        else:  # padding-free: one packed row, sequence boundaries in cu_seq_lens_q
            bounds = inputs["cu_seq_lens_q"].tolist()
            lengths = [end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
            flat = labels[0]
            trained = [
                int((flat[start + 1 : end] != -100).sum()) for start, end in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        for length, count in zip(lengths, trained, strict=True):
            self.real += int(length)
            self.trained += int(count)
            self.sequences += 1
            self.model_flops += self.cost.flops(length, length * length, count)

    def snapshot(self) -> dict[str, float]:
        return {
            "real": self.real,
            "processed": self.processed,
            "trained": self.trained,
            "sequences": self.sequences,
            "model_flops": self.model_flops,
        }


def metered_sft_trainer_class():
    from trl import SFTTrainer

    class MeteredSFTTrainer(SFTTrainer):
        meter: TokenMeter | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.meter is not None and model.training:
                self.meter.add(inputs)
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return MeteredSFTTrainer


def step_clock(device: torch.device, snapshot: Callable[[], dict[str, float]]):
    """A TrainerCallback that marks (time, counters) at train begin and after every optimizer step."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, dict[str, float]]] = []

        def mark(self) -> None:
            synchronize(device)
            self.marks.append((time.perf_counter(), snapshot()))

        def on_train_begin(self, args, state, control, **kwargs):
            self.mark()

        def on_step_end(self, args, state, control, **kwargs):
            self.mark()

        def steps(self, skip: int) -> list[dict[str, float]]:
            out = []
            for (t0, c0), (t1, c1) in zip(self.marks[:-1], self.marks[1:], strict=True):
                out.append({"seconds": t1 - t0, **{key: c1[key] - c0[key] for key in c1}})
            return out[skip:]

    return StepClock()


def sft_training_rows(lengths: Lengths, n_rows: int, vocab_size: int, seed: int = 0) -> list[dict[str, Any]]:
    """Pre-tokenised SFT rows whose lengths are `n_rows` draws from the length distribution; token ids are random
    (a random-init model learns nothing either way; only the shapes matter)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(lengths.full), size=n_rows, replace=n_rows > len(lengths.full))
    rows = []
    for index in picks:
        total, trained = int(lengths.full[index]), int(lengths.completion[index])
        rows.append(
            {
                "input_ids": rng.integers(16, vocab_size, total).tolist(),
                "completion_mask": [0] * (total - trained) + [1] * trained,
            }
        )
    return rows


SFT_ARG_KEYS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_length",
    "activation_checkpointing",
    "padding_free",
    "train_sampling_strategy",
    "seed",
    "precision",
)


def sft_args(config: dict[str, Any], overrides: dict[str, Any], output_dir: str, max_steps: int, device: torch.device):
    from fine_tune.recipes.trainer_configs import MedSFTConfig

    values = {key: config[key] for key in SFT_ARG_KEYS if key in config}
    values.update(overrides)
    values.update(
        output_dir=output_dir,
        max_steps=max_steps,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if device.type == "cpu":
        values["precision"] = "fp32"
    return MedSFTConfig(**values)


def run_sft_variant(
    source: ModelSource,
    dataset,
    config: dict[str, Any],
    variant: str,
    settings: Settings,
    device: torch.device,
    cost: TrainingCost,
) -> dict[str, Any]:
    """One training run of `warmup + steps` optimizer steps; the measured steps' figures."""
    from fine_tune.models.loading import load_tokenizer
    from fine_tune.models.precision import resolve_precision
    from fine_tune.train.common import training_dtype

    overrides = dict(SFT_VARIANTS[variant])
    attn_implementation = overrides.pop("attn_implementation", "sdpa")
    with tempfile.TemporaryDirectory() as tmp:
        args = sft_args(config, overrides, tmp, settings.sft_warmup_steps + settings.sft_steps, device)
        precision = resolve_precision(args.precision)
        model = source.build(training_dtype(precision, use_peft=True), attn_implementation=attn_implementation)
        tokenizer = load_tokenizer(source.tokenizer_dir)
        meter = TokenMeter(TrainingCost(cost.shape, cost.lora_rank, cost.lora_targets, args.activation_checkpointing))
        clock = step_clock(device, meter.snapshot)
        trainer = metered_sft_trainer_class()(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora_config(lora_settings(config)),
            callbacks=[clock],
        )
        trainer.meter = meter
        with PeakMemory(device) as memory:
            trainer.train()
        steps = clock.steps(skip=settings.sft_warmup_steps)
        del trainer, model
    return {"steps": steps, "peak_memory_bytes": memory.peak, "memory_kind": memory.kind}


def summarise_sft(runs: list[dict[str, Any]], peak_flops: float) -> dict[str, Any]:
    steps = [step for run in runs for step in run["steps"]]
    seconds = [s["seconds"] for s in steps]
    real = sum(s["real"] for s in steps)
    processed = sum(s["processed"] for s in steps)
    model_flops_per_s = median([s["model_flops"] / s["seconds"] for s in steps])
    return {
        "steps_measured": len(steps),
        "seconds_per_step_median": median(seconds),
        "seconds_per_step_all": [round(x, 4) for x in seconds],
        "real_tokens_per_s": median([s["real"] / s["seconds"] for s in steps]),
        "processed_tokens_per_s": median([s["processed"] / s["seconds"] for s in steps]),
        "padding_efficiency_measured": real / processed if processed else None,
        "sequences_per_step": sum(s["sequences"] for s in steps) / len(steps) if steps else None,
        "model_flops_per_s": model_flops_per_s,
        "mfu": model_flops_per_s / peak_flops if model_flops_per_s and peak_flops else None,
        "peak_memory_bytes": max(run["peak_memory_bytes"] for run in runs),
        "memory_kind": runs[0]["memory_kind"],
    }


def benchmark_sft(
    source: ModelSource,
    lengths: Lengths,
    config: dict[str, Any],
    settings: Settings,
    device: torch.device,
    peak_flops: float,
) -> dict[str, Any]:
    """Interleaved rounds of every variant (A B C A B C ...) so that load from other processes hits all alike."""
    from datasets import Dataset

    shape = source.shape()
    lora = lora_settings(config)
    cost = TrainingCost(shape, lora["r"], lora["targets"])
    dataset = Dataset.from_list(sft_training_rows(lengths, settings.sft_rows, shape.vocab_size))
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in settings.sft_variants}
    for round_index in range(settings.sft_rounds):
        for variant in settings.sft_variants:
            logger.info("SFT %s: %s, round %d/%d", source.name, variant, round_index + 1, settings.sft_rounds)
            runs[variant].append(run_sft_variant(source, dataset, config, variant, settings, device, cost))
    variants = {
        variant: {**summarise_sft(r, peak_flops), "overrides": _jsonable(SFT_VARIANTS[variant])}
        for variant, r in runs.items()
    }
    baseline = variants.get("pad_to_longest_random", {}).get("real_tokens_per_s")
    for summary in variants.values():
        rate = summary.get("real_tokens_per_s")
        summary["speedup_vs_pad_to_longest_random"] = rate / baseline if rate and baseline else None
    return {
        "model": source.name,
        "shape": asdict(shape),
        "rows": settings.sft_rows,
        "variants": variants,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def padded_vs_padding_free(source: ModelSource, rows: list[dict[str, Any]], lora: dict[str, Any]) -> dict[str, Any]:
    """Loss and LoRA gradients of one fixed batch through SFTTrainer padded and SFTTrainer(padding_free=True).

    The LoRA B factors are set to non-zero values (identical in both) so the adapters shape the loss; dropout is off.
    """
    from datasets import Dataset

    from fine_tune.models.loading import load_tokenizer

    dataset = Dataset.from_list(rows)
    out: dict[str, Any] = {}
    grads: dict[bool, dict[str, torch.Tensor]] = {}
    for padding_free in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            args = sft_args(
                {"per_device_train_batch_size": len(rows), "precision": "fp32"},
                {"padding_free": padding_free, "max_length": None},
                tmp,
                1,
                torch.device("cpu"),
            )
            model = source.build(torch.float32)
            trainer = metered_sft_trainer_class()(
                model=model,
                args=args,
                train_dataset=dataset,
                processing_class=load_tokenizer(source.tokenizer_dir),
                peft_config=lora_config({**lora, "dropout": 0.0}),
            )
            generator = torch.Generator().manual_seed(1)
            for name, param in sorted(trainer.model.named_parameters()):
                if "lora_B" in name:
                    with torch.no_grad():
                        param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
            trainer.model.train()
            trainer.model.zero_grad()
            loss = trainer.compute_loss(trainer.model, batch)
            loss.backward()
            key = "padding_free" if padding_free else "padded"
            out[f"loss_{key}"] = loss.item()
            out[f"shape_{key}"] = list(batch["input_ids"].shape)
            grads[padding_free] = {
                name: param.grad.detach().clone()
                for name, param in trainer.model.named_parameters()
                if param.grad is not None
            }
    out["abs_loss_difference"] = abs(out["loss_padded"] - out["loss_padding_free"])
    out["max_abs_grad_difference"] = max(
        float((grads[False][name] - grads[True][name]).abs().max()) for name in grads[False]
    )
    out["max_abs_grad"] = max(float(g.abs().max()) for g in grads[False].values())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Eval generation: batched vs one prompt at a time.
# ---------------------------------------------------------------------------------------------------------------


def eval_messages(shared_dir: Path | None, n: int) -> tuple[list[list[dict[str, str]]], str]:
    from fine_tune.task.prompts import prompt_messages

    if shared_dir is not None:
        from fine_tune.data.loading import load_medmcqa
        from fine_tune.data.validation import validate_rows

        rows = load_medmcqa(str(shared_dir / "data" / "medmcqa" / "validation.jsonl"))
        rows = rows.select(validate_rows(rows).valid_indices[:n])
        return [prompt_messages(row) for row in rows], "real MedMCQA validation rows"
    from fine_tune.data.synthetic import generate_rows

    return [prompt_messages(row) for row in generate_rows(n, seed=7)], "synthetic MedMCQA-schema rows"


def benchmark_eval(
    source: ModelSource,
    messages: list[list[dict[str, str]]],
    settings: Settings,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Any]:
    from fine_tune.evaluate.generation import generate_responses
    from fine_tune.models.loading import load_tokenizer

    model = source.build(dtype).to(device).eval()
    tokenizer = load_tokenizer(source.tokenizer_dir, padding_side="left")
    runs: dict[int, list[Any]] = {1: [], **{b: [] for b in settings.eval_batch_sizes}}

    def generate(batch_size: int):
        synchronize(device)
        result = generate_responses(
            model, tokenizer, messages, batch_size=batch_size, max_new_tokens=settings.eval_max_new_tokens
        )
        synchronize(device)
        return result

    generate(max(settings.eval_batch_sizes))  # warm-up
    for round_index in range(settings.eval_rounds):
        for batch_size in runs:
            logger.info("eval: batch size %d, round %d/%d", batch_size, round_index + 1, settings.eval_rounds)
            runs[batch_size].append(generate(batch_size))
    sequential = runs[1][0]
    identical = all(
        r.texts == sequential.texts and r.token_counts == sequential.token_counts and r.stopped == sequential.stopped
        for results in runs.values()
        for r in results
    )

    def summary(results) -> dict[str, Any]:
        seconds = median([r.seconds for r in results])
        return {
            "seconds_median": seconds,
            "seconds_all": [round(r.seconds, 4) for r in results],
            "generated_tokens": results[0].generated_tokens,
            "tokens_per_s": results[0].generated_tokens / seconds,
            "prompts_per_s": len(messages) / seconds,
        }

    out = {"sequential": summary(runs[1]), "batched": {str(b): summary(runs[b]) for b in settings.eval_batch_sizes}}
    best = max(
        settings.eval_batch_sizes,
        key=lambda b: out["sequential"]["seconds_median"] / out["batched"][str(b)]["seconds_median"],
    )
    for b in settings.eval_batch_sizes:
        out["batched"][str(b)]["speedup_vs_sequential"] = (
            out["sequential"]["seconds_median"] / out["batched"][str(b)]["seconds_median"]
        )
    prompt_lengths = [len(ids) for ids in tokenizer([m[-1]["content"] for m in messages])["input_ids"]]
    return {
        "model": source.name,
        "prompts": len(messages),
        "max_new_tokens": settings.eval_max_new_tokens,
        "stopped_early": sum(sequential.stopped),
        "user_message_tokens_mean": float(np.mean(prompt_lengths)),
        "sequential_loop": ("generate_responses(batch_size=1): one prompt per generate() call, as upstream"),
        **out,
        "best_batch_size": best,
        "speedup_vs_sequential": out["batched"][str(best)]["speedup_vs_sequential"],
        "outputs_identical": identical,
    }


# ---------------------------------------------------------------------------------------------------------------
# GRPO: seconds per step and the share spent generating.
# ---------------------------------------------------------------------------------------------------------------

GRPO_ARG_KEYS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_generations",
    "max_completion_length",
    "temperature",
    "beta",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "activation_checkpointing",
    "reward_weights",
    "chat_template_kwargs",
    "seed",
    "precision",
)


def timed_grpo_trainer_class():
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        generation_seconds = 0.0
        generated_tokens = 0

        def _generate_single_turn(self, *args, **kwargs):
            device = self.accelerator.device
            synchronize(device)
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            synchronize(device)
            self.generation_seconds += time.perf_counter() - start
            self.generated_tokens += sum(len(ids) for ids in out[0])
            return out

    return TimedGRPOTrainer


def grpo_args(config: dict[str, Any], overrides: dict[str, Any], settings: Settings, output_dir: str, device):
    from fine_tune.recipes.trainer_configs import MedGRPOConfig

    values = {key: config[key] for key in GRPO_ARG_KEYS if key in config}
    if settings.grpo_max_completion_length is not None:
        values["max_completion_length"] = settings.grpo_max_completion_length
    if settings.grpo_micro_batch is not None:
        values["per_device_train_batch_size"] = settings.grpo_micro_batch
    if settings.grpo_grad_accum is not None:
        values["gradient_accumulation_steps"] = settings.grpo_grad_accum
    values.update(overrides)
    values.update(
        output_dir=output_dir,
        max_steps=settings.grpo_warmup_steps + settings.grpo_steps,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        log_completions=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if device.type == "cpu":
        values["precision"] = "fp32"
    return MedGRPOConfig(**values)


def benchmark_grpo(
    source: ModelSource, config: dict[str, Any], settings: Settings, device: torch.device
) -> dict[str, Any]:
    from datasets import Dataset

    from fine_tune.data.synthetic import generate_rows
    from fine_tune.models.loading import load_tokenizer
    from fine_tune.models.precision import resolve_precision
    from fine_tune.task.prompts import grpo_example
    from fine_tune.task.rewards import get_reward_funcs
    from fine_tune.train.common import training_dtype

    names = config.get("reward_funcs") or ["json_validity_reward", "schema_compliance_reward", "accuracy_reward"]
    dataset = Dataset.from_list([grpo_example(row) for row in generate_rows(64, seed=11)])
    variants = {}
    for variant in settings.grpo_variants:
        logger.info("GRPO %s: %s", source.name, variant)
        with tempfile.TemporaryDirectory() as tmp:
            args = grpo_args(config, GRPO_VARIANTS[variant], settings, tmp, device)
            precision = resolve_precision(args.precision)
            trainer = timed_grpo_trainer_class()(
                model=source.build(training_dtype(precision, use_peft=True)),
                reward_funcs=get_reward_funcs(names),
                args=args,
                train_dataset=dataset,
                processing_class=load_tokenizer(source.tokenizer_dir, padding_side="left"),
                peft_config=lora_config(lora_settings(config)),
            )
            clock = step_clock(
                device,
                lambda t=trainer: {"generation_seconds": t.generation_seconds, "generated_tokens": t.generated_tokens},
            )
            trainer.add_callback(clock)
            with PeakMemory(device) as memory:
                trainer.train()
            steps = clock.steps(skip=settings.grpo_warmup_steps)
            seconds = sum(s["seconds"] for s in steps)
            generation = sum(s["generation_seconds"] for s in steps)
            variants[variant] = {
                "overrides": _jsonable(GRPO_VARIANTS[variant]),
                "steps_measured": len(steps),
                "seconds_per_step": median([s["seconds"] for s in steps]),
                "seconds_per_step_all": [round(s["seconds"], 4) for s in steps],
                "generation_seconds_per_step": generation / len(steps),
                "generation_share": generation / seconds if seconds else None,
                "generated_tokens_per_step": sum(s["generated_tokens"] for s in steps) / len(steps),
                "peak_memory_bytes": memory.peak,
                "memory_kind": memory.kind,
                "per_device_train_batch_size": args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "num_generations": args.num_generations,
                "generation_batch_size": args.generation_batch_size,
                "max_completion_length": args.max_completion_length,
                "activation_checkpointing": args.activation_checkpointing,
            }
            del trainer
    first = variants[settings.grpo_variants[0]]
    return {
        "model": source.name,
        "note": (
            "a random-init model rarely emits end-of-turn, so nearly every completion runs to max_completion_length: "
            "the generation share is the worst case"
        ),
        "variants": variants,
        "measured_seconds_per_step": first["seconds_per_step"],
        "generation_share": first["generation_share"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Host overhead: what a step costs beyond the device's arithmetic, measured on a narrow twin of Qwen3-0.6B (same
# 28 layers, heads and modules, width 64): at that width a step is nearly all framework dispatch (Python, ATen,
# kernel launches). On a GPU it is measured on the GPU; on the CPU it is the CPU-side cost a GPU host also pays.
# ---------------------------------------------------------------------------------------------------------------


def narrow_twin_config(shape: ModelShape):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=8,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=None,
    )


def _timed(device: torch.device, fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def measure_host_overhead(
    shape: ModelShape, lora: dict[str, Any], settings: Settings, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = narrow_twin_config(shape)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype).to(device).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    n = max(settings.overhead_decode_tokens, 2)
    repeats = settings.overhead_repeats

    def decode_step(net, batch: int, sample: bool) -> float:
        ids = torch.randint(1, 1024, (batch, 16), device=device)
        mask = torch.ones_like(ids)

        def run(tokens: int):
            with torch.inference_mode():
                net.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=tokens,
                    min_new_tokens=tokens,
                    do_sample=sample,
                    temperature=1.0 if sample else None,
                    top_p=None,
                    top_k=None,
                )

        whole = _timed(device, lambda: run(n), repeats)
        first = _timed(device, lambda: run(1), repeats)
        return max(whole - first, 0.0) / (n - 1)

    merged_b16 = decode_step(model, 16, sample=False)
    lora_model = get_peft_model(model, lora_config({**lora, "dropout": 0.05}))
    lora_b8 = decode_step(lora_model, 8, sample=True)

    lora_model.train()
    # One tiny micro-batch: at width 64 and 8 tokens the arithmetic is negligible and the time is dispatch
    batch = torch.randint(1, 1024, (1, 8), device=device)

    def train_micro_batch():
        out = lora_model(input_ids=batch, labels=batch, use_cache=False)
        out.loss.backward()

    micro = _timed(device, train_micro_batch, repeats)
    lora_model.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora_model.base_model.model.enable_input_require_grads()
    micro_checkpointed = _timed(device, train_micro_batch, repeats)
    optimizer = torch.optim.AdamW([p for p in lora_model.parameters() if p.requires_grad], lr=1e-4)

    def optimizer_step():
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    train_micro_batch()
    step = _timed(device, optimizer_step, repeats)
    return {
        "twin": (
            "Qwen3-0.6B's layers, heads and modules at width 64 (hidden 64, head_dim 8, intermediate 128, vocab 1024)"
        ),
        "device": device.type,
        "decode_step_seconds_batch16_merged_greedy": merged_b16,
        "decode_step_seconds_batch8_lora_sampled": lora_b8,
        "train_micro_batch_seconds_lora": micro,
        "train_micro_batch_seconds_lora_checkpointed": micro_checkpointed,
        "optimizer_step_seconds_lora": step,
    }


# ---------------------------------------------------------------------------------------------------------------
# The T4 projection of the real configs; hub/estimate.py reads t4_projection.<phase>.projected_t4_seconds_per_step.
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_T4_MFU = 0.30  # assumed share of the fp16 tensor-core peak a LoRA step of this size sustains on a T4
DEFAULT_T4_BANDWIDTH_EFFICIENCY = 0.75  # share of GDDR6 bandwidth a decode step's weight reads achieve
FP16_BYTES = 2


def sft_strategy(config: dict[str, Any]) -> str:
    if config.get("padding_free") or config.get("packing"):
        return "padding_free"
    return {"group_by_length": "group_by_length", "batch_rebalance": "batch_rebalance"}.get(
        str(config.get("train_sampling_strategy") or ""), "pad_to_longest_random"
    )


def project_sft_step(
    lengths: Lengths,
    config: dict[str, Any],
    overhead: dict[str, Any],
    *,
    strategy: str,
    recompute: bool,
    mfu: float,
    steps: int,
) -> dict[str, Any]:
    lora = lora_settings(config)
    micro, accum = int(config.get("per_device_train_batch_size", 4)), int(config.get("gradient_accumulation_steps", 4))
    cost = TrainingCost(QWEN3_0_6B_SHAPE, lora["r"], lora["targets"], recompute=recompute)
    flops = step_flops(lengths, cost, strategy, micro, accum, steps, scored="completion")
    peak = T4.peak_flops["fp16"]
    device_s = flops["processed_flops_per_step"] / (peak * mfu)
    micro_key = "train_micro_batch_seconds_lora_checkpointed" if recompute else "train_micro_batch_seconds_lora"
    host_s = accum * overhead[micro_key] + overhead["optimizer_step_seconds_lora"]
    return {
        "strategy": strategy,
        "activation_checkpointing": recompute,
        "micro_batch": micro,
        "gradient_accumulation_steps": accum,
        **flops,
        "device_seconds_per_step": device_s,
        "host_seconds_per_step": host_s,
        "physics_floor_seconds_per_step": flops["processed_flops_per_step"] / peak,
        "lower_bound_seconds_per_step": max(device_s, host_s),
        "seconds_per_step": device_s + host_s,
    }


def decode_seconds(
    steps: float, batch: int, context: float, overhead_step: float, bandwidth_efficiency: float, lora_bytes: int
) -> tuple[float, float]:
    """(device, host) seconds of `steps` decode steps of `batch` rows at mean context `context`: each step reads the
    fp16 weights and the KV cache once (memory-bandwidth bound at this size)."""
    shape = QWEN3_0_6B_SHAPE
    per_step_bytes = (
        shape.weight_bytes(FP16_BYTES) + lora_bytes + batch * context * shape.kv_bytes_per_token(FP16_BYTES)
    )
    device = steps * per_step_bytes / (T4.memory_bandwidth * bandwidth_efficiency)
    return device, steps * overhead_step


def expected_max(rng: np.random.Generator, values: np.ndarray, k: int, draws: int = 2000) -> float:
    return float(np.mean(rng.choice(values, size=(draws, k)).max(axis=1)))


def project_t4(
    lengths: Lengths,
    sft_config: dict[str, Any],
    grpo_config: dict[str, Any],
    eval_config: dict[str, Any],
    overhead: dict[str, Any],
    *,
    mfu: float = DEFAULT_T4_MFU,
    bandwidth_efficiency: float = DEFAULT_T4_BANDWIDTH_EFFICIENCY,
    simulation_steps: int | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Seconds per optimizer step (SFT, GRPO) and per scored question (eval) of the configs on a T4 in fp16.

    Device time = counted FLOPs / (65 TFLOP/s x assumed MFU) for training and prefill, bytes read / (320 GB/s x
    assumed efficiency) for decode steps; host time = the narrow twin's measured dispatch cost. The projection used
    for job timeouts adds the two (no overlap) and, for generation, decodes to the length cap every time.
    """
    rng = np.random.default_rng(0)
    shape = QWEN3_0_6B_SHAPE
    sft_steps = int(sft_config.get("max_steps", 800))
    sim_steps = simulation_steps or sft_steps
    configured = project_sft_step(
        lengths,
        sft_config,
        overhead,
        strategy=sft_strategy(sft_config),
        recompute=bool(sft_config.get("activation_checkpointing", False)),
        mfu=mfu,
        steps=sim_steps,
    )
    scenarios = {
        f"{strategy}, checkpointing {'on' if recompute else 'off'}": project_sft_step(
            lengths, sft_config, overhead, strategy=strategy, recompute=recompute, mfu=mfu, steps=sim_steps
        )
        for strategy in STRATEGIES
        for recompute in (True, False)
    }
    sft = {
        "phase": "sft",
        "kind": "projected",
        "projected_t4_seconds_per_step": round(configured["seconds_per_step"], 4),
        "unit": "optimizer step",
        "steps": sft_steps,
        "projected_total_seconds": round(configured["seconds_per_step"] * sft_steps, 1),
        "as_configured": configured,
        "mfu_sensitivity": {
            str(value): round(
                project_sft_step(
                    lengths,
                    sft_config,
                    overhead,
                    strategy=configured["strategy"],
                    recompute=configured["activation_checkpointing"],
                    mfu=value,
                    steps=sim_steps,
                )["seconds_per_step"],
                4,
            )
            for value in (0.15, 0.3, 0.45)
        },
        "scenarios": {
            name: {**s, "total_seconds": s["seconds_per_step"] * sft_steps} for name, s in scenarios.items()
        },
        "memory": memory,
    }

    # GRPO: one generation batch per optimizer step (steps_per_generation = gradient_accumulation_steps)
    g_micro = int(grpo_config.get("per_device_train_batch_size", 2))
    g_accum = int(grpo_config.get("gradient_accumulation_steps", 4))
    generations = int(grpo_config.get("num_generations", 4))
    completions = g_micro * g_accum
    prompts = max(completions // generations, 1)
    cap = int(grpo_config.get("max_completion_length", 256))
    g_lora = lora_settings(grpo_config)
    lora_bytes = shape.lora_params(g_lora["r"], g_lora["targets"]) * 4
    prompt_max = expected_max(rng, lengths.prompt, prompts)
    typical_decode = min(expected_max(rng, lengths.completion, completions), cap)
    recompute = bool(grpo_config.get("activation_checkpointing", False))
    train_cost = TrainingCost(shape, g_lora["r"], g_lora["targets"], recompute=recompute)
    prefill_cost = 2 * (shape.backbone_linear_params + shape.lm_head_params / max(prompt_max, 1))
    peak = T4.peak_flops["fp16"]

    def grpo_step(decode_steps: float) -> dict[str, float]:
        prefill_flops = completions * (prompt_max * prefill_cost + 4 * shape.attention_coefficient * prompt_max**2)
        prefill = prefill_flops / (peak * mfu)
        dev, host = decode_seconds(
            decode_steps,
            completions,
            prompt_max + decode_steps / 2,
            overhead["decode_step_seconds_batch8_lora_sampled"],
            bandwidth_efficiency,
            lora_bytes,
        )
        length = prompt_max + decode_steps
        train_flops = train_cost.flops(completions * length, completions * length**2, completions * decode_steps)
        micro_key = "train_micro_batch_seconds_lora_checkpointed" if recompute else "train_micro_batch_seconds_lora"
        train_device = train_flops / (peak * mfu)
        train_host = g_accum * overhead[micro_key] + overhead["optimizer_step_seconds_lora"]
        generation = prefill + dev + host
        train = train_device + train_host
        return {
            "decode_steps": decode_steps,
            "generation_seconds": generation,
            "generation_device_seconds": prefill + dev,
            "generation_host_seconds": host,
            "train_seconds": train,
            "seconds_per_step": generation + train,
            "lower_bound_seconds_per_step": max(prefill + dev, host) + max(train_device, train_host),
            "generation_share": generation / (generation + train),
        }

    grpo_cap = grpo_step(cap)
    grpo_typical = grpo_step(typical_decode)
    grpo_steps = int(grpo_config.get("max_steps", 400))
    grpo = {
        "phase": "grpo",
        "kind": "projected",
        "projected_t4_seconds_per_step": round(grpo_cap["seconds_per_step"], 4),
        "unit": "optimizer step",
        "steps": grpo_steps,
        "projected_total_seconds": round(grpo_cap["seconds_per_step"] * grpo_steps, 1),
        "completions_per_step": completions,
        "prompts_per_step": prompts,
        "max_completion_length": cap,
        "every_completion_to_the_cap": grpo_cap,
        "typical_completions": {
            **grpo_typical,
            "note": "8 completions drawn from the target lengths; the step waits for the longest",
        },
        "activation_checkpointing": recompute,
    }

    # Eval: batches of `batch_size` prompts sorted by length, greedy, merged weights
    batch = int(eval_config.get("batch_size", 16))
    new_tokens = int(eval_config.get("max_new_tokens", 256))
    prompt_mean = float(np.mean(lengths.prompt))

    def eval_question(decode_steps: float) -> dict[str, float]:
        prefill = (
            batch * (prompt_mean * prefill_cost + 4 * shape.attention_coefficient * prompt_mean**2) / (peak * mfu)
        )
        dev, host = decode_seconds(
            decode_steps,
            batch,
            prompt_mean + decode_steps / 2,
            overhead["decode_step_seconds_batch16_merged_greedy"],
            bandwidth_efficiency,
            0,
        )
        return {
            "decode_steps": decode_steps,
            "seconds_per_batch": prefill + dev + host,
            "seconds_per_question": (prefill + dev + host) / batch,
        }

    eval_cap = eval_question(new_tokens)
    evaluation = {
        "phase": "eval",
        "kind": "projected",
        "projected_t4_seconds_per_step": round(eval_cap["seconds_per_question"], 4),
        "unit": "question (one model)",
        "batch_size": batch,
        "max_new_tokens": new_tokens,
        "every_answer_to_the_cap": eval_cap,
        "typical_answers": eval_question(min(expected_max(rng, lengths.completion, batch), new_tokens)),
    }
    return {
        "device": T4.name,
        "precision": "fp16 (T4 has no bf16 tensor cores)",
        "peak_flops": peak,
        "memory_bandwidth": T4.memory_bandwidth,
        "assumed_mfu": mfu,
        "assumed_bandwidth_efficiency": bandwidth_efficiency,
        "host_overhead_source": overhead.get("device"),
        "method": (
            "training/prefill: counted FLOPs / (peak x assumed MFU); decode: (fp16 weights + KV cache bytes) / "
            "(bandwidth x efficiency) per step; plus the narrow twin's measured host dispatch time, added (no "
            "overlap) for projected_t4_seconds_per_step; generation decodes to the length cap every time"
        ),
        "lengths": lengths.source,
        "sft": sft,
        "grpo": grpo,
        "eval": evaluation,
    }


def t4_memory_estimate(lengths: Lengths, config: dict[str, Any]) -> dict[str, Any]:
    """Peak training memory of the SFT config on a T4 without activation checkpointing, for the worst micro-batch:
    `micro_batch` sequences padded to the longest row (the real one, or the train split's 876 tokens if longer)."""
    shape = QWEN3_0_6B_SHAPE
    lora = lora_settings(config)
    micro = int(config.get("per_device_train_batch_size", 4))
    longest = max(int(lengths.full.max()), int(SYNTHETIC_FULL_STATS["max"]))
    saved = activation_bytes(shape, micro, longest, lora["r"], lora["targets"], torch.float16)
    mask = micro * longest * longest  # SDPA's boolean 4D padding mask, built once per forward
    weights = shape.weight_bytes(FP16_BYTES)  # tied embedding counted once
    lora_state = shape.lora_params(lora["r"], lora["targets"]) * 16  # fp32 weights, grads, Adam m and v
    trained = micro * int(lengths.completion.max())
    head_workspace = trained * 32_768 * 4 * 3  # TRL's fused head: fp32 logit chunks of 32,768 vocab entries
    total = weights + lora_state + saved["activations"] + mask + head_workspace
    return {
        "micro_batch": micro,
        "worst_sequence_tokens": longest,
        "weights_bytes": weights,
        "lora_state_bytes": lora_state,
        "activation_bytes_no_checkpointing": saved["activations"],
        "attention_mask_bytes": mask,
        "math_path_score_bytes_not_counted": saved["square"],
        "lm_head_workspace_bytes": head_workspace,
        "total_bytes": total,
        "t4_memory_bytes": T4.memory_bytes,
        "fits_without_checkpointing": total < 0.8 * T4.memory_bytes,
        "method": (
            "every tensor autograd saves in the backbone for the worst micro-batch (fp16, meta device, deduplicated "
            "by storage); T x T score tensors of the math attention path are left out (SDPA's memory-efficient "
            "kernel, the one a T4 runs, saves none) and listed apart; plus weights, LoRA optimizer state, the "
            "padding mask and TRL's chunked LM-head workspace. Fits: under 80% of the T4's 16 GB"
        ),
    }


# ---------------------------------------------------------------------------------------------------------------
# The whole benchmark.
# ---------------------------------------------------------------------------------------------------------------

SECTIONS = ("sft", "eval", "grpo", "projection")


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, got {requested!r}")
    return torch.device(requested)


def output_stem(device: dict[str, Any], mode: str) -> str:
    if device["type"] == "cuda":
        name = "".join(ch if ch.isalnum() else "-" for ch in device["name"].lower()).strip("-")
        stem = f"cuda-{'-'.join(part for part in name.split('-') if part)}"
    else:
        stem = "cpu"
    return stem if mode == "full" else f"{stem}-{mode}"


@contextlib.contextmanager
def _phase(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 1)


def run_benchmark(
    mode: str = "quick",
    device: str = "cpu",
    shared_dir: Path | None = DEFAULT_SHARED_DIR,
    work_dir: Path | None = None,
    t4_mfu: float = DEFAULT_T4_MFU,
    sections: Sequence[str] = SECTIONS,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its result (nothing written; see `write_outputs`)."""
    from fine_tune.models.precision import resolve_precision
    from fine_tune.train.acceleration import VLLM_EXTRA_HINT, resolve_use_kernels, resolve_use_vllm

    settings = MODES[mode]
    torch_device = resolve_device(device)
    shared_dir = shared_dir if shared_dir is not None and (shared_dir / "data" / "medmcqa").is_dir() else None
    precision = resolve_precision("auto") if torch_device.type == "cuda" else resolve_precision("fp32")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sft_config, grpo_config, eval_config = load_yaml(SFT_CONFIG), load_yaml(GRPO_CONFIG), load_yaml(EVAL_CONFIG)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(argv) if argv is not None else None,
        "versions": library_versions(),
        "settings": asdict(settings),
        "config": {
            "sft": {
                k: sft_config.get(k)
                for k in (*SFT_ARG_KEYS, "max_steps", "lora_r", "lora_alpha", "lora_target_modules")
            },
            "grpo": {k: grpo_config.get(k) for k in (*GRPO_ARG_KEYS, "max_steps", "lora_r", "lora_target_modules")},
            "eval": {k: eval_config.get(k) for k in ("batch_size", "max_new_tokens", "precision")},
        },
        "flops": {"formula": FLOPS_FORMULA},
        "accelerators": {
            "use_vllm_auto": asdict(resolve_use_vllm("auto")),
            "vllm_extra": VLLM_EXTRA_HINT,
            "use_kernels_auto": asdict(resolve_use_kernels("auto")),
            "attn_implementation": "sdpa",
        },
    }
    with _phase(timings, "device"):
        result["device"] = describe_device(torch_device, precision.name)
    peak = result["device"]["peak_flops"]

    with _phase(timings, "lengths"):
        if shared_dir is not None:
            lengths = real_lengths(shared_dir, settings.length_rows)
        else:
            lengths = synthetic_lengths(settings.length_rows or SYNTHETIC_ROWS)
        result["lengths"] = lengths.stats()
        sft_lora = lora_settings(sft_config)
        micro = int(sft_config.get("per_device_train_batch_size", 4))
        accum = int(sft_config.get("gradient_accumulation_steps", 4))
        sim_steps = settings.simulation_steps or int(sft_config.get("max_steps", 800))
        simulated = padding_efficiency(lengths, micro, accum, sim_steps)

    with _phase(timings, "flop_check"):
        result["flops"]["qwen3_0_6b"] = {
            "shape": asdict(QWEN3_0_6B_SHAPE),
            "backbone_linear_params": QWEN3_0_6B_SHAPE.backbone_linear_params,
            "lm_head_params": QWEN3_0_6B_SHAPE.lm_head_params,
            "lora_params": QWEN3_0_6B_SHAPE.lora_params(sft_lora["r"], sft_lora["targets"]),
            "lora_training_flops_per_token_at_mean_length": TrainingCost(
                QWEN3_0_6B_SHAPE, sft_lora["r"], sft_lora["targets"]
            ).flops(1, float(lengths.full.mean()), float(lengths.completion.mean() / lengths.full.mean())),
            "flop_counter_check": flop_check(
                QWEN3_0_6B_SHAPE, settings.flop_check_len, sft_lora["r"], sft_lora["targets"]
            ),
        }

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        tiny = tiny_source(work)
        real_tokenizer = shared_dir / "tokenizers" / "qwen3" if shared_dir is not None else None

        if "sft" in sections:
            with _phase(timings, "sft"):
                sft: dict[str, Any] = {
                    "padding_efficiency": {k: v["padding_efficiency"] for k, v in simulated.items()},
                    "simulation": {
                        "steps": sim_steps,
                        "micro_batch": micro,
                        "gradient_accumulation_steps": accum,
                        "strategies": simulated,
                        "note": (
                            "padding_free with SDPA packs each micro-batch into one row; its block-diagonal mask is "
                            "dense, so attention_efficiency counts the whole packed square (flash-attention varlen "
                            "kernels would skip it; they do not run on a T4)"
                        ),
                    },
                    "exactness": padded_vs_padding_free(
                        tiny, sft_training_rows(lengths, 4, tiny.shape().vocab_size, seed=3), sft_lora
                    ),
                }
                sft["tiny_cpu" if torch_device.type == "cpu" else "tiny"] = benchmark_sft(
                    tiny, lengths, sft_config, settings, torch_device, peak
                )
                if torch_device.type == "cuda":
                    source = qwen3_shape_source(str(real_tokenizer or tiny.tokenizer_dir))
                    sft["qwen3_0_6b_gpu"] = benchmark_sft(source, lengths, sft_config, settings, torch_device, peak)
                else:
                    sft["qwen3_0_6b_gpu"] = None
                    sft["qwen3_0_6b_gpu_skipped"] = "no CUDA device: run `scripts/benchmark.py --device cuda` on a GPU"
                result["sft"] = sft

        if "eval" in sections:
            with _phase(timings, "eval"):
                messages, origin = eval_messages(shared_dir, settings.eval_prompts)
                if torch_device.type == "cuda":
                    source = qwen3_shape_source(str(real_tokenizer or tiny.tokenizer_dir))
                elif real_tokenizer is not None:
                    source = tiny_source(work, real_tokenizer, name="tiny-qwen3-tokenizer")
                else:
                    source = tiny
                result["eval"] = {
                    "prompts_from": origin,
                    **benchmark_eval(source, messages, settings, torch_device, precision.torch_dtype),
                }

        if "grpo" in sections:
            with _phase(timings, "grpo"):
                source = (
                    tiny
                    if torch_device.type == "cpu"
                    else qwen3_shape_source(str(real_tokenizer or tiny.tokenizer_dir))
                )
                result["grpo"] = benchmark_grpo(source, grpo_config, settings, torch_device)

    if "projection" in sections:
        with _phase(timings, "projection"):
            overhead = measure_host_overhead(QWEN3_0_6B_SHAPE, sft_lora, settings, torch_device, precision.torch_dtype)
            result["host_overhead"] = overhead
            memory = t4_memory_estimate(lengths, sft_config)
            result["t4_projection"] = project_t4(
                lengths,
                sft_config,
                grpo_config,
                eval_config,
                overhead,
                mfu=t4_mfu,
                simulation_steps=settings.simulation_steps,
                memory=memory,
            )
    timings["total"] = round(time.perf_counter() - started, 1)
    result["timings_seconds"] = timings
    result["recommendations"] = recommendations(result)
    return result


# Whether a batching strategy leaves training exactly as it was. padding_free: the loss and gradients of every batch
# equal the padded ones (checked at run time and in tests/test_benchmark.py). batch_rebalance: every optimizer step
# still holds a uniformly random set of rows, only split differently into micro-batches, and the token-normalised
# loss makes the step's gradient independent of that split (tested). group_by_length: optimizer steps hold rows of
# similar length, a different (length-correlated) sampling of the data: faster, not exact.
EXACT_STRATEGIES = {
    "pad_to_longest_random": "the seed's behaviour",
    "batch_rebalance": "same rows per optimizer step, split differently; same step gradient",
    "padding_free": "same loss and gradients per batch",
}


def recommendations(result: dict[str, Any]) -> list[str]:
    """Which levers the measurements support, in words (the figures are in the result)."""
    out = []
    sft = result.get("sft") or {}
    exact = sft.get("exactness") or {}
    efficiency = sft.get("padding_efficiency") or {}
    projection = result.get("t4_projection") or {}
    sft_projection = projection.get("sft") or {}
    memory = sft_projection.get("memory") or {}
    scenarios = sft_projection.get("scenarios") or {}
    if scenarios:
        checkpointing = "on" if not memory.get("fits_without_checkpointing") else "off"
        candidates = {
            strategy: scenarios[f"{strategy}, checkpointing {checkpointing}"]["seconds_per_step"]
            for strategy in EXACT_STRATEGIES
            if f"{strategy}, checkpointing {checkpointing}" in scenarios
        }
        best = min(candidates, key=candidates.get)
        seed = scenarios.get("pad_to_longest_random, checkpointing on", {}).get("seconds_per_step")
        out.append(
            f"SFT on a T4: {best} with activation checkpointing {checkpointing} projects to {candidates[best]:.3f} "
            f"s/step ({candidates[best] * sft_projection['steps'] / 60:.1f} min for {sft_projection['steps']} steps) "
            f"against {seed:.3f} s/step for the seed (pad to longest, checkpointing on); the fastest exact strategy "
            f"({EXACT_STRATEGIES[best]})"
        )
    if exact and efficiency:
        verdict = "exact" if exact.get("abs_loss_difference", 1) < 1e-5 else "NOT exact"
        out.append(
            f"padding_free is {verdict} (|loss difference| {exact['abs_loss_difference']:.1e}, max gradient "
            f"difference {exact['max_abs_grad_difference']:.1e}) with padding efficiency "
            f"{efficiency.get('padding_free')} vs "
            f"{efficiency.get('pad_to_longest_random')}, but with SDPA (no varlen kernel on a T4) the packed row's "
            "attention is a dense square: keep it off on a T4; it pays with a varlen flash-attention kernel "
            "(sm >= 8.0)"
        )
    if memory:
        out.append(
            f"activation_checkpointing: {'false' if memory.get('fits_without_checkpointing') else 'true'} for SFT "
            f"on a T4: the worst micro-batch ({memory['micro_batch']} x {memory['worst_sequence_tokens']} tokens) "
            f"needs about {memory['total_bytes'] / GIB:.1f} GiB without it, of the T4's "
            f"{memory['t4_memory_bytes'] / GIB:.1f} GiB; "
            "checkpointing costs one extra forward per step"
        )
    grpo = result.get("grpo") or {}
    grpo_projection = projection.get("grpo") or {}
    if grpo.get("generation_share") is not None:
        share = grpo_projection.get("every_completion_to_the_cap", {}).get("generation_share")
        out.append(
            f"GRPO is generation-bound ({grpo['generation_share']:.0%} of a step here"
            + (f", {share:.0%} projected on a T4" if share is not None else "")
            + "): generation is the lever. TRL already generates the whole generation batch in one generate() call; "
            "vLLM would be next, but no vLLM release TRL 1.16 supports installs beside transformers>=5.23"
        )
    evaluation = result.get("eval") or {}
    if evaluation.get("speedup_vs_sequential") is not None:
        out.append(
            f"eval: batched generation (batch {evaluation['best_batch_size']}) is "
            f"{evaluation['speedup_vs_sequential']:.1f}x the one-prompt-at-a-time loop; outputs identical: "
            f"{evaluation['outputs_identical']}"
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Outputs.
# ---------------------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}"
        return f"{value:.{digits}g}"
    return str(value)


def render_markdown(result: dict[str, Any]) -> str:
    device = result["device"]
    lines = [
        f"# Benchmark: {device['name']} ({device['type']}, {result['mode']} mode)",
        "",
        f"Created {result['created']} with torch {result['versions']['torch']}, transformers "
        f"{result['versions']['transformers']}, trl {result['versions']['trl']}, peft {result['versions']['peft']}. "
        f"Peak used for MFU: {_fmt(device['peak_flops'])} FLOP/s ({device['peak_source']}).",
        "",
        f"Lengths: {result['lengths']['source']}; full sequence mean {result['lengths']['full']['mean']}, "
        f"p95 {result['lengths']['full']['p95']}, max {result['lengths']['full']['max']} tokens; completion mean "
        f"{result['lengths']['completion']['mean']}.",
        "",
        f"FLOPs: {result['flops']['formula']}",
        "",
    ]
    sft = result.get("sft")
    if sft:
        sim = sft["simulation"]
        lines += [
            f"## SFT padding efficiency (simulated over {sim['steps']} steps of {sim['micro_batch']} x "
            f"{sim['gradient_accumulation_steps']} sequences)",
            "",
            "| strategy | padding efficiency | attention efficiency | processed tokens / step |",
            "|---|---|---|---|",
        ]
        for name, s in sim["strategies"].items():
            lines.append(
                f"| {name} | {_fmt(s['padding_efficiency'])} | {_fmt(s['attention_efficiency'])} | "
                f"{_fmt(s['processed_tokens_per_step'])} |"
            )
        exact = sft["exactness"]
        lines += [
            "",
            f"Exactness on a fixed batch of 4 (tiny model, SDPA): loss padded {exact['loss_padded']:.7f}, "
            f"padding-free {exact['loss_padding_free']:.7f}, |difference| {_fmt(exact['abs_loss_difference'])}, "
            "max LoRA gradient "
            f"difference {_fmt(exact['max_abs_grad_difference'])} (max gradient {_fmt(exact['max_abs_grad'])}).",
            "",
        ]
        for key in ("tiny_cpu", "tiny", "qwen3_0_6b_gpu"):
            block = sft.get(key)
            if not block:
                continue
            lines += [
                f"## SFT throughput: {block['model']} on {device['type']}",
                "",
                "| variant | s / step | real tok/s | processed tok/s | padding eff. | MFU | peak MiB | speed-up |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for name, v in block["variants"].items():
                lines.append(
                    f"| {name} | {_fmt(v['seconds_per_step_median'])} | {_fmt(v['real_tokens_per_s'], 4)} | "
                    f"{_fmt(v['processed_tokens_per_s'], 4)} | {_fmt(v['padding_efficiency_measured'])} | "
                    f"{_fmt(v['mfu'])} | {v['peak_memory_bytes'] / 2**20:.0f} | "
                    f"{_fmt(v['speedup_vs_pad_to_longest_random'])} |"
                )
            lines.append("")
        if sft.get("qwen3_0_6b_gpu_skipped"):
            lines += [f"Qwen3-0.6B-shape SFT: skipped ({sft['qwen3_0_6b_gpu_skipped']}).", ""]
    evaluation = result.get("eval")
    if evaluation:
        lines += [
            f"## Eval generation: {evaluation['prompts']} prompts ({evaluation['prompts_from']}), "
            f"{evaluation['max_new_tokens']} new tokens, {evaluation['model']}",
            "",
            "| batch size | seconds | generated tok/s | speed-up |",
            "|---|---|---|---|",
            f"| 1 (upstream's loop) | {_fmt(evaluation['sequential']['seconds_median'])} | "
            f"{_fmt(evaluation['sequential']['tokens_per_s'], 4)} | 1 |",
        ]
        for size, b in evaluation["batched"].items():
            lines.append(
                f"| {size} | {_fmt(b['seconds_median'])} | {_fmt(b['tokens_per_s'], 4)} | "
                f"{_fmt(b['speedup_vs_sequential'])} |"
            )
        lines += ["", f"Outputs identical to the sequential loop: {_fmt(evaluation['outputs_identical'])}.", ""]
    grpo = result.get("grpo")
    if grpo:
        lines += [
            f"## GRPO: {grpo['model']}",
            "",
            "| variant | s / step | generation share | generated tokens / step | micro-batch x accumulation |",
            "|---|---|---|---|---|",
        ]
        for name, v in grpo["variants"].items():
            lines.append(
                f"| {name} | {_fmt(v['seconds_per_step'])} | {_fmt(v['generation_share'])} | "
                f"{_fmt(v['generated_tokens_per_step'])} | {v['per_device_train_batch_size']} x "
                f"{v['gradient_accumulation_steps']} |"
            )
        lines += ["", grpo["note"], ""]
    projection = result.get("t4_projection")
    if projection:
        sft_p, grpo_p, eval_p = projection["sft"], projection["grpo"], projection["eval"]
        lines += [
            f"## T4 projection (fp16, assumed MFU {projection['assumed_mfu']}, bandwidth efficiency "
            f"{projection['assumed_bandwidth_efficiency']})",
            "",
            "| phase | as configured: s / unit | unit | units | total minutes |",
            "|---|---|---|---|---|",
            f"| SFT | {_fmt(sft_p['projected_t4_seconds_per_step'])} | optimizer step | {sft_p['steps']} | "
            f"{sft_p['projected_total_seconds'] / 60:.1f} |",
            f"| GRPO (every completion to the cap) | {_fmt(grpo_p['projected_t4_seconds_per_step'])} | "
            "optimizer step | "
            f"{grpo_p['steps']} | {grpo_p['projected_total_seconds'] / 60:.1f} |",
            f"| eval (every answer to the cap) | {_fmt(eval_p['projected_t4_seconds_per_step'])} | question | | |",
            "",
            "| SFT scenario | s / step | total minutes | device s | host s | floor at 100% peak |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in sft_p["scenarios"].items():
            lines.append(
                f"| {name} | {_fmt(s['seconds_per_step'])} | {s['total_seconds'] / 60:.1f} | "
                f"{_fmt(s['device_seconds_per_step'])} | {_fmt(s['host_seconds_per_step'])} | "
                f"{_fmt(s['physics_floor_seconds_per_step'])} |"
            )
        typical = grpo_p["typical_completions"]
        lines += [
            "",
            f"GRPO with typical completions ({typical['decode_steps']:.0f} decode steps): "
            f"{_fmt(typical['seconds_per_step'])} s/step, generation share {_fmt(typical['generation_share'])}; "
            f"at the cap: generation share {_fmt(grpo_p['every_completion_to_the_cap']['generation_share'])}.",
        ]
        memory = sft_p.get("memory")
        if memory:
            lines.append(
                f"SFT memory without activation checkpointing (worst micro-batch {memory['micro_batch']} x "
                f"{memory['worst_sequence_tokens']} tokens): about {memory['total_bytes'] / GIB:.2f} GiB of "
                f"{memory['t4_memory_bytes'] / GIB:.0f} GiB."
            )
        lines.append("")
    accelerators = result.get("accelerators") or {}
    if accelerators:
        lines += [
            "## Optional accelerators on this machine",
            "",
            f"- use_vllm auto: {_fmt(accelerators['use_vllm_auto']['enabled'])} "
            f"({accelerators['use_vllm_auto']['reason']}); vllm extra {accelerators['vllm_extra']}",
            f"- use_kernels auto: {_fmt(accelerators['use_kernels_auto']['enabled'])} "
            f"({accelerators['use_kernels_auto']['reason']})",
            "",
        ]
    if result.get("recommendations"):
        lines += ["## What the figures support", ""] + [f"- {r}" for r in result["recommendations"]] + [""]
    lines += [f"Benchmark wall time: {result['timings_seconds']}.", ""]
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out_dir: Path = DEFAULT_OUT_DIR) -> dict[str, Path]:
    stem = output_stem(result["device"], result["mode"])
    json_path = atomic_write_json(Path(out_dir) / f"{stem}.json", result)
    md_path = atomic_write_text(Path(out_dir) / f"{stem}.md", render_markdown(result))
    return {"json": json_path, "markdown": md_path}


def main_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True, default=str)


__all__ = [
    "DEVICE_SPECS",
    "MODES",
    "QWEN3_0_6B_SHAPE",
    "ModelShape",
    "TrainingCost",
    "device_spec",
    "padding_efficiency",
    "project_t4",
    "run_benchmark",
    "write_outputs",
]
