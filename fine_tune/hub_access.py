"""Hub access: whether a source is a Hub ID or a local path (decided here only), the token (by env var name, never
printed), whether the Hub can be used now (answered in seconds; a Hub call offline retries for minutes) and a bound on
every huggingface_hub HTTP call (its client has no timeout)."""

from __future__ import annotations

import difflib
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
from fine_tune.errors import ModelSourceError

HUB_TIMEOUT_S = 5.0
# huggingface_hub's shared HTTP client waits forever by default: an endpoint that accepts the connection and never
# answers hangs the caller. Calls that pass their own timeout (log streaming, downloads) keep theirs.
HUB_READ_TIMEOUT_S = bounds.read_timeout_s()
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
CACHE_MARKERS = ("config.json", "tokenizer_config.json")  # a cached model or tokenizer repo holds one of these
# Before a Hub load: the connection and the HEAD answer each within this, so an unreachable Hub is known in <= 5 s.
REACHABILITY_TIMEOUT_S = 2.5
LOCAL_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(source: Any) -> bool:
    """An existing local file or folder."""
    return isinstance(source, (str, Path)) and str(source) != "" and Path(source).expanduser().exists()


def written_as_path(source: Any) -> bool:
    """Meant as a local path, whether or not it exists: written like one (./, /, ~, more than one '/', a data-file
    suffix) or under a folder that exists here (`demo_artifacts/tiny-modle`, `outputs/...`). Such a source is never
    sent to the Hub, so a typo fails as 'not found' instead of as minutes of Hub retries."""
    if not isinstance(source, (str, Path)) or str(source) == "":
        return False
    text = str(source)
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.lower().endswith(LOCAL_FILE_SUFFIXES):
        return True
    first, slash, _ = text.partition("/")
    return bool(slash) and Path(first).is_dir()


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


def nearest_existing(path: str | Path) -> str | None:
    """The existing path closest to a missing one: its first missing component replaced by the most similar name in
    the folder above it (the rest kept when that exists too); None when nothing there is close."""
    parts = Path(path).expanduser().parts
    folder = Path(parts[0]) if parts and Path(parts[0]).is_absolute() else Path(".")
    for index in range(1 if folder != Path(".") else 0, len(parts)):
        candidate = folder / parts[index]
        if not candidate.exists():
            try:
                names = sorted(child.name for child in folder.iterdir())
            except OSError:
                return None
            close = difflib.get_close_matches(parts[index], names, n=1, cutoff=0.6)
            if not close:
                return None
            found = folder / close[0]
            rest = found.joinpath(*parts[index + 1 :])
            return str(rest if rest.exists() else found)
        folder = candidate
    return None


def missing_path_message(source: str | Path, what: str) -> str:
    """`<what> not found: <source>`, with the nearest existing path when one is close."""
    nearest = nearest_existing(source)
    return f"{what} not found: {source}" + (f" (nearest existing: {nearest})" if nearest else "")


def require_source(source: str, what: str, *, produced_by: str | None = None, file: str | None = None) -> None:
    """Before loading `what` (model, tokenizer, a file of a model) from `source`: a local path must exist (one line
    with the nearest sibling, and `produced_by` saying which step writes it), and a Hub ID needs a Hub that answers
    now (checked in <= 5 s; huggingface_hub would retry each file for half a minute or more)."""
    if is_local(source):
        return
    if written_as_path(source):
        raise ModelSourceError(missing_path_message(source, what) + (f"; {produced_by}" if produced_by else ""))
    require_hub(source, what, file=file)


def require_hub(repo_id: str, what: str, *, file: str | None = None) -> None:
    """One line when `repo_id` cannot be loaded from the Hub now: offline and not in the local cache, or the Hub
    unreachable. The message names `what` (and the `file` of it) was being loaded."""
    what = f"{what} {repo_id}" + (f" ({file})" if file else "")
    if offline_mode():
        from huggingface_hub import try_to_load_from_cache

        if not any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in CACHE_MARKERS):
            raise ModelSourceError(
                f"cannot load {what}: offline mode is set ({'/'.join(OFFLINE_ENV_VARS)}) and it is not in "
                "the local Hugging Face cache; pass a local path, or unset offline mode to download it"
            )
        return
    endpoint = hub_endpoint()
    if not hub_reachable(endpoint, timeout=REACHABILITY_TIMEOUT_S):
        raise ModelSourceError(
            f"cannot load {what}: the Hugging Face Hub ({endpoint}) is unreachable (no answer within "
            f"{REACHABILITY_TIMEOUT_S:g} s); pass a local path, or set HF_HUB_OFFLINE=1 to use a copy in the local "
            "Hugging Face cache"
        )


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
