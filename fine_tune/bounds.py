"""Bounds in force from the first import of `fine_tune`, before anything imports transformers, peft, bitsandbytes or
TRL: timeouts on every huggingface_hub request, and no Hub lookup of a kernel the project did not ask for.

Importing `fine_tune` runs `put_in_force()`; every entry script imports `fine_tune` before those libraries (a test
reads the scripts' imports). A value already in the environment is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# bitsandbytes' CPU backend asks the `kernels` package for this kernel when it is imported (on CPUs with AVX-512
# BF16): bitsandbytes/backends/cpu/ops.py, `get_kernel("kernels-community/quantization-bitsandbytes", version=1)`
# inside `try: ... except Exception:` ("best effort fallback" to its own 4-bit kernel, same results). The resolver
# then asks the Hub who publishes the kernel (kernels/_internals/hf_hub.py, `get_organization_overview`) on a client
# with no timeout: a silent HF_ENDPOINT hung every script that imports TRL's trainer configs.
BNB_CPU_KERNEL = "kernels-community/quantization-bitsandbytes"
# The supported switch: `kernels`' LOCAL_KERNELS ("repo_id=path:repo_id=path"; kernels/_internals/load.py,
# `_get_local_kernel_overrides`) is resolved before the Hub. A folder without a build makes `get_kernel` raise
# FileNotFoundError (kernels/_internals/resolver.py, `resolve_local_kernel`) with no network call, and bitsandbytes
# falls back to its own kernel. Only this kernel is pinned: kernels the project asks for (`use_kernels`) resolve as
# before.
NO_KERNEL_DIR = "/nonexistent/medmcqa-ft-no-kernel"
# huggingface_hub reads these when it is first imported (huggingface_hub/constants.py): the bound on a download's
# metadata request and on each read of a file download, in seconds; and no telemetry (libraries report their use to
# the Hub from a background thread, huggingface_hub/utils/_telemetry.py: an offline demo made that call).
HUB_ENV_DEFAULTS = {"HF_HUB_ETAG_TIMEOUT": "10", "HF_HUB_DOWNLOAD_TIMEOUT": "20", "HF_HUB_DISABLE_TELEMETRY": "1"}
HUB_CONNECT_TIMEOUT_S = 5.0


def kernel_overrides(current: str | None) -> str:
    """LOCAL_KERNELS with bitsandbytes' CPU kernel pinned to a folder without a build (the user's entries kept; one
    that already names that kernel wins)."""
    entries = [entry for entry in (current or "").split(":") if entry]
    if any(entry.partition("=")[0] == BNB_CPU_KERNEL for entry in entries):
        return ":".join(entries)
    return ":".join([*entries, f"{BNB_CPU_KERNEL}={NO_KERNEL_DIR}"])


def set_env_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    for name, value in HUB_ENV_DEFAULTS.items():
        environ.setdefault(name, value)
    environ["LOCAL_KERNELS"] = kernel_overrides(environ.get("LOCAL_KERNELS"))


def read_timeout_s(environ: MutableMapping[str, str] = os.environ) -> float:
    """The read bound of huggingface_hub's shared client: HF_HUB_DOWNLOAD_TIMEOUT (one knob for every Hub read)."""
    try:
        return float(environ.get("HF_HUB_DOWNLOAD_TIMEOUT", HUB_ENV_DEFAULTS["HF_HUB_DOWNLOAD_TIMEOUT"]))
    except ValueError:
        return float(HUB_ENV_DEFAULTS["HF_HUB_DOWNLOAD_TIMEOUT"])


def install_client_bounds(connect: float | None = None, read: float | None = None) -> None:
    """Give huggingface_hub's shared HTTP client (no timeout by default: an endpoint that accepts the connection and
    never answers hangs the caller) connect/read/write timeouts, through its own `set_client_factory`. Calls that
    pass their own timeout (downloads, log streaming) keep theirs."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    timeout = httpx2.Timeout(read if read is not None else read_timeout_s(), connect=connect or HUB_CONNECT_TIMEOUT_S)

    def bounded_client() -> httpx2.Client:
        client = _http.default_client_factory()
        client.timeout = timeout
        return client

    set_client_factory(bounded_client)


def put_in_force() -> None:
    set_env_defaults()
    install_client_bounds()
