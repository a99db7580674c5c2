"""The device a benchmark runs on (name, peak FLOP/s, bandwidth), peak memory over a block, and the time caps that
keep a run inside its limit."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from fine_tune.errors import PipelineError
from fine_tune.hub.jobs.hardware import device_spec, gpu_family


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise PipelineError("--device cuda, but torch sees no CUDA device (use --device cpu, or run on a GPU)")
    if requested not in ("cpu", "cuda"):
        raise PipelineError(f"--device must be cpu, cuda or auto, got {requested!r}")
    return torch.device(requested)


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
            "family": gpu_family(name),
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


def timed(device: torch.device, fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `repeats` calls of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


class TimeCapReached(Exception):
    """A benchmark section ran into its time cap."""


@contextlib.contextmanager
def time_cap(seconds: float | None, what: str) -> Iterator[None]:
    """Raise TimeCapReached inside the block once `seconds` have passed (SIGALRM, main thread; no cap: None)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    if seconds <= 0:
        raise TimeCapReached(f"{what}: no time left")

    def expire(signum, frame):
        raise TimeCapReached(f"{what}: stopped at its time cap of {round(seconds, 1):g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
