"""The hardware table (device specs and Jobs flavors) and the benchmark's output names."""

from benchmarks.bench_report import output_stem
from fine_tune.hub.jobs.hardware import JOBS_FLAVORS, SPECS_BY_FAMILY, T4, device_spec, flavors_of_family, gpu_family


def test_device_peak_table():
    assert device_spec("Tesla T4").peak_flops["fp16"] == 65e12
    assert device_spec("Tesla T4").memory_bandwidth == 320e9
    assert device_spec("NVIDIA A100-SXM4-80GB").peak_flops["bf16"] == 312e12
    assert device_spec("NVIDIA A10G").name == "NVIDIA A10G"
    assert device_spec("NVIDIA H100 80GB HBM3").peak_flops["bf16"] == 989e12
    assert device_spec("NVIDIA H100 PCIe").name == "NVIDIA H100 PCIe"
    assert device_spec("NVIDIA L40S").name == "NVIDIA L40S"
    assert device_spec("NVIDIA L4").name == "NVIDIA L4"
    assert device_spec("Some Future GPU") is None


def test_output_names():
    assert output_stem({"type": "cpu"}, "full") == "cpu"
    assert output_stem({"type": "cpu"}, "quick") == "cpu-quick"
    assert output_stem({"type": "cuda", "name": "Tesla T4"}, "gpu") == "t4"
    assert output_stem({"type": "cuda", "name": "NVIDIA H200", "family": "h200"}, "smoke") == "h200-smoke"
    assert output_stem({"type": "cuda", "name": "Some Future GPU X1"}, "gpu") == "some-future-gpu-x1"


def test_families_and_flavors():
    assert gpu_family("NVIDIA A100-SXM4-80GB") == "a100" and gpu_family("NVIDIA A10G") == "a10g"
    assert gpu_family("NVIDIA H100 PCIe") == "h100-pcie" and gpu_family("NVIDIA H100 80GB HBM3") == "h100"
    assert flavors_of_family("t4") == ("t4-small", "t4-medium") and flavors_of_family("h100-pcie") == ()
    assert all(flavor.device.family in SPECS_BY_FAMILY and flavor.gpus >= 1 for flavor in JOBS_FLAVORS.values())
    assert T4.training_precision == "fp16" and SPECS_BY_FAMILY["a100"].training_precision == "bf16"
    assert T4.training_flops == 65e12 and JOBS_FLAVORS["t4-small"].hourly_usd == 0.40
