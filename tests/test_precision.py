"""The precision rule (fine_tune.models.precision): hardware, and architectures that overflow in fp16."""

import pytest
import torch
from signatures import bound_to, patch_bound

from fine_tune.errors import RecipeError
from fine_tune.hub.jobs.hardware import flavor_device
from fine_tune.models.precision import FP16_OVERFLOW, Device, check_model_precision, resolve_precision

T4 = Device("Tesla T4 (sm_75)", cuda=True, bf16=False)
L4 = Device("NVIDIA L4 (sm_89)", cuda=True, bf16=True)
A100 = Device("NVIDIA A100 (sm_80)", cuda=True, bf16=True)
CPU = Device("CPU", cuda=False, bf16=False)


@pytest.mark.parametrize("model_type", ["gemma3", "gemma3_text", "gemma3n", "gemma2", "qwen2", "qwen3_moe"])
def test_an_fp16_overflowing_architecture_never_runs_in_fp16(model_type):
    on_t4 = resolve_precision("auto", model_type=model_type, device=T4)
    assert (on_t4.name, on_t4.fp16, on_t4.bf16, on_t4.torch_dtype) == ("fp32", False, False, torch.float32)
    assert "never fp16" in on_t4.reason and FP16_OVERFLOW[model_type] in on_t4.reason
    for device in (L4, A100):
        assert resolve_precision("auto", model_type=model_type, device=device).name == "bf16"
    assert resolve_precision("auto", model_type=model_type, device=CPU).name == "fp32"


@pytest.mark.parametrize("model_type", [None, "qwen3", "llama", "mistral"])
def test_other_architectures_keep_the_hardware_rule(model_type):
    assert resolve_precision("auto", model_type=model_type, device=T4).name == "fp16"
    assert resolve_precision("auto", model_type=model_type, device=L4).name == "bf16"
    assert resolve_precision("auto", model_type=model_type, device=CPU).name == "fp32"


def test_explicit_fp16_is_refused_for_gemma3_and_explicit_others_are_kept():
    with pytest.raises(ValueError, match="fp16 is refused for gemma3.*bf16 or fp32"):
        resolve_precision("fp16", model_type="gemma3", device=T4)
    assert resolve_precision("fp32", model_type="gemma3", device=T4).name == "fp32"
    assert resolve_precision("fp16", model_type="qwen3", device=T4).reason == "set in the config"


def test_a_loaded_model_that_overflows_in_fp16_is_refused():
    with pytest.raises(RecipeError, match="google/medgemma-4b-it is gemma3.*set model_type: gemma3"):
        check_model_precision(resolve_precision("auto", device=T4), "gemma3", "google/medgemma-4b-it")
    check_model_precision(resolve_precision("auto", device=L4), "gemma3", "google/medgemma-4b-it")
    check_model_precision(resolve_precision("auto", device=T4), "qwen3", "Qwen/Qwen3-0.6B")


def test_flavors_are_seen_as_their_gpus():
    assert not flavor_device("t4-small").bf16 and flavor_device("t4-small").cuda
    assert flavor_device("l4x1").bf16 and flavor_device("a100-large").bf16
    assert not flavor_device("cpu-basic").cuda
    assert resolve_precision("auto", model_type="gemma3", device=flavor_device("t4-medium")).name == "fp32"


def test_trainer_config_on_a_t4_applies_the_rule(monkeypatch):
    """The trainer configs resolve the rule at parse time (`_apply_hardware`, run by MedSFTConfig/MedGRPOConfig's
    __post_init__): MedGemma on a T4-like GPU trains in fp32, a Qwen3 in fp16, both in bf16 on sm >= 8."""
    from types import SimpleNamespace

    from fine_tune.recipes.trainer_configs import _apply_hardware

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_capability = torch.cuda.get_device_capability
    patch_bound(monkeypatch, torch.cuda, "get_device_name", lambda device=None: "GPU")
    for capability, model_type, expected in (
        ((7, 5), "gemma3", (False, False)),
        ((7, 5), "qwen3", (False, True)),
        ((8, 9), "gemma3", (True, False)),
    ):
        fake = bound_to(real_capability, lambda device=None, c=capability: c)
        monkeypatch.setattr(torch.cuda, "get_device_capability", fake)
        config = SimpleNamespace(precision="auto", model_type=model_type)
        _apply_hardware(config)
        assert (config.bf16, config.fp16) == expected, (capability, model_type)
