"""The one hardware table: device specs (dense peak FLOP/s per dtype, memory bandwidth, memory) and the Hugging Face
Jobs flavors that run on them. Torch-free: the job estimates read it as well as the benchmark."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fine_tune.models.precision import Device

GB = 1e9
GIB = 2**30
# torch.cuda.get_device_properties(0).total_memory on a Tesla T4, in GiB (issue 18): 99% of its datasheet 16 GB
T4_TOTAL_MEMORY_GIB = 14.74
T4_USABLE_RATIO = T4_TOTAL_MEMORY_GIB / (16 * GB / GIB)


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    family: str  # file stem of the device's benchmark result: eval_results/benchmarks/<family>.json
    peak_flops: dict[str, float]  # dense (no 2:4 sparsity), by dtype: "fp16", "bf16", "fp32"
    memory_bandwidth: float  # bytes/s
    memory_bytes: float
    source: str
    usable_gib: float | None = None  # torch.cuda.get_device_properties(0).total_memory / 2**30, where measured

    @property
    def usable_memory_gib(self) -> float:
        """What torch reports as the GPU's total memory (GiB): measured where known (T4), otherwise the datasheet
        size scaled by the T4's measured ratio (a floor: the HBM parts carry more than their rounded datasheet GB)."""
        if self.usable_gib is not None:
            return self.usable_gib
        return self.memory_bytes / GIB * T4_USABLE_RATIO

    @property
    def has_bf16(self) -> bool:
        return self.peak_flops["bf16"] > self.peak_flops["fp32"]

    def precision_device(self, name: str | None = None) -> Device:
        """This GPU as the precision rule (`fine_tune.models.precision.resolve_precision`) sees it."""
        return Device(name or self.name, cuda=True, bf16=self.has_bf16)

    @property
    def training_precision(self) -> str:
        """What `precision: auto` picks on this device: bf16 where it has bf16 tensor cores, fp16 otherwise."""
        return "bf16" if self.has_bf16 else "fp16"

    @property
    def training_flops(self) -> float:
        return self.peak_flops[self.training_precision]


