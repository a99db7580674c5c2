"""Hub access: whether a source is a Hub ID or a local path (decided here only), the token (by env var name, never
printed), whether the Hub can be used now (answered in seconds; a Hub call offline retries for minutes) and a bound on
every huggingface_hub HTTP call (its client has no timeout)."""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import constants

from fine_tune import bounds
from fine_tune.constants import TOKEN_ENV

HUB_TIMEOUT_S = 5.0
# huggingface_hub's shared HTTP client waits forever by default: an endpoint that accepts the connection and never
# answers hangs the caller. Calls that pass their own timeout (log streaming, downloads) keep theirs.
HUB_READ_TIMEOUT_S = bounds.read_timeout_s()
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
LOCAL_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(source: Any) -> bool:
    """An existing local file or folder."""
    return isinstance(source, (str, Path)) and str(source) != "" and Path(source).expanduser().exists()


def written_as_path(source: Any) -> bool:
    """Written like a path (./, /, ~, more than one '/', or a data-file suffix), whether or not it exists: such a
    source is never sent to the Hub, so a typo fails as 'not found' instead of as an unknown repo."""
    if not isinstance(source, (str, Path)) or str(source) == "":
        return False
    text = str(source)
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.lower().endswith(LOCAL_FILE_SUFFIXES)


def is_hub_id(source: Any, *, namespaced: bool = True) -> bool:
    """A Hub repo ID (`owner/name`; `name` alone too when not `namespaced`) that is not a local path."""
    if not isinstance(source, str) or is_local(source) or written_as_path(source) or not _HUB_ID.match(source):
        return False
    return "/" in source or not namespaced


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline_mode() -> bool:
    """Whether one of the Hugging Face libraries' offline switches is set."""
    return any(env_flag(name) for name in OFFLINE_ENV_VARS)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_reachable(endpoint: str | None = None, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the endpoint accepts a TCP connection and answers HTTP (any status), each within `timeout` seconds
    (DNS included). An endpoint that accepts connections and never answers is not reachable: huggingface_hub would
    retry each of its requests there for minutes."""
    import httpx2

    url = urlparse(endpoint or hub_endpoint())
    address = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            with httpx2.Client(timeout=timeout, follow_redirects=False) as client:
                client.head(url.geturl())
            result.append(True)
        except (OSError, httpx2.HTTPError):
            result.append(False)

    # DNS resolution ignores socket timeouts, so the whole attempt runs in a thread we stop waiting for.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(2 * timeout)
    return bool(result and result[0])


def bound_hub_calls(connect: float | None = None, read: float | None = None) -> None:
    """Give huggingface_hub's shared client connect/read/write timeouts, so that no Hub call (whoami, repo and job
    APIs, uploads) can wait forever on a silent endpoint. `import fine_tune` already did (`fine_tune.bounds`); this
    sets other bounds."""
    bounds.install_client_bounds(connect or HUB_TIMEOUT_S, read if read is not None else HUB_READ_TIMEOUT_S)


def hf_token(token_env: str = TOKEN_ENV) -> str | None:
    """The token from the environment variable named `token_env`; the value is never logged."""
    return os.environ.get(token_env) or None


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced, for messages and logs that may quote a Hub response."""
    return text.replace(secret, "***") if secret else text
