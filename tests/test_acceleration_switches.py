"""The optional accelerators' switches (fine_tune.models.acceleration): auto / true / false resolution."""

import json

import pytest
import torch

from fine_tune.models.acceleration import (
    AccelerationError,
    checkpoint_dtype,
    parse_switch,
    resolve_use_vllm,
)


def test_switch_values():
    assert [parse_switch(v) for v in (None, True, False, "AUTO", "yes", "off")] == [
        "auto",
        "true",
        "false",
        "auto",
        "true",
        "false",
    ]
    with pytest.raises(ValueError, match="expected one of"):
        parse_switch("sometimes")


def test_use_vllm_resolution():
    on = resolve_use_vllm("auto", vllm_version="0.25.0", capability=(8, 0), model_dtype="bfloat16")
    assert on.enabled and "colocated" in on.reason
    assert not resolve_use_vllm("false", vllm_version="0.25.0", capability=(8, 0)).enabled
    missing = resolve_use_vllm("auto", vllm_version=None, capability=(8, 0))
    assert not missing.enabled and "not installed" in missing.reason and "transformers" in missing.reason
    assert "no CUDA" in resolve_use_vllm("auto", vllm_version="0.25.0", capability=None).reason
    assert "outside the range" in resolve_use_vllm("auto", vllm_version="0.40.1", capability=(9, 0)).reason
    t4_bf16 = resolve_use_vllm("auto", vllm_version="0.25.0", capability=(7, 5), model_dtype="bfloat16")
    assert not t4_bf16.enabled and "fp16" in t4_bf16.reason
    assert resolve_use_vllm("auto", vllm_version="0.25.0", capability=(7, 5), model_dtype="float16").enabled
    with pytest.raises(AccelerationError, match="use_vllm: true, but vllm is not installed"):
        resolve_use_vllm("true", vllm_version=None, capability=None)


def test_use_vllm_auto_is_off_on_this_machine_without_error():
    """No vLLM and no CUDA in CI: auto falls back, whatever is installed."""
    resolution = resolve_use_vllm("auto")
    if not torch.cuda.is_available():
        assert not resolution.enabled and "no CUDA device" in resolution.reason


def test_checkpoint_dtype(tmp_path):
    assert checkpoint_dtype(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert checkpoint_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float16", "torch_dtype": "bfloat16"}))
    assert checkpoint_dtype(tmp_path) == "float16"