# Matched in order against torch.cuda.get_device_name(): more specific names first (A100 before A10, L40S before L4).
DEVICE_SPECS: tuple[tuple[str, DeviceSpec], ...] = (
    (
        "H200",
        DeviceSpec(
            "NVIDIA H200",
            "h200",
            {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
            4800 * GB,
            141 * GB,
            "H200 datasheet",
        ),
    ),
    (
        "H100 PCIE",
        DeviceSpec(
            "NVIDIA H100 PCIe",
            "h100-pcie",
            {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12},
            2000 * GB,
            80 * GB,
            "H100 datasheet",
        ),
    ),
    (
        "H100",
        DeviceSpec(
            "NVIDIA H100 SXM",
            "h100",
            {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
            3350 * GB,
            80 * GB,
            "H100 datasheet",
        ),
    ),
    (
        "A100",
        DeviceSpec(
            "NVIDIA A100",
            "a100",
            {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
            2039 * GB,
            80 * GB,
            "A100 datasheet",
        ),
    ),
    (
        "L40S",
        DeviceSpec(
            "NVIDIA L40S",
            "l40s",
            {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12},
            864 * GB,
            48 * GB,
            "L40S datasheet",
        ),
    ),
    (
        "L4",
        DeviceSpec(
            "NVIDIA L4", "l4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}, 300 * GB, 24 * GB, "L4 datasheet"
        ),
    ),
    (
        "A10",
        DeviceSpec(
            "NVIDIA A10G",
            "a10g",
            {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12},
            600 * GB,
            24 * GB,
            "A10 datasheet (A10G is AWS's A10; sustained clocks are lower)",
        ),
    ),
    # No bf16 tensor cores on sm_75: bf16 runs at (at best) the fp32 rate. This is why upstream's bf16 SFT ran out of
    # time.
    (
        "T4",
        DeviceSpec(
            "NVIDIA T4",
            "t4",
            {"fp16": 65e12, "bf16": 8.1e12, "fp32": 8.1e12},
            320 * GB,
            16 * GB,
            "T4 datasheet (fp16 tensor cores 65 TFLOP/s, fp32 8.1 TFLOP/s, GDDR6 320 GB/s)",
            usable_gib=T4_TOTAL_MEMORY_GIB,
        ),
    ),
)
SPECS_BY_FAMILY = {spec.family: spec for _, spec in DEVICE_SPECS}
T4 = SPECS_BY_FAMILY["t4"]


def device_spec(name: str) -> DeviceSpec | None:
    """The spec whose key occurs in a CUDA device name ("Tesla T4", "NVIDIA A100-SXM4-80GB", ...), if known."""
    upper = name.upper()
    for key, spec in DEVICE_SPECS:
        if key in upper:
            return spec
    return None


def gpu_family(name: str) -> str:
    """The file stem for a CUDA device's results: the table's family, or the name made file-safe when unknown."""
    spec = device_spec(name)
    if spec is not None:
        return spec.family
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "unknown-gpu"


@dataclass(frozen=True)
class Flavor:
    name: str
    device: DeviceSpec
    gpus: int
    hourly_usd: float


# US$ per hour: list prices from https://huggingface.co/docs/hub/jobs-pricing (billed per minute; `hf jobs hardware`
# shows today's). Only used to print a cost estimate.
JOBS_FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        Flavor("t4-small", T4, 1, 0.40),
        Flavor("t4-medium", T4, 1, 0.60),
        Flavor("l4x1", SPECS_BY_FAMILY["l4"], 1, 0.80),
        Flavor("a10g-small", SPECS_BY_FAMILY["a10g"], 1, 1.00),
        Flavor("a10g-large", SPECS_BY_FAMILY["a10g"], 1, 1.50),
        Flavor("l40sx1", SPECS_BY_FAMILY["l40s"], 1, 1.80),
        Flavor("a100-large", SPECS_BY_FAMILY["a100"], 1, 2.50),
        Flavor("h200", SPECS_BY_FAMILY["h200"], 1, 5.00),
    )
}


def flavors_of_family(family: str) -> tuple[str, ...]:
    return tuple(name for name, flavor in JOBS_FLAVORS.items() if flavor.device.family == family)


_GPU_SUFFIX = re.compile(r"x(\d+)$")


def flavor_gpus(flavor: str) -> int:
    """GPUs of a Jobs flavor: the table's count when it lists the flavor; otherwise 0 for cpu-*, N for a name ending
    in xN (`a10g-largex4`, `h200x8`: how Jobs names multi-GPU flavors), else 1."""
    if flavor in JOBS_FLAVORS:
        return JOBS_FLAVORS[flavor].gpus
    if flavor.startswith("cpu"):
        return 0
    match = _GPU_SUFFIX.search(flavor)
    return int(match.group(1)) if match else 1


def flavor_memory_gib() -> dict[str, float]:
    """Usable GPU memory (GiB, per GPU, as torch reports it) of each listed Jobs flavor, cheapest flavor first."""
    ordered = sorted(JOBS_FLAVORS.values(), key=lambda flavor: flavor.hourly_usd)
    return {flavor.name: flavor.device.usable_memory_gib for flavor in ordered}


def flavor_device(flavor: str) -> Device:
    """A Jobs flavor's GPU as the precision rule sees it (`fine_tune.models.precision.resolve_precision`): bf16 where
    the table's device has bf16 tensor cores; a cpu-* flavor is a CPU; an unlisted GPU flavor is assumed to lack
    bf16 (the rule then never picks bf16 where it may not run)."""
    if flavor in JOBS_FLAVORS:
        spec = JOBS_FLAVORS[flavor].device
        return spec.precision_device(f"{flavor} ({spec.name})")
    if flavor.startswith("cpu"):
        return Device(flavor, cuda=False, bf16=False)
    return Device(f"{flavor} (not in the flavor table)", cuda=True, bf16=False)
