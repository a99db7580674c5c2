"""Optional accelerators, each behind an `auto | true | false` switch resolved from what is installed and present.

`auto` turns an accelerator on only where it can work and otherwise falls back with one log line saying why;
`true` insists (an explicit request that cannot be met is an error, not a silent fallback); `false` turns it off.
Nothing here imports the optional packages: availability is read from the installed distributions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from fine_tune.errors import PipelineError

logger = logging.getLogger(__name__)

SWITCH_VALUES = ("auto", "true", "false")
# TRL 1.16 supports these vLLM releases (trl.import_utils.is_vllm_available warns outside the range).
VLLM_SUPPORTED = (Version("0.22.0"), Version("0.31.0"))
VLLM_EXTRA_HINT = "pip install 'medmcqa-ft[vllm]'"
VLLM_SERVER = "server"  # the `vllm` switch value for generations from `trl vllm-serve` on another GPU


class AccelerationError(PipelineError, RuntimeError):
    """An accelerator was required (`true`) but cannot run here."""


@dataclass(frozen=True)
class Resolution:
    enabled: bool
    reason: str
    mode: str = "colocate"  # TRL's vllm_mode when enabled: "colocate" (on the training GPU) or "server"


def parse_switch(value: str | bool | None) -> str:
    """'auto', 'true' or 'false' from a YAML/CLI value (booleans and their usual spellings accepted)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    aliases = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}
    text = aliases.get(text, text)
    if text not in SWITCH_VALUES:
        raise ValueError(f"expected one of {SWITCH_VALUES} (or a boolean), got {value!r}")
    return text


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is absent (the package is never imported)."""
    if importlib.util.find_spec(distribution.replace("-", "_")) is None:
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cuda_capability() -> tuple[int, int] | None:
    """(major, minor) of the current CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability()


def checkpoint_dtype(model_path: str | Path) -> str | None:
    """The dtype a local checkpoint was saved in (config.json `dtype`, or the older `torch_dtype`), if readable."""
    config = Path(model_path) / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    value = data.get("dtype") or data.get("torch_dtype")
    return str(value) if value else None


def _resolve(name: str, setting: str, problems: list[str], enabled_reason: str, fallback: str) -> Resolution:
    if setting == "false":
        return Resolution(False, f"{name}: false")
    if not problems:
        logger.info("%s: on (%s)", name, enabled_reason)
        return Resolution(True, enabled_reason)
    reason = "; ".join(problems)
    if setting == "true":
        raise AccelerationError(f"{name}: true, but {reason}. Set {name}: auto to fall back to {fallback}.")
    logger.info("%s auto: off (%s); %s", name, reason, fallback)
    return Resolution(False, f"{reason}; {fallback}")


def vllm_problems(version: str | None, capability: tuple[int, int] | None) -> list[str]:
    """Why vLLM cannot generate here (empty when it can): not installed, outside TRL's range, or no CUDA device."""
    problems = []
    if version is None:
        problems.append(f"vllm is not installed ({VLLM_EXTRA_HINT})")
    else:
        base = Version(Version(version).base_version)
        if not VLLM_SUPPORTED[0] <= base <= VLLM_SUPPORTED[1]:
            problems.append(
                f"vllm {version} is outside the range TRL 1.16 supports ({VLLM_SUPPORTED[0]}-{VLLM_SUPPORTED[1]})"
            )
    if capability is None:
        problems.append("no CUDA device")
    return problems


def resolve_use_vllm(
    setting: str | bool | None = "auto",
    *,
    model_path: str | Path | None = None,
    vllm_version: str | None | bool = False,
    capability: tuple[int, int] | None | bool = False,
    model_dtype: str | None | bool = False,
) -> Resolution:
    """Whether GRPO generates with vLLM (TRL `use_vllm=True, vllm_mode="colocate"`).

    On when vLLM is installed in the range TRL supports and a CUDA device is present. TRL 1.16 starts the colocated
    engine with the checkpoint's own dtype (it passes none), and vLLM refuses bf16 below compute capability 8.0, so on
    a T4 the starting checkpoint must be saved in fp16/fp32. The keyword arguments override detection (tests).
    """
    if str(setting).strip().lower() == VLLM_SERVER:
        version = installed_version("vllm") if vllm_version is False else vllm_version
        if version is None:
            raise AccelerationError(f"vllm: server needs vLLM's client, and vllm is not installed ({VLLM_EXTRA_HINT})")
        return Resolution(True, "generations from TRL's vLLM server (`trl vllm-serve`)", mode=VLLM_SERVER)
    setting = parse_switch(setting)
    if setting == "false":
        return Resolution(False, "use_vllm: false")
    version = installed_version("vllm") if vllm_version is False else vllm_version
    cap = cuda_capability() if capability is False else capability
    dtype = (checkpoint_dtype(model_path) if model_path is not None else None) if model_dtype is False else model_dtype
    problems = vllm_problems(version, cap)
    if cap is not None and cap[0] < 8 and dtype in ("bfloat16", "bf16"):
        problems.append(
            f"the checkpoint is bf16 and this GPU (sm_{cap[0]}{cap[1]}) has no bf16; TRL's colocated vLLM takes the "
            "checkpoint's dtype, so save the starting model in fp16"
        )
    return _resolve(
        "use_vllm",
        setting,
        problems,
        f"vllm {version} on sm_{cap[0]}{cap[1]}: colocated vLLM generation" if cap else "",
        "GRPO generates with transformers (batched generate)",
    )
